-- Pools and async calls (SPEC sections 3 and 5): each kind's bound, backpressure, many
-- futures, reload while calls run, trapping guests, shutdown and exit with calls in flight.
local funcs = require("funcs")
local await = require("funcs.await")
local h = require("spec.support.helpers")

-- About 150 ms of counting on this kind of machine; only the order of events is asserted.
local SPIN = 250000000

setup(function()
  assert(funcs.load("spec/fixtures/pools"))
end)

-- Starts `n` spins on `id` and samples its stats until all are done: the maxima seen.
local function observe(id, n)
  local futures = {}
  for i = 1, n do futures[i] = assert(funcs.async(id, SPIN)) end
  local max = { in_flight = 0, workers = 0, queued = 0 }
  local done
  repeat
    local s = funcs.stats(id)
    for k in pairs(max) do max[k] = math.max(max[k], s[k]) end
    done = true
    for _, f in ipairs(futures) do done = done and f:is_complete() end
    if not done then h.sleep(5) end
  until done
  for _, f in ipairs(futures) do assert.are.equal(SPIN, f:result()) end
  return max
end

describe("pools", function()
  it("choose the kind from the sizes when `type` is absent", function()
    assert.are.equal("lazy", funcs.stats("pools:default_add").pool)
    assert.are.equal("inline", funcs.stats("pools:sized_add").pool)
    assert.are.equal("static", funcs.stats("pools:static_add").pool)
  end)

  it("static: runs at most `workers` calls at once and queues the rest", function()
    local max = observe("pools:static_spin", 6)
    assert.are.equal(2, max.in_flight)
    assert.are.equal(2, max.workers)
    assert.is_true(max.queued > 0)
  end)

  it("lazy: grows workers on demand up to max_size", function()
    assert.are.equal(0, funcs.stats("pools:lazy_spin").workers)
    local max = observe("pools:lazy_spin", 6)
    assert.are.equal(3, max.in_flight)
    assert.are.equal(3, max.workers)
  end)

  it("adaptive: starts small and scales up to max_size under load", function()
    assert.are.equal(0, funcs.stats("pools:adaptive_spin").workers)
    assert.are.equal(1, funcs.stats("pools:adaptive_add").workers) -- warm_start
    local max = observe("pools:adaptive_spin", 6)
    assert.are.equal(2, max.in_flight)
    assert.are.equal(2, max.workers)
    assert.is_true(funcs.stats("pools:adaptive_spin").workers >= 1)
  end)

  it("lazy and adaptive with WASI: CPU-bound async calls spread over max_size workers", function()
    for id, size in pairs({ ["pools:lazy_spin_wasi"] = 3, ["pools:adaptive_spin_wasi"] = 2 }) do
      local max = observe(id, 6)
      assert.are.equal(size, max.in_flight, id)
      assert.are.equal(size, max.workers, id)
    end
  end)

  it("inline: runs on the calling thread, so a future is complete when it is returned", function()
    local f = assert(funcs.async("pools:inline_spin", 1000))
    assert.is_true(f:is_complete())
    assert.are.equal(1000, f:result())
    assert.are.equal(0, funcs.stats("pools:inline_spin").workers)
  end)

  it("static: a full queue blocks the caller until there is room, dropping nothing", function()
    -- One worker, a queue of 2: the first call runs, two wait, the fourth must wait for room.
    local f = {}
    for i = 1, 3 do f[i] = assert(funcs.async("pools:queue_spin", SPIN + i)) end
    f[4] = assert(funcs.async("pools:queue_spin", SPIN + 4))
    assert.is_true(f[1]:is_complete(), "the fourth call was queued without room")
    for i = 1, 4 do assert.are.equal(SPIN + i, f[i]:wait()) end
  end)

  it("run 10,000 async calls over 4 entries with every result right", function()
    local ids = { "pools:inline_add", "pools:lazy_add", "pools:static_add", "pools:adaptive_add" }
    local before = {}
    for _, id in ipairs(ids) do before[id] = funcs.stats(id).calls end
    local futures = {}
    for i = 1, 10000 do
      futures[i] = assert(funcs.async(ids[i % 4 + 1], i, 2 * i))
    end
    for i = 1, 10000 do
      local v, err = futures[i]:wait()
      assert.are.equal(3 * i, v, tostring(err))
    end
    for _, id in ipairs(ids) do
      local s = funcs.stats(id)
      assert.are.equal(2500, s.calls - before[id])
      assert.are.equal(0, s.failures)
    end
  end)

  it("keep a worker usable after its guest traps", function()
    for _ = 1, 3 do
      local v, err = funcs.async("pools:check", 0):wait()
      h.assert_fails("INTERNAL", { "`pools:check`", "unreachable" }, v, err)
      assert.are.equal(5, funcs.async("pools:check", 5):wait())
      assert.are.equal(6, funcs.call("pools:check", 6))
    end
    local s = funcs.stats("pools:check")
    assert.are.equal(1, s.workers)
    assert.are.equal(3, s.failures)
  end)
end)

describe("instances", function()
  it("are fresh for every call: no guest state survives", function()
    for _ = 1, 3 do assert.are.equal(1, funcs.call("pools:counter")) end
  end)

  it("serve `pool.reuse` calls each when asked to, sharing guest state", function()
    local before = funcs.stats("pools:counter_reused").instances
    local seen = {}
    for i = 1, 6 do seen[i] = funcs.call("pools:counter_reused") end
    assert.are.same({ 1, 2, 3, 1, 2, 3 }, seen)
    assert.are.equal(2, funcs.stats("pools:counter_reused").instances - before)
  end)

  it("come from the pooling allocator where it can be reserved", function()
    local engine = funcs.engine()
    assert.truthy(engine.allocator == "pooling" or engine.reason, "on-demand without a reason")
    assert.are.equal("string", type(engine.wasmtime))
  end)

  it("fall back to on-demand allocation under a virtual memory limit", function()
    -- 8 GiB of address space: too little for the pool's reservation, plenty for a call.
    local status, out = h.run_lua([[
      local funcs = require("funcs")
      assert(funcs.load("spec/fixtures/pools"))
      print(funcs.call("pools:static_add", 2, 3), funcs.engine().allocator)
    ]], "ulimit -v 8388608;")
    assert.are.equal(0, status, out)
    assert.truthy(out:find("5\ton-demand", 1, true), out)
  end)
end)

describe("reload", function()
  local dir

  local function write(version)
    local f = assert(io.open(dir .. "/_index.yaml", "w"))
    f:write(([[
namespace: live
entries:
  - name: version
    kind: function.wat
    method: version
    pool: {type: static, workers: 2}
    source: '(module (func (export "version") (param i32) (result i32) (i32.add (local.get 0) (i32.const %d))))'
]]):format(version * 1000000))
    f:close()
  end

  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
  end)

  after_each(function()
    os.execute("rm -rf " .. dir)
  end)

  it("sends the calls by an ID to the new code from the reload on, and to nothing once it is gone", function()
    write(1)
    assert(funcs.load(dir))
    local id = "live:version"
    assert.are.equal(1000001, funcs.call(id, 1))
    write(2)
    assert(funcs.load(dir))
    assert.are.equal(2000001, funcs.call(id, 1))
    local f = assert(io.open(dir .. "/_index.yaml", "w"))
    f:write("namespace: live\nentries: []\n")
    f:close()
    assert(funcs.load(dir))
    local value, err = funcs.call(id, 1)
    assert.is_nil(value)
    assert.are.equal("NOT_FOUND", err:kind())
  end)

  it("swaps code under a stream of async calls without losing or mixing results", function()
    write(1)
    assert(funcs.load(dir))
    local futures = {}
    for i = 1, 4000 do
      if i == 2001 then
        write(2)
        assert(funcs.load(dir))
      end
      futures[i] = assert(funcs.async("live:version", i))
    end
    for i = 1, 4000 do
      local v, err = futures[i]:wait()
      local want = i + (i <= 2000 and 1000000 or 2000000)
      assert.are.equal(want, v, tostring(err))
    end
  end)
end)

describe("futures", function()
  it("report completion, results and errors", function()
    local f = assert(funcs.async("pools:static_add", 2, 3))
    assert.are.equal(5, f:wait())
    assert.is_true(f:is_complete())
    assert.is_false(f:is_canceled())
    assert.are.equal(5, f:result())
    local bad, err = funcs.async("pools:static_add", "x", 1)
    h.assert_fails("INVALID", { "argument 1" }, bad, err)
    h.assert_fails("NOT_FOUND", { "pools:nope" }, funcs.async("pools:nope"))
    assert.has_error(function() funcs.async(42) end)
  end)

  it("give nil, nil while running and a TIMEOUT from wait(ms), the call going on", function()
    local f = assert(funcs.async("pools:queue_spin", SPIN))
    local v, err = f:result()
    assert.is_nil(v)
    assert.is_nil(err)
    h.assert_fails("TIMEOUT", { "the call goes on" }, f:wait(1))
    assert.are.equal(SPIN, f:wait())
  end)

  it("cancel a running guest, which frees its worker", function()
    local f = assert(funcs.async("pools:queue_spin", SPIN * 1000))
    h.eventually(function() return funcs.stats("pools:queue_spin").in_flight == 1 end)
    assert.is_true(f:cancel())
    h.assert_fails("CANCELED", { "canceled" }, f:wait())
    assert.is_true(f:is_canceled())
    assert.are.equal(7, funcs.async("pools:queue_spin", 7):wait())
  end)

  it("can be awaited from coroutines without blocking the thread", function()
    local results, order = {}, {}
    local tasks = {}
    for i = 1, 3 do
      tasks[i] = coroutine.create(function()
        local v = await(funcs.async("pools:static_spin", SPIN + i))
        results[i] = v
        order[#order + 1] = i
      end)
    end
    local yields = 0
    repeat
      local alive = false
      for _, co in ipairs(tasks) do
        if coroutine.status(co) ~= "dead" then
          alive = true
          assert(coroutine.resume(co))
          yields = yields + 1
        end
      end
    until not alive
    assert.are.same({ SPIN + 1, SPIN + 2, SPIN + 3 }, results)
    assert.is_true(yields > 3, "the coroutines never yielded")
    -- Outside a coroutine it waits.
    assert.are.equal(9, await(funcs.async("pools:static_add", 4, 5)))
  end)
end)

describe("shutdown", function()
  it("fails queued calls, interrupts running ones, and refuses new ones", function()
    local status, out = h.run_lua([[
      local funcs = require("funcs")
      assert(funcs.load("spec/fixtures/pools"))
      local running = assert(funcs.async("pools:queue_spin", 1e12))
      local queued = assert(funcs.async("pools:queue_spin", 1))
      while funcs.stats("pools:queue_spin").in_flight == 0 do end
      funcs.shutdown()
      local _, e1 = running:wait()
      local _, e2 = queued:wait()
      local _, e3 = funcs.call("pools:static_add", 1, 2)
      print(e1:kind(), e2:kind(), e3:kind())
    ]])
    assert.are.equal(0, status, out)
    assert.truthy(out:find("CANCELED\tUNAVAILABLE\tUNAVAILABLE", 1, true), out)
  end)

  it("lets a script end while calls are running", function()
    for _, ending in ipairs({ "", "os.exit(0, true)", "os.exit(0)" }) do
      local status, out = h.run_lua([[
        local funcs = require("funcs")
        assert(funcs.load("spec/fixtures/pools"))
        assert(funcs.load("spec/fixtures/sandbox"))
        for i = 1, 8 do funcs.async("pools:static_spin", 1e12) end
        for i = 1, 8 do funcs.async("pools:lazy_spin", 1e12) end
        for i = 1, 8 do funcs.async("sb:sleep", 60000) end
        while funcs.stats("pools:static_spin").in_flight < 2 do end
        print("leaving")
      ]] .. ending)
      assert.are.equal(0, status, ending .. ": " .. out)
      assert.truthy(out:find("leaving", 1, true), out)
    end
  end)
end)
