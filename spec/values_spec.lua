-- Lua values through a real component and back (spec/fixtures/echo/echo.wat): every WIT
-- type of the value table, at the edges of its range, and nested.
local funcs = require("funcs")

local function fails(fragment, value, err)
  assert.is_nil(value)
  assert.are.equal("INVALID", err:kind())
  assert.truthy(tostring(err):find(fragment, 1, true), ("`%s` not in: %s"):format(fragment, tostring(err)))
end

-- Lua 5.3+ has an integer subtype; Lua 5.1 and LuaJIT have doubles only (exact to 2^53).
local INTEGERS = math.type ~= nil
local it_integers = INTEGERS and it or pending

describe("values", function()
  setup(function()
    assert(funcs.load("spec/fixtures/echo"))
  end)

  it("round-trip booleans", function()
    assert.is_true(funcs.call("echo:bool", true))
    assert.is_false(funcs.call("echo:bool", false))
    fails("argument 1 (x): expected boolean, got number", funcs.call("echo:bool", 1))
  end)

  it("round-trip integers at the edges of their range and refuse beyond", function()
    local edges = {
      s8 = { -128, 127, 128 }, u8 = { 0, 255, 256 }, s16 = { -32768, 32767, 32768 },
      u16 = { 0, 65535, 65536 }, s32 = { -2147483648, 2147483647, 2147483648 },
      u32 = { 0, 4294967295, 4294967296 },
    }
    for ty, e in pairs(edges) do
      assert.are.equal(e[1], funcs.call("echo:" .. ty, e[1]))
      assert.are.equal(e[2], funcs.call("echo:" .. ty, e[2]))
      fails(("%d is out of range for %s"):format(e[3], ty), funcs.call("echo:" .. ty, e[3]))
    end
    fails("out of range for u8", funcs.call("echo:u8", -1))
    -- 64-bit values exact in every Lua: up to 2^53.
    assert.are.equal(2 ^ 53, funcs.call("echo:s64", 2 ^ 53))
    assert.are.equal(-2 ^ 53, funcs.call("echo:s64", -2 ^ 53))
    assert.are.equal(2 ^ 53, funcs.call("echo:u64", 2 ^ 53))
  end)

  it_integers("round-trip s64 at its edges (Lua 5.3+ integers)", function()
    assert.are.equal(math.mininteger, funcs.call("echo:s64", math.mininteger))
    assert.are.equal(math.maxinteger, funcs.call("echo:s64", math.maxinteger))
  end)

  it("accept integral floats and refuse fractions", function()
    assert.are.equal(7, funcs.call("echo:u32", 7.0))
    if INTEGERS then
      assert.are.equal(math.type(funcs.call("echo:u32", 7.0)), "integer")
    end
    fails("1.5 is not an integer", funcs.call("echo:u32", 1.5))
  end)

  it_integers("give u64 values above the Lua integer range as the same 64 bits", function()
    assert.are.equal(-1, funcs.call("echo:u64", -1)) -- 2^64 - 1
    assert.are.equal(math.mininteger, funcs.call("echo:u64", 2^63)) -- a float: exactly 2^63
    assert.is_true(math.ult(math.maxinteger, funcs.call("echo:u64", -1))) -- above, unsigned
    assert.are.equal(math.maxinteger, funcs.call("echo:u64", math.maxinteger))
  end)

  it("round-trip floats, NaN and infinities included", function()
    assert.are.equal(0.5, funcs.call("echo:f32", 0.5))
    assert.are.equal(1.25e300, funcs.call("echo:f64", 1.25e300))
    local nan = funcs.call("echo:f64", 0 / 0)
    assert.is_true(nan ~= nan)
    local nan32 = funcs.call("echo:f32", 0 / 0)
    assert.is_true(nan32 ~= nan32)
    assert.are.equal(math.huge, funcs.call("echo:f64", math.huge))
    assert.are.equal(-math.huge, funcs.call("echo:f32", -math.huge))
    assert.are.equal(3, funcs.call("echo:f64", 3))
  end)

  it("take chars as one-character strings or code points", function()
    assert.are.equal("λ", funcs.call("echo:char", "λ"))
    assert.are.equal("A", funcs.call("echo:char", 65))
    fails("expected a one-character string, got 2 characters", funcs.call("echo:char", "ab"))
    fails("is not a Unicode scalar value", funcs.call("echo:char", 0xD800))
  end)

  it("round-trip strings: empty, unicode, 1 MiB; and refuse invalid UTF-8", function()
    for _, s in ipairs({ "", "héllo 🌍", string.rep("abcdefgh", 128 * 1024) }) do
      assert.are.equal(s, funcs.call("echo:string", s))
    end
    fails("invalid UTF-8 in string at byte 1", funcs.call("echo:string", "a\255"))
  end)

  it("pass list<u8> as Lua strings of bytes, both ways", function()
    local bytes = "\0\1\2\255binary"
    assert.are.equal(bytes, funcs.call("echo:bytes", bytes))
    assert.are.equal("", funcs.call("echo:bytes", ""))
    assert.are.equal("\1\2\3", funcs.call("echo:bytes", { 1, 2, 3 }))
  end)

  it("round-trip lists: empty and 100,000 elements", function()
    assert.are.same({}, funcs.call("echo:list_u32", {}))
    local big = {}
    for i = 1, 100000 do big[i] = i end
    local back = funcs.call("echo:list_u32", big)
    assert.are.equal(100000, #back)
    assert.are.equal(100000, back[100000])
    assert.are.equal(12345, back[12345])
    assert.are.same({ "a", "", "c" }, funcs.call("echo:list_string", { "a", "", "c" }))
    assert.are.same({ 1.5, -2 }, funcs.call("echo:list_f64", { 1.5, -2 }))
    fails("[2]: expected u32, got string", funcs.call("echo:list_u32", { 1, "x" }))
    fails("expected list (a table with keys 1..n)", funcs.call("echo:list_u32", { 1, 2, [4] = 4 }))
    fails("expected list (a table with keys 1..n)", funcs.call("echo:list_u32", { 1, 2, x = 3 }))
    local backwards = {}
    for i = 50, 1, -1 do backwards[i] = i end
    local back = funcs.call("echo:list_u32", backwards)
    assert.are.equal(50, #back)
    for i = 1, 50 do assert.are.equal(i, back[i]) end
  end)

  it("take enums by name or index and give names", function()
    assert.are.equal("green", funcs.call("echo:color", "green"))
    assert.are.equal("red", funcs.call("echo:color", 0))
    fails("unknown enum case `pink`", funcs.call("echo:color", "pink"))
  end)

  it("take flags as set tables, name lists or bitmasks and give set tables", function()
    local rx = { read = true, execute = true }
    assert.are.same(rx, funcs.call("echo:permissions", rx))
    assert.are.same(rx, funcs.call("echo:permissions", { "read", "execute" }))
    assert.are.same(rx, funcs.call("echo:permissions", 5))
    assert.are.same({}, funcs.call("echo:permissions", {}))
    fails("unknown flag `fly`", funcs.call("echo:permissions", { fly = true }))
  end)

  it("take nil as none", function()
    assert.are.equal(5, funcs.call("echo:option_u32", 5))
    assert.is_nil(funcs.call("echo:option_u32", nil))
  end)

  it("round-trip variants, nested records, options, results and tuples", function()
    local shapes = { { circle = 3 }, { at = { x = -1, y = 2 } }, { none = true } }
    assert.are.same(shapes, funcs.call("echo:shapes", shapes))
    assert.are.same({ { none = true } }, funcs.call("echo:shapes", { "none" }))
    local users = {
      {
        id = -1, name = "Ann", tags = { "a", "b" }, nick = "annie", color = "blue",
        perms = { write = true }, home = { x = 1, y = 2 }, shapes = shapes,
        score = { ok = 9.5 }, raw = "\0\1", pair = { -3, 65535 }, initial = "A",
      },
      {
        id = 2, name = "Bob", tags = {}, color = 1, perms = {}, shapes = {},
        score = { err = "no score" }, raw = "", pair = { 0, 0 }, initial = 66,
      },
    }
    local back = funcs.call("echo:users", users)
    assert.are.same({
      {
        id = -1, name = "Ann", tags = { "a", "b" }, nick = "annie", color = "blue",
        perms = { write = true }, home = { x = 1, y = 2 }, shapes = shapes,
        score = { ok = 9.5 }, raw = "\0\1", pair = { -3, 65535 }, initial = "A",
      },
      {
        id = 2, name = "Bob", tags = {}, color = "green", perms = {}, shapes = {},
        score = { err = "no score" }, raw = "", pair = { 0, 0 }, initial = "B",
      },
    }, back)
  end)

  it("name the path of a wrong value deep inside", function()
    fails("argument 1 (x): [1].shapes[2].at.y: expected s32, got string",
      funcs.call("echo:users", { {
        id = 1, name = "x", tags = {}, color = "red", perms = {}, raw = "", pair = { 0, 0 },
        initial = "x", score = { ok = 1 }, shapes = { { circle = 1 }, { at = { x = 1, y = "2" } } },
      } }))
    fails("[1]: missing field `name`", funcs.call("echo:users", { { id = 1 } }))
    fails("expected result ({ok = ...} or {err = ...})", funcs.call("echo:users", { {
      id = 1, name = "x", tags = {}, color = "red", perms = {}, raw = "", pair = { 0, 0 },
      initial = "x", shapes = {}, score = 5,
    } }))
  end)

  it("return nil for no result and an array for a tuple", function()
    assert.are.equal(1, select("#", funcs.call("echo:sink", 1)))
    assert.is_nil(funcs.call("echo:sink", 1))
    assert.are.same({ 8, 2 }, funcs.call("echo:pair", 5, 3))
  end)
end)
