--- Awaiting funcs futures on a luv (libuv) loop without blocking it.
---
--- Inside a coroutine, `await(future)` yields until the call completes, then returns
--- `value, err` like `future:result()`; the loop goes on meanwhile (timers, sockets). One
--- `uv.new_poll` on `funcs.fd()` resumes the coroutines whose futures completed; it is
--- active only while a coroutine waits, so `uv.run()` still returns when the work is done.
--- Outside a coroutine, `await` falls back to `future:wait()` (it blocks).
---
---     local uv = require("luv")
---     local await = require("funcs.luv").await
---     coroutine.wrap(function()
---       print(await(funcs.async("app:compute", 6, 7)))
---     end)()
---     uv.run()
---
--- The coroutines are resumed from the poll callback; the first error one raises is raised
--- there (with its traceback) after the others were resumed.
local uv = require("luv")
local funcs = require("funcs")
local base = require("funcs.await")

local M = {}

local waiting = {} -- coroutine -> the future it awaits
local count = 0
local handle

local function dispatch()
  funcs.poll()
  local ready = {}
  for co, future in pairs(waiting) do
    if future:is_complete() then ready[#ready + 1] = co end
  end
  for _, co in ipairs(ready) do
    waiting[co] = nil
    count = count - 1
  end
  if count == 0 then handle:stop() end
  -- Every ready coroutine is resumed; the first error is raised after.
  local first
  for _, co in ipairs(ready) do
    local ok, err = coroutine.resume(co)
    if not ok and not first then first = debug.traceback(co, tostring(err)) end
  end
  if first then error(first, 0) end
end

function M.await(future)
  if not base.is_yieldable() then return future:wait() end
  local co = coroutine.running()
  if not future:is_complete() then
    if not handle then handle = uv.new_poll(assert(funcs.fd())) end
    if count == 0 then handle:start("r", dispatch) end
    waiting[co] = future
    count = count + 1
    repeat coroutine.yield() until future:is_complete()
  end
  return future:result()
end

--- Awaits a list of futures; the values and errors in the same order.
function M.all(futures)
  return base.all(futures, M.await)
end

return M
