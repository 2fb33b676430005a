-- `make soak-calls`: a long run of calls on each path a call can take, with the resident memory of
-- this process after a warm-up (a tenth of the calls) and at the end. Not part of `make test`.
--   lua5.4 bench/soak.lua [calls] [paths]
-- calls: per path, default 1,000,000 (HTTP too); paths: a comma-separated subset of
-- direct,general,async,http (default all). Prints
-- `path calls rss_warm_kib rss_end_kib growth_percent seconds`.
local funcs = require("funcs")
assert(funcs.load("bench/soak"))
local n = tonumber(arg[1]) or 1000000
local only = {}
for path in (arg[2] or "direct,general,async,http"):gmatch("[^,]+") do only[path] = true end

local function rss()
  local f = assert(io.open("/proc/self/status"))
  local kib = f:read("*a"):match("VmRSS:%s*(%d+) kB")
  f:close()
  return tonumber(kib)
end

-- `one()` makes `per` calls (1 unless given).
local function soak(path, calls, one, per)
  if not only[path] then return end
  local warm = calls // 10
  local start = funcs.clock()
  for _ = 1, warm do one() end
  local before = rss()
  for _ = warm + 1, calls do one() end
  local after = rss()
  print(("%s %d %d %d %.1f %.1f"):format(path, calls * (per or 1), before, after,
    (after - before) / before * 100, funcs.clock() - start))
end

soak("direct", n, function() assert(funcs.call("soak:direct", 6, 7) == 42) end)
soak("general", n, function() assert(funcs.call("soak:general", 6, 7) == 42) end)
soak("async", n, function() assert(funcs.async("soak:direct", 6, 7):wait() == 42) end)

-- HTTP: a keep-alive client in Python, in batches, so that this process serves them.
local addr = assert(funcs.http.start("soak:service"))
local client = [[
import http.client, sys
host, port = sys.argv[1].rsplit(":", 1)
c = http.client.HTTPConnection(host, int(port))
for _ in range(int(sys.argv[2])):
    c.request("GET", "/answer"); r = c.getresponse(); body = r.read()
    assert r.status == 200 and body == b"42", (r.status, body)
]]
local script = os.tmpname()
local f = assert(io.open(script, "w"))
f:write(client)
f:close()
local batch = 1000
soak("http", n // batch, function()
  assert(os.execute(("python3 %s %s %d"):format(script, addr, batch)))
end, batch)
os.remove(script)
funcs.http.stop("soak:service")
