-- Pools, measured (issue 4): a CPU-bound guest through `inline` and a static pool of 2
-- workers via funcs.async, a WASI one through a lazy pool from 1, 2 and 4 callers (2 against
-- 1, beside the static pool's 2 against 1), and per-call time with a fresh instance vs a reused one
-- (`pool.reuse`) for `compute`, a CPython component and a C one (wit-bindgen and zig,
-- spec/fixtures/c-http: `greet`). Run once per allocator
-- (FUNCS_ALLOCATOR=on-demand for the other). Prints `name value unit`.
local funcs = require("funcs")
assert(funcs.load("bench/registry"))
assert(funcs.load("build/guests/python"))
assert(funcs.load("build/guests/c-http"))
local clock = funcs.clock
local allocator = funcs.engine().allocator

local median = require("bench.measure").median

-- 40 calls of ~30 ms of counting each.
local SPIN, CALLS = 50000000, 40
for _, id in ipairs({ "bench:spin", "bench:spin_static2" }) do
  assert(funcs.async(id, 1):wait())
  local runs = {}
  for r = 1, 3 do
    local start = clock()
    local futures = {}
    for i = 1, CALLS do futures[i] = assert(funcs.async(id, SPIN)) end
    for i = 1, CALLS do assert(futures[i]:wait() == SPIN) end
    runs[r] = CALLS / (clock() - start)
  end
  print(("throughput-%s %.1f calls/s"):format(id:gsub("bench:", ""), median(runs)))
end

-- A WASI entry's CPU-bound calls (on workers of a lazy pool of up to 4) from 1, 2 and 4
-- callers at once: batches of that many futures, each batch waited for. The same batches
-- through the static pool of 2 (no WASI) are the yardstick of what 2 threads give here.
-- Rounds interleaved (lazy 1, 2, 4, static 1, 2, lazy 1, ...): this machine's speed drifts
-- by tens of percent within a minute, and it is shared.
do
  local batches = {
    { "bench:spin_wasi_lazy", 1 }, { "bench:spin_wasi_lazy", 2 }, { "bench:spin_wasi_lazy", 4 },
    { "bench:spin_static2", 1 }, { "bench:spin_static2", 2 },
  }
  local runs = {}
  for _, b in ipairs(batches) do
    assert(funcs.async(b[1], 1):wait())
    runs[b[1] .. b[2]] = {}
  end
  for r = 1, 5 do
    for _, b in ipairs(batches) do
      local id, callers = b[1], b[2]
      local start = clock()
      for _ = 1, CALLS // 2 // callers do
        local futures = {}
        for i = 1, callers do futures[i] = assert(funcs.async(id, SPIN)) end
        for i = 1, callers do assert(futures[i]:wait() == SPIN) end
      end
      runs[id .. callers][r] = (CALLS // 2 // callers * callers) / (clock() - start)
    end
  end
  for _, callers in ipairs({ 1, 2, 4 }) do
    print(("throughput-wasi-lazy-%d-callers %.1f calls/s"):format(
      callers, median(runs["bench:spin_wasi_lazy" .. callers])))
  end
  -- 2 callers against 1 (each round's pair, then their median): the lazy WASI pool beside
  -- the static pool of 2 measured in the same rounds.
  for _, e in ipairs({ { "wasi-lazy", "bench:spin_wasi_lazy" }, { "static2", "bench:spin_static2" } }) do
    local ratios = {}
    for r = 1, 5 do ratios[r] = runs[e[2] .. 2][r] / runs[e[2] .. 1][r] end
    print(("speedup-%s-2-callers %.2f x-1-caller"):format(e[1], median(ratios)))
  end
end

local function per_call(name, id, n, ...)
  for _ = 1, math.max(3, n // 100) do assert(funcs.call(id, ...)) end
  local runs = {}
  for r = 1, 3 do
    local start = clock()
    for _ = 1, n do assert(funcs.call(id, ...)) end
    runs[r] = (clock() - start) / n * 1e6
  end
  print(("%s-%s %.2f us/call"):format(name, allocator, median(runs)))
end

per_call("compute-fresh", "bench:compute", 20000, 6, 7)
per_call("compute-reuse", "bench:compute_warm", 20000, 6, 7)
per_call("python-compute-fresh", "py:compute", 200, 6, 7)
per_call("python-compute-reuse", "py:compute_warm", 2000, 6, 7)
per_call("c-greet-fresh", "ch:greet", 20000, "World")
per_call("c-greet-reuse", "ch:greet_warm", 20000, "World")
