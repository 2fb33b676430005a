-- Host calls (SPEC section 10) in `make bench`: a guest calling back into Lua and out again.
-- minimal.wasm's compute-using-host calls the host's `add` once per call; `compute` (the
-- same component, no host call) is the no-op baseline the target is set against. Prints
-- `name fresh_ns warm_ns` lines: the best of 3 timed rounds after a warm-up.
local funcs = require("funcs")
local adds = 0
assert(funcs.host("test:minimal/host", { add = function(a, b) adds = adds + 1; return a + b end }))
assert(funcs.load("bench/host-registry"))
local clock, call = funcs.clock, funcs.call

local function measure(n, loop)
  loop(math.max(10, n // 100))
  local best = math.huge
  for _ = 1, 3 do
    local start = clock()
    loop(n)
    best = math.min(best, (clock() - start) / n * 1e9)
  end
  return best
end

local function row(name, n, id, want)
  local function make(id)
    return function(k) for _ = 1, k do if call(id, 6, 7) ~= want then error(id) end end end
  end
  print(("%s %.0f %.0f"):format(name, measure(n, make(id)), measure(n, make(id .. "_warm"))))
end

row("compute-no-host", 50000, "bench:compute", 42)
row("host-call-caller-thread", 50000, "bench:host_add", 13)
row("host-call-from-worker", 20000, "bench:host_add_worker", 13)
assert(adds > 0)
