-- Cold start vs a start with the artefact cache warm (issue 7): loads the registries with
-- mapper.wasm, complex.wasm and the CPython component and prints the time. scripts/bench.sh
-- runs it twice against one fresh FUNCS_CACHE_DIR.
local funcs = require("funcs")
local start = funcs.clock()
for _, path in ipairs({ "examples/app", "spec/fixtures/complex", "build/guests/python" }) do
  assert(funcs.load(path))
end
assert(funcs.call("py:compute", 6, 7) == 42)
print(("%s %.1f ms"):format(arg[1] or "load", (funcs.clock() - start) * 1000))
