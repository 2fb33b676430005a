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
local M = {}

local function is_yieldable()
  if coroutine.isyieldable then return coroutine.isyieldable() end
  -- Lua 5.1: the main thread is the only one that cannot yield.
  local _, main = coroutine.running()
  return coroutine.running() ~= nil and not main
end

function M.await(future)
  if not is_yieldable() then
    return future:wait()
  end
  while not future:is_complete() do
    coroutine.yield(future)
  end
  return future:result()
end

function M.all(futures)
  local values, errors = {}, {}
  for i, f in ipairs(futures) do
    values[i], errors[i] = M.await(f)
  end
  return values, errors
end

return setmetatable(M, { __call = function(_, future) return M.await(future) end })
