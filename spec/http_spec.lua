-- HTTP endpoints (SPEC sections 1 and 8) on a real server, driven by curl on loopback: the
-- plain-function form of the wasi-http transport, status codes, limits, validation, stop.
local funcs = require("funcs")
local h = require("spec.support.helpers")

-- One request with curl: status, content type, body.
local function request(method, url, body)
  local cmd = ("curl -s -i -X %s"):format(method)
  local file
  if body then
    file = os.tmpname()
    local f = assert(io.open(file, "wb"))
    f:write(body)
    f:close()
    cmd = cmd .. (" -H 'Content-Type: text/plain' --data-binary @%s"):format(file)
  end
  local p = assert(io.popen(cmd .. " " .. url))
  local out = p:read("*a")
  p:close()
  if file then os.remove(file) end
  local head, rest = out:match("^(.-)\r\n\r\n(.*)$")
  assert(head, "no response: " .. out)
  local status = tonumber(head:match("^HTTP/1.1 (%d+)"))
  local content_type = head:lower():match("\ncontent%-type: ([^\r\n]+)")
  return status, content_type, rest
end

describe("HTTP endpoints", function()
  local base

  setup(function()
    assert(funcs.load("spec/fixtures/http"))
    local addr = assert(funcs.http.start("web:service"))
    assert.are.equal(addr, funcs.http.addr("web:service"))
    base = "http://" .. addr .. "/api"
  end)

  teardown(function()
    funcs.http.stop("web:service")
  end)

  it("POST /api/greet with body World answers 200 Hello, World!", function()
    local status, ct, body = request("POST", base .. "/greet", "World")
    assert.are.equal(200, status)
    assert.are.equal("text/plain; charset=utf-8", ct)
    assert.are.equal("Hello, World!", body)
  end)

  it("routes {param} and {rest...} paths", function()
    assert.are.equal(200, (request("POST", base .. "/users/42/greet", "Ada")))
    local status, _, body = request("PUT", base .. "/files/a/b/c.txt", "files")
    assert.are.equal(200, status)
    assert.are.equal("Hello, files!", body)
    assert.are.equal(404, (request("POST", base .. "/users/42", "x")))
  end)

  it("answers JSON for other results and 204 for none", function()
    local status, ct, body = request("GET", base .. "/pair")
    assert.are.equal(200, status)
    assert.are.equal("application/json", ct)
    assert.are.equal("[4,2]", body)
    assert.are.equal(204, (request("DELETE", base .. "/nothing")))
  end)

  it("runs a WASI entry of an inline pool on the server's thread", function()
    local status, _, body = request("GET", base .. "/clock")
    assert.are.equal(200, status)
    assert.are.equal("0", body) -- clock_time_get's errno: success
  end)

  it("gives 500 for a trap (its text stays in the server's log), 504 for a timeout", function()
    local status, _, body = request("GET", base .. "/boom")
    assert.are.equal(500, status)
    assert.truthy(body:find("INTERNAL: the function failed", 1, true), body)
    assert.is_nil(body:find("unreachable", 1, true), body)
    status, _, body = request("GET", base .. "/slow")
    assert.are.equal(504, status)
    assert.truthy(body:find("execution time limit of 50 ms exceeded", 1, true), body)
  end)

  it("refuses what must not reach the guest: 404, 405, 413, 400", function()
    assert.are.equal(404, (request("GET", base .. "/nowhere")))
    assert.are.equal(405, (request("GET", base .. "/greet")))
    assert.are.equal(413, (request("POST", base .. "/greet", string.rep("x", 65))))
    local status, _, body = request("POST", base .. "/greet", "\255\254")
    assert.are.equal(400, status)
    assert.truthy(body:find("invalid UTF-8", 1, true), body)
    -- An empty body is no argument: the string parameter refuses nil.
    assert.are.equal(400, (request("POST", base .. "/greet", "")))
  end)

  it("serves requests concurrently through the function's pool", function()
    local before = funcs.stats("web:greet").calls
    local p = assert(io.popen(("for i in 1 2 3 4 5 6 7 8; do curl -s -d n$i %s/greet & done; wait"):format(base)))
    local out = p:read("*a")
    p:close()
    for i = 1, 8 do assert.truthy(out:find("Hello, n" .. i .. "!", 1, true), out) end
    assert.are.equal(8, funcs.stats("web:greet").calls - before)
  end)

  it("stops gracefully: a request in flight still gets its answer", function()
    local status, out = h.run_lua([[
      local funcs = require("funcs")
      assert(funcs.load("spec/fixtures/http"))
      local addr = assert(funcs.http.start("web:service"))
      local p = io.popen("curl -s -w ' %{http_code}' http://" .. addr .. "/api/spin")
      while funcs.stats("web:spin").in_flight == 0 do end
      assert(funcs.http.stop("web:service"))
      print("stopped", p:read("*a"))
      p:close()
      local after = io.popen("curl -s -m 2 -o /dev/null -w '%{http_code}' http://" .. addr .. "/api/spin")
      print("after", after:read("*a"))
      after:close()
    ]])
    assert.are.equal(0, status, out)
    assert.truthy(out:find("stopped\t400000000 200", 1, true), out)
    assert.truthy(out:find("after\t000", 1, true), out) -- refused: nothing listens
  end)
end)

describe("a service under hostile clients", function()
  local addr, base

  -- One run of spec/support/slow_client.py: what it printed.
  local function client(...)
    local p = assert(io.popen("python3 spec/support/slow_client.py " .. table.concat({ ... }, " ")))
    local out = p:read("*a")
    p:close()
    return out
  end

  setup(function()
    assert(funcs.load("spec/fixtures/http"))
    addr = assert(funcs.http.start("web:strict"))
    base = "http://" .. addr .. "/s"
  end)

  teardown(function()
    funcs.http.stop("web:strict")
  end)

  it("closes a connection whose headers dribble in past header_timeout_ms", function()
    local out = client("dribble", addr)
    local seconds = tonumber(out:match("closed after ([%d.]+) s"))
    assert.is_not_nil(seconds, out)
    assert.is_true(seconds < 10, out)
  end)

  it("answers 408 to a body that stalls past body_timeout_ms", function()
    assert.truthy(client("stall", addr, "/s/greet"):find("HTTP/1.1 408", 1, true))
  end)

  it("refuses a chunked body over max_body_bytes with 413", function()
    local file = os.tmpname()
    local f = assert(io.open(file, "wb"))
    f:write(string.rep("x", 100))
    f:close()
    local p = assert(io.popen(("curl -s -o /dev/null -w '%%{http_code}' -H 'Transfer-Encoding: chunked' --data-binary @%s %s/greet")
      :format(file, base)))
    local status = p:read("*a")
    p:close()
    os.remove(file)
    assert.are.equal("413", status)
  end)

  it("still answers a normal request while 1,000 idle connections are open", function()
    local hold = assert(io.popen("python3 spec/support/slow_client.py idle " .. addr .. " 1000 > /dev/null", "w"))
    local status, _, body = request("POST", base .. "/greet", "Ada")
    hold:close()
    assert.are.equal(200, status)
    assert.are.equal("Hello, Ada!", body)
  end)

  it("routes the most specific path first, whatever the registry's order", function()
    local status, ct = request("POST", base .. "/users/me", "x")
    assert.are.equal(200, status)
    assert.are.equal("application/json", ct)
    local _, _, body = request("POST", base .. "/users/42", "Ada")
    assert.are.equal("Hello, Ada!", body)
  end)

  it("stops within its grace period despite a stalled client and a guest that never ends", function()
    local status, out = h.run_lua([[
      local funcs = require("funcs")
      assert(funcs.load("spec/fixtures/http"))
      local addr = assert(funcs.http.start("web:strict"))
      local stalled = io.popen("python3 spec/support/slow_client.py idle " .. addr .. " 3 > /dev/null", "w")
      local busy = io.popen("curl -s -m 20 -o /dev/null -w '%{http_code}' http://" .. addr .. "/s/forever")
      while funcs.stats("web:forever").in_flight == 0 do end
      local started = funcs.clock()
      funcs.http.stop("web:strict")
      print("stopped in", funcs.clock() - started)
      print("client got", busy:read("*a"))
      busy:close()
      stalled:close()
    ]])
    assert.are.equal(0, status, out)
    local seconds = tonumber(out:match("stopped in\t([%d.e-]+)"))
    assert.is_not_nil(seconds, out)
    assert.is_true(seconds < 5, out)
  end)
end)

-- The same handler built by two toolchains: CPython (componentize-py) and C (wit-bindgen, zig).
for _, guest in ipairs({
  { name = "CPython", dir = "build/guests/python-http", wasm = "handler.wasm", ns = "hh", tag = "python" },
  { name = "C", dir = "build/guests/c-http", wasm = "guest.wasm", ns = "ch", tag = "c" },
}) do
describe("a wasi:http/incoming-handler component in " .. guest.name, function()
  local base

  setup(function()
    assert(io.open(guest.dir .. "/" .. guest.wasm), "run scripts/guests.sh first (make test does)")
    assert(funcs.load(guest.dir))
    base = "http://" .. assert(funcs.http.start(guest.ns .. ":service")) .. "/h"
  end)

  teardown(function()
    funcs.http.stop(guest.ns .. ":service")
  end)

  it("gets the whole request and answers with its own status, headers and body", function()
    local p = assert(io.popen(("curl -s -i -d 'hello handler' '%s/a/b?x=1'"):format(base)))
    local out = p:read("*a")
    p:close()
    assert.truthy(out:find("^HTTP/1.1 201"), out)
    assert.truthy(out:lower():find("\nx%-handler: " .. guest.tag), out)
    assert.truthy(out:find("POST /h/a/b?x=1: hello handler", 1, true), out)
    local status, ct, body = request("GET", base .. "/c")
    assert.are.equal(201, status)
    assert.are.equal("text/plain; charset=utf-8", ct)
    assert.are.equal("GET /h/c: ", body)
  end)

  it("is refused a body over the service's limit before it runs", function()
    assert.are.equal(413, (request("POST", base .. "/big", string.rep("x", 2000))))
  end)

  if guest.tag == "c" then
    it("has a plain export beside the handler, called fresh and warm", function()
      for _ = 1, 3 do
        assert.are.equal("Hello, World!", funcs.call("ch:greet", "World"))
        assert.are.equal("Hello, " .. ("é"):rep(3000) .. "!", funcs.call("ch:greet_warm", ("é"):rep(3000)))
      end
      assert.is_true(funcs.stats("ch:greet").direct)
      assert.are.equal(1, funcs.stats("ch:greet_warm").instances)
    end)

    it("keeps answering while more handlers spin than the server has threads", function()
      -- Handlers run on the server's threads (one per core): a spinning guest yields its
      -- thread on every epoch tick, so the others, the accept loop among them, go on.
      local spin = base:gsub("/h$", "/s/spin")
      local p = assert(io.popen(("for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%%{http_code}\n' %s & done; wait"):format(spin)))
      local deadline = os.time() + 10
      while funcs.stats("ch:spin").in_flight < 6 and os.time() < deadline do end
      assert.are.equal(6, funcs.stats("ch:spin").in_flight)
      local status, _, body = request("GET", base .. "/quick")
      assert.are.equal(201, status)
      assert.are.equal("GET /h/quick: ", body)
      -- Answered while all six still spin (they end at their 2 s limit).
      assert.are.equal(6, funcs.stats("ch:spin").in_flight)
      local out = p:read("*a")
      p:close()
      assert.are.equal(("504\n"):rep(6), out)
      assert.are.equal(0, funcs.stats("ch:spin").in_flight)
    end)

    it("runs at most 128 handlers per worker of the pool at once; the others wait, counted as queued", function()
      -- ch:spin's pool is inline: one worker's worth. 130 spinning requests: 128 run, 2 wait
      -- until some end (at the 2 s limit), then run.
      local spin = base:gsub("/h$", "/s/spin")
      local p = assert(io.popen(("for i in $(seq 130); do curl -s -o /dev/null -w '%%{http_code}\n' %s & done; wait"):format(spin)))
      local deadline, seen = os.time() + 20, false
      repeat
        local st = funcs.stats("ch:spin")
        seen = st.in_flight == 128 and st.queued == 2
      until seen or os.time() > deadline
      assert.is_true(seen, "never 128 running and 2 queued")
      local out = p:read("*a")
      p:close()
      assert.are.equal(("504\n"):rep(130), out)
      local st = funcs.stats("ch:spin")
      assert.are.equal(0, st.in_flight)
      assert.are.equal(0, st.queued)
    end)
  end
end)
end

describe("HTTP registry entries", function()
  it("name an unknown router, function, or a function without the wasi-http transport", function()
    h.assert_fails("INVALID", { "`bad:ep`", "unknown http.router `bad:nowhere`" },
      funcs.load("spec/fixtures/bad/unknown_router"))
    h.assert_fails("INVALID", { "`bad:ep`", "unknown function `bad:missing`" },
      funcs.load("spec/fixtures/bad/unknown_func"))
    h.assert_fails("INVALID", { "`bad:ep`", "function `bad:f` does not have `transport: wasi-http`" },
      funcs.load("spec/fixtures/bad/not_http"))
  end)

  it("refuse two endpoints with the same method and path", function()
    h.assert_fails("INVALID", { "endpoints `bad:one` and `bad:two` both serve GET /x/f" },
      funcs.load("spec/fixtures/bad/duplicate_route"))
  end)

  it("report unknown services and double starts", function()
    h.assert_fails("NOT_FOUND", { "http.service `web:nope` not found" }, funcs.http.start("web:nope"))
    h.assert_fails("NOT_FOUND", { "is not running" }, funcs.http.stop("web:nope"))
    assert.is_nil(funcs.http.addr("web:nope"))
  end)
end)
