-- The demo script of the README runs and prints what the examples registry computes.
describe("examples/demo.lua", function()
  it("prints every result of the examples registry", function()
    -- The Makefile says which interpreter runs the specs; the demo runs under the same one.
    local lua = os.getenv("FUNCS_LUA") or "lua5.4"
    local cpath = package.cpath:gsub("'", "")
    local cmd = ("LUA_CPATH='%s' %s examples/demo.lua 2>&1"):format(cpath, lua)
    local pipe = assert(io.popen(cmd))
    local out = pipe:read("*a")
    local ok = pipe:close()
    assert.is_true(ok, out)
    assert.truthy(out:find("answer (inline WAT)              42", 1, true), out)
    assert.truthy(out:find("compute(6, 7)                    42", 1, true), out)
    assert.truthy(out:find('{id = 1, display = "Alice [admin, dev]", tag-count = 2}', 1, true), out)
    assert.truthy(out:find("aggregate-tags                   { admin, dev, ops }", 1, true), out)
    assert.truthy(out:find("async compute(4, 10)             40", 1, true), out)
    assert.truthy(out:find("/api/greet Hello, World!", 1, true), out)
  end)
end)
