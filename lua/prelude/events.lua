-- locusta prelude, chunk =[locusta/events]: locusta.events (Locust's event
-- hooks), request:fire and locusta.measure (requests the script times
-- itself), and I.fire, which runs the listeners of the events Rust fires.
--
-- Firing the request event is what records a request, as in Locust: the
-- native half (src/script/fire.rs) checks the fields and records them in
-- the shard's stats, then every `request` listener runs.

local M, N, I, P = ...

local type, setmetatable, ipairs, xpcall, tostring, error = type, setmetatable, ipairs, xpcall, tostring, error

local request_listeners = N.request_listeners -- registry "locusta.request_listeners"
local record_request = N.record_request -- (type, name, ms, length, exception) -> nil | problem
local now = N.now -- monotonic seconds

local describe, fail = P.describe, P.fail
local on_error, report, ends_user = P.on_error, P.report, P.ends_user
local INTERRUPT, INTERRUPT_WAIT = P.INTERRUPT, P.INTERRUPT_WAIT

local Event = {}
Event.__index = Event

function Event:add_listener(fn)
  if type(fn) ~= "function" then
    fail("event listener must be a function (got " .. describe(fn) .. ")")
  end
  local l = self._listeners
  l[#l + 1] = fn
  return fn
end

Event.__call = Event.add_listener

-- Locust's EventHook.fire(**kwargs): every listener with the arguments;
-- an error in one propagates to the caller.
function Event:fire(...)
  local l = self._listeners
  for i = 1, #l do
    l[i](...)
  end
end

local function new_event(list)
  return setmetatable({ _listeners = list or {} }, Event)
end

local RequestEvent = setmetatable({}, { __index = Event })
RequestEvent.__index = RequestEvent
RequestEvent.__call = Event.add_listener

-- locusta.events.request:fire{ request_type=, name=, response_time=ms,
-- response_length=n, exception=nil|msg, context= }: records the request
-- (stats row, failures, percentiles), then runs every request listener
-- with the same table.
function RequestEvent:fire(t)
  if type(t) ~= "table" then
    fail("events.request:fire expects a table of fields (got " .. describe(t) .. ")")
  end
  local exception = t.exception
  if exception ~= nil and exception ~= false and type(exception) ~= "string" then
    exception = tostring(exception)
  end
  local problem = record_request(t.request_type, t.name, t.response_time, t.response_length, exception)
  if problem then
    fail("events.request:fire: " .. problem)
  end
  local l = self._listeners
  for i = 1, #l do
    l[i](t)
  end
end

M.events = {
  init = new_event(),
  test_start = new_event(),
  test_stop = new_event(),
  spawning_complete = new_event(),
  user_error = new_event(),
  quitting = new_event(),
  reset_stats = new_event(),
  cpu_warning = new_event(),
  report_to_master = new_event(),
  worker_report = new_event(),
  request = setmetatable({ _listeners = request_listeners }, RequestEvent),
}

-- Errors that are not the block's to swallow: they end or steer the user.
local function passes_through(e)
  return ends_user(e) or e == INTERRUPT or e == INTERRUPT_WAIT
end

local function measured(meta, t0, ok, ...)
  meta.response_time = (now() - t0) * 1000
  if not ok then
    local err = ...
    if passes_through(err) then
      error(err, 0)
    end
    meta.exception = err
  end
  M.events.request:fire(meta)
  if ok then
    return ...
  end
  return nil
end

-- locusta.measure(request_type, name, function(meta) ... end): Locust's
-- events.request.measure. Times the block, records it (the block may set
-- meta.response_length, meta.context); an error raised in it is recorded
-- as a failure with its message (file:line) and swallowed, as Locust's
-- context manager does. Returns what the block returned (nil on error).
function M.measure(request_type, name, fn)
  if type(request_type) ~= "string" or type(name) ~= "string" or type(fn) ~= "function" then
    fail(
      "locusta.measure(request_type, name, function) got "
        .. describe(request_type)
        .. ", "
        .. describe(name)
        .. ", "
        .. describe(fn)
    )
  end
  local meta = { request_type = request_type, name = name, response_length = 0, context = {} }
  local t0 = now()
  return measured(meta, t0, xpcall(fn, on_error, meta))
end

-- Fire the listeners of a no-argument event Rust drives (test_start,
-- test_stop, quitting, ...) or of one with plain arguments
-- (spawning_complete(user_count)); errors go to the exceptions table.
function I.fire(which, ...)
  for _, fn in ipairs(M.events[which]._listeners) do
    local ok, err = xpcall(fn, on_error, ...)
    if not ok then
      report(err)
    end
  end
end

-- Locust's user_error(user_instance, exception, tb): a task (or on_start)
-- raised `err`, already counted in the exceptions table. Listeners' own
-- errors are counted too, and do not stop the others.
local last_traceback = P.last_traceback
local user_error_listeners = M.events.user_error._listeners
function P.user_error(user, err)
  local n = #user_error_listeners
  if n == 0 then
    return
  end
  local tb = last_traceback()
  for i = 1, n do
    local ok, e = xpcall(user_error_listeners[i], on_error, user, err, tb)
    if not ok then
      report(e)
    end
  end
end

-- Whether an event has listeners (Rust skips the work of firing otherwise).
function I.has_listeners(which)
  return #M.events[which]._listeners > 0
end

-- The listener list of an event, for Rust to call itself
-- (report_to_master, worker_report: their data crosses processes).
function I.listeners(which)
  return M.events[which]._listeners
end
