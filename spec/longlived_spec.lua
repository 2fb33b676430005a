-- Months in a long-lived process (issue 26): nothing that wraps, wedges or leaks. Cases that
-- starve the process of resources run in a child interpreter.
local h = require("spec.support.helpers")

-- Lua code that opens /dev/null until the process runs out of descriptors: `held` keeps
-- them, `release()` closes them.
local EXHAUST = [[
  local held = {}
  local function exhaust()
    while true do
      local f = io.open("/dev/null")
      if not f then break end
      held[#held + 1] = f
    end
  end
  local function release()
    for _, f in ipairs(held) do f:close() end
    held = {}
  end
]]

describe("a call whose worker cannot build its runtime (out of file descriptors)", function()
  it("fails with UNAVAILABLE naming the entry and the reason, and the pool works afterwards", function()
    local status, out = h.run_lua(EXHAUST .. [[
      local funcs = require("funcs")
      assert(funcs.load("spec/fixtures/longlived"))
      exhaust()
      -- A bounded wait: before the fix the call waited for a worker forever.
      local f, err = funcs.async("ll:inc_lazy", 1)
      local v
      if f then v, err = f:wait(5000) end
      release()
      print("starved", v, err and err:kind(), err)
      local again = assert(funcs.async("ll:inc_lazy", 2))
      print("after", again:wait(5000))
    ]], "ulimit -n 64;")
    assert.are.equal(0, status, out)
    assert.truthy(out:find("starved\tnil\tUNAVAILABLE\tfailed to call `ll:inc_lazy`", 1, true), out)
    assert.truthy(out:find("cannot build its runtime", 1, true), out)
    assert.truthy(out:find("after\t3", 1, true), out)
  end)

  it("on an inline pool fails with UNAVAILABLE instead of a panic, and works afterwards", function()
    local status, out = h.run_lua(EXHAUST .. [[
      local funcs = require("funcs")
      assert(funcs.load("spec/fixtures/longlived"))
      exhaust()
      local v, err = funcs.call("ll:inc_inline_wasi", 1)
      release()
      print("starved", v, err and err:kind(), err)
      print("after", funcs.call("ll:inc_inline_wasi", 2))
    ]], "ulimit -n 64;")
    assert.are.equal(0, status, out)
    assert.is_nil(out:find("panicked", 1, true), out)
    assert.truthy(out:find("starved\tnil\tUNAVAILABLE\tfailed to call `ll:inc_inline_wasi`: cannot build its runtime", 1, true), out)
    assert.truthy(out:find("after\t3", 1, true), out)
  end)
end)

describe("an HTTP service whose runtime cannot be built (out of file descriptors)", function()
  it("is not started: start returns UNAVAILABLE with the reason, and a later start works", function()
    local status, out = h.run_lua(EXHAUST .. [[
      local funcs = require("funcs")
      assert(funcs.load("spec/fixtures/longlived"))
      exhaust()
      -- One descriptor for the listening socket, none for the runtime.
      table.remove(held):close()
      local addr, err = funcs.http.start("ll:web")
      release()
      print("starved", addr, err and err:kind(), err)
      addr, err = funcs.http.start("ll:web")
      print("after", addr ~= nil, err)
    ]], "ulimit -n 64;")
    assert.are.equal(0, status, out)
    assert.truthy(out:find("starved\tnil\tUNAVAILABLE\thttp.service `ll:web`: cannot build its runtime", 1, true), out)
    assert.truthy(out:find("after\ttrue\tnil", 1, true), out)
  end)
end)

-- Counts the HTTP services' threads, by name, in the child (the shell's parent).
local THREADS = [[
  local function threads()
    local p = io.popen("cat /proc/$PPID/task/*/comm")
    local n = 0
    for name in p:lines() do
      if name:find("^funcs%-http%-") then n = n + 1 end
    end
    p:close()
    return n
  end
]]

describe("stopping an HTTP service with calls in flight", function()
  it("leaves none of its threads running, and the state closes cleanly after", function()
    local status, out = h.run_lua(THREADS .. [[
      local funcs = require("funcs")
      assert(funcs.load("spec/fixtures/longlived"))
      local addr = assert(funcs.http.start("ll:web"))
      -- Lua's calls take the worker and the queue, and keep them.
      local running = assert(funcs.async("ll:spin_static"))
      local queued = assert(funcs.async("ll:spin_static"))
      -- Two requests, whose calls run on the service's own threads.
      for _ = 1, 2 do
        os.execute("curl -s -m 20 -X POST http://" .. addr .. "/spin > /dev/null 2>&1 &")
      end
      for _ = 1, 1000 do
        if funcs.stats("ll:spin_static").in_flight >= 3 then break end
        os.execute("sleep 0.01")
      end
      print("in flight", funcs.stats("ll:spin_static").in_flight)
      assert(funcs.http.stop("ll:web"))
      print("after stop", threads())
      print("lua's calls", running:is_complete(), queued:is_complete())
    ]])
    assert.are.equal(0, status, out)
    assert.truthy(out:find("in flight\t3", 1, true), out)
    assert.truthy(out:find("after stop\t0", 1, true), out)
    -- Not the service's calls: they go on until the state closes.
    assert.truthy(out:find("lua's calls\tfalse\tfalse", 1, true), out)
    assert.is_nil(out:find("panicked", 1, true), out)
  end)
end)

describe("stopping an HTTP service with calls of an inline pool in flight", function()
  it("cancels them, leaves none of its threads running, and the state closes cleanly after", function()
    local status, out = h.run_lua(THREADS .. [[
      local funcs = require("funcs")
      assert(funcs.load("spec/fixtures/longlived"))
      local addr = assert(funcs.http.start("ll:web"))
      -- Both run on the service's own threads (an inline pool takes 128 there).
      for _ = 1, 2 do
        os.execute("curl -s -m 20 -X POST http://" .. addr .. "/spin-inline > /dev/null 2>&1 &")
      end
      for _ = 1, 1000 do
        if funcs.stats("ll:spin_inline").in_flight >= 2 then break end
        os.execute("sleep 0.01")
      end
      print("running", funcs.stats("ll:spin_inline").in_flight)
      assert(funcs.http.stop("ll:web"))
      print("after stop", threads())
      print("stats", funcs.stats("ll:spin_inline").in_flight)
    ]])
    assert.are.equal(0, status, out)
    assert.truthy(out:find("running\t2", 1, true), out)
    assert.truthy(out:find("after stop\t0", 1, true), out)
    assert.truthy(out:find("stats\t0", 1, true), out)
    assert.is_nil(out:find("panicked", 1, true), out)
  end)
end)
