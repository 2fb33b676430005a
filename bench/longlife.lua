-- `make soak`: a long life in one process, the way an OpenResty worker or a Lua daemon lives
-- for months: reloads, each registering the host interface again (`funcs.host`) and loading
-- bench/longlife (minimal.wasm calling its host on each pool kind, and `pool.reuse` on each
-- kind), with blocking calls and a burst of `funcs.async` calls between them. Not part of
-- `make test`.
--   lua5.4 bench/longlife.lua [reloads] [warm-up]
-- Defaults: 10,000 reloads, of which the first 500 warm up. Prints what the process holds
-- after the warm-up and at the end (resident memory, open descriptors, threads, Lua registry
-- entries, Lua memory, funcs' live pools and instances) and exits 1 when one grew beyond its
-- tolerance (stated in TOLERANCE below).
local funcs = require("funcs")
local reloads = tonumber(arg[1]) or 10000
local warmup = math.min(tonumber(arg[2]) or 500, reloads)

-- Allowed growth from the warm-up to the end: beyond these the process is growing.
local TOLERANCE = {
  rss_kib = { percent = 10, at_least = 8192 },
  fds = { absolute = 2 },
  threads = { absolute = 2 },
  lua_registry = { absolute = 16 },
  lua_kib = { absolute = 256 },
  pools = { absolute = 0 },
  instances = { absolute = 0 },
}

local pid = assert(io.open("/proc/self/stat")):read("*l"):match("^(%d+)")

local function count(dir)
  local n, p = 0, io.popen("ls " .. dir)
  for _ in p:lines() do n = n + 1 end
  p:close()
  return n
end

local function rss()
  local f = assert(io.open("/proc/self/status"))
  local kib = f:read("*a"):match("VmRSS:%s*(%d+) kB")
  f:close()
  return tonumber(kib)
end

local function registry_size()
  local n = 0
  for _ in pairs(debug.getregistry()) do n = n + 1 end
  return n
end

local function instances()
  local e = funcs.engine()
  return (e.core_instances or 0) + (e.component_instances or 0)
end

-- Lets the released pools go (their last calls have ended; the reaper joins them).
local function settle()
  local last
  for _ = 1, 50 do
    local now = funcs.engine().pools
    if now == last then break end
    last = now
    os.execute("sleep 0.2")
  end
  collectgarbage()
  collectgarbage()
end

local function measure()
  settle()
  return {
    rss_kib = rss(),
    -- ls's own descriptors are its, not ours: /proc/<pid>/fd is this process's.
    fds = count("/proc/" .. pid .. "/fd"),
    threads = count("/proc/" .. pid .. "/task"),
    lua_registry = registry_size(),
    lua_kib = math.floor(collectgarbage("count")),
    pools = funcs.engine().pools,
    instances = instances(),
  }
end

local ids = {}
for _, kind in ipairs({ "inline", "lazy", "static", "adaptive" }) do
  ids[#ids + 1] = "life:host_" .. kind
  ids[#ids + 1] = "life:reused_" .. kind
end

local function life(i)
  -- Each registration's function holds 1 KiB of its own, as a reloaded handler would.
  local pad = ("x"):rep(1024) .. i
  assert(funcs.host("test:minimal/host", { add = function(a, b) return a + b + #pad - #pad end }))
  assert(funcs.load("bench/longlife"))
  for _, id in ipairs(ids) do
    local expected = id:find("host_", 1, true) and 13 or 42
    local a, b = 6, 7
    assert(funcs.call(id, a, b) == expected, id)
  end
  -- A burst on the worker pools, more at once than their size.
  local futures = {}
  for _, id in ipairs(ids) do
    if not id:find("inline", 1, true) then
      for _ = 1, 4 do futures[#futures + 1] = assert(funcs.async(id, 6, 7)) end
    end
  end
  for _, f in ipairs(futures) do assert(f:wait()) end
end

local start = funcs.clock()
for i = 1, warmup do life(i) end
local before = measure()
for i = warmup + 1, reloads do life(i) end
local after = measure()
local seconds = funcs.clock() - start

local order = { "rss_kib", "fds", "threads", "lua_registry", "lua_kib", "pools", "instances" }
print(("reloads %d (warm-up %d), %.1f s, %d calls"):format(reloads, warmup, seconds,
  reloads * (#ids + 6 * 4)))
print(("%-14s %10s %10s %10s %10s"):format("what", "start", "end", "growth", "allowed"))
local failed = false
for _, what in ipairs(order) do
  local t = TOLERANCE[what]
  local allowed = t.absolute or math.max(t.at_least, before[what] * t.percent / 100)
  local growth = after[what] - before[what]
  local bad = growth > allowed
  failed = failed or bad
  print(("%-14s %10d %10d %10d %10d%s"):format(what, before[what], after[what], growth,
    math.floor(allowed), bad and "  GREW" or ""))
end
funcs.shutdown()
os.exit(failed and 1 or 0)
