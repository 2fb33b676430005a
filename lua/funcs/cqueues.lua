--- Awaiting funcs futures in cqueues without blocking the controller.
---
--- Inside a coroutine a cqueues controller runs, `await(future)` waits until the call
--- completes, then returns `value, err` like `future:result()`; the controller runs its other
--- coroutines meanwhile. One dispatcher coroutine per controller polls `funcs.fd()`, calls
--- `funcs.poll()` and wakes the waiters; it ends when nobody waits, so `cq:loop()` still
--- returns when the work is done. Outside a controller, `await` falls back to `future:wait()`.
---
---     local cqueues = require("cqueues")
---     local await = require("funcs.cqueues").await
---     local cq = cqueues.new()
---     cq:wrap(function() print(await(funcs.async("app:compute", 6, 7))) end)
---     assert(cq:loop())
local cqueues = require("cqueues")
local condition = require("cqueues.condition")
local funcs = require("funcs")
local base = require("funcs.await")

local M = {}

-- What cqueues.poll waits on: funcs' descriptor, for reading.
local readable = {
  pollfd = function() return (funcs.fd()) end,
  events = function() return "r" end,
}

local states = setmetatable({}, { __mode = "k" }) -- controller -> its dispatcher's state

local function dispatcher(state)
  -- (No pcall around the loop: Lua 5.1 cannot yield across one.)
  local fd, err = funcs.fd()
  if not fd then
    state.running = false
    state.completed:signal() -- its waiters try again
    error(tostring(err), 0)
  end
  while state.waiters > 0 do
    -- The descriptor, or a change in who waits (the last waiter leaving ends this loop).
    cqueues.poll(readable, state.left)
    funcs.poll()
    -- Every controller's waiters: a poll here clears the descriptor for all of them.
    for _, s in pairs(states) do s.completed:signal() end
  end
  state.running = false
end

function M.await(future)
  local cq = cqueues.running()
  if not cq then return future:wait() end
  if future:is_complete() then return future:result() end
  local state = states[cq]
  if not state then
    state = { waiters = 0, completed = condition.new(), left = condition.new() }
    states[cq] = state
  end
  state.waiters = state.waiters + 1
  while not future:is_complete() do
    if not state.running then
      state.running = true
      cq:wrap(dispatcher, state)
    end
    state.completed:wait()
  end
  state.waiters = state.waiters - 1
  if state.waiters == 0 then state.left:signal() end
  return future:result()
end

--- Awaits a list of futures; the values and errors in the same order.
function M.all(futures)
  return base.all(futures, M.await)
end

return M
