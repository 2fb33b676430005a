-- Every export of complex.wasm (a component built by cargo-component), through the real
-- funcs.so: the values its README lists, and the obvious ones for the rest.
local funcs = require("funcs")

describe("complex.wasm", function()
  setup(function()
    assert(funcs.load("spec/fixtures/complex"))
  end)

  local function call(name, ...)
    local value, err = funcs.call("complex:" .. name, ...)
    assert.is_nil(err)
    return value
  end

  local p = { x = 3, y = -4 }

  it("echoes records, nested records and lists of records", function()
    assert.are.same(p, call("echo_point", p))
    assert.are.same({ name = "Ann", age = 41 }, call("echo_person", { name = "Ann", age = 41 }))
    assert.are.same({ ["top-left"] = p, ["bottom-right"] = { x = 9, y = 9 } },
      call("echo_rectangle", { top_left = p, ["bottom-right"] = { x = 9, y = 9 } }))
    assert.are.same({ p, { x = 0, y = 0 } }, call("echo_list_point", { p, { x = 0, y = 0 } }))
    assert.are.same({}, call("echo_list_point", {}))
  end)

  it("echoes enums, variants and flags", function()
    for _, c in ipairs({ "red", "green", "blue" }) do
      assert.are.equal(c, call("echo_color", c))
    end
    assert.are.same({ circle = 7 }, call("echo_shape", { circle = 7 }))
    assert.are.same({ square = 2 }, call("echo_shape", { square = 2 }))
    assert.are.same({ rect = { ["top-left"] = p, ["bottom-right"] = p } },
      call("echo_shape", { rect = { top_left = p, bottom_right = p } }))
    assert.are.same({ none = true }, call("echo_shape", { none = true }))
    assert.are.same({ read = true, write = true, execute = true },
      call("echo_permissions", { read = true, write = true, execute = true }))
    assert.are.same({}, call("echo_permissions", {}))
  end)

  it("echoes lists of numbers and strings", function()
    assert.are.same({ -1, 0, 2147483647 }, call("echo_list_s32", { -1, 0, 2147483647 }))
    assert.are.same({ "a", "", "ü" }, call("echo_list_string", { "a", "", "ü" }))
    assert.are.same({}, call("echo_list_string", {}))
  end)

  it("gives options as nil or the value", function()
    assert.is_nil(call("maybe_point", false))
    assert.are.same({ x = 42, y = 24 }, call("maybe_point", true))
    assert.is_nil(call("maybe_string", false))
    assert.are.equal("hello", call("maybe_string", true))
  end)

  it("gives results as {ok = ...} or {err = ...}", function()
    assert.are.same({ ok = 5 }, call("try_divide", 10, 2))
    assert.are.same({ err = { code = 1, message = "division by zero" } }, call("try_divide", 10, 0))
    assert.are.same({ ok = 42 }, call("try_parse", "42"))
    assert.are.same({ err = "cannot parse: forty-two" }, call("try_parse", "forty-two"))
  end)

  it("gives tuples as arrays", function()
    assert.are.same({ 2, 1 }, call("swap_pair", 1, 2))
    assert.are.same({ 5, 10, 15 }, call("triple", 5))
  end)

  it("filters, sums and doubles lists", function()
    assert.are.same({ { name = "Ann", age = 30 } },
      call("filter_adults", { { name = "Ann", age = 30 }, { name = "Kid", age = 9 } }))
    assert.are.equal(10, call("sum_list", { 1, 2, 3, 4 }))
    assert.are.equal(0, call("sum_list", {}))
    assert.are.same({ 2, 4, 6, 8 }, call("double_list", { 1, 2, 3, 4 }))
  end)
end)
