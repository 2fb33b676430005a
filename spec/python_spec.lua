-- WASI preview 2 through a CPython component (componentize-py, built by scripts/guests.sh
-- into build/guests/python): env isolation, mounts, exits, output.
local funcs = require("funcs")
local h = require("spec.support.helpers")

local REGISTRY = "build/guests/python"

setup(function()
  assert(io.open(REGISTRY .. "/guest.wasm"), "run scripts/guests.sh first (make test does)")
  assert(funcs.load(REGISTRY))
end)

describe("a Python component", function()
  it("computes", function()
    assert.are.equal(42, funcs.call("py:compute", 6, 7))
  end)

  it("sees only the env entries it maps, resolved from their storage", function()
    assert.are.equal("hello from static storage", funcs.call("py:env", "GREETING"))
    assert.are.equal(os.getenv("HOME"), funcs.call("py:env", "HOST_HOME"))
    assert.is_not_nil(os.getenv("PATH"))
    assert.is_nil(funcs.call("py:env", "PATH"))
    assert.is_nil(funcs.call("py:env", "HOME"))
  end)

  it("gets its wasi.args after the entry ID as argv[0]", function()
    assert.are.same({ "py:argv", "--verbose", "two words" }, funcs.call("py:argv"))
  end)

  it("fails the call when a required env variable has no value", function()
    h.assert_fails("NOT_FOUND", { "`py:required`", "required wasi env variable not found: py:missing" },
      funcs.call("py:required", "NEEDED"))
  end)

  it("reads a mounted folder at its guest path", function()
    assert.are.same({ ok = "hello from the host\n" }, funcs.call("py:read", "/data/in.txt"))
  end)

  it("cannot leave a mount or reach what is not mounted", function()
    local r = funcs.call("py:read", "/data/../secret.txt")
    assert.is_not_nil(r.err, "escaped the mount")
    r = funcs.call("py:read", "/secret.txt")
    assert.is_not_nil(r.err)
    r = funcs.call("py:read", "/etc/passwd")
    assert.is_not_nil(r.err)
  end)

  it("cannot write to a read-only mount, and can to a writable one", function()
    local r = funcs.call("py:write_ro", "/data/new.txt", "x")
    assert.truthy(r.err and r.err:find("PermissionError", 1, true), r.err)
    assert.is_nil(io.open(REGISTRY .. "/data/new.txt"))
    assert.are.same({ ok = true }, funcs.call("py:write_rw", "/scratch/out.txt", "written by the guest"))
    local f = assert(io.open(REGISTRY .. "/scratch/out.txt"))
    assert.are.equal("written by the guest", f:read("*a"))
    f:close()
  end)

  it("ends only the call when it exits, and the next call works", function()
    local v, err = funcs.call("py:exit", 3)
    -- wasi:cli/exit carries ok or err: any non-zero status is 1.
    h.assert_fails("INTERNAL", { "`py:exit`", "guest exited with code 1" }, v, err)
    assert.are.equal(1, err:details().exit_code)
    assert.are.equal(42, funcs.call("py:compute", 6, 7))
  end)

  it("denies a WASI import the entry does not list, naming it", function()
    h.assert_fails("PERMISSION_DENIED", { "`py:no_cli`", "`wasi:cli/" }, funcs.call("py:no_cli", "hi"))
  end)

  it("prints to stderr prefixed by the entry ID", function()
    local status, out = h.run_lua(([[
      local funcs = require("funcs")
      assert(funcs.load(%q))
      funcs.call("py:say", "hello from python")
    ]]):format(REGISTRY))
    assert.are.equal(0, status, out)
    assert.truthy(out:find("[py:say] hello from python\n", 1, true), out)
  end)
end)
