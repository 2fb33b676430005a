-- The real funcs.so, loaded by a stock interpreter: loading registries, calling functions,
-- and the error object. Run from the repository root (paths below are relative to it).
local funcs = require("funcs")
local assert_fails = require("spec.support.helpers").assert_fails

describe("funcs.load", function()
  it("loads a folder and reports entries and skipped kinds", function()
    local summary = assert(funcs.load("examples/app"))
    assert.are.same({
      "examples:aggregate_tags", "examples:answer", "examples:answer_file", "examples:answer_raw",
      "examples:api", "examples:api_router", "examples:compute", "examples:filter_active",
      "examples:greet", "examples:greet_endpoint", "examples:transform_users", "examples:wasm",
    }, summary.entries)
    assert.are.same({ { id = "examples:hello_lua", kind = "function.lua" } }, summary.skipped)
  end)

  it("gives nil, err for malformed YAML, naming the file", function()
    assert_fails("INVALID", { "_index.yaml", "invalid YAML" }, funcs.load("spec/fixtures/bad/malformed"))
  end)

  it("rejects unknown fields of an entry", function()
    assert_fails("INVALID", { "`bad:typo`", "unknown field `metod`" },
      funcs.load("spec/fixtures/bad/unknown_field"))
  end)

  it("requires a method", function()
    assert_fails("INVALID", { "`bad:nomethod`", "method is required" },
      funcs.load("spec/fixtures/bad/no_method"))
  end)

  it("checks the hash before compiling", function()
    assert_fails("INVALID", { "`bad:wrong_hash`", "hash verification failed: hash mismatch" },
      funcs.load("spec/fixtures/bad/bad_hash"))
  end)

  it("reports a missing wasm file as NOT_FOUND", function()
    assert_fails("NOT_FOUND", { "`bad:missing`", "no-such.wasm" }, funcs.load("spec/fixtures/bad/missing_file"))
  end)

  it("refuses file:// paths that leave the load root", function()
    assert_fails("INVALID", { "`bad:escape`", "escapes the load root" },
      funcs.load("spec/fixtures/bad/escape/reg"))
  end)

  it("reports a missing folder as NOT_FOUND", function()
    assert_fails("NOT_FOUND", { "spec/no/such/folder" }, funcs.load("spec/no/such/folder"))
  end)

  it("raises on a non-string path", function()
    assert.has_error(function() funcs.load(42) end)
  end)
end)

describe("funcs.call", function()
  setup(function()
    assert(funcs.load("examples/app"))
    assert(funcs.load("spec/fixtures/good"))
  end)

  it("answers 42 from inline WAT, a WAT file and a core binary", function()
    assert.are.equal(42, funcs.call("examples:answer"))
    assert.are.equal(42, funcs.call("examples:answer_file"))
    assert.are.equal(42, funcs.call("examples:answer_raw"))
    assert.are.equal(42, funcs.call("spec:answer"))
    assert.are.equal(42, funcs.call("spec:answer_raw"))
  end)

  it("computes 6 * 7 in the minimal component", function()
    assert.are.equal(42, funcs.call("examples:compute", 6, 7))
    assert.are.equal(42, funcs.call("spec:compute", 6.0, 7))
  end)

  it("transforms, filters and aggregates users with the mapper", function()
    local users = {
      { id = 1, name = "Alice", tags = { "admin", "dev" }, active = true },
      { id = 2, name = "Bob", tags = {}, active = false },
      { id = 3, name = "Carol", tags = { "ops" }, active = true },
    }
    assert.are.same({
      { id = 1, display = "Alice [admin, dev]", ["tag-count"] = 2 },
      { id = 2, display = "Bob []", ["tag-count"] = 0 },
      { id = 3, display = "Carol [ops]", ["tag-count"] = 1 },
    }, funcs.call("examples:transform_users", users))
    assert.are.same({
      { id = 1, display = "Alice [admin, dev]", ["tag-count"] = 2 },
      { id = 3, display = "Carol [ops]", ["tag-count"] = 1 },
    }, funcs.call("examples:filter_active", users))
    assert.are.same({ "admin", "dev", "ops" }, funcs.call("examples:aggregate_tags", users))
    assert.are.same({}, funcs.call("examples:transform_users", {}))
  end)

  it("echoes empty, unicode and 1 MiB strings", function()
    for _, s in ipairs({ "", "héllo", string.rep("x", 1024 * 1024) }) do
      assert.are.equal(s, funcs.call("spec:echo", s))
    end
  end)

  it("passes results, records, enums, variants and flags of complex.wasm", function()
    assert.are.same({ ok = 5 }, funcs.call("spec:try_divide", 10, 2))
    assert.are.same({ err = { code = 1, message = "division by zero" } }, funcs.call("spec:try_divide", 10, 0))
    assert.are.equal(10, funcs.call("spec:sum_list", { 1, 2, 3, 4 }))
    assert.are.same({ 2, 1 }, funcs.call("spec:swap_pair", 1, 2))
    assert.are.equal("green", funcs.call("spec:echo_color", "green"))
    assert.are.equal("blue", funcs.call("spec:echo_color", 2))
    assert.are.same({ circle = 5 }, funcs.call("spec:echo_shape", { circle = 5 }))
    assert.are.same({ read = true, execute = true }, funcs.call("spec:echo_permissions", { "read", "execute" }))
    assert.is_nil(funcs.call("spec:maybe_point", false))
    local p = { x = 1, y = 2 }
    assert.are.same({ ["top-left"] = p, ["bottom-right"] = p },
      funcs.call("spec:echo_rectangle", { top_left = p, bottom_right = p }))
  end)

  it("returns several core results as one array and no result as nil", function()
    assert.are.same({ 3, 2 }, funcs.call("spec:divmod", 17, 5))
    local n = select("#", funcs.call("spec:nothing"))
    assert.are.equal(1, n)
    assert.is_nil(funcs.call("spec:nothing"))
  end)

  it("gives NOT_FOUND for an unknown ID", function()
    assert_fails("NOT_FOUND", { "`spec:nope`" }, funcs.call("spec:nope"))
  end)

  it("checks the argument count", function()
    assert_fails("INVALID", { "`spec:compute`", "expected 2 argument(s), got 3" }, funcs.call("spec:compute", 1, 2, 3))
    assert_fails("INVALID", { "expected 2 argument(s), got 1" }, funcs.call("spec:compute", 1))
  end)

  it("names the argument and the path of a wrongly typed value", function()
    assert_fails("INVALID", { "argument 2 (b): expected u32, got string" }, funcs.call("spec:compute", 1, "x"))
    assert_fails("INVALID", { "argument 1 (a): -1 is out of range for u32" }, funcs.call("spec:compute", -1, 0))
    local value, err = funcs.call("spec:transform_users",
      { { id = 1, name = "A", tags = {}, active = true }, { id = 2, name = "B", tags = { "x", 5 }, active = true } })
    assert_fails("INVALID", { "argument 1 (users): [2].tags[2]: expected string, got number" }, value, err)
    assert.are.equal("[2].tags[2]", err:details().path)
    assert.are.equal(1, err:details().argument)
    assert.are.equal("spec:transform_users", err:details().entry)
  end)

  it("rejects cyclic tables without crashing", function()
    local t = {}
    t.self = t
    assert_fails("INVALID", { "cyclic table" }, funcs.call("spec:transform_users", t))
  end)

  it("turns a trap into an INTERNAL error naming the entry, and keeps working", function()
    local value, err = funcs.call("spec:boom", 1)
    assert_fails("INTERNAL", { "`spec:boom`", "unreachable" }, value, err)
    assert.are.equal("unreachable_code_reached", err:details().trap)
    assert.are.equal(42, funcs.call("spec:compute", 6, 7))
  end)

  it("lets compute run although the component's host import is missing", function()
    assert_fails("INTERNAL", { "test:minimal/host@0.1.0#add" }, funcs.call("spec:compute_using_host", 1, 2))
  end)

  it("stops a spinning guest at its deadline with TIMEOUT, on every call", function()
    for _ = 1, 2 do
      local value, err = funcs.call("spec:spin")
      assert_fails("TIMEOUT", { "`spec:spin`", "execution time limit of 100 ms exceeded" }, value, err)
      assert.is_true(err:retryable())
    end
    assert.are.equal(42, funcs.call("spec:compute", 6, 7))
  end)

  it("stops a guest that runs out of fuel", function()
    assert.are.equal(10, funcs.call("spec:count", 10))
    local value, err = funcs.call("spec:count", 10000000)
    assert_fails("INTERNAL", { "`spec:count`", "fuel limit of 100000 exhausted" }, value, err)
    assert.are.equal("out_of_fuel", err:details().trap)
  end)

  it("raises on a non-string ID", function()
    assert.has_error(function() funcs.call(42) end)
    assert.has_error(function() funcs.call() end)
  end)
end)

describe("error objects", function()
  it("carry kind, message, retryable and details", function()
    local _, err = funcs.call("spec:nope")
    assert.are.equal("NOT_FOUND", err:kind())
    assert.are.equal(funcs.errors.NOT_FOUND, err:kind())
    assert.are.equal("function `spec:nope` not found", err:message())
    assert.are.equal(err:message(), tostring(err))
    assert.is_false(err:retryable())
    assert.are.equal("spec:nope", err:details().entry)
  end)
end)

describe("funcs.errors", function()
  it("lists every kind", function()
    for _, k in ipairs({ "INVALID", "NOT_FOUND", "INTERNAL", "TIMEOUT", "CANCELED", "UNAVAILABLE", "PERMISSION_DENIED" }) do
      assert.are.equal(k, funcs.errors[k])
    end
  end)
end)
