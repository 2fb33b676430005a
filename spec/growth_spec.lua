-- A long-lived process (OpenResty workers, daemons reloading for months): what funcs holds
-- must not grow with reloads, re-registrations or bursts. Counts and sizes, never speed.
local funcs = require("funcs")

local function registry_size()
  local n = 0
  for _ in pairs(debug.getregistry()) do n = n + 1 end
  return n
end

-- This process's threads (a child's /proc/self would be its own).
local function threads()
  local pid = assert(io.open("/proc/self/stat")):read("*l"):match("^(%d+)")
  local n, p = 0, io.popen("ls /proc/" .. pid .. "/task")
  for _ in p:lines() do n = n + 1 end
  p:close()
  return n
end

local function collect()
  collectgarbage()
  collectgarbage()
end

-- Polls `f` (a condition) every 100 ms for up to `seconds`; whether it held.
local function eventually(seconds, f)
  local deadline = funcs.clock() + seconds
  repeat
    if f() then return true end
    funcs.poll()
    local t = funcs.clock() + 0.1
    while funcs.clock() < t do end
  until funcs.clock() > deadline
  return f()
end

local function sleep(seconds)
  os.execute("sleep " .. seconds)
end

describe("funcs.host", function()
  local function register(i)
    -- Each registration's function keeps 1 KiB of its own.
    local pad = ("x"):rep(1024) .. i
    assert(funcs.host("test:minimal/host", { add = function(a, b) return a + b + #pad - #pad end }))
  end

  it("registering an interface again releases the old registration (20,000 times)", function()
    for i = 1, 500 do register(i) end
    collect()
    local memory, size = collectgarbage("count"), registry_size()
    for i = 1, 20000 do register(i) end
    collect()
    -- 20,000 registrations kept would be over 20 MiB of Lua memory.
    local grown = collectgarbage("count") - memory
    assert.is_true(grown < 512, ("Lua memory grew by %.0f KiB"):format(grown))
    assert.is_true(registry_size() - size < 16, ("registry: %d -> %d"):format(size, registry_size()))
  end)

  it("a registration replaced while loaded entries use it is released when they are reloaded", function()
    local function cycle(i)
      register(i)
      assert(funcs.load("spec/fixtures/growth"))
      assert.are.equal(13, funcs.call("growth:add_inline", 6, 7))
      assert.are.equal(13, funcs.call("growth:add_lazy", 6, 7))
    end
    for i = 1, 50 do cycle(i) end
    collect()
    local memory, size = collectgarbage("count"), registry_size()
    for i = 1, 300 do cycle(i) end
    collect()
    local grown = collectgarbage("count") - memory
    -- Each reload replaced one registration of 1 KiB: 300 kept would be 300 KiB and more.
    assert.is_true(grown < 200, ("Lua memory grew by %.0f KiB"):format(grown))
    assert.is_true(registry_size() - size < 16, ("registry: %d -> %d"):format(size, registry_size()))
  end)
end)

describe("pool.reuse", function()
  setup(function()
    assert(funcs.host("test:minimal/host", { add = function(a, b) return a + b end }))
    assert(funcs.load("spec/fixtures/growth"))
  end)

  it("keeps at most the pool's size of warm instances after a burst", function()
    local futures = {}
    for i = 1, 40 do futures[i] = assert(funcs.async("growth:sleep_reused", 50)) end
    for i = 1, 40 do assert(futures[i]:wait()) end
    local stats = funcs.stats("growth:sleep_reused")
    -- The burst ran more at once than max_size (2): calls of WASI entries interleave.
    assert.is_true(stats.instances > 2, "instances made: " .. stats.instances)
    assert.is_true(stats.warm_instances <= 2, "warm instances: " .. stats.warm_instances)
    assert.is_true(stats.warm_instances >= 1)
    assert.truthy(funcs.metrics():find('funcs_warm_instances{function="growth:sleep_reused"} '
      .. stats.warm_instances, 1, true))
  end)

  it("drops warm instances idle for the pool's idle time (5 s on an adaptive pool) #slow", function()
    local futures = {}
    for i = 1, 10 do futures[i] = assert(funcs.async("growth:sleep_adaptive", 20)) end
    for i = 1, 10 do assert(futures[i]:wait()) end
    assert.is_true(funcs.stats("growth:sleep_adaptive").warm_instances >= 1)
    -- Nothing touches the entry meanwhile.
    assert.is_true(eventually(15, function()
      return funcs.stats("growth:sleep_adaptive").warm_instances == 0
    end), "warm instances: " .. funcs.stats("growth:sleep_adaptive").warm_instances)
  end)
end)

describe("a reload", function()
  it("releases the old pools, their threads and instances, without another load", function()
    assert(funcs.host("test:minimal/host", { add = function(a, b) return a + b end }))
    local function warm_up()
      for _ = 1, 5 do assert(funcs.call("growth:static_reused")) end
      local futures = {}
      for i = 1, 6 do futures[i] = assert(funcs.async("growth:sleep_reused", 20)) end
      for i = 1, 6 do assert(futures[i]:wait()) end
      assert.are.equal(13, funcs.call("growth:add_lazy", 6, 7))
    end
    local function instances()
      local e = funcs.engine()
      return (e.core_instances or 0) + (e.component_instances or 0)
    end
    local function settled()
      local before = funcs.engine().pools
      sleep(0.3)
      return funcs.engine().pools == before
    end
    assert(funcs.load("spec/fixtures/growth"))
    warm_up()
    sleep(0.3)
    -- Another path's load: whatever a load releases is released now.
    assert(funcs.load("spec/fixtures/growth-other"))
    assert(eventually(10, settled))
    local pools, tasks, live = funcs.engine().pools, threads(), instances()
    assert.is_true(funcs.stats("growth:static_reused").warm_instances >= 1)

    -- Calls in flight at the reload: the old pools finish after it, when these end.
    local running = { assert(funcs.async("growth:sleep_reused", 300)), assert(funcs.async("growth:sleep_adaptive", 300)) }
    assert(funcs.load("spec/fixtures/growth"))
    warm_up()
    for _, f in ipairs(running) do assert(f:wait()) end
    -- The old pools' workers, stores and instances go once their last calls end, with
    -- nothing loaded meanwhile.
    local ok = eventually(20, function()
      return funcs.engine().pools <= pools and threads() <= tasks and instances() <= live
    end)
    assert.is_true(ok, ("pools %d -> %d, threads %d -> %d, instances %d -> %d"):format(
      pools, funcs.engine().pools, tasks, threads(), live, instances()))
  end)
end)
