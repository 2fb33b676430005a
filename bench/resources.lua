-- `make soak-resources`: 100,000 create/drop cycles of resource handles and instances in one
-- process (SPEC section 15), the collector doing the drops: each cycle makes a counter in the
-- C guest (build/guests/c-res) and lets it go, every 100th also lets its instance go, and
-- every 10th handle is dropped with h:drop() or moved into the guest. Not part of `make test`.
--   lua5.4 bench/resources.lua [cycles] [warm-up]
-- Prints resident memory, Lua memory, open instances and live handles after the warm-up and
-- at the end; exits 1 when resident memory grew beyond 10 % (at least 8 MiB) or anything
-- funcs holds did not come back.
local funcs = require("funcs")
local cycles = tonumber(arg[1]) or 100000
local warmup = math.min(tonumber(arg[2]) or 10000, cycles)

local function rss()
  local f = assert(io.open("/proc/self/status"))
  local kib = f:read("*a"):match("VmRSS:%s*(%d+) kB")
  f:close()
  return tonumber(kib)
end

assert(funcs.load("build/guests/c-res"))
local inst, Counter
local function renew()
  inst = assert(funcs.instantiate("cres:counters"))
  Counter = assert(inst:resource("counter"))
end

local function snapshot()
  collectgarbage()
  collectgarbage()
  inst:call("live") -- the drops the collector deferred happen here
  local s = funcs.stats("cres:counters")
  return {
    rss_kib = rss(),
    lua_kib = math.floor(collectgarbage("count")),
    open_instances = s.open_instances,
    live_handles = s.live_handles,
    component_instances = funcs.engine().component_instances or 0,
  }
end

renew()
local before
local t0 = funcs.clock()
for i = 1, cycles do
  local c = assert(Counter.new(i))
  if i % 10 == 0 then
    if i % 20 == 0 then assert(c:drop()) else assert(inst:call("consume", c)) end
  end
  if i % 100 == 0 then renew() end
  if i % 1000 == 0 then collectgarbage("step", 100) end
  if i == warmup then before = snapshot() end
end
local after = snapshot()
local elapsed = funcs.clock() - t0

print(("%d cycles in %.1f s (%.1f us per cycle: a constructor, a drop, and an instance per 100)")
  :format(cycles, elapsed, elapsed / cycles * 1e6))
local failed = false
for _, key in ipairs({ "rss_kib", "lua_kib", "open_instances", "live_handles", "component_instances" }) do
  local grew = after[key] - before[key]
  local limit = key == "rss_kib" and math.max(before[key] // 10, 8192)
    or key == "lua_kib" and 256 or 0
  local ok = grew <= limit
  failed = failed or not ok
  print(("%-20s after %6d cycles: %9d   at the end: %9d   %s"):format(key, warmup, before[key], after[key],
    ok and "ok" or ("GREW by " .. grew)))
end
inst:close()
os.exit(failed and 1 or 0)
