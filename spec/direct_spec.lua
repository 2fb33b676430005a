-- The direct path of funcs.call (Lua values written straight into guest memory, results read
-- straight out), the image funcs.async reads for a worker (the same reading, lowered there),
-- and the general path (Lua values copied into owned values, then wasmtime `Val`s): for every
-- type the direct path knows, good values and bad ones, all three must give the same value
-- or the same error.
local funcs = require("funcs")

local INTEGERS = math.type ~= nil

-- The general path's copy of a fixture namespace (`<ns>g`, see `general_copy`), if loaded.
local GENERAL = {}

-- A copy of the fixture folder `dir` (namespace `ns`) whose entries are each granted a host
-- interface they do not import: entries with host functions always take the general path.
local function general_copy(dir, ns)
  local out = "build/general/" .. ns
  local f = assert(io.open(dir .. "/_index.yaml"))
  local text = f:read("*a")
  f:close()
  text = text:gsub("namespace: " .. ns .. "\n", "namespace: " .. ns .. "g\n")
    :gsub("(\n    method: [^\n]*)", "%1\n    imports: [test:direct/general]")
    :gsub("directory: %.%.\n", "directory: " .. assert(os.getenv("PWD")) .. "/spec/fixtures\n")
  assert(os.execute("mkdir -p " .. out .. " && cp " .. dir .. "/*.wat " .. out .. "/ 2>/dev/null || true"))
  f = assert(io.open(out .. "/_index.yaml", "w"))
  f:write(text)
  f:close()
  assert(funcs.load(out))
  GENERAL[ns] = ns .. "g"
end

-- A call's outcome with the entry ID `from` read as `to` (the general copy names itself).
local function outcome(value, err, from, to)
  if not err then return { value = value } end
  local details = err:details()
  if details.entry == from then details.entry = to end
  -- Where a trap's backtrace points can move by an instruction when an epoch check fires at
  -- the function's entry: whether there is one is compared, not its text.
  details.backtrace = details.backtrace ~= nil
  local message = err:message()
  local at = message:find(from, 1, true)
  if at then message = message:sub(1, at - 1) .. to .. message:sub(at + #from) end
  return { kind = err:kind(), message = message, details = details }
end

-- funcs.call, funcs.async and the general path on the same arguments agree; returns what
-- funcs.call gave.
local function agree(id, ...)
  local direct, direct_err = funcs.call(id, ...)
  local future, image_err = funcs.async(id, ...)
  local image
  if future then
    image, image_err = future:wait()
  end
  local want = outcome(direct, direct_err, id, id)
  assert.are.same(want, outcome(image, image_err, id, id))
  local ns, name = id:match("^([^:]+):(.+)$")
  if GENERAL[ns] then
    local gid = GENERAL[ns] .. ":" .. name
    local general, general_err = funcs.call(gid, ...)
    if general_err and not direct_err then
      error(("%s took what the general path refused: %s"):format(id, tostring(general_err)))
    end
    assert.are.same(outcome(general, general_err, gid, id), want)
  end
  return direct, direct_err
end

local function ok(id, ...)
  local value, err = agree(id, ...)
  assert.is_nil(err)
  return value
end

local function refused(id, ...)
  local value, err = agree(id, ...)
  assert.is_nil(value)
  assert.is_not_nil(err, "expected an error")
  return err
end

-- The echo entries again (namespace `ns`), each granted WASI on a pool of `kind`: on an
-- inline pool their blocking calls take the direct path on the pool's runtime (`call_async`),
-- on a lazy one they run on a worker, their arguments read as an image on this thread; both
-- must agree with the general path as the plain ones do. Returns the folder.
local function echo_wasi(ns, kind)
  local dir = "build/" .. ns
  local f = assert(io.open("spec/fixtures/echo/_index.yaml"))
  local text = f:read("*a")
  f:close()
  text = text:gsub("namespace: echo\n", "namespace: " .. ns .. "\n")
    :gsub("(\n    method: [^\n]*)", "%1\n    imports: [wasi:cli]\n    pool: {type: " .. kind .. "}")
  os.execute("mkdir -p " .. dir .. " && cp spec/fixtures/echo/echo.wat " .. dir .. "/")
  f = assert(io.open(dir .. "/_index.yaml", "w"))
  f:write(text)
  f:close()
  return dir
end

local TITLES = {
  echo = "the direct path",
  echow = "the direct path with WASI, on an inline pool",
  echol = "the image of the arguments, WASI on a lazy pool",
}

for _, E in ipairs({ "echo", "echow", "echol" }) do
describe(TITLES[E], function()
  setup(function()
    assert(funcs.load("spec/fixtures/echo"))
    assert(funcs.load("spec/fixtures/complex"))
    assert(funcs.load("spec/fixtures/good"))
    assert(funcs.load("spec/fixtures/direct"))
    if E == "echow" then assert(funcs.load(echo_wasi(E, "inline"))) end
    if E == "echol" then assert(funcs.load(echo_wasi(E, "lazy"))) end
    assert(funcs.host("test:direct/general", { unused = function() end }))
    general_copy("spec/fixtures/echo", "echo")
    general_copy("spec/fixtures/complex", "complex")
    if E ~= "echo" then GENERAL[E] = "echog" end
  end)

  it("is taken by components without WASI whose types it knows, and only by them", function()
    for _, id in ipairs({ E .. ":bool", E .. ":u64", E .. ":f32", E .. ":char", E .. ":color",
      E .. ":permissions", E .. ":option_u32", E .. ":string", E .. ":bytes", E .. ":list_string",
      E .. ":shapes", E .. ":users", E .. ":sink", E .. ":pair", "complex:echo_point",
      "complex:echo_rectangle", "complex:maybe_point", "complex:triple", "complex:try_divide",
      "complex:echo_permissions", "spec:transform_users" }) do
      -- WASI on a lazy pool runs on a worker: not the direct path, but its image.
      assert.are.equal(not id:find("^echol:"), funcs.stats(id).direct, id)
    end
    -- A variant at the top of the parameters; a core module.
    assert.is_false(funcs.stats("complex:echo_shape").direct)
    assert.is_false(funcs.stats("spec:answer").direct)
  end)

  it("agrees on scalars at their edges and beyond", function()
    local edges = {
      s8 = { -128, 127, 128, -129 }, u8 = { 0, 255, 256, -1 },
      s16 = { -32768, 32767, 32768 }, u16 = { 0, 65535, 65536, -1 },
      s32 = { -2147483648, 2147483647, 2147483648 }, u32 = { 0, 4294967295, 4294967296, -1 },
    }
    for ty, values in pairs(edges) do
      for _, v in ipairs(values) do
        agree(E .. ":" .. ty, v)
        agree(E .. ":" .. ty, v + 0.0)
      end
      refused(E .. ":" .. ty, 1.5)
      refused(E .. ":" .. ty, "1")
      refused(E .. ":" .. ty, nil)
      refused(E .. ":" .. ty, math.huge)
      refused(E .. ":" .. ty, 0 / 0)
    end
    for _, v in ipairs({ 0, 1, -1, 2 ^ 53, -(2 ^ 53), 1e300 }) do
      agree(E .. ":s64", v)
      agree(E .. ":u64", v)
      agree(E .. ":f32", v)
      agree(E .. ":f64", v)
    end
    if INTEGERS then
      agree(E .. ":s64", math.maxinteger)
      agree(E .. ":s64", math.mininteger)
      agree(E .. ":u64", -1)
      agree(E .. ":u64", math.mininteger)
    end
    agree(E .. ":f64", 0.1)
    agree(E .. ":f32", 0.1)
    agree(E .. ":f64", 1 / 0)
    refused(E .. ":f64", "0.5")
    assert.is_true(ok(E .. ":bool", true))
    assert.is_false(ok(E .. ":bool", false))
    refused(E .. ":bool", 0)
    refused(E .. ":bool", nil)
    for _, c in ipairs({ "a", "é", "😀", 97, 0x1F600 }) do agree(E .. ":char", c) end
    for _, c in ipairs({ "", "ab", 0xD800, 0x110000, -1, true, "\255" }) do
      refused(E .. ":char", c)
    end
  end)

  it("agrees on strings and bytes", function()
    assert.are.equal("", ok(E .. ":string", ""))
    assert.are.equal(string.rep("x", 70000), ok(E .. ":string", string.rep("x", 70000)))
    assert.are.equal("héllo\0wörld", ok(E .. ":string", "héllo\0wörld"))
    refused(E .. ":string", "\255\254")
    refused(E .. ":string", 5)
    refused(E .. ":string", {})
    assert.are.equal("\0\1\255", ok(E .. ":bytes", "\0\1\255"))
    assert.are.equal("", ok(E .. ":bytes", ""))
    assert.are.equal("\1\2\3", ok(E .. ":bytes", { 1, 2, 3 }))
    assert.are.equal("", ok(E .. ":bytes", {}))
    refused(E .. ":bytes", { 1, 256 })
    refused(E .. ":bytes", { 1, x = 2 })
  end)

  it("agrees on lists, in any key order and not with holes or other keys", function()
    assert.are.same({ 1, 2, 3 }, ok(E .. ":list_u32", { 1, 2, 3 }))
    local backwards = {}
    for i = 5, 1, -1 do backwards[i] = i * 10 end
    assert.are.same({ 10, 20, 30, 40, 50 }, ok(E .. ":list_u32", backwards))
    local big = {}
    for i = 1, 5000 do big[i] = i end
    assert.are.same(big, ok(E .. ":list_u32", big))
    assert.are.same({}, ok(E .. ":list_u32", {}))
    refused(E .. ":list_u32", { 1, nil, 3 })
    refused(E .. ":list_u32", { [2] = 1 })
    refused(E .. ":list_u32", { 1, 2, x = 3 })
    refused(E .. ":list_u32", { 1, "2" })
    refused(E .. ":list_u32", 7)
    assert.are.same({ "a", "", "ccc" }, ok(E .. ":list_string", { "a", "", "ccc" }))
    refused(E .. ":list_string", { "a", 1 })
    assert.are.same({ 0.5, -1, 1e300 }, ok(E .. ":list_f64", { 0.5, -1, 1e300 }))
  end)

  it("agrees on records: snake-case keys, the WIT name winning, missing and extra keys", function()
    local p = { x = 3, y = -4 }
    assert.are.same(p, ok("complex:echo_point", p))
    assert.are.same(p, ok("complex:echo_point", { x = 3, y = -4, z = "ignored" }))
    refused("complex:echo_point", { x = 3 })
    refused("complex:echo_point", { x = 3, y = "4" })
    refused("complex:echo_point", { 3, -4 })
    refused("complex:echo_point", {})
    refused("complex:echo_point", "point")
    local r = ok("complex:echo_rectangle", { top_left = p, ["bottom-right"] = { x = 9, y = 9 } })
    assert.are.same({ ["top-left"] = p, ["bottom-right"] = { x = 9, y = 9 } }, r)
    r = ok("complex:echo_rectangle", { top_left = { x = 1, y = 1 }, ["top-left"] = p,
      bottom_right = p })
    assert.are.same(p, r["top-left"])
    refused("complex:echo_rectangle", { top_left = p, bottom_right = { x = 1 } })
    assert.are.same({ { x = 1, y = 2 } }, ok("complex:echo_list_point", { { x = 1, y = 2 } }))
    refused("complex:echo_list_point", { { x = 1, y = 2 }, { x = 1 } })
    assert.are.same({ name = "Ann", age = 41 }, ok("complex:echo_person", { name = "Ann", age = 41 }))
    refused("complex:echo_person", { name = "Ann", age = -1 })
  end)

  it("agrees on tuples, options, enums, flags, variants and results", function()
    assert.are.same({ 2, 1 }, ok("complex:swap_pair", 1, 2))
    assert.are.same({ 5, 10, 15 }, ok("complex:triple", 5))
    assert.are.same({ x = 42, y = 24 }, ok("complex:maybe_point", true))
    assert.is_nil(ok("complex:maybe_point", false))
    agree("complex:maybe_string", true)
    agree("complex:maybe_string", false)
    assert.are.equal(7, ok(E .. ":option_u32", 7))
    assert.is_nil(ok(E .. ":option_u32", nil))
    refused(E .. ":option_u32", "7")
    for _, c in ipairs({ "red", "green", "blue", 0, 2 }) do agree(E .. ":color", c) end
    for _, c in ipairs({ "purple", "RED", 3, -1, true, {} }) do refused(E .. ":color", c) end
    for _, f in ipairs({ 0, 5, 7, {}, { "read" }, { "write", "execute" }, { 0, 2 },
      { read = true, write = false }, { execute = true } }) do
      agree(E .. ":permissions", f)
    end
    for _, f in ipairs({ 8, -1, { "admin" }, { read = 1 }, { admin = true }, "read" }) do
      refused(E .. ":permissions", f)
    end
    local shapes = { { circle = 1 }, { square = 2 }, { at = { x = 1, y = 2 } }, "none",
      { none = true } }
    assert.are.same({ { circle = 1 }, { square = 2 }, { at = { x = 1, y = 2 } },
      { none = true }, { none = true } }, ok(E .. ":shapes", shapes))
    for _, bad in ipairs({ { "circle" }, { { circle = 1, square = 2 } }, { { oval = 1 } },
      { "at" }, { { at = { x = 1 } } }, { {} }, { 5 } }) do
      refused(E .. ":shapes", bad)
    end
    assert.are.same({ ok = 3 }, ok("complex:try_divide", 7, 2))
    agree("complex:try_divide", 7, 0)
    assert.are.same({ circle = 7 }, ok("complex:echo_shape", { circle = 7 }))
  end)

  it("agrees on a record of every kind, in a list", function()
    local user = {
      id = 1, name = "ann", tags = { "a", "b" }, nick = "annie", color = "blue",
      perms = { "read" }, home = { x = 1, y = -1 }, shapes = { { circle = 3 }, "none" },
      score = { ok = 0.5 }, raw = "\0\1", pair = { -1, 65535 }, initial = "é",
    }
    local bare = {
      id = 2, name = "bob", tags = {}, color = 0, perms = 0, shapes = {},
      score = { err = "none yet" }, raw = {}, pair = { 0, 0 }, initial = 65,
    }
    local got = ok(E .. ":users", { user, bare })
    assert.are.equal("annie", got[1].nick)
    assert.is_nil(got[2].nick)
    assert.are.same({ err = "none yet" }, got[2].score)
    local bad = {}
    for k, v in pairs(user) do bad[k] = v end
    bad.pair = { -1, 65536 }
    local err = refused(E .. ":users", { user, bad })
    assert.are.equal("[2].pair[2]", err:details().path)
    bad.pair, bad.score = user.pair, { maybe = 1 }
    refused(E .. ":users", { bad })
    bad.score, bad.shapes = user.score, { { circle = -1 } }
    refused(E .. ":users", { bad })
  end)

  it("agrees on the argument count and on results of no value", function()
    refused("complex:echo_point")
    refused("complex:echo_point", { x = 1, y = 1 }, 2)
    refused("complex:swap_pair", 1)
    assert.is_nil(ok(E .. ":sink", 5))
    assert.are.same({ 3, -1 }, ok(E .. ":pair", 1, 2))
  end)

  it("transforms users as the mapper component does", function()
    local users = {}
    for i = 1, 100 do
      users[i] = { id = i, name = "user" .. i, tags = { "admin", "dev" }, active = i % 2 == 0 }
    end
    local out = ok("spec:transform_users", users)
    assert.are.equal(100, #out)
    assert.are.equal(2, out[7]["tag-count"])
    assert.are.equal(7, out[7].id)
  end)

  it("reads only the keys a record's type names", function()
    -- The general path copies the whole table first and would refuse the cycle; the direct
    -- path, and the image funcs.async reads the same way, never look at `self` (README).
    local p = { x = 1, y = 2 }
    p.self = p
    assert.are.same({ x = 1, y = 2 }, funcs.call("complex:echo_point", p))
    local future = assert(funcs.async("complex:echo_point", p))
    assert.are.same({ x = 1, y = 2 }, future:wait())
    local value, err = funcs.call("complexg:echo_point", p)
    assert.is_nil(value)
    assert.truthy(tostring(err):find("cyclic table", 1, true))
  end)

  it("counts calls as the general path does: a refused argument is no call", function()
    local before = funcs.stats("complex:echo_point")
    refused("complex:echo_point", { x = 1 })
    assert.truthy(ok("complex:echo_point", { x = 1, y = 1 }))
    local after = funcs.stats("complex:echo_point")
    -- ok() made one funcs.call and one funcs.async call.
    assert.are.equal(before.calls + 2, after.calls)
    assert.are.equal(before.failures, after.failures)
  end)

  it("stops a runaway guest at its deadline and turns traps into INTERNAL errors", function()
    for _, id in ipairs({ "direct:spin", "direct:boom", "direct:len" }) do
      assert.is_true(funcs.stats(id).direct, id)
    end
    local err = refused("direct:spin", { 1, 2, 3 })
    assert.are.equal("TIMEOUT", err:kind())
    local quick = funcs.new():with_options({ timeout = 20 })
    local _, e = quick:call("direct:spin", {})
    assert.are.equal("TIMEOUT", e:kind())
    assert.truthy(e:message():find("20 ms", 1, true))
    err = refused("direct:boom", "x")
    assert.are.equal("INTERNAL", err:kind())
    assert.are.equal("unreachable_code_reached", err:details().trap)
  end)

  it("fails a call whose arguments outgrow the memory limit, and keeps working", function()
    assert.are.equal(5, ok("direct:len", "hello"))
    local err = refused("direct:len", string.rep("x", 2 * 1024 * 1024))
    assert.are.equal("INTERNAL", err:kind())
    assert.truthy(err:message():find("refused", 1, true), err:message())
    assert.are.equal(3, ok("direct:len", "abc"))
  end)
  it("fails a result that names the same memory over and over against the call's bound", function()
    local err = refused("direct:amplify")
    assert.are.equal("INTERNAL", err:kind())
    assert.truthy(err:message():find("fuel", 1, true), err:message())
    assert.truthy(funcs.stats("direct:amplify").direct)
  end)

  it("words a result that does not fit its type as the general path does", function()
    local expected = {
      ["bad-variant"] = "discriminant 7 out of range [0..2)",
      ["bad-option"] = "discriminant 3 out of range [0..2)",
      ["bad-result"] = "discriminant 2 out of range [0..2)",
      ["bad-variant-in-list"] = "discriminant 5 out of range [0..2)",
      ["bad-enum"] = "discriminant 9 out of range [0..2)",
      ["bad-utf8"] = "invalid utf-8",
      ["string-outside"] = "out of bounds of memory",
      ["misaligned"] = "not aligned",
      ["pointer-outside"] = "out of bounds of memory",
      ["bad-char"] = "char",
    }
    for name, fragment in pairs(expected) do
      local id = "direct:" .. name
      assert.is_true(funcs.stats(id).direct, id)
      local err = refused(id)
      assert.are.equal("INTERNAL", err:kind(), id)
      assert.truthy(err:message():find(fragment, 1, true), id .. ": " .. err:message())
    end
  end)
end)
end
