-- The fuzz program over the Lua surface (fuzz/surface.lua, SPEC section 13), in a short bounded
-- run in a child interpreter: random calls, futures, executors, loads, stats, error objects and
-- HTTP services with arguments of every Lua type. The long campaign is scripts/fuzz.sh
-- (`make fuzz FUZZ_EXECS=5000000`). FUZZ_SEED replays a seed (the default is fixed).

-- The program is portable (Lua 5.1 to 5.4 and LuaJIT): it runs under every interpreter,
-- FUNCS_LUA naming the one whose module is under test.

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local text = f:read("*a")
  f:close()
  os.remove(path)
  return text
end

-- Runs fuzz/surface.lua with this interpreter's module: exit status, stdout, stderr, last
-- operation (its state file).
local function fuzz(seed, execs)
  local lua = os.getenv("FUNCS_LUA") or "lua5.4"
  local out, err, state = os.tmpname(), os.tmpname(), os.tmpname()
  local cmd = ("FUZZ_SEED=%d FUZZ_EXECS=%d FUZZ_STATE=%s LUA_CPATH=%q timeout -s KILL 120 %s fuzz/surface.lua > %s 2> %s; echo $?")
    :format(seed, execs, state, package.cpath, lua, out, err)
  local p = assert(io.popen(cmd))
  local status = tonumber(p:read("*a"):match("(%d+)%s*$"))
  p:close()
  return status, slurp(out), slurp(err), (slurp(state):gsub("%s+$", ""))
end

describe("the fuzz program over the Lua surface", function()
  it("runs 20,000 random operations in a child that ends normally, without a panic", function()
    local seed = tonumber(os.getenv("FUZZ_SEED") or "") or 14006
    local started = os.time()
    local status, out, err, last = fuzz(seed, 20000)
    local context = ("seed %d, last operation: %s\n%s"):format(seed, last, err:sub(-2000))
    -- 137: killed by the timeout (a hang); above 128 a signal (a crash).
    assert.are.equal(0, status, context)
    assert.is_nil(err:find("panicked", 1, true), context)
    assert.is_nil(err:find("RUST_BACKTRACE", 1, true), context)
    local execs = tonumber(out:match("fuzz: (%d+) executions"))
    assert.is_not_nil(execs, out:sub(-2000))
    assert.are.equal(20000, execs)
    assert.is_true(os.time() - started < 60, "took " .. (os.time() - started) .. " s")
  end)
end)
