-- locusta prelude, chunk =[locusta/wait]: wait times (Locust's meanings)
-- and locusta.sleep. Each wait time is a function(self) -> seconds that
-- the task loop (lua/prelude/run.lua) calls between tasks.

local M, N, I, P = ...

local random, huge = math.random, math.huge
local type, rawget, setmetatable = type, rawget, setmetatable

local now = N.now -- () -> seconds (monotonic, float)

local describe, fail = P.describe, P.fail

local function check_seconds(v, what)
  if type(v) ~= "number" or v ~= v or v < 0 or v == huge then
    fail(what .. " must be a number of seconds >= 0 (got " .. describe(v) .. ")")
  end
end

function M.between(a, b)
  check_seconds(a, "locusta.between: min")
  check_seconds(b, "locusta.between: max")
  if b < a then
    fail("locusta.between: max (" .. b .. ") is less than min (" .. a .. ")")
  end
  local span = b - a
  return function()
    return a + random() * span
  end
end

-- Functions made by locusta.constant -> their seconds: the task loop reads
-- the wait from here instead of calling the function (same result, no
-- protected call per task).
local constants = setmetatable({}, { __mode = "k" })
I.constant_waits = constants

function M.constant(s)
  check_seconds(s, "locusta.constant")
  local f = function()
    return s
  end
  constants[f] = s
  return f
end

-- Wait so that each task starts `s` seconds after the previous one (the
-- wait is max(0, s - the task's run time)). Per user (or task set
-- instance). As Locust (wait_time.py), the clock starts when the instance
-- is created (run.lua stamps `_cp_last_run` then), so the first wait is
-- the period minus on_start and the first task, like every later one.
local function pacing(s)
  return function(self)
    local t = now()
    local last = rawget(self, "_cp_last_run") or t
    local run_time = t - last - (rawget(self, "_cp_last_wait") or 0)
    local wait = s - run_time
    if wait < 0 then
      wait = 0
    end
    self._cp_last_run = t
    self._cp_last_wait = wait
    return wait
  end
end

function M.constant_pacing(s)
  check_seconds(s, "locusta.constant_pacing")
  return pacing(s)
end

function M.constant_throughput(per_second)
  if type(per_second) ~= "number" or per_second ~= per_second or per_second <= 0 or per_second == huge then
    fail("locusta.constant_throughput: tasks per second must be a number > 0 (got " .. describe(per_second) .. ")")
  end
  return pacing(1 / per_second)
end

M.sleep = N.sleep
