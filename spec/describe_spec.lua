-- funcs.describe(id): an entry's WIT signature with the types it uses, its pool, limits and
-- granted imports.
local funcs = require("funcs")
local helpers = require("spec.support.helpers")

describe("funcs.describe", function()
  setup(function()
    assert(funcs.load("examples/app"))
    assert(funcs.load("spec/fixtures/metrics"))
    assert(funcs.load("spec/fixtures/hardening"))
  end)

  it("gives a component's signature as WIT with the records it uses", function()
    local d = assert(funcs.describe("examples:transform_users"))
    assert.are.equal([[
transform-users: func(users: list<user-record>) -> list<user-output>;

record user-record {
  id: u32,
  name: string,
  tags: list<string>,
  active: bool
}

record user-output {
  id: u32,
  display: string,
  tag-count: u32
}
]], d.signature)
    assert.are.equal("examples:transform_users", d.id)
    assert.are.equal("transform-users", d.export)
    assert.is_true(d.direct)
  end)

  it("gives a core module's signature from its wit, or from its core types", function()
    assert.are.equal("greet: func(name: string) -> string;\n",
      assert(funcs.describe("examples:greet")).signature)
    assert.are.equal("answer: func() -> s32;\n", assert(funcs.describe("examples:answer")).signature)
    assert.are.equal("answer: func(p1: s32) -> s32;\n", assert(funcs.describe("met:answer")).signature)
  end)

  it("gives the pool, the limits and the granted imports", function()
    local d = assert(funcs.describe("met:spin"))
    assert.are.equal(50, d.limits.max_execution_ms)
    assert.is_nil(d.limits.max_memory_bytes)
    assert.are.equal("lazy", d.pool.type)
    assert.are.equal(100, d.pool.size)
    assert.are.same({}, d.imports)
    local reused = assert(funcs.describe("hard:spin_reused"))
    assert.are.equal("inline", reused.pool.type)
    local wasi = assert(funcs.describe("hard:no_newline"))
    assert.truthy(#wasi.imports > 0)
    assert.truthy(table.concat(wasi.imports, " "):find("wasi:cli/stdout", 1, true))
  end)

  it("fails NOT_FOUND for an unknown entry and raises for a non-string ID", function()
    helpers.assert_fails("NOT_FOUND", { "function `nope:x` not found" }, funcs.describe("nope:x"))
    local ok, err = pcall(funcs.describe, 42)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("bad argument #1 to 'describe' (string expected, got number)",
      1, true), tostring(err))
  end)
end)
