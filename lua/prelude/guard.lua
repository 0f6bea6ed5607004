-- locusta prelude, chunk =[locusta/guard]: what a script may not do to the
-- process or to its own user.
--
-- locusta.quit(code) (Locust's runner.quit()) and os.exit(code): ask the
-- run to stop, every report to be written and the process to exit with
-- `code`; the calling user stops (QUIT unwinds its task without counting
-- as an exception, then its on_stop runs). os.exit never ends the process
-- on the spot.
--
-- locusta.process_exit_code = N (Locust's environment.process_exit_code):
-- the exit status when the run ends, typically chosen by a test_stop
-- listener from locusta.stats; an integer 0..255, or nil to unset. The
-- value lives in Rust, shared by every shard's state, so the module keeps
-- no such field and the metatable sees every read and write of it. A bad
-- value is an error at the script's line.
--
-- Ending one user (Locust's StopUser): error(locusta.StopUser) ends the
-- task at once; self:stop() (Locust's User.stop()) lets the task finish.
-- Either way the user's on_stop runs and the user is not restarted.
--
-- coroutine.resume / coroutine.wrap: count how deep the script is inside
-- coroutines it created, so that a request or locusta.sleep made there is
-- refused with a clear error instead of suspending the wrong coroutine
-- (the request would go out and never be counted), and so that the
-- watchdog can reach a busy loop inside one (it arms the running threads).

local M, N, _, P = ...

local error, rawset, setmetatable = error, rawset, setmetatable
local describe, fail = P.describe, P.fail
local co_create, co_resume = coroutine.create, coroutine.resume

local quit_native = N.quit -- (code): record the exit code, stop the caller
local stop_native = N.stop_user -- (): the calling user stops after its task
local enter, leave = N.nested_enter, N.nested_leave
local QUIT = P.QUIT

M.StopUser = P.STOP_USER

local set_exit_code, get_exit_code = N.set_process_exit_code, N.process_exit_code

setmetatable(M, {
  __index = function(_, k)
    if k == "process_exit_code" then
      return get_exit_code()
    end
  end,
  __newindex = function(t, k, v)
    if k ~= "process_exit_code" then
      rawset(t, k, v)
    elseif not set_exit_code(v) then
      fail("locusta.process_exit_code must be an integer from 0 to 255, or nil (got " .. describe(v) .. ")")
    end
  end,
})

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

local function left(co, ...)
  leave(co)
  return ...
end

coroutine.resume = function(co, ...)
  enter(co)
  return left(co, co_resume(co, ...))
end

local function unwrap(co, ok, ...)
  leave(co)
  if not ok then
    error((...), 0)
  end
  return ...
end

coroutine.wrap = function(f)
  local co = co_create(f)
  return function(...)
    enter(co)
    return unwrap(co, co_resume(co, ...))
  end
end

