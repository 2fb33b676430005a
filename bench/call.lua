-- The Lua side of `make bench`: 100,000 funcs.call of each case, after a warm-up.
-- Prints one `name ns/call` line per case, like benches/raw.rs.
local funcs = require("funcs")
assert(funcs.load("examples/app"))

local N = 100000
local clock = funcs.clock

local function report(name, f, n)
  n = n or N
  for _ = 1, math.max(10, n // 100) do f() end
  local start = clock()
  for _ = 1, n do f() end
  print(("%s %.0f"):format(name, (clock() - start) / n * 1e9))
end

local call = funcs.call
report("answer", function() assert(call("examples:answer_raw") == 42) end)
report("compute", function() assert(call("examples:compute", 6, 7) == 42) end)

-- transform-users over n records; the Lua table is built once, converted on every call.
for _, case in ipairs({ { 10, 20000 }, { 100, 5000 }, { 1000, 500 } }) do
  local n, iterations = case[1], case[2]
  local users = {}
  for i = 1, n do
    users[i] = { id = i, name = "user" .. i, tags = { "admin", "dev" }, active = i % 2 == 0 }
  end
  report("transform-users-" .. n, function()
    local out = call("examples:transform_users", users)
    assert(#out == n)
  end, iterations)
end
