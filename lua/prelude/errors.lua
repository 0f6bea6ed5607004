-- locusta prelude, chunk 1 (=[locusta/errors]): errors and source locations.
--
-- Values as shown in messages (describe), the user's file:line
-- (script_where), API misuse at load time (fail, fail_at), the interrupt
-- sentinels that TaskSet:interrupt() raises, and the xpcall message handler
-- with its traceback (on_error, report). Everything goes into P, the table
-- the prelude chunks share (see lua/locusta.lua).

local _, N, _, P = ...

local type, error, tostring = type, error, tostring
local setmetatable, getmetatable = setmetatable, getmetatable
local traceback, getinfo = debug.traceback, debug.getinfo

local record_exception = N.record_exception -- (message, traceback)
local errmsg = N.errmsg -- (error value) -> string, for non-string errors
local is_kill = N.is_kill -- (error value) -> bool: a kill interrupted an await

-- Every prelude chunk is named "=[locusta...]" (src/script/runtime/state.rs).
local PRELUDE = "=[locusta"

local function describe(v)
  if type(v) == "string" then
    return string.format("%q", v)
  end
  if type(v) == "number" then
    return tostring(v)
  end
  return "a " .. type(v)
end

-- "file:line" of the innermost frame that belongs to the user's script.
local function script_where(level)
  level = (level or 1) + 1
  while true do
    local info = getinfo(level, "Sl")
    if not info then
      return nil
    end
    if info.what ~= "C" and info.source:sub(1, #PRELUDE) ~= PRELUDE and info.source:sub(1, 1) == "@" and info.currentline > 0 then
      return info.short_src .. ":" .. info.currentline
    end
    level = level + 1
  end
end

-- API misuse found while the script loads: error at the script's line.
local function fail(msg)
  local where = script_where(2)
  error(where and (where .. ": " .. msg) or msg, 0)
end

local function fail_at(where, msg)
  error(where and (where .. ": " .. msg) or msg, 0)
end

-- Raised by TaskSet:interrupt(): with reschedule (the default) the parent
-- picks its next task at once, without it the parent waits first.
local INTERRUPT = setmetatable({}, {
  __tostring = function()
    return "interrupt() called outside of a task set's task"
  end,
})
local INTERRUPT_WAIT = setmetatable({}, { __tostring = getmetatable(INTERRUPT).__tostring })

-- Raised by locusta.quit() / os.exit(): not an error of the script; the
-- handlers pass it through and report() ignores it (lua/prelude/guard.lua).
local QUIT = setmetatable({}, {
  __tostring = function()
    return "locusta.quit() called"
  end,
})

-- locusta.StopUser (Locust's `raise StopUser()`): the user runs its
-- on_stop and ends, without an exception.
local STOP_USER = setmetatable({}, {
  __tostring = function()
    return "locusta.StopUser"
  end,
})

-- What an await (request, locusta.sleep) pending when the user was killed
-- raises, once on_error has seen it: the user runs its on_stop and ends.
local KILLED = setmetatable({}, {
  __tostring = function()
    return "the user was stopped"
  end,
})

-- Errors that end the user without being the script's error.
local function ends_user(e)
  return e == QUIT or e == STOP_USER or e == KILLED
end

local last_traceback = "" -- set by on_error, read right after xpcall returns

-- xpcall message handler: the message with the script's file:line, and the
-- Lua traceback (cut at the task runner, whose frames are noise).
local function on_error(e)
  if e == INTERRUPT or e == INTERRUPT_WAIT or ends_user(e) then
    return e
  end
  if type(e) == "userdata" and is_kill(e) then
    return KILLED
  end
  local msg
  if type(e) == "string" then
    msg = e
  elseif type(e) == "table" then
    local mt = getmetatable(e)
    if mt and mt.__tostring then
      msg = tostring(e)
    else
      msg = "error object is a table value"
    end
  else
    msg = errmsg(e)
  end
  if not msg:find("^[^\n]-:%d+: ") then
    local where = script_where(2)
    if where then
      msg = where .. ": " .. msg
    end
  end
  local tb = traceback(nil, 2)
  local cut = tb:find("\n\t%[C%]: in function 'xpcall'")
  if cut then
    tb = tb:sub(1, cut - 1)
  end
  if tb:find("__mlua_async_poll", 1, true) then
    tb = tb:gsub("\n\t__mlua_async_poll[^\n]*", "")
  end
  last_traceback = tb
  return msg
end

local function report(err)
  if ends_user(err) then
    return
  end
  if err == INTERRUPT or err == INTERRUPT_WAIT then
    record_exception(tostring(INTERRUPT), last_traceback)
  else
    record_exception(err, last_traceback)
  end
end

-- For errors found outside xpcall: report them without a traceback.
local function clear_traceback()
  last_traceback = ""
end

P.describe = describe
P.script_where = script_where
P.fail = fail
P.fail_at = fail_at
P.INTERRUPT = INTERRUPT
P.INTERRUPT_WAIT = INTERRUPT_WAIT
P.QUIT = QUIT
P.STOP_USER = STOP_USER
P.KILLED = KILLED
P.ends_user = ends_user
P.on_error = on_error
P.report = report
P.clear_traceback = clear_traceback
P.last_traceback = function()
  return last_traceback
end
