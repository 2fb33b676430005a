-- Lazy and adaptive pools grow for CPU-bound calls (SPEC section 5, issue 27 item 1): two
-- concurrent calls of an entry whose pool may have 2 workers run on 2 threads at once,
-- whether the entry has no imports, WASI, or host imports, and whether an idle worker is
-- already there. The overlap is read from inside the guests: each reads the clock when it
-- starts and ends its spin and returns both, and the two intervals must overlap (two calls
-- run one after the other cannot, however fast or slow the machine). WASI's monotonic clock
-- counts from each call's own start, so the guests read the realtime clock.
local funcs = require("funcs")
local h = require("spec.support.helpers")

-- Some 200 ms of counting: long enough for the second worker to start before the first
-- call ends, on a loaded machine too.
local SPIN = 400000000

-- The spin, its clock readings around it: `span(n) -> (start, end)` in ns.
local SPAN = [[
      (module
        (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
        %s
        (memory (export "memory") 1)
        (func $now (result i64)
          (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 0)))
          (i64.load (i32.const 0)))
        (func (export "span") (param $n i64) (result i64 i64) (local $i i64) (local $start i64)
          %s
          (local.set $start (call $now))
          (block $done (loop $l
            (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
            (local.set $i (i64.add (local.get $i) (i64.const 1)))
            (br $l)))
          (local.get $start)
          (call $now)))]]

-- Without imports a guest has no clock: its calls hold their thread from start to end (the
-- entry is not async), so two of them counted in flight at once run on two threads.
local SPIN_ONLY = [[
      (module
        (func (export "spin") (param $n i64) (result i64) (local $i i64)
          (block $done (loop $l
            (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
            (local.set $i (i64.add (local.get $i) (i64.const 1)))
            (br $l)))
          (local.get $i)))]]

local IMPORTS = {
  none = { imports = "[]", method = "spin", source = SPIN_ONLY },
  wasi = { imports = "[wasi:clocks]", method = "span", source = SPAN:format("", "") },
  -- A host call first: the call waits for the Lua thread, and its worker is free meanwhile.
  host = {
    imports = "[grow_host, wasi:clocks]",
    method = "span",
    source = SPAN:format(
      [[(import "grow_host" "ping" (func $ping (param i64) (result i64)))]],
      "(local.set $n (call $ping (local.get $n)))"
    ),
  },
}

local POOLS = {
  lazy = "{type: lazy, max_size: 2}",
  adaptive = "{type: adaptive, max_size: 2}",
}

setup(function()
  assert(funcs.host("grow_host", { ping = function(n) return n end }))
  local yaml = { 'version: "1.0"', "namespace: grow", "entries:" }
  for kind, pool in pairs(POOLS) do
    for name, i in pairs(IMPORTS) do
      for _, warm in ipairs({ "cold", "warm" }) do
        yaml[#yaml + 1] = ("  - name: %s_%s_%s\n    kind: function.wat\n    method: %s\n    imports: %s\n    pool: %s\n    source: |\n%s")
          :format(kind, name, warm, i.method, i.imports, pool, i.source)
      end
    end
  end
  assert(h.load_yaml(funcs, table.concat(yaml, "\n") .. "\n"))
end)

-- Two calls of `id` at once: their results, and the most calls seen in flight together.
local function two(id)
  local futures = { assert(funcs.async(id, SPIN)), assert(funcs.async(id, SPIN)) }
  local in_flight = 0
  repeat
    in_flight = math.max(in_flight, funcs.stats(id).in_flight)
    local done = futures[1]:is_complete() and futures[2]:is_complete()
    if not done then
      -- Answers the host calls waiting (a wait of 1 ms), then samples again.
      local f = futures[1]:is_complete() and futures[2] or futures[1]
      f:wait(1)
    end
  until done
  return { assert(futures[1]:result()), assert(futures[2]:result()) }, in_flight
end

describe("lazy and adaptive pools", function()
  for _, kind in ipairs({ "lazy", "adaptive" }) do
    for _, imports in ipairs({ "none", "wasi", "host" }) do
      for _, warm in ipairs({ "cold", "warm" }) do
        local id = ("grow:%s_%s_%s"):format(kind, imports, warm)
        it(("run 2 CPU-bound calls at once (%s, imports: %s, %s)"):format(kind, imports, warm), function()
          if warm == "warm" then
            -- One call leaves one worker, idle and waiting.
            assert(funcs.async(id, 1):wait())
            assert.are.equal(1, funcs.stats(id).workers)
          else
            assert.are.equal(0, funcs.stats(id).workers)
          end
          local results, in_flight = two(id)
          if imports == "none" then
            assert.are.equal(SPIN, results[1])
            assert.are.equal(SPIN, results[2])
            assert.are.equal(2, in_flight)
          else
            local a, b = results[1], results[2]
            assert.is_true(a[1] < a[2] and b[1] < b[2])
            -- Each started before the other ended.
            assert.is_true(math.max(a[1], b[1]) < math.min(a[2], b[2]),
              ("[%d, %d] and [%d, %d] do not overlap"):format(a[1], a[2], b[1], b[2]))
          end
          assert.are.equal(2, funcs.stats(id).workers)
        end)
      end
    end
  end
end)
