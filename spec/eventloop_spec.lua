-- Event loops (SPEC section 12): funcs.fd() and funcs.poll(), and the adapters
-- lua/funcs/luv.lua and lua/funcs/cqueues.lua with Debian's lua-luv and lua-cqueues: a
-- hundred sleeping guests awaited from coroutines while a timer keeps ticking.
local funcs = require("funcs")
local h = require("spec.support.helpers")
local uv = require("luv")
local cqueues = require("cqueues")

local N = 100
local SLEEP_MS = 300

setup(function()
  assert(funcs.load("spec/fixtures/sandbox"))
end)

describe("funcs.fd and funcs.poll", function()
  -- In a fresh Lua state, so that no other spec's future completes in between.
  it("give a descriptor readable exactly while completions are unpolled, failures and cancels too", function()
    local status, out = h.run_lua([[
      local funcs = require("funcs")
      local uv = require("luv")
      assert(funcs.load("spec/fixtures/sandbox"))
      -- Whether the descriptor is readable now (a luv poll handle and one turn of the loop).
      local function readable()
        local seen = false
        local p = uv.new_poll(assert(funcs.fd()))
        p:start("r", function() seen = true end)
        uv.run("nowait")
        p:close()
        uv.run("nowait")
        return seen
      end
      -- A completion before the descriptor exists counts, and makes it readable at once.
      assert(assert(funcs.async("sb:add", 1, 2)):wait() == 3)
      local fd = funcs.fd()
      assert(type(fd) == "number" and fd == funcs.fd())
      assert(readable(), "readable after an unpolled completion")
      assert(funcs.poll() == 1)
      assert(not readable(), "readable after poll")
      assert(funcs.poll() == 0)

      local a, b = assert(funcs.async("sb:sleep", 1)), assert(funcs.async("sb:add", 2, 3))
      assert(a:wait())
      assert(b:wait() == 5)
      assert(readable())
      assert(funcs.poll() == 2)
      assert(not readable())

      local bad = assert(funcs.async("sb:sleep_limited", 60000))
      local cancelled = assert(funcs.async("sb:sleep", 60000))
      cancelled:cancel()
      local v, err = bad:wait()
      assert(v == nil and err:kind() == "TIMEOUT", tostring(err))
      local n = funcs.poll()
      assert(n == 2, "completions: " .. n)
      print("fd ok")
    ]])
    assert.are.equal(0, status, out)
    assert.truthy(out:find("fd ok", 1, true), out)
  end)
end)

-- Starts N sleeping calls awaited by coroutines that `spawn` starts; `run` drives the loop
-- with a ticking timer. Checks every answer, that the loop ticked before the first answer
-- (it was never blocked on a guest) and that the loop ended by itself.
local function hundred_sleepers(await, spawn, run)
  funcs.poll()
  local state = { done = 0, ticks = 0, ticks_at_first = nil, values = {}, errors = {} }
  for i = 1, N do
    spawn(function()
      local v, err = await(assert(funcs.async("sb:sleep", SLEEP_MS)))
      state.ticks_at_first = state.ticks_at_first or state.ticks
      state.values[i], state.errors[i] = v, err
      state.done = state.done + 1
    end)
  end
  run(state)
  assert.are.equal(N, state.done)
  for i = 1, N do
    assert.is_nil(state.errors[i])
    assert.is_true(state.values[i] >= SLEEP_MS * 1000000, "call " .. i)
  end
  -- A 10 ms timer during 300 ms sleeps: ticks before any answer, if the loop never blocked.
  assert.is_true(state.ticks_at_first >= 3, "ticks before the first answer: " .. state.ticks_at_first)
  assert.are.equal(0, funcs.stats("sb:sleep").in_flight)
end

describe("the luv adapter", function()
  local await = require("funcs.luv").await

  it("awaits 100 sleeping guests from coroutines while a timer keeps ticking", function()
    hundred_sleepers(await, function(fn) coroutine.wrap(fn)() end, function(state)
      local timer = uv.new_timer()
      local guard = uv.new_timer()
      timer:start(10, 10, function()
        state.ticks = state.ticks + 1
        if state.done == N then
          timer:close()
          guard:close()
        end
      end)
      -- A hang would stop here instead of hanging busted.
      guard:start(20000, 0, function() uv.stop() end)
      uv.run()
    end)
  end)

  it("returns a failed call's error and falls back to wait outside a coroutine", function()
    local got
    coroutine.wrap(function() got = { await(assert(funcs.async("sb:sleep_limited", 60000))) } end)()
    uv.run()
    h.assert_fails("TIMEOUT", { "`sb:sleep_limited`" }, got[1], got[2])
    assert.are.equal(5, await(assert(funcs.async("sb:add", 2, 3))))
  end)
end)

describe("the cqueues adapter", function()
  local await = require("funcs.cqueues").await

  it("awaits 100 sleeping guests from coroutines while a timer keeps ticking", function()
    local cq = cqueues.new()
    hundred_sleepers(await, function(fn) cq:wrap(fn) end, function(state)
      cq:wrap(function()
        while state.done < N do
          state.ticks = state.ticks + 1
          cqueues.sleep(0.01)
        end
      end)
      local deadline = funcs.clock() + 20
      while not cq:empty() and funcs.clock() < deadline do
        assert(cq:step(1))
      end
      assert.is_true(cq:empty(), "the controller still has work after 20 s")
    end)
  end)

  it("returns a failed call's error and falls back to wait outside a controller", function()
    local cq = cqueues.new()
    local got
    cq:wrap(function() got = { await(assert(funcs.async("sb:sleep_limited", 60000))) } end)
    assert(cq:loop())
    h.assert_fails("TIMEOUT", { "`sb:sleep_limited`" }, got[1], got[2])
    assert.are.equal(5, await(assert(funcs.async("sb:add", 2, 3))))
  end)
end)

describe("host calls from workers under an event loop", function()
  it("are answered through funcs.fd while coroutines await (luv and cqueues)", function()
    local calls = 0
    assert(funcs.host("test:minimal/host", { add = function(a, b) calls = calls + 1; return a + b end }))
    assert(funcs.host("test:strings/host", { log = function() end, concat = function(a, b) return a .. b end }))
    assert(funcs.host("wisma:calculator/host", { log = function() end, compute = function(a, b) return a + b end }))
    assert(funcs.load("spec/fixtures/host"))

    local await = require("funcs.luv").await
    local got = {}
    for i = 1, 10 do
      coroutine.wrap(function() got[i] = await(assert(funcs.async("host:add_lazy", i, 100))) end)()
    end
    uv.run()
    for i = 1, 10 do assert.are.equal(i + 100, got[i]) end

    local cq = cqueues.new()
    local cawait = require("funcs.cqueues").await
    for i = 1, 10 do
      cq:wrap(function() got[i] = cawait(assert(funcs.async("host:add_lazy", i, 200))) end)
    end
    assert(cq:loop())
    for i = 1, 10 do assert.are.equal(i + 200, got[i]) end
    assert.are.equal(20, calls)
  end)
end)
