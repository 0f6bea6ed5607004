-- locusta prelude, chunk =[locusta/guard]: what a script may not do to the
-- process or to its own user.
--
-- locusta.quit(code) (Locust's runner.quit()) and os.exit(code): ask the
-- run to stop, every report to be written and the process to exit with
-- `code`; the calling user stops (QUIT unwinds its task without counting
-- as an exception, then its on_stop runs). os.exit never ends the process
-- on the spot.
--
-- Ending one user (Locust's StopUser): error(locusta.StopUser) ends the
-- task at once; self:stop() (Locust's User.stop()) lets the task finish.
-- Either way the user's on_stop runs and the user is not restarted.
--
-- coroutine.resume / coroutine.wrap: count how deep the script is inside
-- coroutines it created, so that a request or locusta.sleep made there is
-- refused with a clear error instead of suspending the wrong coroutine
-- (the request would go out and never be counted).

local M, N, _, P = ...

local error = error
local co_create, co_resume = coroutine.create, coroutine.resume

local quit_native = N.quit -- (code): record the exit code, stop the caller
local stop_native = N.stop_user -- (): the calling user stops after its task
local enter, leave = N.nested_enter, N.nested_leave
local QUIT = P.QUIT

M.StopUser = P.STOP_USER

function P.UserBase:stop()
  stop_native()
end

function M.quit(code)
  quit_native(code)
  error(QUIT, 0)
end

os.exit = function(code)
  M.quit(code)
end

local function left(...)
  leave()
  return ...
end

coroutine.resume = function(co, ...)
  enter()
  return left(co_resume(co, ...))
end

local function unwrap(ok, ...)
  leave()
  if not ok then
    error((...), 0)
  end
  return ...
end

coroutine.wrap = function(f)
  local co = co_create(f)
  return function(...)
    enter()
    return unwrap(co_resume(co, ...))
  end
end

