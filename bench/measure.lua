-- The timing of the Lua benchmarks (bench/call.lua, bench/host.lua): `measure(n, loop)` runs
-- `loop(k)` (k checked calls) once to warm up, then 3 timed rounds of n; the best, in ns per
-- call. `row(name, n, id, make)` prints `name fresh_ns warm_ns` for entry `id` (a fresh
-- instance per call) and `id .. "_warm"` (pool.reuse), `make(id)` giving the loop.
-- `median(xs)` for the benchmarks that report medians (limits, pools, paths).
local clock = require("funcs").clock

local M = {}

function M.measure(n, loop)
  loop(math.max(10, n // 100))
  local best = math.huge
  for _ = 1, 3 do
    local start = clock()
    loop(n)
    best = math.min(best, (clock() - start) / n * 1e9)
  end
  return best
end

function M.median(xs)
  table.sort(xs)
  return xs[(#xs + 1) // 2]
end

function M.row(name, n, id, make)
  local fresh = M.measure(n, make(id))
  local warm = M.measure(n, make(id .. "_warm"))
  print(("%s %.0f %.0f"):format(name, fresh, warm))
end

return M
