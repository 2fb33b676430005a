-- Host functions (SPEC section 10): funcs.host provides the imports of the fixtures that
-- call their host (minimal.wasm's test:minimal/host, strings.wasm's test:strings/host,
-- calculator.wasm's wisma:calculator/host next to WASI), through an inline pool (the guest
-- on the Lua thread calls Lua directly), a lazy pool (a worker hands each call to the Lua
-- thread, answered while funcs.call waits) and funcs.async (answered in future:wait and
-- funcs.poll).
local funcs = require("funcs")
local h = require("spec.support.helpers")

local logs, adds = {}, 0
local behaviour = "add" -- what the host `add` does: "add", "error", "bad", "reenter", "nested"

setup(function()
  assert(funcs.host("test:minimal/host", {
    add = function(a, b)
      adds = adds + 1
      if behaviour == "error" then error("no adding today") end
      if behaviour == "bad" then return "forty-two" end
      if behaviour == "reenter" then return assert(funcs.call("host:add_inline", a, b)) end
      if behaviour == "nested" then return #assert(funcs.call("host:process_lazy", ("x"):rep(a))) + b end
      return a + b
    end,
  }))
  assert(funcs.host("test:strings/host", {
    log = function(msg) logs[#logs + 1] = msg end,
    concat = function(a, b) return a .. b end,
  }))
  assert(funcs.host("wisma:calculator/host@0.1.0", {
    log = function(msg) logs[#logs + 1] = msg end,
    compute = function(a, b) return a + b end,
  }))
  assert(funcs.load("spec/fixtures/host"))
end)

before_each(function()
  behaviour, logs, adds = "add", {}, 0
end)

for _, pool in ipairs({ "inline", "lazy" }) do
  describe("through a " .. pool .. " pool", function()
    it("minimal.wasm's compute-using-host calls the host's add", function()
      assert.are.equal(13, funcs.call("host:add_" .. pool, 6, 7))
      assert.are.equal(1, adds)
      assert.are.equal(13, assert(funcs.async("host:add_" .. pool, 6, 7)):wait())
      assert.are.equal(2, adds)
      -- Counted in funcs.stats and funcs.metrics, and shown by funcs.describe.
      assert.are.equal(2, funcs.stats("host:add_" .. pool).host_calls)
      assert.truthy(funcs.metrics():find('funcs_host_calls_total{function="host:add_' .. pool .. '"} 2', 1, true))
      assert.are.same({ "test:minimal/host" }, funcs.describe("host:add_" .. pool).imports)
    end)

    it("strings.wasm's process logs and concatenates through the host", function()
      assert.are.equal("hello!", funcs.call("host:process_" .. pool, "hello"))
      assert.are.same({ "hello" }, logs)
      local big = ("é"):rep(50000)
      assert.are.equal(big .. "!", funcs.call("host:process_" .. pool, big))
    end)

    it("calculator.wasm asks the host to compute and logs through it, next to WASI", function()
      -- It returns its own product and logs the host's sum.
      assert.are.equal(42, funcs.call("host:calc_" .. pool, 6, 7, "hi"))
      local text = table.concat(logs, "\n")
      assert.truthy(text:find("Component received: hi", 1, true), text)
      assert.truthy(text:find("Host computed: 6 + 7 = 13", 1, true), text)
    end)

    it("a Lua error in the host function traps the guest: INTERNAL naming it, pool still usable", function()
      behaviour = "error"
      local v, err = funcs.call("host:add_" .. pool, 1, 2)
      h.assert_fails("INTERNAL", { "`host:add_" .. pool .. "`", "host function `test:minimal/host@0.1.0#add` failed",
        "no adding today" }, v, err)
      assert.are.equal("test:minimal/host@0.1.0#add", err:details().host)
      behaviour = "bad"
      h.assert_fails("INTERNAL", { "bad return value", "expected u32" }, funcs.call("host:add_" .. pool, 1, 2))
      behaviour = "add"
      assert.are.equal(3, funcs.call("host:add_" .. pool, 1, 2))
    end)

    it("a host function may call another function (on a lazy pool)", function()
      behaviour = "nested"
      assert.are.equal(5 + 2, funcs.call("host:add_" .. pool, 4, 2)) -- #("xxxx" .. "!") + 2
    end)
  end)
end

describe("the threading model", function()
  it("an inline entry called again from its own host function fails INVALID instead of deadlocking", function()
    behaviour = "reenter"
    local v, err = funcs.call("host:add_inline", 1, 2)
    h.assert_fails("INTERNAL", { "host function", "already running on this thread" }, v, err)
  end)

  it("futures' host calls are answered by funcs.poll", function()
    local f = assert(funcs.async("host:add_lazy", 20, 22))
    assert.is_truthy(h.eventually(function()
      funcs.poll()
      return f:is_complete()
    end))
    assert.are.equal(42, f:result())
  end)

  it("a deadline ends a call whose host call nobody answers; the Lua function never runs", function()
    local f = assert(funcs.async("host:add_limited", 1, 2))
    h.sleep(300) -- the Lua thread is not in funcs: nobody answers
    h.assert_fails("TIMEOUT", { "`host:add_limited`", "execution time limit of 100 ms exceeded" }, f:wait())
    funcs.poll()
    assert.are.equal(0, adds)
  end)

  it("a cancel ends a call waiting for its host call", function()
    local f = assert(funcs.async("host:add_lazy", 1, 2))
    h.sleep(50)
    f:cancel()
    h.assert_fails("CANCELED", { "`host:add_lazy`" }, f:wait())
    funcs.poll()
    assert.are.equal(0, adds)
    assert.are.equal(3, funcs.call("host:add_lazy", 1, 2))
  end)
end)

describe("the per-entry sandbox", function()
  it("links a host interface only where imports grants it", function()
    -- fixtures/good's compute_using_host does not grant test:minimal/host: a stub naming it.
    local status, out = h.run_lua([[
      local funcs = require("funcs")
      assert(funcs.host("test:minimal/host", { add = function(a, b) return a + b end }))
      assert(funcs.load("spec/fixtures/good"))
      local v, err = funcs.call("spec:compute_using_host", 1, 2)
      print(err:kind(), tostring(err))
    ]])
    assert.are.equal(0, status, out)
    assert.truthy(out:find("test:minimal/host@0.1.0#add", 1, true), out)
  end)

  it("fails a load that grants a name neither WASI nor registered, and a registration after a load counts for later loads only", function()
    local status, out = h.run_lua([[
      local funcs = require("funcs")
      local v, err = funcs.load("spec/fixtures/host")
      print("first", err:kind(), tostring(err))
      assert(funcs.host("test:minimal/host", { add = function(a, b) return a + b end }))
      assert(funcs.host("test:strings/host", { log = print, concat = function(a, b) return a .. b end }))
      assert(funcs.host("wisma:calculator/host", { log = print, compute = function(a, b) return a + b end }))
      assert(funcs.load("spec/fixtures/host"))
      print("second", funcs.call("host:add_lazy", 2, 3))
    ]])
    assert.are.equal(0, status, out)
    assert.truthy(out:find("first\tINVALID", 1, true), out)
    assert.truthy(out:find("unknown import `test:minimal/host`", 1, true), out)
    assert.truthy(out:find("second\t5", 1, true), out)
  end)

  it("fails a load whose granted interface lacks a function the guest imports, naming it", function()
    local status, out = h.run_lua([[
      local funcs = require("funcs")
      assert(funcs.host("test:minimal/host", { sub = function(a, b) return a - b end }))
      assert(funcs.host("test:strings/host", { log = print, concat = function(a, b) return a .. b end }))
      assert(funcs.host("wisma:calculator/host", { log = print, compute = function(a, b) return a + b end }))
      local v, err = funcs.load("spec/fixtures/host")
      print(err:kind(), tostring(err))
    ]])
    assert.are.equal(0, status, out)
    assert.truthy(out:find("`test:minimal/host@0.1.0#add`, which the host interface `test:minimal/host` does not have (it has: sub)", 1, true), out)
  end)

  it("refuses bad registrations with a Lua error naming what is wrong", function()
    local cases = {
      { 42, {} }, { "", { f = print } }, { "wasi:cli/stdout", { f = print } },
      { "a:b/c", "nope" }, { "a:b/c", {} }, { "a:b/c", { f = 1 } }, { "a:b/c", { [1] = print } },
      { "a:b/c", { a_b = print, ["a-b"] = print } },
    }
    for i, c in ipairs(cases) do
      local ok, err = pcall(funcs.host, c[1], c[2])
      assert.is_false(ok, "case " .. i)
      assert.truthy(tostring(err):find("bad argument #", 1, true), tostring(err))
    end
  end)
end)

describe("a componentize-py guest", function()
  local plogs = {}
  setup(function()
    assert(funcs.host("funcs:pyhost/log", { log = function(level, msg) plogs[#plogs + 1] = level .. " " .. msg end }))
    assert(funcs.register("app:upper", function(s) return s:upper() end))
    assert(funcs.register("app:fail", function(s) error("no upper for " .. s, 0) end))
    assert(funcs.load("build/guests/python-host"))
  end)

  it("logs through a host function, on a lazy pool and through funcs.async", function()
    assert.are.equal("hello, ann", funcs.call("pyhost:greet", "ann"))
    assert.are.equal("hello, bob", assert(funcs.async("pyhost:greet", "bob")):wait())
    assert.are.same({ "1 greeting ann", "1 greeting bob" }, plogs)
  end)

  it("calls registered Lua functions and entries through wippy:runtime/funcs", function()
    assert.are.equal("ok:ABC", funcs.call("pyhost:relay", "app:upper", "abc"))
    assert.are.equal("err:no upper for abc", funcs.call("pyhost:relay", "app:fail", "abc"))
    assert.are.equal("err:invalid function target: app:nothing", funcs.call("pyhost:relay", "app:nothing", "x"))
    assert.are.equal("ok:hello, cy", funcs.call("pyhost:relay", "pyhost:greet", "cy"))
    assert.are.equal("ok:ASYNC", assert(funcs.async("pyhost:relay", "app:upper", "async")):wait())
    -- call-bytes, granted by the interface's full name, on an inline pool.
    assert.are.equal("ok:XYZ", funcs.call("pyhost:relay_bytes", "app:upper", "xyz"))
  end)

  it("funcs.call calls a registered Lua function; funcs.register refuses bad input", function()
    assert.are.equal("DIRECT", funcs.call("app:upper", "direct"))
    for _, c in ipairs({ { 1, print }, { "noid", print }, { ":x", print }, { "a:b", 3 } }) do
      local ok, err = pcall(funcs.register, c[1], c[2])
      assert.is_false(ok)
      assert.truthy(tostring(err):find("bad argument #", 1, true), tostring(err))
    end
  end)
end)

describe("core module imports", function()
  it("are served from funcs.host with the import's core types, through inline and lazy pools", function()
    assert(funcs.host("env", {
      add = function(a, b) return a + b end,
      scale = function(x) return x * 2.5 end,
      pair_of = function(a) return { a, a + 1 } end,
    }))
    assert(h.load_yaml(funcs, [[
version: "1.0"
namespace: core
entries:
  - name: sum
    kind: function.wat
    method: sum
    imports: [env]
    pool: {type: inline}
    source: &src |
      (module
        (import "env" "add" (func $add (param i32 i32) (result i32)))
        (import "env" "scale" (func $scale (param f64) (result f64)))
        (import "env" "pair_of" (func $pair (param i64) (result i64 i64)))
        (func (export "sum") (param i32 i32) (result i32) (call $add (local.get 0) (local.get 1)))
        (func (export "scaled") (param f64) (result f64) (call $scale (local.get 0)))
        (func (export "pair") (param i64) (result i64) (call $pair (local.get 0)) (i64.add)))
  - name: scaled
    kind: function.wat
    method: scaled
    imports: [env]
    source: *src
  - name: pair
    kind: function.wat
    method: pair
    imports: [env]
    source: *src
]]))
    assert.are.equal(5, funcs.call("core:sum", 2, 3))
    assert.are.equal(5.0, funcs.call("core:scaled", 2))
    assert.are.equal(21, assert(funcs.async("core:pair", 10)):wait())
  end)
end)

describe("top-level world imports", function()
  it("are served from funcs.host(\"$root\", ...) when an entry grants $root", function()
    assert(funcs.host("$root", { add = function(a, b) return a * 100 + b end }))
    assert(h.load_yaml(funcs, [[
version: "1.0"
namespace: root
entries:
  - name: run
    kind: function.wat
    method: run
    imports: ["$root"]
    source: |
      (component
        (import "add" (func $add (param "a" u32) (param "b" u32) (result u32)))
        (core func $add_lowered (canon lower (func $add)))
        (core module $m
          (import "" "add" (func $a (param i32 i32) (result i32)))
          (func (export "run") (param i32 i32) (result i32) local.get 0 local.get 1 call $a))
        (core instance $host (export "add" (func $add_lowered)))
        (core instance $i (instantiate $m (with "" (instance $host))))
        (func (export "run") (param "a" u32) (param "b" u32) (result u32) (canon lift (core func $i "run"))))
]]))
    assert.are.equal(402, funcs.call("root:run", 4, 2))
    assert.are.equal(507, assert(funcs.async("root:run", 5, 7)):wait())
  end)
end)
