-- Instructions per call, for callgrind (the VM is too noisy for timings):
--   valgrind --tool=callgrind --callgrind-out-file=/dev/null lua5.4 bench/instructions.lua <id> <n>
-- run once with n = 0 and once with n = N: the difference over N is the cost of one call.
-- A third argument `async` makes the calls with funcs.async(...):wait() (the general
-- conversion, on a worker thread; callgrind counts every thread).
local funcs = require("funcs")
assert(funcs.load("bench/registry"))
local id, n = arg[1], tonumber(arg[2])
local users = {}
for i = 1, 1000 do users[i] = { id = i, name = "user" .. i, tags = { "admin", "dev" }, active = i % 2 == 0 } end
local args = {
  ["bench:answer"] = {}, ["bench:answer_warm"] = {},
  ["bench:compute"] = {6, 7}, ["bench:compute_warm"] = {6, 7},
  ["bench:transform_users"] = {users}, ["bench:transform_users_warm"] = {users},
  ["bench:transform_users_wasi"] = {users}, ["bench:transform_users_lazy"] = {users},
  ["bench:transform_users_wasi_lazy"] = {users},
}
local a = args[id]
local call = funcs.call
if arg[3] == "async" then
  call = function(...) return funcs.async(...):wait() end
end
-- warm-up outside the difference: one call always
call(id, (table.unpack or unpack)(a))
for _ = 1, n do call(id, (table.unpack or unpack)(a)) end
