-- Outgoing HTTP from guests (SPEC section 11): the fetch guest, in CPython (componentize-py)
-- and in C (wit-bindgen + zig), requests a real loopback server (spec/support/http_server.py)
-- under each http_client policy. Refusals reach the guest as wasi:http error codes.
local funcs = require("funcs")
local h = require("spec.support.helpers")

local cwd = io.popen("pwd"):read("*l")

-- The loopback server: its ports, and the pipe that stops it when closed.
local server = {}

local function start_server()
  local out = os.tmpname()
  server.pipe = assert(io.popen("python3 spec/support/http_server.py > " .. out, "w"))
  local line = h.eventually(function()
    local f = io.open(out)
    local l = f and f:read("*l")
    if f then f:close() end
    return l
  end)
  os.remove(out)
  local http, https = assert(line, "the loopback server did not start"):match("^(%d+) (%d+)$")
  server.http, server.https = tonumber(http), tonumber(https)
  server.base = "http://127.0.0.1:" .. http
end

-- The server's counters (curl, not a guest: the check must not depend on what it checks).
local function server_stats()
  local p = assert(io.popen("curl -s " .. server.base .. "/stats"))
  local out = p:read("*a")
  p:close()
  return {
    hits = tonumber(out:match("hits=(%d+)")),
    held = tonumber(out:match("held=(%d+)")),
    closed = tonumber(out:match("closed=(%d+)")),
  }
end

-- The hash the guest was built with, from the registry scripts/guests.sh wrote beside it.
local function guest_hash(dir)
  local f = assert(io.open(dir .. "/_index.yaml"), "run scripts/guests.sh first (make test does)")
  local hash = f:read("*a"):match("sha256:(%x+)")
  f:close()
  return hash
end

-- One fetch entry of namespace `ns`: `extra` is YAML for the entry (http_client, limits, pool).
local function entry(guest, name, extra)
  return ([[
  - name: %s
    kind: function.wasm
    fs: dir
    path: guest.wasm
    hash: sha256:%s
    method: fetch
    imports: [wasi:cli, wasi:clocks, wasi:random, wasi:http]
%s
]]):format(name, guest_hash(guest), extra or "")
end

local function registry(guest, ns, entries)
  local text = ('version: "1.0"\nnamespace: %s\nentries:\n  - {name: dir, kind: fs.directory, directory: %s/%s}\n')
    :format(ns, cwd, guest)
  for name, extra in pairs(entries) do
    text = text .. entry(guest, name, extra)
  end
  return text
end

local guests = {
  { name = "CPython", dir = "build/guests/python-fetch", ns = "pyfetch" },
  { name = "C", dir = "build/guests/c-fetch", ns = "cfetch" },
}

setup(start_server)
teardown(function()
  if server.pipe then server.pipe:close() end
end)

for _, guest in ipairs(guests) do
  describe("outgoing HTTP from a " .. guest.name .. " guest", function()
    local ns = guest.ns
    local function fetch(name, method, url, body)
      return funcs.call(ns .. ":" .. name, method, url, body or "")
    end

    setup(function()
      local open = ('    http_client: {allowed_hosts: ["127.0.0.1:%d", "localhost:%d"], allow_private_ip: true, timeout_ms: 500, max_response_bytes: 1000}\n')
        :format(server.http, server.https)
      assert(h.load_yaml(funcs, registry(guest.dir, ns, {
        deny = "",
        open = open,
        private = ('    http_client: {allowed_hosts: ["127.0.0.1:%d"]}\n'):format(server.http),
        name = ('    http_client: {allowed_hosts: ["localhost:%d"]}\n'):format(server.http),
        public = '    http_client: {allowed_hosts: ["*.invalid"]}\n',
        deadline = ('    http_client: {allowed_hosts: ["127.0.0.1:%d"], allow_private_ip: true}\n    limits: {max_execution_ms: 1500}\n')
          :format(server.http),
        deadline_inline = ('    http_client: {allowed_hosts: ["127.0.0.1:%d"], allow_private_ip: true}\n    limits: {max_execution_ms: 1500}\n    pool: {type: inline}\n')
          :format(server.http),
        hold = ('    http_client: {allowed_hosts: ["127.0.0.1:%d"], allow_private_ip: true}\n'):format(server.http),
        lazy = ('    http_client: {allowed_hosts: ["127.0.0.1:%d"], allow_private_ip: true, timeout_ms: 15000}\n    pool: {type: lazy, max_size: 4}\n')
          :format(server.http),
      })))
    end)

    it("denies every request without http_client, inside the guest", function()
      local hits = server_stats().hits
      assert.are.equal("error: HttpRequestDenied", fetch("deny", "GET", server.base .. "/hello"))
      assert.are.equal(hits + 1, server_stats().hits) -- only our own /stats request
    end)

    it("GETs and POSTs an allowed loopback server", function()
      assert.are.equal("200 hello from loopback", fetch("open", "GET", server.base .. "/hello"))
      assert.are.equal("200 echo:ping", fetch("open", "POST", server.base .. "/echo", "ping"))
      local s = funcs.stats(ns .. ":open")
      assert.is_true(s.http_requests >= 2)
      assert.is_true(s.http_sent_bytes >= 4)
      assert.is_true(s.http_received_bytes >= #"hello from loopbackecho:ping")
    end)

    it("refuses a host or a port the policy does not list", function()
      assert.are.equal("error: HttpRequestDenied", fetch("open", "GET", "http://127.0.0.1:1/hello"))
      assert.are.equal("error: HttpRequestDenied", fetch("open", "GET", "http://example.com/"))
      assert.are.equal("error: HttpRequestDenied", fetch("open", "GET", "http://127.0.0.2:" .. server.http .. "/hello"))
    end)

    it("sends nothing for an authority with user info or a port that is not one", function()
      for _, url in ipairs({ "http://user@127.0.0.1:" .. server.http .. "/hello",
        "http://127.0.0.1:99999/hello" }) do
        local hits = server_stats().hits
        local out = fetch("open", "GET", url)
        assert.truthy(out:find("^error: "), out)
        assert.are.equal(hits + 1, server_stats().hits) -- only our own /stats request
      end
    end)

    it("refuses a listed host on a private address without allow_private_ip", function()
      local before = funcs.stats(ns .. ":private").http_denied
      assert.are.equal("error: DestinationIpProhibited", fetch("private", "GET", server.base .. "/hello"))
      assert.are.equal(before + 1, funcs.stats(ns .. ":private").http_denied)
    end)

    it("refuses a listed name that resolves to loopback", function()
      local url = ("http://localhost:%d/hello"):format(server.http)
      assert.are.equal("error: DestinationIpProhibited", fetch("name", "GET", url))
    end)

    it("reports a name that does not resolve", function()
      assert.truthy(fetch("public", "GET", "http://nothing.invalid/"):find("^error: Dns"))
    end)

    it("checks the certificate and the name of an HTTPS server", function()
      local url = ("https://localhost:%d/hello"):format(server.https)
      assert.are.equal("error: TlsCertificateError", fetch("open", "GET", url))
    end)

    it("hands a redirect to the guest instead of following it", function()
      local hits = server_stats().hits
      assert.are.equal("302 moved", fetch("open", "GET", server.base .. "/redirect"))
      assert.are.equal(hits + 2, server_stats().hits) -- the redirect and this /stats, not /hello
    end)

    it("bounds the response body by max_response_bytes", function()
      assert.are.equal("200 " .. ("x"):rep(1000), fetch("open", "GET", server.base .. "/big?n=1000"))
      -- Announced past the bound: the request fails; streamed past it: the body stream does.
      assert.are.equal("error: HttpResponseBodySize", fetch("open", "GET", server.base .. "/big?n=1001"))
      local streamed = fetch("open", "GET", server.base .. "/big?n=5000&chunked=1")
      assert.truthy(streamed:find("^error: "), streamed)
    end)

    it("stops a slow server at timeout_ms, inside the guest", function()
      local out = fetch("open", "GET", server.base .. "/slow?ms=3000")
      assert.are.equal("error: ConnectionReadTimeout", out)
    end)

    for _, name in ipairs({ "deadline", "deadline_inline" }) do
      it("ends a request with its call at max_execution_ms and closes the connection (" .. name .. ")", function()
        local before = server_stats()
        local v, err = fetch(name, "GET", server.base .. "/hold")
        h.assert_fails("TIMEOUT", { ns .. ":" .. name }, v, err)
        -- The request got there before the deadline (1.5 s), so the deadline ended it.
        assert.are.equal(before.held + 1, server_stats().held)
        local closed = before.closed
        assert.is_true(h.eventually(function() return server_stats().closed > closed end),
          "the server still holds the connection")
      end)
    end

    it("closes the connection of a cancelled call", function()
      local before = server_stats()
      local closed = before.closed
      local future = funcs.async(ns .. ":hold", "GET", server.base .. "/hold", "")
      assert.is_true(h.eventually(function() return server_stats().held > before.held end))
      future:cancel()
      local v, err = future:wait()
      h.assert_fails("CANCELED", {}, v, err)
      assert.is_true(h.eventually(function() return server_stats().closed > closed end),
        "the server still holds the connection")
    end)

    it("closes the connection of a call that funcs.shutdown() ends", function()
      local dir = os.tmpname()
      os.remove(dir)
      os.execute("mkdir -p " .. dir)
      local f = assert(io.open(dir .. "/_index.yaml", "w"))
      f:write(registry(guest.dir, ns, {
        hold = ('    http_client: {allowed_hosts: ["127.0.0.1:%d"], allow_private_ip: true}\n'):format(server.http),
      }))
      f:close()
      local before = server_stats()
      local status, out = h.run_lua(([[
        local funcs = require("funcs")
        assert(funcs.load(%q))
        local future = funcs.async(%q, "GET", %q, "")
        local function held()
          local p = io.popen("curl -s %s/stats")
          local n = tonumber(p:read("*a"):match("held=(%%d+)"))
          p:close()
          return n
        end
        for _ = 1, 500 do
          if held() > %d then break end
          os.execute("sleep 0.01")
        end
        funcs.shutdown()
        local v, err = future:wait()
        print(err:kind())
      ]]):format(dir, ns .. ":hold", server.base .. "/hold", server.base, before.held))
      os.execute("rm -rf " .. dir)
      assert.are.equal(0, status, out)
      assert.truthy(out:find("CANCELED", 1, true), out)
      assert.are.equal(before.held + 1, server_stats().held)
      assert.is_true(h.eventually(function() return server_stats().closed > before.closed end),
        "the server still holds the connection")
    end)

    it("runs concurrent requests from a lazy pool", function()
      local futures = {}
      for i = 1, 4 do
        futures[i] = funcs.async(ns .. ":lazy", "GET", server.base .. "/barrier?n=4", "")
      end
      for i = 1, 4 do
        assert.are.equal("200 together", futures[i]:wait())
      end
    end)

    it("describes the policy with its defaults, and none where wasi:http is not granted", function()
      assert.are.same({ allowed_hosts = {}, allow_private_ip = false, timeout_ms = 10000,
        max_response_bytes = 16777216, max_request_bytes = 16777216 },
        funcs.describe(ns .. ":deny").http_client)
      local open = funcs.describe(ns .. ":open").http_client
      assert.are.same({ "127.0.0.1:" .. server.http, "localhost:" .. server.https }, open.allowed_hosts)
      assert.are.equal(500, open.timeout_ms)
      assert.are.equal(1000, open.max_response_bytes)
      assert.is_true(open.allow_private_ip)
      assert(funcs.load("spec/fixtures/pools"))
      assert.is_nil(assert(funcs.describe("pools:inline_add")).http_client)
    end)

    it("counts requests and denials in funcs.metrics", function()
      local m = funcs.metrics()
      local requests = tonumber(m:match('funcs_http_requests_total{function="' .. ns .. ':open"} (%d+)'))
      assert.is_true(requests >= 2)
      assert.truthy(m:find('funcs_http_denied_total{function="' .. ns .. ':deny"} 1', 1, true))
      assert.truthy(m:find('funcs_http_received_bytes_total{function="' .. ns .. ':open"}', 1, true))
    end)
  end)
end

describe("http_client", function()
  local function load(client, imports)
    return h.load_yaml(funcs, ([[
version: "1.0"
namespace: badclient
entries:
  - name: f
    kind: function.wat
    source: "(component)"
    method: f
    imports: %s
    http_client: %s
]]):format(imports or "[wasi:http]", client))
  end

  it("refuses unknown fields, naming them", function()
    local ok, err = load("{allowed_host: [a.com]}")
    h.assert_fails("INVALID", { "http_client", "allowed_host" }, ok, err)
  end)

  it("refuses a host pattern that is not a host", function()
    local ok, err = load('{allowed_hosts: ["https://a.com/x"]}')
    h.assert_fails("INVALID", { "http_client.allowed_hosts[1]", "`https://a.com/x` is not a host" }, ok, err)
    ok, err = load('{allowed_hosts: ["a.com:99999"]}')
    h.assert_fails("INVALID", { "a port is 1 to 65535" }, ok, err)
  end)

  it("refuses numbers that are not positive integers", function()
    for _, bad in ipairs({ "0", "-5", ".nan", "1e400", "1.5", "99999999999999999999999", '"10"' }) do
      local ok, err = load("{timeout_ms: " .. bad .. "}")
      assert.is_nil(ok, bad)
      assert.are.equal("INVALID", err:kind(), bad)
      assert.truthy(tostring(err):find("timeout_ms", 1, true), tostring(err))
    end
  end)

  it("needs wasi:http in imports", function()
    local ok, err = load('{allowed_hosts: ["a.com"]}', "[wasi:cli]")
    h.assert_fails("INVALID", { "http_client needs `wasi:http` in `imports`" }, ok, err)
  end)
end)
