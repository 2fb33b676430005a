-- The Lua side of `make bench`: the rows of benches/raw.rs through funcs.call, with a fresh
-- instance per call (`pool: inline`) and a warm one (`pool.reuse`). Prints
-- `name fresh_ns warm_ns` lines: the best of 3 timed rounds after a warm-up.
local funcs = require("funcs")
assert(funcs.load("bench/registry"))
local call = funcs.call
-- The loops call funcs.call directly (no Lua closure call per iteration, as the Rust side's
-- closures are inlined), checking results as raw.rs does.
local row = require("bench.measure").row

row("answer", 100000, "bench:answer", function(id)
  return function(n) for _ = 1, n do if call(id) ~= 42 then error("answer") end end end
end)
row("compute", 100000, "bench:compute", function(id)
  return function(n) for _ = 1, n do if call(id, 6, 7) ~= 42 then error("compute") end end end
end)
local kib = string.rep("x", 1024)
row("echo-1k", 100000, "bench:echo", function(id)
  return function(n) for _ = 1, n do if call(id, kib) ~= kib then error("echo") end end end
end)
-- transform-users over n records; the Lua table is built once, converted on every call.
for _, case in ipairs({ { 10, 20000 }, { 100, 5000 }, { 1000, 500 } }) do
  local n, iterations = case[1], case[2]
  local users = {}
  for i = 1, n do
    users[i] = { id = i, name = "user" .. i, tags = { "admin", "dev" }, active = i % 2 == 0 }
  end
  row("transform-users-" .. n, iterations, "bench:transform_users", function(id)
    return function(k)
      for _ = 1, k do
        if #call(id, users) ~= n then error("transform-users") end
      end
    end
  end)
end
