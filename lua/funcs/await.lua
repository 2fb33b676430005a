--- Lets a coroutine wait for a funcs Future without blocking the thread.
---
--- Inside a coroutine, `await(future)` yields (passing the future to the scheduler that
--- resumes it) until the call is complete, then returns `value, err` like `future:result()`.
--- Outside a coroutine it falls back to `future:wait()`.
---
---     local await = require("funcs.await")
---     local co = coroutine.wrap(function() return await(funcs.async("app:compute", 6, 7)) end)
---
--- `all(futures)` awaits a list and returns the values and errors in the same order.
--- `is_yieldable()` tells whether the running code may yield (Lua 5.1 has no
--- `coroutine.isyieldable`); the event-loop adapters use both.
local M = {}

function M.is_yieldable()
  if coroutine.isyieldable then return coroutine.isyieldable() end
  -- Lua 5.1: the main thread is the only one that cannot yield.
  local _, main = coroutine.running()
  return coroutine.running() ~= nil and not main
end

function M.await(future)
  if not M.is_yieldable() then
    return future:wait()
  end
  while not future:is_complete() do
    coroutine.yield(future)
  end
  return future:result()
end

--- Awaits each future of the list (with `await_one`, `M.await` by default).
function M.all(futures, await_one)
  await_one = await_one or M.await
  local values, errors = {}, {}
  for i, f in ipairs(futures) do
    values[i], errors[i] = await_one(f)
  end
  return values, errors
end

return setmetatable(M, { __call = function(_, future) return M.await(future) end })
