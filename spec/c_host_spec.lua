-- Host functions for every WIT type of SPEC section 4, through a C guest (wit-bindgen's C
-- bindings, built by scripts/guests.sh into build/guests/c-host): its world imports
-- funcs:ctypes/host, one function per type, which Lua provides here. test-imports calls
-- each with edge values and checks the answers inside the guest (an err names the first
-- mismatch); the host functions below check that each argument arrives as the Lua value of
-- section 4 (a Lua error traps the guest, naming the function). The via-* exports pass a
-- value from Lua through the guest to the host function and back. Each runs through an
-- inline pool (host calls on this thread), a lazy pool (a worker hands them to this thread)
-- and funcs.async.
local funcs = require("funcs")

local REGISTRY = "build/guests/c-host"

-- Lua 5.3+ has an integer subtype; Lua 5.1 and LuaJIT have doubles only (exact to 2^53).
local INTEGERS = math.type ~= nil
local it_integers = INTEGERS and it or pending

-- "canonical": host functions return the first form of section 4's "Lua in" column;
-- "alternate": the other forms it accepts (bytes as an integer array, a code point for a
-- char, a case name for a variant case without payload, an enum index, flags as a list of
-- names or a bitmask).
local forms = "canonical"
local calls = {} -- host function name -> how many times it ran

local function check(cond, name, fmt, ...)
  if not cond then error(name .. ": " .. fmt:format(...), 0) end
end

local function count(name)
  calls[name] = (calls[name] or 0) + 1
end

local function is_integer(x)
  if INTEGERS then return math.type(x) == "integer" end
  return type(x) == "number" and x == math.floor(x)
end

-- An identity host function for an integer type, checking the value's Lua type and range.
local function integer(name, lo, hi)
  return function(x)
    count(name)
    check(is_integer(x), name, "got %s %s, want an integer", type(x), tostring(x))
    if lo then check(x >= lo and x <= hi, name, "%s is out of range", tostring(x)) end
    return x
  end
end

local function float(name)
  return function(x)
    count(name)
    check(type(x) == "number", name, "got a %s, want a number", type(x))
    if INTEGERS then check(math.type(x) == "float", name, "got the integer %d, want a float", x) end
    return x
  end
end

-- The code point of a one-character UTF-8 string, or nil.
local function code_point(s)
  if type(s) ~= "string" or #s == 0 or #s > 4 then return nil end
  local b = s:byte(1)
  local n, cp = 1, b
  if b >= 0xf0 then n, cp = 4, b - 0xf0 elseif b >= 0xe0 then n, cp = 3, b - 0xe0
  elseif b >= 0xc0 then n, cp = 2, b - 0xc0 elseif b >= 0x80 then return nil end
  if #s ~= n then return nil end
  for i = 2, n do
    local c = s:byte(i)
    if c < 0x80 or c > 0xbf then return nil end
    cp = cp * 64 + (c - 0x80)
  end
  return cp
end

local function list_of(name, l, kind)
  check(type(l) == "table", name, "got a %s, want an array table", type(l))
  local n = 0
  for _ in pairs(l) do n = n + 1 end
  check(n == #l, name, "the list has %d keys but length %d", n, #l)
  for i, v in ipairs(l) do
    if kind == "integer" then check(is_integer(v), name, "[%d] is %s, want an integer", i, tostring(v))
    else check(type(v) == kind, name, "[%d] is a %s, want a %s", i, type(v), kind) end
  end
end

local function only_keys(name, t, allowed)
  check(type(t) == "table", name, "got a %s, want a table", type(t))
  for k in pairs(t) do
    check(allowed[k], name, "unexpected key %s", tostring(k))
  end
end

local NEXT_COLOR = { red = "green", green = "blue", blue = "red" }
local COLOR_INDEX = { red = 0, green = 1, blue = 2 }
local PERMS, BITS = { "read", "write", "exec" }, { 1, 2, 4 }

local host = {
  ["roundtrip-bool"] = function(x)
    count("roundtrip-bool")
    check(type(x) == "boolean", "roundtrip-bool", "got a %s", type(x))
    return x
  end,
  ["roundtrip-s8"] = integer("roundtrip-s8", -128, 127),
  ["roundtrip-u8"] = integer("roundtrip-u8", 0, 255),
  ["roundtrip-s16"] = integer("roundtrip-s16", -32768, 32767),
  ["roundtrip-u16"] = integer("roundtrip-u16", 0, 65535),
  ["roundtrip-s32"] = integer("roundtrip-s32", -2147483648, 2147483647),
  ["roundtrip-u32"] = integer("roundtrip-u32", 0, 4294967295),
  -- u64 above 2^63 arrives as a negative integer (the same 64 bits) on Lua 5.3+.
  ["roundtrip-s64"] = INTEGERS and integer("roundtrip-s64") or integer("roundtrip-s64", -2 ^ 53, 2 ^ 53),
  ["roundtrip-u64"] = INTEGERS and integer("roundtrip-u64") or integer("roundtrip-u64", 0, 2 ^ 53),
  ["roundtrip-f32"] = float("roundtrip-f32"),
  ["roundtrip-f64"] = float("roundtrip-f64"),
  ["roundtrip-char"] = function(x)
    count("roundtrip-char")
    local cp = code_point(x)
    check(cp ~= nil, "roundtrip-char", "got %s %q, want a one-character string", type(x), tostring(x))
    if forms == "alternate" then return cp end
    return x
  end,
  ["roundtrip-string"] = function(x)
    count("roundtrip-string")
    check(type(x) == "string", "roundtrip-string", "got a %s", type(x))
    return x
  end,
  upper = function(s)
    count("upper")
    check(type(s) == "string", "upper", "got a %s", type(s))
    return s:upper()
  end,
  ["reverse-bytes"] = function(b)
    count("reverse-bytes")
    check(type(b) == "string", "reverse-bytes", "got a %s, want a string of bytes", type(b))
    if forms == "alternate" then
      local t = {}
      for i = #b, 1, -1 do t[#t + 1] = b:byte(i) end
      return t
    end
    return b:reverse()
  end,
  ["reverse-strings"] = function(l)
    count("reverse-strings")
    list_of("reverse-strings", l, "string")
    local out = {}
    for i = #l, 1, -1 do out[#out + 1] = l[i]:upper() end
    return out
  end,
  ["double-s32s"] = function(l)
    count("double-s32s")
    list_of("double-s32s", l, "integer")
    local out = {}
    for i, v in ipairs(l) do out[i] = v * 2 end
    return out
  end,
  ["bump-item"] = function(x)
    count("bump-item")
    only_keys("bump-item", x, { name = true, count = true, note = true })
    check(type(x.name) == "string", "bump-item", "name is a %s", type(x.name))
    check(is_integer(x.count), "bump-item", "count is %s", tostring(x.count))
    check(x.note == nil or type(x.note) == "string", "bump-item", "note is a %s", type(x.note))
    local note = "was none"
    if x.note ~= nil then note = x.note .. "!" end
    return { name = x.name:upper(), count = x.count + 1, note = note }
  end,
  ["bump-pair"] = function(x)
    count("bump-pair")
    only_keys("bump-pair", x, { [1] = true, [2] = true })
    check(is_integer(x[1]) and type(x[2]) == "string", "bump-pair", "got {%s, %s}", tostring(x[1]), tostring(x[2]))
    return { x[1] + 1, x[2] .. x[2] }
  end,
  ["flip-option"] = function(x)
    count("flip-option")
    check(x == nil or type(x) == "string", "flip-option", "got a %s", type(x))
    if x == nil then return "was none" end
    if x == "" then return nil end
    return x:upper()
  end,
  ["flip-result"] = function(x)
    count("flip-result")
    only_keys("flip-result", x, { ok = true, err = true })
    check((x.ok == nil) ~= (x.err == nil), "flip-result", "got neither or both of ok and err")
    if x.ok ~= nil then
      check(is_integer(x.ok), "flip-result", "ok is %s", tostring(x.ok))
      if x.ok == 0 then return { err = "zero" } end
      return { ok = x.ok * 2 }
    end
    check(type(x.err) == "string", "flip-result", "err is a %s", type(x.err))
    return { ok = #x.err }
  end,
  ["unit-result"] = function(fail)
    count("unit-result")
    check(type(fail) == "boolean", "unit-result", "got a %s", type(fail))
    if fail then return { err = "failed" } end
    return { ok = true }
  end,
  ["next-shape"] = function(x)
    count("next-shape")
    only_keys("next-shape", x, { none = true, circle = true, label = true })
    if x.none ~= nil then
      check(x.none == true and x.circle == nil and x.label == nil, "next-shape", "bad none: %s", tostring(x.none))
      return { label = "was none" }
    elseif x.circle ~= nil then
      check(type(x.circle) == "number" and x.label == nil, "next-shape", "bad circle: %s", tostring(x.circle))
      return { circle = x.circle * 2 }
    end
    check(type(x.label) == "string", "next-shape", "bad label: %s", tostring(x.label))
    if forms == "alternate" then return "none" end
    return { none = true }
  end,
  ["next-color"] = function(x)
    count("next-color")
    check(NEXT_COLOR[x] ~= nil, "next-color", "got %s", tostring(x))
    if forms == "alternate" then return COLOR_INDEX[NEXT_COLOR[x]] end
    return NEXT_COLOR[x]
  end,
  ["flip-perms"] = function(x)
    count("flip-perms")
    only_keys("flip-perms", x, { read = true, write = true, exec = true })
    local out, list, mask = {}, {}, 0
    for i, name in ipairs(PERMS) do
      check(x[name] == nil or x[name] == true, "flip-perms", "%s is %s", name, tostring(x[name]))
      if not x[name] then
        out[name] = true
        list[#list + 1] = name
        mask = mask + BITS[i]
      end
    end
    if forms == "alternate" then
      -- A list of names for some sets, a bitmask for the others.
      if #list % 2 == 0 then return list end
      return mask
    end
    return out
  end,
}

local ALL = {}
for name in pairs(host) do ALL[#ALL + 1] = name end
table.sort(ALL)

setup(function()
  assert(io.open(REGISTRY .. "/guest.wasm"), "run scripts/guests.sh first (make test does)")
  assert(funcs.host("funcs:ctypes/host", host))
  assert(funcs.load(REGISTRY))
end)

before_each(function()
  forms, calls = "canonical", {}
end)

-- test-imports' answer: ok (the result `{ok = true}`), or a failure with the guest's message.
local function assert_passes(value, err)
  assert.is_nil(err, err and tostring(err))
  assert.are.same({ ok = true }, value)
  local missing = {}
  for _, name in ipairs(ALL) do
    if not calls[name] then missing[#missing + 1] = name end
  end
  assert.are.same({}, missing)
end

describe("a C guest calling a host function per WIT type", function()
  for _, form in ipairs({ "canonical", "alternate" }) do
    for _, entry in ipairs({ "test_inline", "test_lazy" }) do
      it(("gets the right answers (%s, %s forms)"):format(entry, form), function()
        forms = form
        assert_passes(funcs.call("chost:" .. entry, INTEGERS))
      end)

      it(("gets the right answers through funcs.async (%s, %s forms)"):format(entry, form), function()
        forms = form
        local f = assert(funcs.async("chost:" .. entry, INTEGERS))
        assert_passes(f:wait())
      end)
    end
  end

  it("reports a mismatch by name: a host function that answers wrong", function()
    finally(function()
      assert(funcs.host("funcs:ctypes/host", host))
      assert(funcs.load(REGISTRY))
    end)
    local wrong = {}
    for k, v in pairs(host) do wrong[k] = v end
    wrong["roundtrip-u16"] = function(x) return x == 256 and 255 or x end
    assert(funcs.host("funcs:ctypes/host", wrong))
    assert(funcs.load(REGISTRY)) -- a registration counts for later loads
    local v, err = funcs.call("chost:test_inline", INTEGERS)
    assert.is_nil(err, err and tostring(err))
    assert.are.same({ err = "roundtrip-u16(256): got 255, want 256" }, v)
  end)
end)

-- { entry, argument, expected result }: Lua -> guest -> host function -> guest -> Lua.
local CASES = {
  { "via_s8", -128, -128 }, { "via_s8", 127, 127 }, { "via_s8", 0, 0 },
  { "via_u64", 0, 0 }, { "via_u64", 2 ^ 53, 2 ^ 53 },
  { "via_s64", -(2 ^ 53), -(2 ^ 53) }, { "via_s64", 2 ^ 53, 2 ^ 53 },
  { "via_f32", 1.5, 1.5 }, { "via_f32", 0.1, 0.10000000149011612 }, { "via_f32", -0.0, -0.0 },
  { "via_f32", 1 / 0, 1 / 0 },
  { "via_char", "A", "A" }, { "via_char", "\0", "\0" }, { "via_char", "é", "é" },
  { "via_char", 0x1F600, "😀" }, { "via_char", "\244\143\191\191", "\244\143\191\191" },
  { "via_upper", "hello, World", "HELLO, WORLD" }, { "via_upper", "", "" },
  { "via_bytes", "\0\1\255", "\255\1\0" }, { "via_bytes", { 1, 2, 3 }, "\3\2\1" }, { "via_bytes", "", "" },
  { "via_strings", { "a", "bc", "" }, { "", "BC", "A" } }, { "via_strings", {}, {} },
  { "via_s32s", { 1, -2, 1073741823, -1073741824 }, { 2, -4, 2147483646, -2147483648 } }, { "via_s32s", {}, {} },
  { "via_item", { name = "ann", count = 41 }, { name = "ANN", count = 42, note = "was none" } },
  { "via_item", { name = "bo", count = 4294967294, note = "hi" }, { name = "BO", count = 4294967295, note = "hi!" } },
  { "via_pair", { 7, "ab" }, { 8, "abab" } }, { "via_pair", { 4294967294, "" }, { 4294967295, "" } },
  { "via_option", nil, "was none" }, { "via_option", "", nil }, { "via_option", "abc", "ABC" },
  { "via_result", { ok = 0 }, { err = "zero" } }, { "via_result", { ok = 21 }, { ok = 42 } },
  { "via_result", { err = "four" }, { ok = 4 } },
  { "via_shape", { none = true }, { label = "was none" } }, { "via_shape", "none", { label = "was none" } },
  { "via_shape", { circle = 1.25 }, { circle = 2.5 } }, { "via_shape", { label = "x" }, { none = true } },
  { "via_color", "red", "green" }, { "via_color", "blue", "red" }, { "via_color", 1, "blue" },
  { "via_perms", {}, { read = true, write = true, exec = true } },
  { "via_perms", { "read" }, { write = true, exec = true } },
  { "via_perms", { read = true, exec = true }, { write = true } }, { "via_perms", 7, {} },
}

local function show(v)
  if type(v) ~= "table" then return ("%q"):format(tostring(v)) end
  local parts = {}
  for k, x in pairs(v) do parts[#parts + 1] = tostring(k) .. "=" .. show(x) end
  table.sort(parts)
  return "{" .. table.concat(parts, ", ") .. "}"
end

local function same(want, got, label)
  if type(want) == "number" and want == 0 and type(got) == "number" then
    -- -0.0 and 0.0 compare equal: compare the sign too.
    assert.are.equal(1 / want, 1 / got, label)
  else
    assert.are.same(want, got, label)
  end
end

describe("values passed from Lua through the guest and its host function", function()
  it("come back transformed, through funcs.call", function()
    for _, c in ipairs(CASES) do
      local got, err = funcs.call("chost:" .. c[1], c[2])
      local label = c[1] .. "(" .. show(c[2]) .. ")"
      assert.is_nil(err, label .. ": " .. tostring(err))
      same(c[3], got, label)
    end
  end)

  it("come back transformed, through funcs.async", function()
    local futures = {}
    for i, c in ipairs(CASES) do futures[i] = assert(funcs.async("chost:" .. c[1], c[2])) end
    for i, c in ipairs(CASES) do
      local got, err = futures[i]:wait()
      local label = c[1] .. "(" .. show(c[2]) .. ") async"
      assert.is_nil(err, label .. ": " .. tostring(err))
      same(c[3], got, label)
    end
  end)

  it("come back transformed on a lazy pool (host calls handed to the Lua thread)", function()
    assert.are.same({ name = "X", count = 2, note = "n!" },
      funcs.call("chost:via_item_lazy", { name = "x", count = 1, note = "n" }))
    assert.are.equal(2 ^ 53, funcs.call("chost:via_u64_lazy", 2 ^ 53))
    assert.are.equal(2 ^ 53, assert(funcs.async("chost:via_u64_lazy", 2 ^ 53)):wait())
  end)

  it("come back in the alternate forms the host returns", function()
    forms = "alternate"
    assert.are.equal("\3\2\1", funcs.call("chost:via_bytes", "\1\2\3"))
    assert.are.equal("😀", funcs.call("chost:via_char", "😀"))
    assert.are.same({ none = true }, funcs.call("chost:via_shape", { label = "x" }))
    assert.are.equal("red", funcs.call("chost:via_color", "blue"))
    assert.are.same({ write = true, exec = true }, funcs.call("chost:via_perms", { "read" })) -- a list
    assert.are.same({ exec = true }, funcs.call("chost:via_perms", { read = true, write = true })) -- a bitmask
  end)

  it_integers("keep the 64-bit edges", function()
    local cases = {
      { "via_s64", math.mininteger }, { "via_s64", math.maxinteger }, { "via_s64", -1 },
      { "via_u64", -1 }, { "via_u64", math.mininteger }, { "via_u64", math.maxinteger },
    }
    for _, c in ipairs(cases) do
      local got = funcs.call("chost:" .. c[1], c[2])
      assert.are.equal(c[2], got, c[1] .. "(" .. tostring(c[2]) .. ")")
      assert.are.equal("integer", math.type(got))
      got = assert(funcs.async("chost:" .. c[1], c[2])):wait()
      assert.are.equal(c[2], got, c[1] .. "(" .. tostring(c[2]) .. ") async")
    end
    -- 2^63 as a float is u64's 2^63: the same 64 bits as math.mininteger.
    assert.are.equal(math.mininteger, funcs.call("chost:via_u64", 2 ^ 63))
    assert.are.equal(math.mininteger, funcs.call("chost:via_u64_lazy", 2 ^ 63))
  end)
end)
