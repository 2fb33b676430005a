-- All-or-nothing loads (SPEC section 1): a reload that returns `nil, err` leaves everything
-- as it was. Each case loads version 1 of a registry (a function answering 1 on a static pool,
-- an auto-started service with an endpoint for it), then tries version 2 (answering 2, with
-- a new function) made to fail one way, and checks that version 1 is what runs: calls,
-- `funcs.describe`, `funcs.stats`, the endpoint on its port (curl), and the threads of its
-- pools and services.
local funcs = require("funcs")
local h = require("spec.support.helpers")

-- This process's threads that serve namespace `ns`: its pools' workers (`funcs-<id>`) and its
-- services' threads (`funcs-http-<id>`), by their names (cut to 15 bytes by Linux). Counted
-- by name so that other specs' pools growing or retiring meanwhile do not count: the
-- namespaces below have three letters, so that the names stay whole up to the `:`.
local function threads(ns)
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("*a"):match("^(%d+)")
  f:close()
  local p = assert(io.popen(("cat /proc/%s/task/*/comm 2>/dev/null"):format(pid)))
  local names = p:read("*a")
  p:close()
  local worker, server = ("funcs-" .. ns .. ":"):sub(1, 15), ("funcs-http-" .. ns .. ":"):sub(1, 15)
  local n = 0
  for name in names:gmatch("[^\n]+") do
    if name:sub(1, #worker) == worker or name:sub(1, #server) == server then n = n + 1 end
  end
  return n, names
end

-- `threads(ns)` once it has stopped changing (threads of a pool or a service just started
-- may still be starting): the same count over 300 ms, waiting up to 5 s.
local function settled_threads(ns)
  local n, names = threads(ns)
  local same = 0
  for _ = 1, 100 do
    os.execute("sleep 0.05")
    local m, now = threads(ns)
    if m == n then
      same = same + 1
      if same >= 6 then break end
    else
      n, names, same = m, now, 0
    end
  end
  return n, names
end

-- GET with curl: status and body, or nil and curl's exit status when nothing answered.
local function get(url)
  local p = assert(io.popen(("curl -s -m 5 -w ' %%{http_code}' %s; echo \" exit=$?\""):format(url)))
  local out = p:read("*a")
  p:close()
  local body, code, exit = out:match("^(.-) (%d+) exit=(%d+)%s*$")
  if exit ~= "0" then return nil, tonumber(exit) end
  return tonumber(code), body
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- Registry `ns`, version `n`: `ns:answer` answers `n`, served on `ns:api` at GET /api/answer.
local function registry(ns, n, extra)
  return ([[
namespace: %s
entries:
  - name: answer
    kind: function.wat
    source: '(module (func (export "answer") (result i32) (i32.const %d)))'
    method: answer
    transport: wasi-http
    pool: {type: static, workers: 2}
  - name: api
    kind: http.service
    addr: "127.0.0.1:0"
    lifecycle: {auto_start: true}
  - {name: router, kind: http.router, prefix: /api, meta: {server: api}}
  - {name: answer_endpoint, kind: http.endpoint, meta: {router: router}, method: GET, path: /answer, func: answer}
%s]]):format(ns, n, extra or "")
end

-- A free loopback port: bound by the kernel's choice and released.
local function free_port()
  local p = assert(io.popen([[python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])']]))
  local port = tonumber(p:read("*a"))
  p:close()
  return port
end

-- Loads version 1 of `ns` from a temporary folder and returns that folder and its endpoint.
local function version_one(ns)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  write(dir .. "/_index.yaml", registry(ns, 1))
  assert(funcs.load(dir))
  local addr = assert(funcs.http.addr(ns .. ":api"))
  assert.are.equal(1, funcs.call(ns .. ":answer"))
  return dir, "http://" .. addr .. "/api/answer"
end

-- Tries version 2 (with `extra` entries) in `dir`: the load must fail with `kind` and
-- `fragments`, and leave version 1 of `ns` exactly as it was.
local function fails_and_changes_nothing(ns, dir, url, extra, kind, fragments)
  local describe_before = assert(funcs.describe(ns .. ":answer"))
  local stats_before = funcs.stats()
  local threads_before = settled_threads(ns)
  assert.is_true(threads_before >= 2, "version 1's workers and service threads not found")
  write(dir .. "/_index.yaml", registry(ns, 2, extra))
  h.assert_fails(kind, fragments, funcs.load(dir))
  local threads_after, names = settled_threads(ns)
  assert.are.equal(threads_before, threads_after, "threads left behind by the failed load:\n" .. names)
  assert.are.same(stats_before, funcs.stats())
  assert.are.same(describe_before, funcs.describe(ns .. ":answer"))
  assert.are.equal(1, funcs.call(ns .. ":answer"))
  h.assert_fails("NOT_FOUND", { ns .. ":added" }, funcs.call(ns .. ":added"))
  local status, body = get(url)
  assert.are.equal(200, status)
  assert.are.equal("1", body)
  -- A good version 2 still loads afterwards, on the same listener.
  write(dir .. "/_index.yaml", registry(ns, 2))
  assert(funcs.load(dir))
  assert.are.equal(2, funcs.call(ns .. ":answer"))
  status, body = get(url)
  assert.are.equal(200, status)
  assert.are.equal("2", body)
end

-- A new function of version 2, so that an applied load would show in stats and calls.
local added = [[
  - name: added
    kind: function.wat
    source: '(module (func (export "added") (result i32) (i32.const 3)))'
    method: added
]]

describe("a reload that fails", function()
  local cleanup = {}

  after_each(function()
    for _, f in ipairs(cleanup) do f() end
    cleanup = {}
  end)

  it("because a new service cannot bind keeps the old version serving and closes what it opened #http", function()
    -- Another load's service holds the port the new version asks for.
    local holder = os.tmpname()
    os.remove(holder)
    assert(os.execute("mkdir -p " .. holder))
    write(holder .. "/_index.yaml", [[
namespace: holder
entries:
  - {name: api, kind: http.service, addr: "127.0.0.1:0", lifecycle: {auto_start: true}}
]])
    assert(funcs.load(holder))
    local taken = assert(funcs.http.addr("holder:api"))
    local dir, url = version_one("bnd")
    table.insert(cleanup, function()
      funcs.http.stop("holder:api")
      funcs.http.stop("bnd:api")
      os.execute("rm -rf " .. holder .. " " .. dir)
    end)
    -- `a_open` binds (before `b_taken`, which cannot): its listener must not stay open.
    local port = free_port()
    local extra = added .. ([[
  - {name: a_open, kind: http.service, addr: "127.0.0.1:%d", lifecycle: {auto_start: true}}
  - {name: b_taken, kind: http.service, addr: "%s", lifecycle: {auto_start: true}}
]]):format(port, taken)
    fails_and_changes_nothing("bnd", dir, url, extra, "UNAVAILABLE", { "`bnd:b_taken`", taken })
    assert.is_nil(funcs.http.addr("bnd:a_open"))
    assert.is_nil(funcs.http.addr("bnd:b_taken"))
    local status, exit = get(("http://127.0.0.1:%d/"):format(port))
    assert.is_nil(status, "something still listens on the failed load's port")
    assert.are.equal(7, exit) -- curl: could not connect
  end)

  it("because its last entry does not compile keeps the old version #http", function()
    local dir, url = version_one("wat")
    table.insert(cleanup, function()
      funcs.http.stop("wat:api")
      os.execute("rm -rf " .. dir)
    end)
    local extra = added .. [[
  - name: zz_broken
    kind: function.wat
    source: '(module (func (export "broken") (result i32) (i32.const'
    method: broken
]]
    fails_and_changes_nothing("wat", dir, url, extra, "INVALID", { "`wat:zz_broken`" })
  end)

  it("because a wasm file does not match its hash keeps the old version #http", function()
    local dir, url = version_one("sha")
    table.insert(cleanup, function()
      funcs.http.stop("sha:api")
      os.execute("rm -rf " .. dir)
    end)
    assert(os.execute(("mkdir -p %s/wasm && cp spec/fixtures/answer_raw.wasm %s/wasm/"):format(dir, dir)))
    local extra = added .. ([[
  - {name: files, kind: fs.directory, directory: wasm}
  - name: zz_raw
    kind: function.wasm
    fs: files
    path: /answer_raw.wasm
    hash: sha256:%s
    method: answer
]]):format(("0"):rep(64))
    fails_and_changes_nothing("sha", dir, url, extra, "INVALID",
      { "`sha:zz_raw`", "hash verification failed: hash mismatch" })
  end)
end)
