-- WASI preview 2 through a CPython component (componentize-py, built by scripts/guests.sh
-- into build/guests/python): env isolation, mounts, exits, output.
local funcs = require("funcs")
local h = require("spec.support.helpers")

local REGISTRY = "build/guests/python"
-- The same entries on inline pools (namespace `pyi`): their blocking calls take the direct
-- path with WASI (on the caller's thread, the pool's runtime), which must keep every WASI
-- behaviour below.
local INLINE = "build/guests/python-inline"

local VARIANTS = {
  { what = "a Python component", ns = "py", dir = REGISTRY, home = "HOME" },
  -- Public variable names are unique in a registry: the copy's are its own.
  { what = "a Python component on an inline pool (the direct path)", ns = "pyi", dir = INLINE, home = "PATH" },
}

-- The registry of the inline variant, made from the built one.
local function write_inline()
  local f = assert(io.open(REGISTRY .. "/_index.yaml"))
  local text = f:read("*a")
  f:close()
  local abs = io.popen("pwd"):read("*l") .. "/" .. REGISTRY .. "/"
  text = text:gsub("namespace: py\n", "namespace: pyi\n")
    :gsub("variable: GREETING", "variable: PYI_GREETING")
    :gsub("\n      GREETING:", "\n      PYI_GREETING:")
    :gsub("variable: HOME", "variable: PATH")
    :gsub("FUNCS_SURELY_UNSET_VARIABLE", "FUNCS_SURELY_UNSET_VARIABLE_PYI")
    :gsub("directory: %./", "directory: " .. abs)
    :gsub("\n    pool: [^\n]*", "")
    :gsub("(\n    method: [^\n]*)", "%1\n    pool: {type: inline}")
  os.execute("mkdir -p " .. INLINE)
  f = assert(io.open(INLINE .. "/_index.yaml", "w"))
  f:write(text)
  f:close()
end

setup(function()
  assert(io.open(REGISTRY .. "/guest.wasm"), "run scripts/guests.sh first (make test does)")
  write_inline()
end)

for _, variant in ipairs(VARIANTS) do
describe(variant.what, function()
  local ns = variant.ns
  local function id(name) return ns .. ":" .. name end

  setup(function()
    assert(funcs.load(variant.dir))
    assert.are.equal(variant.dir == INLINE, funcs.stats(id("compute")).direct)
  end)

  it("computes", function()
    assert.are.equal(42, funcs.call(id("compute"), 6, 7))
  end)

  it("sees only the env entries it maps, resolved from their storage", function()
    assert.are.equal("hello from static storage", funcs.call(id("env"), "GREETING"))
    assert.are.equal(os.getenv(variant.home), funcs.call(id("env"), "HOST_HOME"))
    assert.is_not_nil(os.getenv("PATH"))
    assert.is_nil(funcs.call(id("env"), "PATH"))
    assert.is_nil(funcs.call(id("env"), "HOME"))
  end)

  it("gets its wasi.args after the entry ID as argv[0]", function()
    assert.are.same({ id("argv"), "--verbose", "two words" }, funcs.call(id("argv")))
  end)

  it("fails the call when a required env variable has no value", function()
    h.assert_fails("NOT_FOUND", { "`" .. id("required") .. "`", "required wasi env variable not found: " .. id("missing") },
      funcs.call(id("required"), "NEEDED"))
  end)

  it("reads a mounted folder at its guest path", function()
    assert.are.same({ ok = "hello from the host\n" }, funcs.call(id("read"), "/data/in.txt"))
  end)

  it("cannot leave a mount or reach what is not mounted", function()
    local r = funcs.call(id("read"), "/data/../secret.txt")
    assert.is_not_nil(r.err, "escaped the mount")
    r = funcs.call(id("read"), "/secret.txt")
    assert.is_not_nil(r.err)
    r = funcs.call(id("read"), "/etc/passwd")
    assert.is_not_nil(r.err)
  end)

  it("cannot write to a read-only mount, and can to a writable one", function()
    local r = funcs.call(id("write_ro"), "/data/new.txt", "x")
    assert.truthy(r.err and r.err:find("PermissionError", 1, true), r.err)
    assert.is_nil(io.open(REGISTRY .. "/data/new.txt"))
    assert.are.same({ ok = true }, funcs.call(id("write_rw"), "/scratch/out.txt", "written by the guest"))
    local f = assert(io.open(REGISTRY .. "/scratch/out.txt"))
    assert.are.equal("written by the guest", f:read("*a"))
    f:close()
  end)

  it("ends only the call when it exits, and the next call works", function()
    local v, err = funcs.call(id("exit"), 3)
    -- wasi:cli/exit carries ok or err: any non-zero status is 1.
    h.assert_fails("INTERNAL", { "`" .. id("exit") .. "`", "guest exited with code 1" }, v, err)
    assert.are.equal(1, err:details().exit_code)
    assert.are.equal(42, funcs.call(id("compute"), 6, 7))
  end)

  it("denies a WASI import the entry does not list, naming it", function()
    h.assert_fails("PERMISSION_DENIED", { "`" .. id("no_cli") .. "`", "`wasi:cli/" }, funcs.call(id("no_cli"), "hi"))
  end)

  it("prints to stdout prefixed by the entry ID", function()
    local status, out = h.run_lua(([[
      local funcs = require("funcs")
      assert(funcs.load(%q))
      funcs.call(%q, "hello from python")
    ]]):format(variant.dir, id("say")))
    assert.are.equal(0, status, out)
    assert.truthy(out:find("[" .. id("say") .. "] hello from python\n", 1, true), out)
  end)
end)
end
