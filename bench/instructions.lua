-- Instructions per call, for callgrind (the VM is too noisy for timings):
--   valgrind --tool=callgrind --callgrind-out-file=/dev/null lua5.4 bench/instructions.lua <id> <n>
-- run once with n = 0 and once with n = N: the difference over N is the cost of one call.
-- A third argument `async` makes the calls with funcs.async(...):wait() (the general
-- conversion, on a worker thread; callgrind counts every thread); `executor` makes them with
-- `ex:call(...)` of an executor from `funcs.new():with_options(...)`.
local funcs = require("funcs")
assert(funcs.load("bench/registry"))
local id, n = arg[1], tonumber(arg[2])
-- The users table only for the rows that take it: 3,000 live tables make every collector
-- cycle that runs during the calls dearer, whatever the call.
local users = {}
if id:find("transform_users", 1, true) then
  for i = 1, 1000 do users[i] = { id = i, name = "user" .. i, tags = { "admin", "dev" }, active = i % 2 == 0 } end
end
local args = {
  ["bench:answer"] = {}, ["bench:answer_warm"] = {},
  ["bench:compute"] = {6, 7}, ["bench:compute_warm"] = {6, 7},
  ["bench:transform_users"] = {users}, ["bench:transform_users_warm"] = {users},
  ["bench:transform_users_wasi"] = {users}, ["bench:transform_users_lazy"] = {users},
  ["bench:transform_users_wasi_lazy"] = {users},
}
local a = args[id]
local call = funcs.call
-- A live instance of the C counters guest (SPEC 15): a method on a handle, a constructor and a
-- drop, a plain export (benches/raw.rs's res-get, res-new-drop, res-total).
if id:find("^res:") then
  assert(funcs.load("build/guests/c-res"))
  local inst = assert(funcs.instantiate("cres:counters"))
  local Counter = inst:resource("counter")
  local c = Counter.new(5)
  -- the calls themselves in the loop, as benches/raw.rs makes them (no ID, no argument list)
  local loops = {
    ["res:get"] = function(k) for _ = 1, k do c:get() end end,
    ["res:new_drop"] = function(k) for _ = 1, k do Counter.new(1):drop() end end,
    ["res:total"] = function(k) for _ = 1, k do inst:call("get-total") end end,
  }
  local loop = assert(loops[id])
  loop(1)
  collectgarbage()
  loop(n)
  return
end
if arg[3] == "async" then
  call = function(...) return funcs.async(...):wait() end
end
if arg[3] == "executor" then
  -- an executor's call (issue 27: on funcs.call's path), one with options of its own: the
  -- same loop, with `ex:call` (its lookup included) for `call`
  local ex = os.getenv("PLAIN") and funcs.new() or funcs.new():with_options({ timeout = 60000 })
  local unpack = table.unpack or unpack
  ex:call(id, unpack(a))
  collectgarbage()
  for _ = 1, n do ex:call(id, unpack(a)) end
  return
end
-- warm-up outside the difference: one call always; then a full collection, so that both runs
-- start their calls with the collector in the same state.
call(id, (table.unpack or unpack)(a))
collectgarbage()
for _ = 1, n do call(id, (table.unpack or unpack)(a)) end
