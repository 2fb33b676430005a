-- Host calls (SPEC section 10) in `make bench`: a guest calling back into Lua and out again.
-- minimal.wasm's compute-using-host calls the host's `add` once per call; `compute` (the
-- same component, no host call) is the no-op baseline the target is set against. Prints
-- `name fresh_ns warm_ns` lines: the best of 3 timed rounds after a warm-up.
local funcs = require("funcs")
local adds = 0
assert(funcs.host("test:minimal/host", { add = function(a, b) adds = adds + 1; return a + b end }))
assert(funcs.load("bench/host-registry"))
local call, base_row = funcs.call, require("bench.measure").row

local function row(name, n, id, want)
  base_row(name, n, id, function(id)
    return function(k) for _ = 1, k do if call(id, 6, 7) ~= want then error(id) end end end
  end)
end

row("compute-no-host", 50000, "bench:compute", 42)
row("host-call-caller-thread", 50000, "bench:host_add", 13)
row("host-call-from-worker", 20000, "bench:host_add_worker", 13)
assert(adds > 0)
