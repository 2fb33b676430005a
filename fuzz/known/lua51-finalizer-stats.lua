-- Lua 5.1 (PUC, not LuaJIT): funcs.stats() called from a finalizer that the collector runs
-- during an allocation was a SIGSEGV (in lua_rawset under funcs::lua::stats_table): mlua's
-- protected C functions went through one registry slot that a finalizer refilled. Fixed by
-- refusing such nested calls on Lua 5.1 (src/lua/guard.rs); this now runs to the end (slowly:
-- each finalizer builds the stats of every entry).
--   LUA_CPATH="build/lua5.1/?.so;;" FUNCS_CACHE_DIR=$PWD/build/cache lua5.1 fuzz/known/lua51-finalizer-stats.lua
-- Exited by SIGSEGV within a second before the fix (found by fuzz/surface.lua on lua5.1). LuaJIT ran it 60 s
-- without a crash; the 5.2 to 5.4 campaigns, whose table finalizers call funcs the same way, ran
-- clean. funcs.async and funcs.stats(id) from such finalizers crashed fuzz children too.
local funcs = require("funcs")
assert(funcs.load("spec/fixtures/echo"))
local function fin() pcall(funcs.stats) end
for i = 1, 300000 do
  getmetatable(newproxy(true)).__gc = fin
  local s = { "v" .. i, "w" .. i }
end
print("no crash")
