-- Resources Lua defines (SPEC section 15), through the kv guests in C (wit-bindgen's C
-- bindings, no WASI) and in CPython (componentize-py), built by scripts/guests.sh into
-- build/guests/c-kv and build/guests/python-kv: their world imports funcs:res/store, whose
-- resource `bucket` Lua gives here as a table (constructor `new`, methods, the static `open`,
-- `__drop`), and exports funcs:res/kv-user, which makes, reads, keeps, drops and passes back
-- buckets. Each bucket is a Lua table; the specs check that the guest's calls get the very
-- table the constructor made, that a table Lua passes comes back as itself, and that
-- `__drop` runs once per bucket: when the guest drops it, or when the instance holding it
-- ends. Through funcs.call on an inline pool (host calls on this thread), a lazy pool (a
-- worker hands them to this thread), funcs.async, and instances from funcs.instantiate.
local funcs = require("funcs")

local GUESTS = {
  { lang = "C", registry = "build/guests/c-kv", ns = "ckv" },
  { lang = "CPython", registry = "build/guests/python-kv", ns = "pykv" },
}

local drops = {}    -- bucket -> how many times __drop ran for it
local made = {}     -- name -> the bucket new or open made
local opened        -- the bucket open returned last
local failing       -- "error" or "nil": what the constructor does instead of a bucket

local function bucket(name)
  local b = { name = name, data = {} }
  made[name] = b
  return b
end

local store = {
  bucket = {
    new = function(name)
      if failing == "error" then error("no buckets today", 0) end
      if failing == "nil" then return nil end
      return bucket(name)
    end,
    get = function(self, key) return self.data[key] end,
    set = function(self, key, value) self.data[key] = value end,
    name = function(self) return self.name end,
    open = function(name)
      opened = bucket(name)
      return opened
    end,
    __drop = function(self) drops[self] = (drops[self] or 0) + 1 end,
  },
}

setup(function()
  for _, g in ipairs(GUESTS) do
    assert(io.open(g.registry .. "/guest.wasm"), "run scripts/guests.sh first (make test does)")
  end
  assert(funcs.host("funcs:res/store", store))
  for _, g in ipairs(GUESTS) do assert(funcs.load(g.registry)) end
end)

before_each(function()
  failing = nil
end)

-- A name no other case uses.
local serial = 0
local function fresh(prefix)
  serial = serial + 1
  return ("%s-%d"):format(prefix, serial)
end

for _, g in ipairs(GUESTS) do
  local id = function(name) return g.ns .. ":" .. name end

  describe(("a %s guest using a resource Lua defines through funcs.call"):format(g.lang), function()
    for _, entry in ipairs({ "kv_inline", "kv_lazy", "kv" }) do
      it(("makes, uses and drops a bucket (%s), __drop once"):format(entry), function()
        local name = fresh(entry)
        local got, err = funcs.call(id(entry), name, "k", "v")
        assert.is_nil(err, err and tostring(err))
        assert.are.equal("v", got)
        local b = assert(made[name])
        assert.are.same({ k = "v" }, b.data)
        assert.are.equal(1, drops[b])
      end)
    end

    it("gives back the Lua value it was given, on this thread and on a worker", function()
      for _, entry in ipairs({ "pass", "pass_lazy" }) do
        local t = { name = fresh(entry) }
        local got, err = funcs.call(id(entry), t)
        assert.is_nil(err, err and tostring(err))
        assert.is_true(rawequal(t, got))
        assert.is_nil(drops[t])
      end
    end)

    it("runs __drop once for a bucket its call's instance ended holding", function()
      local t = { name = fresh("keep") }
      assert.is_nil(funcs.call(id("keep"), t))
      funcs.call(id("kv_inline"), fresh("after"), "k", "v") -- a later call of funcs
      assert.are.equal(1, drops[t])
    end)

    it("fails INTERNAL naming the constructor when it raises an error", function()
      failing = "error"
      for _, entry in ipairs({ "kv_inline", "kv_lazy" }) do
        local v, err = funcs.call(id(entry), fresh("fail"), "k", "v")
        assert.is_nil(v)
        assert.are.equal(funcs.errors.INTERNAL, err:kind())
        assert.matches("[constructor]bucket", tostring(err), 1, true)
        assert.matches("no buckets today", tostring(err), 1, true)
      end
    end)

    it("fails INTERNAL naming the constructor when it returns nil", function()
      failing = "nil"
      local v, err = funcs.call(id("kv_inline"), fresh("nil"), "k", "v")
      assert.is_nil(v)
      assert.are.equal(funcs.errors.INTERNAL, err:kind())
      assert.matches("[constructor]bucket", tostring(err), 1, true)
      assert.matches("bad return value", tostring(err), 1, true)
    end)
  end)

  describe(("a %s guest using a resource Lua defines through funcs.async"):format(g.lang), function()
    it("makes, uses and drops each bucket, __drop once each", function()
      local names, futures = {}, {}
      for i = 1, 4 do
        names[i] = fresh("async")
        futures[i] = assert(funcs.async(id(i % 2 == 0 and "kv" or "kv_lazy"), names[i], "k", "v" .. i))
      end
      for i = 1, 4 do
        local got, err = futures[i]:wait()
        assert.is_nil(err, err and tostring(err))
        assert.are.equal("v" .. i, got)
      end
      for i = 1, 4 do assert.are.equal(1, drops[assert(made[names[i]])]) end
    end)
  end)

  describe(("an instance of a %s guest holding Lua values as resources"):format(g.lang), function()
    local inst
    before_each(function() inst = assert(funcs.instantiate(id("kv"))) end)
    after_each(function() inst:close() end)

    it("returns the value the static function made", function()
      local name = fresh("opened")
      local got = assert(inst:call("opened", name))
      assert.is_true(rawequal(opened, got))
      assert.are.equal(name, got.name)
      assert.is_nil(drops[got])
    end)

    it("gives back the very value it was given", function()
      local t = { name = fresh("pass") }
      assert.is_true(rawequal(t, inst:call("pass", t)))
      assert.is_true(rawequal(t, inst:call("pass", t)))
      assert.is_nil(drops[t])
    end)

    it("reads a lent value (borrow) without dropping it", function()
      local t = { name = fresh("read"), data = { k = "lent" } }
      assert.are.equal("lent", inst:call("read", t, "k"))
      assert.is_nil(inst:call("read", t, "other"))
      assert.is_nil(drops[t])
    end)

    it("keeps a value and drops it once when released", function()
      local t = { name = fresh("kept"), data = {} }
      assert.is_nil(inst:call("keep", t))
      assert.are.equal(t.name, inst:call("kept-name"))
      assert.is_nil(drops[t])
      inst:call("release")
      assert.are.equal(1, drops[t])
      assert.is_nil(inst:call("kept_name"))
    end)

    it("treats one table given twice as one resource", function()
      local t = { name = fresh("twice"), data = {} }
      inst:call("keep", t)
      inst:call("keep", t) -- the guest drops the first handle: it still holds the second
      assert.is_nil(drops[t])
      inst:call("release")
      assert.are.equal(1, drops[t])
    end)

    it("runs __drop once for what it held when closed", function()
      local t = { name = fresh("closed"), data = {} }
      inst:call("keep", t)
      assert.is_true(inst:close())
      funcs.call(id("kv_inline"), fresh("after"), "k", "v") -- a later call of funcs
      assert.are.equal(1, drops[t])
    end)

    it("drops a bucket it made itself through its constructor", function()
      local name = fresh("inst")
      assert.are.equal("v", inst:call("roundtrip", name, "k", "v"))
      assert.are.equal(1, drops[assert(made[name])])
    end)
  end)
end

describe("a registration without the resource a guest imports", function()
  it("fails the load naming the resource", function()
    assert(funcs.host("funcs:res/store", { other = function() end }))
    local ok, err = funcs.load("build/guests/c-kv")
    assert(funcs.host("funcs:res/store", store))
    assert.is_nil(ok)
    assert.matches("resource `bucket` is not registered", tostring(err), 1, true)
    assert.matches("funcs:res/store", tostring(err), 1, true)
    -- The entries loaded before are as they were.
    assert.are.equal("v", funcs.call("ckv:kv_inline", fresh("still"), "k", "v"))
  end)
end)

describe("a resource a guest imports under a second name (WIT `use`)", function()
  -- spec/fixtures/res-alias: `y` is test:eq/a's; a world-level `use` and interface b's `use`
  -- alias it (an `(eq ...)` import), which wasmtime links as `a`'s own.
  local y_drops = 0
  local y = {
    new = function(v) return { v = v } end,
    get = function(self) return self.v + 1 end,
    __drop = function() y_drops = y_drops + 1 end,
  }
  local function register(again)
    assert(funcs.host("test:eq/a", { y = y }))
    assert(funcs.host("test:eq/b", { take = function(t) return t.v + 1 end, y = again and y or nil }))
    -- (root_granted grants `$root`, which must then be registered)
    assert(funcs.host("$root", { y = again and y or nil, unused = function() end }))
  end

  for _, again in ipairs({ false, true }) do
    it(("loads and runs with the alias %s"):format(again and "registered too" or "not registered"),
      function()
        register(again)
        assert(funcs.load("spec/fixtures/res-alias"))
        for _, name in ipairs({ "root", "root_granted", "iface" }) do
          y_drops = 0
          local v, err = funcs.call("alias:" .. name)
          assert.are.equal(42, v, name .. ": " .. tostring(err))
          assert.are.equal(1, y_drops, name)
        end
      end)
  end
end)

describe("an own argument lowered before an argument that fails", function()
  -- spec/fixtures/res-own: keep(y: own<y>, n: u32) drops y and returns n.
  local drops = {}
  setup(function()
    assert(funcs.host("test:own/h", { y = { __drop = function(self) drops[self] = (drops[self] or 0) + 1 end } }))
    assert(funcs.load("spec/fixtures/res-own"))
  end)

  it("was never the guest's: no __drop, and the value can be given again", function()
    local t = {}
    assert.are.equal(5, funcs.call("own:keep", t, 5))
    assert.are.equal(1, drops[t])
    local u = {}
    local v, err = funcs.call("own:keep", u, "x")
    assert.is_nil(v)
    assert.are.equal("INVALID", err:kind(), tostring(err))
    funcs.call("own:keep", {}, 1) -- a later call of funcs
    assert.is_nil(drops[u])
    local inst = assert(funcs.instantiate("own:keep"))
    v, err = inst:call("keep", u, -1)
    assert.is_nil(v)
    assert.are.equal("INVALID", err:kind(), tostring(err))
    assert.are.equal(2, inst:call("keep", {}, 2))
    assert.is_true(inst:close())
    funcs.call("own:keep", {}, 1)
    assert.is_nil(drops[u])
    assert.are.equal(3, funcs.call("own:keep", u, 3))
    assert.are.equal(1, drops[u])
  end)
end)

for _, g in ipairs(GUESTS) do
  describe(("a %s guest's instance taking resources Lua defines through inst:async"):format(g.lang), function()
    it("reads each call's values by type, whatever runs before it", function()
      local inst = assert(funcs.instantiate(g.ns .. ":kv"))
      -- The first call waits on a worker for its host call (its bucket's constructor), which
      -- this thread answers only once it waits inside funcs: meanwhile the worker holds
      -- the instance's store, whose types the next call's values are read by.
      local first = inst:async("roundtrip", fresh("q"), "k", "v")
      os.execute("sleep 0.1")
      local a, b = { name = fresh("qa") }, { name = fresh("qb") }
      local fa, fb = inst:async("pass", a), inst:async("pass", b)
      assert.are.equal("v", first:wait())
      assert.is_true(rawequal(a, fa:wait()))
      assert.is_true(rawequal(b, fb:wait()))
      assert.is_true(inst:close())
    end)
  end)
end
