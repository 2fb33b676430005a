-- Every path of a call, one component (mapper.wasm's transform-users over 1,000 records, the
-- users table of bench/call.lua), µs per call, median of 7 interleaved rounds (issue 15's table):
-- `pool: inline` with and without WASI imports, lazy pools through funcs.call, and
-- funcs.async(...):wait(). Prints `paths-<row> <µs> us/call`.
local funcs = require("funcs")
assert(funcs.load("bench/registry"))
local clock, call, async = funcs.clock, funcs.call, funcs.async

local users = {}
for i = 1, 1000 do
  users[i] = { id = i, name = "user" .. i, tags = { "admin", "dev" }, active = i % 2 == 0 }
end

local median = require("bench.measure").median

local N = tonumber(arg and arg[1]) or 100
local rows = {
  { "inline", "bench:transform_users", call },
  { "inline-wasi", "bench:transform_users_wasi", call },
  { "lazy-call", "bench:transform_users_lazy", call },
  { "lazy-wasi-call", "bench:transform_users_wasi_lazy", call },
  { "lazy-async", "bench:transform_users_lazy", function(id, v) return async(id, v):wait() end },
  { "lazy-wasi-async", "bench:transform_users_wasi_lazy", function(id, v) return async(id, v):wait() end },
}
-- Rounds interleave the rows, so that a machine slowing down for a while slows every row.
local runs = {}
for i, r in ipairs(rows) do
  for _ = 1, 10 do assert(#r[3](r[2], users) == 1000) end
  runs[i] = {}
end
for k = 1, 7 do
  for i, r in ipairs(rows) do
    local name, id, f = r[1], r[2], r[3]
    local start = clock()
    for _ = 1, N do
      if #f(id, users) ~= 1000 then error(name) end
    end
    runs[i][k] = (clock() - start) / N * 1e6
  end
end
for i, r in ipairs(rows) do
  print(("paths-%s %.0f us/call"):format(r[1], median(runs[i])))
end
