-- Loading says on stderr what compiles when it takes long (FUNCS_PROGRESS_MS, default a
-- second), unless FUNCS_QUIET is set.
local h = require("spec.support.helpers")

local LOAD = [[
local funcs = require("funcs")
assert(funcs.load("spec/fixtures/metrics"))
print("loaded")
]]

describe("a load that compiles", function()
  it("names what compiles and how long it took once the wait is over", function()
    local status, out = h.run_lua(LOAD, "FUNCS_CACHE=off FUNCS_PROGRESS_MS=0")
    assert.are.equal(0, status, out)
    assert.truthy(out:find(
      "funcs: compiling `met:answer` (0.0 MiB, not in the artefact cache) ...", 1, true), out)
    assert.truthy(out:find(
      "funcs: compiling `met:answer` (0.0 MiB, not in the artefact cache): done in ", 1, true), out)
    assert.is_nil(out:find("from the artefact cache ...", 1, true), out)
  end)

  it("says nothing under FUNCS_QUIET, or when it is quicker than the wait", function()
    local status, out = h.run_lua(LOAD, "FUNCS_CACHE=off FUNCS_PROGRESS_MS=0 FUNCS_QUIET=1")
    assert.are.equal(0, status, out)
    assert.is_nil(out:find("funcs:", 1, true), out)
    status, out = h.run_lua(LOAD, "FUNCS_CACHE=off FUNCS_PROGRESS_MS=60000")
    assert.are.equal(0, status, out)
    assert.is_nil(out:find("funcs:", 1, true), out)
  end)
end)
