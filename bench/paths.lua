-- Every path of a call, one component (mapper.wasm's transform-users over 1,000 records, the
-- users table of bench/call.lua), µs per call, median of 5 rounds (issue 15's table):
-- `pool: inline` with and without WASI imports, lazy pools through funcs.call, and
-- funcs.async(...):wait(). Prints `paths-<row> <µs> us/call`.
local funcs = require("funcs")
assert(funcs.load("bench/registry"))
local clock, call, async = funcs.clock, funcs.call, funcs.async

local users = {}
for i = 1, 1000 do
  users[i] = { id = i, name = "user" .. i, tags = { "admin", "dev" }, active = i % 2 == 0 }
end

local function median(xs)
  table.sort(xs)
  return xs[(#xs + 1) // 2]
end

local N = tonumber(arg and arg[1]) or 200
local rows = {
  { "inline", "bench:transform_users", call },
  { "inline-wasi", "bench:transform_users_wasi", call },
  { "lazy-call", "bench:transform_users_lazy", call },
  { "lazy-wasi-call", "bench:transform_users_wasi_lazy", call },
  { "lazy-async", "bench:transform_users_lazy", function(id, v) return async(id, v):wait() end },
  { "lazy-wasi-async", "bench:transform_users_wasi_lazy", function(id, v) return async(id, v):wait() end },
}
for _, r in ipairs(rows) do
  local name, id, f = r[1], r[2], r[3]
  for _ = 1, 10 do assert(#f(id, users) == 1000) end
  local runs = {}
  for k = 1, 5 do
    local start = clock()
    for _ = 1, N do
      if #f(id, users) ~= 1000 then error(name) end
    end
    runs[k] = (clock() - start) / N * 1e6
  end
  print(("paths-%s %.0f us/call"):format(name, median(runs)))
end
