-- The Lua side of `make bench`: the rows of benches/raw.rs through funcs.call, with a fresh
-- instance per call (`pool: inline`) and a warm one (`pool.reuse`). Prints
-- `name fresh_ns warm_ns` lines: the best of 3 timed rounds after a warm-up.
local funcs = require("funcs")
assert(funcs.load("bench/registry"))
local clock, call = funcs.clock, funcs.call

local function measure(n, f)
  for _ = 1, math.max(10, n // 100) do f() end
  local best = math.huge
  for _ = 1, 3 do
    local start = clock()
    for _ = 1, n do f() end
    best = math.min(best, (clock() - start) / n * 1e9)
  end
  return best
end

local function row(name, n, id, check, ...)
  local args = table.pack(...)
  local fresh = measure(n, function() check(call(id, table.unpack(args, 1, args.n))) end)
  local warm = measure(n, function() check(call(id .. "_warm", table.unpack(args, 1, args.n))) end)
  print(("%s %.0f %.0f"):format(name, fresh, warm))
end

local function equals(want)
  return function(got) assert(got == want, tostring(got)) end
end

row("answer", 100000, "bench:answer", equals(42))
row("compute", 100000, "bench:compute", equals(42), 6, 7)
local kib = string.rep("x", 1024)
row("echo-1k", 100000, "bench:echo", equals(kib), kib)
-- transform-users over n records; the Lua table is built once, converted on every call.
for _, case in ipairs({ { 10, 20000 }, { 100, 5000 }, { 1000, 500 } }) do
  local n, iterations = case[1], case[2]
  local users = {}
  for i = 1, n do
    users[i] = { id = i, name = "user" .. i, tags = { "admin", "dev" }, active = i % 2 == 0 }
  end
  row("transform-users-" .. n, iterations, "bench:transform_users",
    function(out) assert(#out == n) end, users)
end
