-- Instances a caller holds and the resource handles their calls give (SPEC section 15), on
-- real guests: the counters world of spec/fixtures/res-wit/res.wit built in C (wit-bindgen,
-- zig) and in CPython (componentize-py) by scripts/guests.sh into build/guests/c-res and
-- build/guests/python-res, and on WAT entries in spec/fixtures/instances (a core module whose
-- global and memory persist, two interfaces with a resource of the same name).
-- componentize-py 0.25 runs no Python code when the host drops a counter (its destructor hook
-- does nothing): the drop counts of the Python guest move only when the guest consumes a
-- counter itself, so the checks of destructors run on the C guest.
local funcs = require("funcs")
local h = require("spec.support.helpers")

local GUESTS = {
  { name = "C", ns = "cres", dir = "build/guests/c-res", destructors = true },
  { name = "CPython", ns = "pyres", dir = "build/guests/python-res", destructors = false },
}

setup(function()
  for _, g in ipairs(GUESTS) do assert(funcs.load(g.dir)) end
  assert(funcs.load("spec/fixtures/instances"))
end)

local function kind_and_message(v, err)
  assert.is_nil(v)
  return err:kind(), tostring(err)
end

for _, g in ipairs(GUESTS) do
  local ID = g.ns .. ":counters"

  describe("funcs.instantiate with a " .. g.name .. " guest", function()
    it("keeps the component's state across calls", function()
      local inst = assert(funcs.instantiate(ID))
      assert.are.equal(0, inst:call("get-total"))
      local Counter = assert(inst:resource("counter"))
      local c = assert(Counter.new(5))
      c:increment(2)
      c:increment(3)
      assert.are.equal(10, c:get())
      assert.are.equal(5, inst:call("get-total"))
      -- a second instance has its own state
      local other = assert(funcs.instantiate(ID))
      assert.are.equal(0, other:call("get-total"))
      assert.truthy(tostring(inst):find("`" .. ID .. "`", 1, true))
      assert.truthy(tostring(c):find("counter #1 of `" .. ID .. "`", 1, true))
      inst:close()
      other:close()
    end)

    it("names exports in full, by interface, or by their short name", function()
      local inst = assert(funcs.instantiate(ID))
      assert.are.equal(0, inst:call("funcs:res/counters@0.1.0#get-total"))
      assert.are.equal(0, inst:call("counters#get-total"))
      assert.are.equal(0, inst:call("get-total"))
      local kind, msg = kind_and_message(inst:call("no-such"))
      assert.are.equal("INVALID", kind)
      assert.truthy(msg:find("`no-such` is not exported", 1, true), msg)
      inst:close()
    end)

    it("calls methods by WIT and snake_case names, and statics", function()
      local inst = assert(funcs.instantiate(ID))
      local Counter = assert(inst:resource("counters#counter"))
      local c = Counter.new(1)
      assert.is_function(c["arm-trap"])
      assert.is_function(c.arm_trap)
      assert.is_nil(c.no_such_method)
      local sum = Counter.merge(Counter.new(2), Counter.new(3))
      assert.are.equal(5, sum:get())
      inst:close()
    end)

    it("moves own handles into the guest and lends borrowed ones", function()
      local inst = assert(funcs.instantiate(ID))
      local Counter = inst:resource("counter")
      local a, b = Counter.new(4), Counter.new(6)
      assert.are.equal(4, inst:call("peek", a)) -- lent: still usable
      assert.are.equal(4, a:get())
      local sum = Counter.merge(a, b)
      assert.are.equal(10, sum:get())
      local kind, msg = kind_and_message(a:get())
      assert.are.equal("INVALID", kind)
      assert.truthy(msg:find("counter #1 was moved into `counter.merge`", 1, true), msg)
      -- a dead handle fails the call before the guest runs: the instance stays
      kind, msg = kind_and_message(inst:call("consume", b))
      assert.are.equal("INVALID", kind)
      assert.truthy(msg:find("counter #2 was moved into `counter.merge`", 1, true), msg)
      assert.are.equal(10, inst:call("consume", sum))
      kind, msg = kind_and_message(sum:get())
      assert.truthy(msg:find("was moved into `consume`", 1, true), msg)
      assert.are.equal(10, inst:call("get-total") + 10)
      inst:close()
    end)

    it("refuses one handle passed twice when a use moves it, before the guest runs", function()
      local inst = assert(funcs.instantiate(ID))
      local Counter = inst:resource("counter")
      local c = Counter.new(1)
      local kind, msg = kind_and_message(Counter.merge(c, c))
      assert.are.equal("INVALID", kind)
      assert.truthy(msg:find("counter #1 is passed twice", 1, true), msg)
      assert.are.equal(1, c:get())
      inst:close()
    end)

    it("carries handles in lists, options, results and records, both ways", function()
      local inst = assert(funcs.instantiate(ID))
      local many = inst:call("make-many", 3)
      assert.are.equal(3, #many)
      assert.are.equal(2, many[3]:get())
      assert.are.equal(3, inst:call("sum-all", many))
      assert.are.equal(0, inst:call("sum-all", {}))
      assert.is_nil(inst:call("maybe", nil))
      assert.are.equal(4, inst:call("maybe", 4):get())
      assert.are.equal("negative", inst:call("checked", -1).err)
      assert.are.equal(3, inst:call("checked", 3).ok:get())
      local l = inst:call("label", "x", 7)
      assert.are.equal("x", l.name)
      assert.are.equal(7, l.c:get())
      assert.are.equal(7, inst:call("unlabel", { name = "y", c = l.c }))
      assert.truthy(select(2, l.c:get()):message():find("moved into `unlabel`", 1, true))
      inst:close()
    end)

    it("says what is wrong with a handle of another instance or a non-handle", function()
      local one = assert(funcs.instantiate(ID))
      local two = assert(funcs.instantiate(ID))
      local c = one:resource("counter").new(1)
      local kind, msg = kind_and_message(two:call("peek", c))
      assert.are.equal("INVALID", kind)
      assert.truthy(msg:find("belongs to another instance", 1, true), msg)
      kind, msg = kind_and_message(two:call("peek", 5))
      assert.truthy(msg:find("expected borrow<counter> handle, got number", 1, true), msg)
      kind, msg = kind_and_message(two:call("peek", io.stdout))
      assert.truthy(msg:find("expected borrow<counter> handle, got userdata", 1, true), msg)
      -- the instances go on
      assert.are.equal(1, c:get())
      assert.are.equal(0, two:call("get-total"))
      one:close()
      two:close()
    end)

    it("runs a method on the instance of the handle it is given, inst.call on the instance given", function()
      -- (the direct path finds both by their userdata; anything else goes to the general one)
      local one = assert(funcs.instantiate(ID))
      local two = assert(funcs.instantiate(ID))
      local c1 = one:resource("counter").new(1)
      local c2 = two:resource("counter").new(2)
      assert.are.equal(2, c1.get(c2))
      c1.increment(c2, 5)
      assert.are.same({ 0, 5, 5 }, { one:call("get-total"), two:call("get-total"), one.call(two, "get-total") })
      local ok, err = pcall(one.call, io.stdout, "get-total")
      assert.is_false(ok)
      assert.truthy(tostring(err):find("bad argument", 1, true), tostring(err))
      ok, err = pcall(one.call, c1, "get-total")
      assert.is_false(ok)
      for _, other in ipairs({ io.stdout, one, 5 }) do
        ok, err = pcall(c1.get, other)
        assert.is_false(ok)
        assert.truthy(tostring(err):find("a resource handle expected", 1, true), tostring(err))
      end
      assert.is_true(c2:drop())
      local kind, msg = kind_and_message(c1.get(c2))
      assert.are.equal("INVALID", kind)
      assert.truthy(msg:find("counter #1 was dropped", 1, true), msg)
      kind, msg = kind_and_message(one:call("get-total", 1))
      assert.truthy(msg:find("expected 0 argument(s), got 1", 1, true), msg)
      kind, msg = kind_and_message(c1:increment("x"))
      assert.are.equal("INVALID", kind)
      assert.are.equal(1, c1:get())
      one:close()
      two:close()
    end)

    it("drops a handle once: a second drop, and a drop of a dead handle, do nothing", function()
      local inst = assert(funcs.instantiate(ID))
      local c = inst:resource("counter").new(1)
      assert.is_true(c:drop())
      assert.is_true(c:drop())
      local kind, msg = kind_and_message(c:get())
      assert.are.equal("INVALID", kind)
      assert.truthy(msg:find("counter #1 was dropped", 1, true), msg)
      if g.destructors then assert.are.equal(1, inst:call("drops")) end
      inst:close()
      assert.is_true(c:drop())
    end)

    it("ends an instance on a trap: later calls and handles say so", function()
      local inst = assert(funcs.instantiate(ID))
      local c = inst:resource("counter").new(1)
      local kind, msg = kind_and_message(inst:call("fail"))
      if g.destructors then assert.are.equal("INTERNAL", kind) end
      kind, msg = kind_and_message(inst:call("get-total"))
      assert.are.equal("INVALID", kind)
      assert.truthy(msg:find("ended when a call failed", 1, true), msg)
      kind, msg = kind_and_message(c:get())
      assert.are.equal("INVALID", kind)
      assert.truthy(msg:find("ended when a call failed", 1, true), msg)
      assert.truthy(tostring(inst):find("(ended)", 1, true))
      assert.is_true(c:drop()) -- dead with its instance: nothing to do
    end)

    it("ends an instance at its deadline", function()
      local inst = assert(funcs.instantiate(g.ns .. ":counters_limited"))
      local kind = kind_and_message(inst:call("spin"))
      assert.are.equal("TIMEOUT", kind)
      kind = kind_and_message(inst:call("get-total"))
      assert.are.equal("INVALID", kind)
    end)

    it("takes a deadline of its own", function()
      local inst = assert(funcs.instantiate(ID, { timeout = 50 }))
      local kind = kind_and_message(inst:call("spin"))
      assert.are.equal("TIMEOUT", kind)
    end)

    it("keeps an instance after an argument error", function()
      local inst = assert(funcs.instantiate(ID))
      local kind, msg = kind_and_message(inst:call("make-many", "three"))
      assert.are.equal("INVALID", kind)
      assert.truthy(msg:find("make-many: argument 1 (n): expected u32, got string", 1, true), msg)
      kind, msg = kind_and_message(inst:call("make-many"))
      assert.truthy(msg:find("expected 1 argument(s), got 0", 1, true), msg)
      assert.are.equal(0, inst:call("get-total"))
      inst:close()
    end)

    it("closes: every handle of it is dead, closing twice does nothing", function()
      local inst = assert(funcs.instantiate(ID))
      local c = inst:resource("counter").new(1)
      assert.is_true(inst:close())
      assert.is_true(inst:close())
      local kind, msg = kind_and_message(c:get())
      assert.are.equal("INVALID", kind)
      assert.truthy(msg:find("is closed", 1, true), msg)
      kind, msg = kind_and_message(inst:call("get-total"))
      assert.truthy(msg:find("is closed", 1, true), msg)
      -- as an argument of another instance's call, the handle says what became of it
      local other = assert(funcs.instantiate(ID))
      kind, msg = kind_and_message(other:call("peek", c))
      assert.truthy(msg:find("counter #1: its instance `" .. ID .. "`", 1, true), msg)
      assert.truthy(msg:find("was closed", 1, true), msg)
      other:close()
    end)

    it("gives async calls as futures, handles included", function()
      local inst = assert(funcs.instantiate(ID))
      local f = inst:async("make-many", 2)
      local many = f:wait()
      assert.is_true(f:is_complete())
      assert.are.equal(1, many[2]:get())
      inst:close()
    end)

    it("caps the instances of an entry (limits.max_instances)", function()
      local a = assert(funcs.instantiate(g.ns .. ":counters_two"))
      local b = assert(funcs.instantiate(g.ns .. ":counters_two"))
      local kind, msg = kind_and_message(funcs.instantiate(g.ns .. ":counters_two"))
      assert.are.equal("UNAVAILABLE", kind)
      assert.truthy(msg:find("limits.max_instances", 1, true), msg)
      a:close()
      local c = assert(funcs.instantiate(g.ns .. ":counters_two"))
      b:close()
      c:close()
    end)

    it("closes instances the collector finds unreachable, at the next call", function()
      -- at most two open at a time: each one left must be closed for the next
      for _ = 1, 200 do
        local i = assert(funcs.instantiate(g.ns .. ":counters_two"))
        for k = 1, 10 do assert(i:resource("counter").new(k)) end
        i = nil
        collectgarbage()
        collectgarbage()
      end
      assert.are.equal(0, funcs.stats(g.ns .. ":counters_two").live_handles)
    end)
  end)
end

describe("handles the collector finds unreachable", function()
  it("are dropped before their instance's next call", function()
    local inst = assert(funcs.instantiate("cres:counters"))
    local Counter = inst:resource("counter")
    for i = 1, 1000 do Counter.new(i) end
    collectgarbage()
    collectgarbage()
    assert.are.equal(0, inst:call("live"))
    assert.are.equal(1000, inst:call("drops"))
    inst:close()
  end)

  it("end with their instance when it closes first", function()
    local inst = assert(funcs.instantiate("cres:counters"))
    inst:resource("counter").new(1)
    inst:close()
    collectgarbage()
    collectgarbage()
    assert.are.equal(0, funcs.instantiate("cres:counters"):call("drops"))
  end)
end)

describe("a destructor that traps", function()
  it("ends the instance, from h:drop() or from a deferred drop", function()
    local inst = assert(funcs.instantiate("cres:counters"))
    local c = inst:resource("counter").new(1)
    c:arm_trap()
    local kind = kind_and_message(c:drop())
    assert.are.equal("INTERNAL", kind)
    kind = kind_and_message(inst:call("get-total"))
    assert.are.equal("INVALID", kind)

    inst = assert(funcs.instantiate("cres:counters"))
    inst:resource("counter").new(1):arm_trap()
    collectgarbage()
    collectgarbage()
    local msg
    kind, msg = kind_and_message(inst:call("get-total"))
    assert.are.equal("INVALID", kind)
    assert.truthy(msg:find("unreachable", 1, true), msg)
  end)
end)

describe("funcs.call of a function that takes or returns resources", function()
  it("is refused before the guest runs, naming funcs.instantiate", function()
    local cwd = io.popen("pwd"):read("*l")
    local index = assert(io.open("build/guests/c-res/_index.yaml")):read("*a")
    local hash = index:match("hash: (sha256:%x+)")
    assert(h.load_yaml(funcs, ([[
version: "1.0"
namespace: callres
entries:
  - {name: dir, kind: fs.directory, directory: %s/build/guests/c-res}
  - {name: many, kind: function.wasm, fs: dir, path: guest.wasm, hash: "%s", method: "counters#make-many"}
]]):format(cwd, hash)))
    local kind, msg = kind_and_message(funcs.call("callres:many", 2))
    assert.are.equal("INVALID", kind)
    assert.truthy(msg:find("funcs.instantiate", 1, true), msg)
    assert.are.equal(0, funcs.stats("callres:many").instances)
  end)
end)

describe("an instance of a core module", function()
  it("keeps its globals and memory between calls", function()
    local inst = assert(funcs.instantiate("inst:core"))
    assert.are.equal(2, inst:call("bump", 2))
    assert.are.equal(5, inst:call("bump", 3))
    assert.is_nil(inst:call("poke", 9))
    assert.are.equal(9, inst:call("peek"))
    local kind, msg = kind_and_message(inst:resource("x"))
    assert.are.equal("INVALID", kind)
    assert.truthy(msg:find("a core module exports no resources", 1, true), msg)
    inst:close()
  end)
end)

describe("inst:async", function()
  it("queues the calls in order on the entry's workers while the caller goes on", function()
    local inst = assert(funcs.instantiate("inst:core"))
    local slow = inst:async("work", 30000000)
    assert.is_false(slow:is_complete()) -- returned at once, the call queued
    local f1, f2, f3 = inst:async("bump", 1), inst:async("bump", 10), inst:async("bump", 100)
    assert.are.equal(30000000, slow:wait())
    assert.are.same({ 1, 11, 111 }, { f1:wait(), f2:wait(), f3:wait() })
    -- inst:call waits behind what was queued before it
    local f4 = inst:async("bump", 1000)
    assert.are.equal(1112, inst:call("bump", 1))
    assert.is_true(f4:is_complete())
    assert.are.equal(1111, f4:wait())
    -- an argument refused: that future fails, the instance stays
    local v, err = inst:async("bump", "x"):wait()
    assert.is_nil(v)
    assert.are.equal("INVALID", err:kind(), tostring(err))
    assert.are.equal(1112, inst:call("bump", 0))
    -- a trap ends the instance, for the calls queued after it too
    local boom, after = inst:async("boom"), inst:async("bump", 1)
    v, err = boom:wait()
    assert.are.equal("INTERNAL", err:kind(), tostring(err))
    v, err = after:wait()
    assert.are.equal("INVALID", err:kind(), tostring(err))
    assert.truthy(tostring(err):find("ended when a call failed", 1, true), tostring(err))
    inst:close()
  end)

  it("makes close wait for the calls queued", function()
    local inst = assert(funcs.instantiate("inst:core"))
    local f = inst:async("work", 20000000)
    assert.is_true(inst:close())
    assert.is_true(f:is_complete())
    assert.are.equal(20000000, f:wait())
  end)
end)

describe("the pooling allocator's slots", function()
  it("give UNAVAILABLE when they are all in use, and come back when instances close", function()
    if funcs.engine().allocator ~= "pooling" then
      return pending("instances are allocated on demand here: no slots to run out of")
    end
    local held, kind, msg = {}, nil, nil
    for i = 1, 400 do
      local inst, err = funcs.instantiate("inst:quad")
      if not inst then
        kind, msg = kind_and_message(nil, err)
        break
      end
      held[i] = inst
    end
    local seven = held[1] and held[1]:call("seven")
    local count = #held
    for _, inst in ipairs(held) do inst:close() end
    assert.are.equal("UNAVAILABLE", kind, msg)
    assert.truthy(msg:find("core instances reached", 1, true), msg)
    -- 1,000 slots, four a instance: at most 250 (fewer when other specs hold some).
    assert.truthy(count >= 100 and count <= 250, count)
    assert.are.equal(7, seven)
    local again = assert(funcs.instantiate("inst:quad"))
    assert.are.equal(7, again:call("seven"))
    again:close()
  end)
end)

describe("resources with the same name in two interfaces", function()
  it("are named by interface, and are different types", function()
    local inst = assert(funcs.instantiate("inst:twins"))
    local kind, msg = kind_and_message(inst:resource("thing"))
    assert.are.equal("INVALID", kind)
    assert.truthy(msg:find("ambiguous: a#thing, b#thing", 1, true), msg)
    assert(inst:resource("a#thing"))
    local a, b = inst:call("a#make"), inst:call("b#make")
    assert.are.equal(7, inst:call("a#value", a))
    kind, msg = kind_and_message(inst:call("a#value", b))
    assert.are.equal("INVALID", kind)
    assert.truthy(msg:find("expected borrow<thing> handle, got thing #2", 1, true), msg)
    inst:close()
  end)
end)

describe("funcs.instantiate's arguments", function()
  it("are checked", function()
    assert.has_error(function() funcs.instantiate(42) end)
    assert.has_error(function() funcs.instantiate("cres:counters", 5) end)
    assert.has_error(function() funcs.instantiate("cres:counters", { timeout = -1 }) end)
    assert.has_error(function() funcs.instantiate("cres:counters", { timeout = 0 / 0 }) end)
    assert.has_error(function() funcs.instantiate("cres:counters", { nope = 1 }) end)
    local kind = kind_and_message(funcs.instantiate("no:such"))
    assert.are.equal("NOT_FOUND", kind)
  end)
end)

describe("funcs.describe and funcs.stats of an entry with resources", function()
  it("list the resources as WIT, and count open instances and live handles", function()
    local d = assert(funcs.describe("cres:counters"))
    local r = d.resources[1]
    assert.are.equal("counter", r.name)
    assert.are.equal("funcs:res/counters@0.1.0", r.interface)
    assert.truthy(r.wit:find("resource counter {\n  constructor(start: s64);\n", 1, true), r.wit)
    assert.truthy(r.wit:find("  merge: static func(a: counter, b: counter) -> counter;\n", 1, true), r.wit)
    collectgarbage()
    collectgarbage()
    local inst = assert(funcs.instantiate("cres:counters_two"))
    local before = funcs.stats("cres:counters_two")
    assert.are.equal(1, before.open_instances)
    local c = inst:resource("counter").new(1)
    assert.are.equal(1, funcs.stats("cres:counters_two").live_handles)
    assert.truthy(funcs.metrics():find('funcs_open_instances{function="cres:counters_two"} 1', 1, true))
    assert.truthy(funcs.metrics():find('funcs_live_handles{function="cres:counters_two"} 1', 1, true))
    c = nil
    collectgarbage()
    collectgarbage()
    assert.are.equal(0, funcs.stats("cres:counters_two").live_handles)
    inst:close()
    assert.are.equal(0, funcs.stats("cres:counters_two").open_instances)
  end)
end)

-- funcs:res/store for build/guests/c-kv whose constructor `new` first does what a host
-- function inside an instance's call may: it names the instance `instance()` gives and calls
-- it again, into `seen` (`str`, `again`, `again_message`), then runs `more(seen)` if given;
-- the kv guest is then loaded again.
local function reentering_store(seen, instance, more)
  funcs.host("funcs:res/store", {
    bucket = {
      new = function(name)
        local inst = instance()
        seen.str = tostring(inst)
        local _, e = inst:call("kept-name")
        seen.again = e and e:kind()
        seen.again_message = e and e:message()
        if more then more(seen) end
        return { name = name, data = {} }
      end,
      get = function(self, k) return self.data[k] end,
      set = function(self, k, v) self.data[k] = v end,
      name = function(self) return self.name end,
      open = function(n) return { name = n, data = {} } end,
    },
  })
  assert(funcs.load("build/guests/c-kv"))
end

describe("a host function running inside an instance's call", function()
  it("gets INVALID calling back into it or into another instance it would have to run, and nothing ends", function()
    local inst, other
    local seen = {}
    reentering_store(seen, function() return inst end, function()
      local _, e = other:call("kept-name")
      seen.other = e and e:message()
    end)
    inst = assert(funcs.instantiate("ckv:kv"))
    other = assert(funcs.instantiate("ckv:kv"))
    assert.are.equal("v", inst:call("roundtrip", "b", "k", "v"))
    assert.truthy(seen.str:find("(running)", 1, true), seen.str)
    assert.are.equal("INVALID", seen.again)
    assert.truthy(seen.again_message:find("failed to call instance `ckv:kv` #", 1, true), seen.again_message)
    assert.truthy(seen.other:find("failed to call instance `ckv:kv` #", 1, true), seen.other)
    assert.truthy(seen.other:find("cannot run inside another such call", 1, true), seen.other)
    -- both go on
    assert.is_nil(inst:call("kept-name"))
    assert.is_nil(other:call("kept-name"))
    assert.truthy(tostring(other):find("(open)", 1, true))
    inst:close()
    other:close()
  end)
end)

describe("a host function running inside an instance's queued call (inst:async)", function()
  it("gets INVALID using the instance, and the call goes on", function()
    local inst
    local seen = {}
    reentering_store(seen, function() return inst end)
    inst = assert(funcs.instantiate("ckv:kv"))
    local f = inst:async("roundtrip", "b", "k", "v")
    assert.are.equal("v", f:wait())
    assert.truthy(seen.str:find("(running)", 1, true), seen.str)
    assert.are.equal("INVALID", seen.again)
    assert.truthy(seen.again_message:find("while calls queued by inst:async run", 1, true), seen.again_message)
    assert.is_nil(inst:call("kept-name"))
    inst:close()
  end)
end)

describe("an entry whose method names a resource", function()
  it("binds the resource's constructor, for instances", function()
    assert(funcs.load("build/guests/c-res"))
    -- funcs.call of a constructor: its own handle has no place outside an instance
    local v, err = funcs.call("cres:by_resource", 5)
    assert.is_nil(v)
    assert.are.equal("INVALID", err:kind())
    assert.truthy(err:message():find("funcs.instantiate", 1, true), err:message())
    local inst = assert(funcs.instantiate("cres:by_resource"))
    local c = assert(inst:resource("counter").new(4))
    c:increment(1)
    assert.are.equal(5, c:get())
    inst:close()
  end)
end)
