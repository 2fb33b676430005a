-- Limits, measured (issue 5): deadline overshoot on a spinning guest, 100 sleeping calls
-- through 2 workers, and what a deadline costs a CPU-bound guest. Prints `name value unit`.
local funcs = require("funcs")
assert(funcs.load("bench/registry"))
local clock = funcs.clock

local median = require("bench.measure").median

-- A spin of -1 (as u64: forever) until the deadline stops it.
for _, ms in ipairs({ 10, 100, 1000 }) do
  local over = {}
  for i = 1, (ms == 1000 and 5 or 20) do
    local start = clock()
    local _, err = funcs.call("bench:forever_" .. ms, -1)
    assert(err and err:kind() == "TIMEOUT", tostring(err))
    over[i] = (clock() - start) * 1000 - ms
  end
  local worst = math.max(table.unpack(over))
  print(("overshoot-%dms-median %.2f ms"):format(ms, median(over)))
  print(("overshoot-%dms-max %.2f ms"):format(ms, worst))
end

-- 100 concurrent sleep-ms(100) through a static pool of 2 workers.
assert(funcs.call("bench:sleep", 1))
local runs = {}
for r = 1, 5 do
  local start = clock()
  local futures = {}
  for i = 1, 100 do futures[i] = assert(funcs.async("bench:sleep", 100)) end
  for i = 1, 100 do assert(futures[i]:wait()) end
  runs[r] = (clock() - start) * 1000
end
print(("sleep-100x100ms-2-workers %.1f ms"):format(median(runs)))

-- A CPU-bound guest (1e9 loop iterations) with and without a deadline, alternated.
local plain, limited = {}, {}
funcs.call("bench:spin", 1e6)
funcs.call("bench:spin_limited", 1e6)
for i = 1, 5 do
  local start = clock()
  assert(funcs.call("bench:spin", 1000000000) == 1000000000)
  plain[i] = (clock() - start) * 1000
  start = clock()
  assert(funcs.call("bench:spin_limited", 1000000000) == 1000000000)
  limited[i] = (clock() - start) * 1000
end
print(("spin-1e9-no-deadline %.1f ms"):format(median(plain)))
print(("spin-1e9-deadline %.1f ms"):format(median(limited)))
