-- funcs.call is a C function: it makes direct calls (components) and calls of core functions
-- itself, reading the arguments where Lua left them, and hands every other call to the
-- general funcs.call. Whatever it takes, it must give what the general path gives
-- (the executors' shared `call` converts every argument first): for every Lua type in every parameter,
-- every count, results that do not fit their type, traps.
local funcs = require("funcs")

local unpack = table.unpack or unpack

local function pack(...)
  return { n = select("#", ...), ... }
end

-- A Lua value as text that tells apart what `==` does not (integer and float, -0.0, NaN).
local function show(v)
  if type(v) == "number" then
    if v ~= v then return "nan" end
    return (math.type and math.type(v) or "number") .. ":" .. string.format("%.17g", v)
  elseif type(v) == "table" then
    local parts = {}
    for i = 1, #v do parts[i] = show(v[i]) end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif type(v) == "userdata" and v.kind then
    return { kind = v:kind(), message = v:message(), details = v:details() }
  end
  return type(v) .. ":" .. tostring(v)
end

-- Everything a call gave (its raised error too), as comparable text.
local function outcome(f, ...)
  local r = pack(pcall(f, ...))
  local out = { n = r.n }
  for i = 1, r.n do out[i] = show(r[i]) end
  return out
end

-- The general path: the `call` method every executor shares (an executor's own `call`, in its
-- user value, is funcs.call's C function), which converts every argument first.
-- An executor without a user value has only those.
local function shared_only(ex)
  if debug.setuservalue then debug.setuservalue(ex, nil) else debug.setfenv(ex, {}) end
  return ex
end
local general = shared_only(funcs.new())
-- (each executor's own call is a function of its own; the shared one is one for all)
assert(general.call == shared_only(funcs.new()).call and general.call ~= funcs.new().call)
local function general_call(...) return general:call(...) end

-- funcs.call and the general path agree; returns funcs.call's outcome.
local function agree(id, ...)
  local fast = outcome(funcs.call, id, ...)
  assert.are.same(outcome(general_call, id, ...), fast)
  return fast
end

local VALUES = {
  0, 1, -1, 127, 128, -128, -129, 255, 256, 32767, -32768, 65535, 65536, 2 ^ 31, -2 ^ 31,
  2 ^ 32, 2 ^ 53, 2 ^ 63, -2 ^ 63, 2 ^ 64, 0.5, -0.0, 1 / 0, -1 / 0, 0 / 0, 65.0, 0x10FFFF,
  0x110000, 0xD800, true, false, nil, "1", "x", {}, { 1 }, print, io.stdout,
  coroutine.create(function() end),
  setmetatable({}, { __index = function() error("touched") end }),
}
if math.maxinteger then
  VALUES[#VALUES + 1] = math.maxinteger
  VALUES[#VALUES + 1] = math.mininteger
end
local NVALUES = 42

-- Entries of spec/fixtures/core and a good value for each parameter.
local CORE = {
  ["core:mix"] = { 1, 2, 3, 4, 5.5, 6.25, true, 65 },
  ["core:wide"] = { 7, -7 },
  ["core:letter"] = { 65 },
  ["core:truth"] = { 1 },
  ["core:small"] = { -1 },
  ["core:bare"] = { 1, 2, 3.5, 4.5 },
  ["core:nothing"] = { 1 },
  ["core:trap"] = { 1 },
  ["core:lazy"] = { 2, 40 },
}

describe("funcs.call", function()
  setup(function()
    assert(funcs.load("spec/fixtures/core"))
    assert(funcs.load("spec/fixtures/good"))
  end)

  it("is a C function", function()
    assert.are.equal("C", debug.getinfo(funcs.call, "S").what)
  end)

  it("gives core entries' results as the general path does", function()
    assert.are.same({ n = 2, "boolean:true", show(1 + 2 + 3 + 4 + 5.5 + 6.25 + 1 + 65) },
      agree("core:mix", unpack(CORE["core:mix"], 1, 8)))
    local wide = agree("core:wide", 7, -7)
    assert.are.same({ n = 2, "boolean:true", show({ 7, -7, 0.10000000149011612 }) }, wide)
    assert.are.same({ n = 2, "boolean:true", "string:A" }, agree("core:letter", 65))
    assert.are.same({ n = 2, "boolean:true", show(65535) }, agree("core:small", -1))
    assert.are.same({ n = 2, "boolean:true", "nil:nil" }, agree("core:nothing", 1))
    assert.are.same({ n = 2, "boolean:true", show(42) }, agree("core:lazy", 2, 40))
  end)

  it("agrees with the general path on every Lua type in every parameter of core entries", function()
    for id, good in pairs(CORE) do
      for at = 1, #good do
        for i = 1, NVALUES do
          local args = { unpack(good) }
          args[at] = VALUES[i]
          agree(id, unpack(args, 1, #good))
        end
      end
    end
  end)

  it("agrees on results that do not fit their type and on traps", function()
    for _, n in ipairs({ 0xD800, 0x110000, -1, 0x10FFFF }) do agree("core:letter", n) end
    for _, n in ipairs({ 0, 1, 2, -1 }) do agree("core:truth", n) end
    local trap = agree("core:trap", 1)
    assert.are.equal("INTERNAL", trap[3].kind)
    assert.are.equal("nil:nil", trap[2])
    -- The error of one call does not stay for the next.
    assert.are.same({ n = 2, "boolean:true", show(42) }, agree("core:lazy", 2, 40))
    assert.are.same({ n = 2, "boolean:true", "boolean:true" }, agree("core:truth", 1))
  end)

  it("agrees on argument counts: none, one short, one over, 300", function()
    local many = {}
    for i = 1, 300 do many[i] = i end
    for id, good in pairs(CORE) do
      agree(id)
      agree(id, unpack(good, 1, #good - 1))
      local over = { unpack(good) }
      over[#over + 1] = 1
      agree(id, unpack(over, 1, #good + 1))
      local err = agree(id, unpack(many))[3]
      assert.are.equal("INVALID", err.kind)
    end
  end)

  it("raises for an ID that is not a string, as before", function()
    for _, id in ipairs({ 42, true, {}, print }) do
      local ok, msg = pcall(funcs.call, id, 1)
      assert.is_false(ok)
      assert.truthy(tostring(msg):find("bad argument #1 to 'call' (string expected, got " .. type(id) .. ")", 1, true), tostring(msg))
    end
    local ok, msg = pcall(funcs.call)
    assert.is_false(ok)
    assert.truthy(tostring(msg):find("bad argument #1 to 'call'", 1, true), tostring(msg))
    local value, err = funcs.call("core:none", 1)
    assert.is_nil(value)
    assert.are.equal("NOT_FOUND", err:kind())
  end)

  it("hands registered Lua functions every argument and returns every result", function()
    assert(funcs.register("callspec:many", function(...) return select("#", ...), ... end))
    local r = pack(funcs.call("callspec:many", 1, nil, "c", nil))
    assert.are.same({ n = 5, 4, 1, nil, "c", nil }, r)
    -- A registered function calling back into funcs.call.
    assert(funcs.register("callspec:nested", function(a, b)
      return funcs.call("core:lazy", a, b), funcs.call("spec:echo", "nested")
    end))
    assert.are.same({ n = 2, 42, "nested" }, pack(funcs.call("callspec:nested", 2, 40)))
  end)

  it("keeps each result when a finalizer calls funcs.call while one is pushed", function()
    -- Pushing a large result runs the collector; its finalizers call funcs.call again.
    local function garbage(f)
      if newproxy then
        getmetatable(newproxy(true)).__gc = f
      else
        setmetatable({}, { __gc = f })
      end
    end
    local inner = 0
    local function finalizer()
      if funcs.call("spec:echo", "inner") == "inner" and funcs.call("core:lazy", 1, 1) == 2 then
        inner = inner + 1
      end
    end
    local users = {}
    for i = 1, 300 do users[i] = { id = i, name = "u" .. i, tags = { "a", "b" }, active = i % 2 == 0 } end
    local want = assert(general:call("spec:transform_users", users))
    assert.are.equal(300, #want)
    for _ = 1, 30 do
      for _ = 1, 300 do garbage(finalizer) end
      assert.are.same(want, funcs.call("spec:transform_users", users))
    end
    collectgarbage()
    assert.is_true(inner > 0)
  end)

  it("runs in coroutines, and keeps each result apart over many calls", function()
    local co = coroutine.wrap(function(n)
      local s = 0
      for i = 1, n do
        s = s + funcs.call("core:lazy", 1, i)
        assert.are.equal("x" .. i, funcs.call("spec:echo", "x" .. i))
        coroutine.yield(s)
      end
      return "done"
    end)
    local last
    for _ = 1, 500 do last = co(500) end
    assert.are.equal(500 + 500 * 501 / 2, last)
    assert.are.equal("done", co())
  end)
end)
