-- Limits and the import sandbox (SPEC sections 6 and 7): deadlines, memory caps, traps,
-- exits, WASI preview 1 and 2, env isolation, mounts, sleeping guests.
local funcs = require("funcs")
local h = require("spec.support.helpers")

setup(function()
  assert(funcs.load("spec/fixtures/sandbox"))
end)

describe("limits", function()
  it("stop a runaway loop with TIMEOUT, call after call, and the worker stays usable", function()
    for _ = 1, 3 do
      h.assert_fails("TIMEOUT", { "`sb:spin`", "execution time limit of 100 ms exceeded" },
        funcs.call("sb:spin"))
    end
    assert.are.equal(3, funcs.call("sb:add", 1, 2))
    assert.are.equal(0, funcs.stats("sb:spin").in_flight)
  end)

  it("let an executor's timeout replace the entry's", function()
    local quick = funcs.new():with_options({ timeout = 30 })
    h.assert_fails("TIMEOUT", { "execution time limit of 30 ms exceeded" }, quick:call("sb:spin_free"))
    h.assert_fails("TIMEOUT", { "execution time limit of 30 ms exceeded" }, quick:async("sb:spin_free"):wait())
    assert.has_error(function() funcs.new():with_options({ timeout = "soon" }) end)
    assert.has_error(function() funcs.new():with_options({ retries = 3 }) end)
  end)

  it("stop a memory bomb at the cap with a clear error", function()
    local v, err = funcs.call("sb:bomb")
    h.assert_fails("INTERNAL", { "`sb:bomb`", "memory growth beyond the limit of 4194304 bytes was refused" }, v, err)
    assert.are.equal("unreachable_code_reached", err:details().trap)
  end)

  it("report deep recursion as a stack overflow trap", function()
    local v, err = funcs.call("sb:recurse")
    h.assert_fails("INTERNAL", { "`sb:recurse`", "call stack exhausted" }, v, err)
    assert.are.equal("stack_overflow", err:details().trap)
  end)
end)

describe("sleeping guests", function()
  it("sleep through wasi:clocks and wasi:io/poll", function()
    local elapsed = assert(funcs.call("sb:sleep", 20))
    assert.is_true(elapsed >= 20 * 1000000)
  end)

  it("are stopped by the deadline while they sleep", function()
    h.assert_fails("TIMEOUT", { "`sb:sleep_limited`", "execution time limit of 100 ms exceeded" },
      funcs.call("sb:sleep_limited", 60000))
  end)

  it("on an inline pool sleep on the caller's thread, stopped by the deadline too", function()
    assert.is_true(funcs.stats("sb:sleep_inline").direct)
    assert.is_true(assert(funcs.call("sb:sleep_inline", 20)) >= 20 * 1000000)
    h.assert_fails("TIMEOUT", { "`sb:sleep_inline`", "execution time limit of 100 ms exceeded" },
      funcs.call("sb:sleep_inline", 60000))
    assert.is_true(assert(funcs.call("sb:sleep_inline", 1)) >= 1000000)
  end)

  it("do not hold a worker: 20 sleep at once on 2 workers", function()
    local futures = {}
    for i = 1, 20 do futures[i] = assert(funcs.async("sb:sleep", 500)) end
    local seen = h.eventually(function()
      local s = funcs.stats("sb:sleep")
      return s.in_flight == 20 and s
    end)
    assert.is_truthy(seen, "20 calls never ran at once")
    assert.are.equal(2, seen.workers)
    for i = 1, 20 do
      assert.is_true(assert(futures[i]:wait()) >= 500 * 1000000)
    end
  end)

  it("can be cancelled while they sleep", function()
    local f = assert(funcs.async("sb:sleep", 60000))
    h.eventually(function() return funcs.stats("sb:sleep").in_flight == 1 end)
    assert.is_true(f:cancel())
    h.assert_fails("CANCELED", { "`sb:sleep`", "canceled" }, f:wait())
    assert.is_true(f:is_canceled())
    assert.is_truthy(h.eventually(function() return funcs.stats("sb:sleep").in_flight == 0 end))
  end)
end)

describe("the import sandbox", function()
  it("links only the listed interfaces; calling another is denied, naming it", function()
    h.assert_fails("PERMISSION_DENIED",
      { "`sb:sleep_unlinked`", "`wasi:clocks/monotonic-clock@0.2.8#now` is not granted" },
      funcs.call("sb:sleep_unlinked", 1))
    h.assert_fails("PERMISSION_DENIED",
      { "`sb:p1_unlinked`", "`wasi_snapshot_preview1::proc_exit` is not granted" },
      funcs.call("sb:p1_unlinked", 1))
  end)

  it("refuses an import it does not know at load", function()
    local v, err = funcs.load("spec/fixtures/bad/unknown_import")
    h.assert_fails("INVALID", { "`bad:import`", "unknown import `wasi:telepathy`" }, v, err)
    assert.are.equal("imports", err:details().field)
  end)

  it("gives WASI preview 1 to core modules, with exit codes ending only the call", function()
    local v, err = funcs.call("sb:p1", 7)
    h.assert_fails("INTERNAL", { "`sb:p1`", "guest exited with code 7" }, v, err)
    assert.are.equal(7, err:details().exit_code)
    -- Beyond WASI's range of 0..125 too (an AssemblyScript `abort` exits 255).
    for _, code in ipairs({ 126, 255 }) do
      v, err = funcs.call("sb:p1", code)
      h.assert_fails("INTERNAL", { "`sb:p1`", "guest exited with code " .. code }, v, err)
      assert.are.equal(code, err:details().exit_code)
    end
    assert.are.equal(0, funcs.call("sb:p1_hello")) -- errno 0: written
    assert.are.equal(0, funcs.call("sb:p1_env"))   -- nothing of the host environment
  end)

  it("sends guest stdout to the host's stdout and stderr to its stderr, lines prefixed by the entry ID", function()
    local chunk = [[
      local funcs = require("funcs")
      assert(funcs.load("spec/fixtures/sandbox"))
      assert(funcs.call("sb:p1_hello") == 0)
      assert(funcs.call("sb:p1_both") == 0)
      assert(funcs.async("sb:p1_both"):wait() == 0)
    ]]
    local status, out = h.run_lua(chunk, nil, "stdout")
    assert.are.equal(0, status, out)
    assert.truthy(out:find("[sb:p1_hello] hello from p1\n", 1, true), out)
    local _, n = out:gsub("%[sb:p1_both%] hello from p1\n", "")
    assert.are.equal(2, n, out)
    assert.falsy(out:find("trouble", 1, true), out)
    status, out = h.run_lua(chunk, nil, "stderr")
    assert.are.equal(0, status, out)
    _, n = out:gsub("%[sb:p1_both%] trouble in p1\n", "")
    assert.are.equal(2, n, out)
    assert.falsy(out:find("hello", 1, true), out)
  end)
end)
