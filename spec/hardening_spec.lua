-- What bad input gets (SPEC section 13): no Lua value or option number may crash the process,
-- print a panic, or let a call outlive its deadline. Crash-prone cases run in a child
-- interpreter so that this suite survives them.
local funcs = require("funcs")
local h = require("spec.support.helpers")

local ECHO = "spec/fixtures/echo"

-- Runs `chunk` in a child interpreter; asserts it ended normally and printed no panic.
local function survives(chunk)
  local status, out = h.run_lua(chunk)
  assert.are.equal(0, status, out)
  assert.is_nil(out:find("panicked", 1, true), out)
  return out
end

describe("a sparse table whose border is 2^40", function()
  it("is refused as a list on the direct and on the general path, without an abort", function()
    local out = survives(([[
      local funcs = require("funcs")
      assert(funcs.load(%q))
      local t = {1, 2, 3, 4, 5}
      t[8] = 1; t[9] = 1
      for k = 4, 40 do t[2 ^ k] = 1 end
      local ok, v, err = pcall(funcs.call, "echo:list_u32", t)
      print("direct", ok, v, err and err:kind())
      local future, err2 = funcs.async("echo:list_u32", t)
      if future then v, err2 = future:wait() end
      print("general", v, err2 and err2:kind())
    ]]):format(ECHO))
    assert.truthy(out:find("direct\ttrue\tnil\tINVALID", 1, true), out)
    assert.truthy(out:find("general\tnil\tINVALID", 1, true), out)
  end)
end)

describe("an executor timeout", function()
  setup(function()
    assert(funcs.load("spec/fixtures/hardening"))
  end)

  it("stops a guest in an instance kept from an earlier call (pool.reuse)", function()
    assert.are.equal(0, funcs.call("hard:spin_reused", 10))
    -- A cancellable call first, so the kept store has had an epoch callback installed.
    local f = assert(funcs.async("hard:spin_reused", 10))
    assert.are.equal(0, f:wait())
    local quick = funcs.new():with_options({ timeout = 50 })
    local started = funcs.clock()
    local value, err = quick:call("hard:spin_reused", 4e12)
    h.assert_fails("TIMEOUT", { "50 ms" }, value, err)
    -- Generous: the point is that it stops at all (it used to run to the end).
    assert.is_true(funcs.clock() - started < 30)
    -- The instance pool still works afterwards.
    assert.are.equal(0, funcs.call("hard:spin_reused", 10))
  end)

  it("of 2^53 to 2^64 ms is clamped, never a panic; NaN, ±inf, 0, 0.5 and -1 are misuse", function()
    local out = survives([[
      local funcs = require("funcs")
      assert(funcs.load("spec/fixtures/hardening"))
      for _, ms in ipairs({ 2 ^ 64, 2 ^ 53, 2 ^ 63 }) do
        print(ms, funcs.new():with_options({ timeout = ms }):call("hard:spin_reused", 10))
      end
      for _, ms in ipairs({ 0 / 0, 0, -1, math.huge, -math.huge, 0.5 }) do
        local ok, err = pcall(function() funcs.new():with_options({ timeout = ms }) end)
        print("bad", ok, err and tostring(err):find("positive integer", 1, true) ~= nil)
      end
    ]])
    local _, calls = out:gsub("\t0\n", "")
    assert.are.equal(3, calls, out)
    local _, refused = out:gsub("bad\tfalse\ttrue", "")
    assert.are.equal(6, refused, out)
  end)
end)

describe("a future", function()
  it("read by a finalizer while its own result is converted does not deadlock", function()
    local status, out = h.run_lua(([[
      local funcs = require("funcs")
      assert(funcs.load(%q))
      local f = assert(funcs.async("echo:list_string", { "a", "b", "c" }))
      local mt = { __gc = function() f:wait(0); f:is_canceled() end }
      for _ = 1, 100000 do setmetatable({}, mt); f:result() end
      print("done", #f:result())
    ]]):format(ECHO), "timeout 60")
    assert.are.equal(0, status, out)
    assert.truthy(out:find("done\t3", 1, true), out)
  end)
end)

describe("a large argument", function()
  it("of 4 MiB goes through funcs.async as through funcs.call", function()
    assert(funcs.load(ECHO))
    local s = string.rep("x", 4 * 1024 * 1024)
    assert.are.equal(4 * 1024 * 1024, #funcs.call("echo:bytes", s))
    local v, err = assert(funcs.async("echo:bytes", s)):wait()
    assert.is_nil(err)
    assert.are.equal(4 * 1024 * 1024, #v)
  end)
end)

describe("a pool", function()
  it("of more than 1,024 workers fails the load, naming the field", function()
    local ok, err = h.load_yaml(funcs, [[
version: "1.0"
namespace: big
entries:
  - name: a
    kind: function.wat
    method: a
    source: "(module (func (export \"a\")))"
    pool: {workers: 100000}
]])
    h.assert_fails("INVALID", { "pool.workers must be at most 1024, got 100000" }, ok, err)
  end)
end)

describe("future:wait", function()
  it("takes math.huge as no time limit and refuses NaN and negative numbers", function()
    local out = survives([[
      local funcs = require("funcs")
      assert(funcs.load("spec/fixtures/hardening"))
      local f = assert(funcs.async("hard:spin_reused", 1000))
      print("huge", f:wait(math.huge))
      print("big", f:wait(2 ^ 64))
      for _, ms in ipairs({ 0 / 0, -1, -math.huge }) do
        print("bad", (pcall(f.wait, f, ms)))
      end
    ]])
    assert.truthy(out:find("huge\t0", 1, true), out)
    assert.truthy(out:find("big\t0", 1, true), out)
    local _, refused = out:gsub("bad\tfalse", "")
    assert.are.equal(3, refused, out)
  end)
end)

describe("a guest", function()
  it("cannot grow a table past 100,000 elements, with either allocator", function()
    for _, allocator in ipairs({ "", "FUNCS_ALLOCATOR=on-demand" }) do
      local status, out = h.run_lua([[
        local funcs = require("funcs")
        assert(funcs.load("spec/fixtures/hardening"))
        print("small", funcs.call("hard:grow_table", 1000))
        print("huge", funcs.call("hard:grow_table", 200000))
        print("engine", funcs.engine().allocator)
      ]], allocator ~= "" and allocator .. " " or nil)
      assert.are.equal(0, status, out)
      assert.truthy(out:find("small\t0", 1, true), out)
      assert.truthy(out:find("huge\t-1", 1, true), out)
    end
  end)

  it("writing a megabyte without a newline has it printed in lines of 64 KiB", function()
    local status, out = h.run_lua([[
      local funcs = require("funcs")
      assert(funcs.load("spec/fixtures/hardening"))
      print("wrote", funcs.call("hard:no_newline", 1048576))
    ]])
    assert.are.equal(0, status, out)
    assert.truthy(out:find("wrote\t1048576", 1, true), out:sub(-300))
    local lines = 0
    for line in out:gmatch("%[hard:no_newline%] (x+)\n") do
      assert.is_true(#line <= 65536, tostring(#line))
      lines = lines + 1
    end
    assert.are.equal(16, lines, out:sub(1, 300))
  end)
end)

describe("a script that ends", function()
  it("with spinning guests, queued calls and a stalled HTTP client exits within the grace period", function()
    local started = funcs.clock()
    local status, out = h.run_lua([[
      local funcs = require("funcs")
      assert(funcs.load("spec/fixtures/hardening"))
      assert(funcs.load("spec/fixtures/http"))
      local addr = assert(funcs.http.start("web:strict"))
      local stalled = io.popen("python3 spec/support/slow_client.py idle " .. addr .. " 3 > /dev/null", "w")
      -- Spinning for hours, without a deadline, on the 2 workers of a static pool, and more
      -- waiting in its queue.
      for _ = 1, 6 do assert(funcs.async("web:spin_forever_static")) end
      while funcs.stats("web:spin_forever_static").in_flight < 2 do end
      print("queued", funcs.stats("web:spin_forever_static").queued)
    ]])
    local seconds = funcs.clock() - started
    assert.are.equal(0, status, out)
    assert.truthy(out:find("queued\t4", 1, true), out)
    -- The service's grace is 0.5 s; the child also starts, loads and compiles.
    assert.is_true(seconds < 15, tostring(seconds))
  end)
end)
