-- Host calls (SPEC section 10) in `make bench`: a guest calling back into Lua and out again.
-- minimal.wasm's compute-using-host calls the host's `add` once per call; `compute` (the
-- same component, no host call) is the no-op baseline the target is set against. Prints
-- `name fresh_ns warm_ns` lines: the best of 3 timed rounds after a warm-up.
-- Then host-call round trips: `bench:pings` calls the host's `ping` 1,000 times per call, on
-- the caller's thread (funcs.call of an inline pool) and from a worker (funcs.async on a lazy
-- pool, waited for); 21 rounds of each, interleaved. Prints `round-trip-<where> median_ns
-- min_ns max_ns` per host call (issue 27: from a worker, a median of at most 10 µs).
local funcs = require("funcs")
local adds = 0
assert(funcs.host("test:minimal/host", { add = function(a, b) adds = adds + 1; return a + b end }))
assert(funcs.host("bench:ping/host", { ping = function(x) return x + 1 end }))
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

local clock, pings = funcs.clock, 1000
local rounds = {
  ["caller-thread"] = function() return call("bench:pings", pings) end,
  ["from-worker"] = function() return funcs.async("bench:pings_worker", pings):wait() end,
}
local order, times = { "caller-thread", "from-worker" }, { ["caller-thread"] = {}, ["from-worker"] = {} }
for round = 0, 21 do
  for _, where in ipairs(order) do
    local start = clock()
    if rounds[where]() ~= pings then error(where) end
    -- Round 0 warms up.
    if round > 0 then table.insert(times[where], (clock() - start) / pings * 1e9) end
  end
end
for _, where in ipairs(order) do
  local t = times[where]
  local median = require("bench.measure").median(t)
  print(("round-trip-%s %.0f %.0f %.0f"):format(where, median, t[1], t[#t]))
end
