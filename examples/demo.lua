-- The funcs demo: load the examples registry and call every function in it.
-- Run from the repository root with `make demo`, or with the module on package.cpath:
--   lua5.4 examples/demo.lua [registry-folder]
local funcs = require("funcs")

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local summary, err = funcs.load(arg and arg[1] or (here .. "/app"))
if not summary then
  io.stderr:write("load failed: ", tostring(err), "\n")
  os.exit(1)
end
print(("loaded %d entries: %s"):format(#summary.entries, table.concat(summary.entries, ", ")))
for _, s in ipairs(summary.skipped) do
  print(("skipped %s (kind %s)"):format(s.id, s.kind))
end

local function show(label, value, e)
  if e then
    print(("%-32s error [%s] %s"):format(label, e:kind(), tostring(e)))
  elseif type(value) == "table" then
    local parts = {}
    for i, v in ipairs(value) do
      if type(v) == "table" then
        parts[i] = ("{id = %s, display = %q, tag-count = %s}"):format(v.id, v.display, v["tag-count"])
      else
        parts[i] = tostring(v)
      end
    end
    print(("%-32s { %s }"):format(label, table.concat(parts, ", ")))
  else
    print(("%-32s %s"):format(label, tostring(value)))
  end
end

show("answer (inline WAT)", funcs.call("examples:answer"))
show("answer (WAT file)", funcs.call("examples:answer_file"))
show("answer (core wasm)", funcs.call("examples:answer_raw"))
show("compute(6, 7)", funcs.call("examples:compute", 6, 7))

local users = {
  { id = 1, name = "Alice", tags = { "admin", "dev" }, active = true },
  { id = 2, name = "Bob", tags = {}, active = false },
  { id = 3, name = "Carol", tags = { "ops" }, active = true },
}
show("transform-users", funcs.call("examples:transform_users", users))
show("filter-active", funcs.call("examples:filter_active", users))
show("aggregate-tags", funcs.call("examples:aggregate_tags", users))

-- Errors are values: nil, err with a kind and a message that says where.
show("compute(6, 'seven')", funcs.call("examples:compute", 6, "seven"))

-- Many calls at once: futures on the entry's pool.
local futures = {}
for i = 1, 4 do futures[i] = funcs.async("examples:compute", i, 10) end
for i = 1, 4 do show(("async compute(%d, 10)"):format(i), futures[i]:wait()) end

-- The same functions over HTTP: start the service (port 0 picks a free one) and call it
-- with curl on loopback.
local addr = assert(funcs.http.start("examples:api"))
local curl = io.popen(("curl -s -d World http://%s/api/greet"):format(addr))
show(("POST http://%s/api/greet"):format(addr), curl:read("*a"))
curl:close()
funcs.http.stop("examples:api")
