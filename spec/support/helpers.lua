-- Shared by the specs: error assertions and polling without wall-clock asserts.
local assert = require("luassert")
local M = {}

function M.assert_fails(kind, fragments, value, err)
  assert.is_nil(value)
  assert.is_not_nil(err, "expected an error")
  assert.are.equal(kind, err:kind())
  for _, f in ipairs(fragments) do
    assert.truthy(tostring(err):find(f, 1, true), ("`%s` not in: %s"):format(f, tostring(err)))
  end
end

-- Sleeps about `ms` milliseconds (a subprocess: stock Lua has no sleep).
function M.sleep(ms)
  os.execute(("sleep %.3f"):format(ms / 1000))
end

-- Polls `check` every 10 ms until it is true or `tries` run out; returns its last value.
function M.eventually(check, tries)
  for _ = 1, tries or 500 do
    local v = check()
    if v then return v end
    M.sleep(10)
  end
  return check()
end

-- Runs a Lua chunk in a fresh interpreter with funcs on its paths: exit status, output.
-- `prefix` is shell put before the command (`ulimit -v ...;`); `stream` ("stdout" or
-- "stderr") keeps only that stream of the output, both by default.
function M.run_lua(chunk, prefix, stream)
  local lua = os.getenv("FUNCS_LUA") or "lua5.4"
  local cpath = package.cpath:match("[^;]*funcs[^;]*") or package.cpath
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(("package.cpath = %q .. ';' .. package.cpath\n"):format(package.cpath))
  f:write(("package.path = %q .. ';' .. package.path\n"):format(package.path))
  f:write(chunk)
  f:close()
  local redirect = ({ stdout = "2>/dev/null", stderr = "2>&1 >/dev/null" })[stream] or "2>&1"
  local p = io.popen(("%s %s %s %s; echo \"status=$?\""):format(prefix or "", lua, script, redirect))
  local out = p:read("*a")
  p:close()
  os.remove(script)
  local status = tonumber(out:match("status=(%d+)%s*$"))
  return status, out
end

-- Loads a registry made of one `_index.yaml` with `text` from a temporary folder (removed
-- after): what `funcs.load` returns.
function M.load_yaml(funcs, text)
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. dir)
  local f = assert(io.open(dir .. "/_index.yaml", "w"))
  f:write(text)
  f:close()
  local summary, err = funcs.load(dir)
  os.execute("rm -rf " .. dir)
  return summary, err
end

return M
