-- locusta prelude, chunk =[locusta/events]: locusta.events (test_start,
-- test_stop, request) and I.fire, which runs the test_start / test_stop
-- listeners for Rust.

local M, N, I, P = ...

local type, setmetatable, ipairs, xpcall = type, setmetatable, ipairs, xpcall

local request_listeners = N.request_listeners -- registry "locusta.request_listeners"

local describe, fail = P.describe, P.fail
local on_error, report = P.on_error, P.report

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

local function new_event(list)
  return setmetatable({ _listeners = list or {} }, Event)
end

M.events = {
  test_start = new_event(),
  test_stop = new_event(),
  request = new_event(request_listeners),
}

-- Fire test_start / test_stop listeners; errors go to the exceptions table.
function I.fire(which)
  for _, fn in ipairs(M.events[which]._listeners) do
    local ok, err = xpcall(fn, on_error)
    if not ok then
      report(err)
    end
  end
end
