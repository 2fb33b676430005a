-- The Lua side of `make bench`: 100,000 funcs.call of each case, after a warm-up.
-- Prints one `name ns/call` line per case, like benches/raw.rs.
local funcs = require("funcs")
assert(funcs.load("examples/app"))

local N = 100000
local clock = os.clock

local function report(name, f)
  for _ = 1, 1000 do f() end
  local start = clock()
  for _ = 1, N do f() end
  print(("%s %.0f"):format(name, (clock() - start) / N * 1e9))
end

local call = funcs.call
report("answer", function() assert(call("examples:answer_raw") == 42) end)
report("compute", function() assert(call("examples:compute", 6, 7) == 42) end)
