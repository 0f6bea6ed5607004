-- locusta prelude, chunk =[locusta/run]: running users. I.run_user runs
-- one user of a selected class: on_start, then tasks picked by weight (or
-- in order, for a sequence) with wait times between them, task sets as
-- nested loops, on_stop when the user stops; errors are reported, not fatal.
--
-- A user ends, running its on_stop (and each enclosing task set's, inner
-- first, as Locust does), when it is asked to stop (graceful: after the
-- task in progress), when it is killed (the request or sleep in progress
-- raises KILLED), on locusta.StopUser, self:stop() and locusta.quit().
--
-- Open model (--arrival-rate): a user's waits (wait_time, and the pause
-- after a task set returns) are replaced by waiting for its next iteration
-- (N.next_iteration), so each task run is one iteration of the schedule.

local _, N, I, P = ...

local random = math.random
local type, error, tostring = type, error, tostring
local setmetatable, xpcall = setmetatable, xpcall

local stopping = N.stopping -- (stop) -> bool: graceful stop asked (a C function)
local wait_native = N.wait -- async (stop, seconds): returns early on graceful stop
local yield_native = N.yield -- async (): let the shard's other tasks run once
local new_client = N.new_client -- (class index, 0-based) -> client userdata
local close_client = N.close_client -- (client userdata): close its connections
local now = N.now -- () -> seconds: stamps a new instance for constant_pacing
local next_iteration = N.next_iteration -- async (stop): an open-model user's next iteration
local is_open = N.is_open -- (stop) -> bool: the user runs iterations of an open model

local describe, script_where = P.describe, P.script_where
local on_error, report, clear_traceback = P.on_error, P.report, P.clear_traceback
local INTERRUPT, INTERRUPT_WAIT = P.INTERRUPT, P.INTERRUPT_WAIT
local user_error = P.user_error -- (user, err): the user_error listeners
local ends_user = P.ends_user -- (err) -> bool: QUIT, STOP_USER or KILLED
local markov_next = P.markov_next -- (state) -> next state's index (lua/prelude/markov.lua)

-- A wait_time that raises or returns no usable number: the exception is
-- recorded and the user waits this long instead of not at all (no wait
-- would run the user's tasks back to back, many times the intended rate).
local BAD_WAIT_FALLBACK = 1

local constant_waits = I.constant_waits -- locusta.constant's functions -> seconds

-- Open-model users (their stop flag as key): instead of any wait_time they
-- wait for their next iteration, so every task run (at any depth of task
-- sets) is one iteration of the arrival-rate schedule.
local open_users = {}

local STOP = {} -- run_node's result when the user is stopping
local NOW = {} -- run_node's result: parent picks its next task at once

-- Zero waits yield now and then, so a user whose tasks never suspend
-- (errors, pure computation) cannot hold the shard.
local zero_waits = 0
local function zero_wait()
  zero_waits = zero_waits + 1
  if zero_waits >= 64 then
    zero_waits = 0
    yield_native()
  end
end

-- Returns true when the user must end (StopUser, a kill, quit in wait_time).
local function do_wait(inst, user, stop)
  if open_users[stop] then
    next_iteration(stop)
    return
  end
  local wt, owner = inst.wait_time, inst
  if wt == nil and inst ~= user then
    wt, owner = user.wait_time, user
  end
  if wt == nil then
    return zero_wait()
  end
  local c = constant_waits[wt]
  if c ~= nil then
    if c > 0 then
      wait_native(stop, c)
    else
      zero_wait()
    end
    return
  end
  local ok, secs = xpcall(wt, on_error, owner)
  if not ok then
    if ends_user(secs) then
      return true
    end
    report(secs)
    return wait_native(stop, BAD_WAIT_FALLBACK)
  end
  if type(secs) ~= "number" or secs ~= secs then
    clear_traceback()
    report(
      (script_where(1) or "wait_time")
        .. ": wait_time returned "
        .. describe(secs)
        .. ", not a number of seconds (waited "
        .. BAD_WAIT_FALLBACK
        .. " s instead)"
    )
    return wait_native(stop, BAD_WAIT_FALLBACK)
  end
  if secs > 0 then
    wait_native(stop, secs)
  else
    zero_wait()
  end
end

local function call_hook(inst, name)
  local f = inst[name]
  if f == nil then
    return true, nil
  end
  local ok, err = xpcall(f, on_error, inst)
  if ok then
    return true, nil
  end
  return false, err
end

local function finish(inst, result)
  local ok, err = call_hook(inst, "on_stop")
  if not ok then
    report(err)
  end
  return result
end

local run_node

local function interrupt_result(err)
  return err == INTERRUPT and NOW or nil
end

run_node = function(node, inst, user, stop, is_root)
  local ok, err = call_hook(inst, "on_start")
  if not ok then
    if ends_user(err) then
      -- Like Locust: a user stopped or killed in on_start runs on_stop; a
      -- task set's own on_stop does not run (its parent's does).
      return is_root and finish(inst, STOP) or STOP
    end
    if not is_root and (err == INTERRUPT or err == INTERRUPT_WAIT) then
      return finish(inst, interrupt_result(err))
    end
    report(err)
    user_error(user, err)
    -- Like Locust: a user whose on_start fails stops (no tasks, no
    -- on_stop); a task set whose on_start fails returns to its parent.
    return is_root and STOP or nil
  end
  local tasks, n, cum, total, sequential = node.tasks, node.n, node.cum, node.total, node.sequential
  local markov, cur = node.markov, node.start -- a Markov chain: its current state
  local i = 0
  while true do
    if stopping(stop) then
      return finish(inst, STOP)
    end
    local task
    if sequential then
      i = i + 1
      if i > n then
        i = 1
      end
      task = tasks[i]
    elseif markov then
      -- As Locust's get_next_task: run the current state, move on first.
      task = tasks[cur]
      cur = markov_next(task)
    elseif n == 1 then
      task = tasks[1]
    else
      local r = random(total)
      local lo, hi = 1, n
      while lo < hi do
        local mid = (lo + hi) // 2
        if cum[mid] < r then
          lo = mid + 1
        else
          hi = mid
        end
      end
      task = tasks[lo]
    end
    if is_root then
      -- The report's task ratio: how often each of a class's tasks ran.
      task.runs = (task.runs or 0) + 1
    end
    local result
    local child = task.node
    if child then
      -- _cp_*: constant_pacing's clock starts at creation, as Locust's.
      local sub = setmetatable(
        { user = user, client = user.client, parent = inst, _cp_last_run = now(), _cp_last_wait = 0 },
        child.inst_mt
      )
      result = run_node(child, sub, user, stop, false)
      if result == STOP then
        return finish(inst, STOP)
      end
    else
      local ok2, err2 = xpcall(task.fn, on_error, inst)
      if not ok2 then
        if ends_user(err2) then
          return finish(inst, STOP)
        end
        if err2 == INTERRUPT or err2 == INTERRUPT_WAIT then
          if not is_root then
            return finish(inst, interrupt_result(err2))
          end
        end
        report(err2)
        user_error(user, err2)
      end
    end
    if result == NOW then
      if open_users[stop] then
        next_iteration(stop)
      else
        zero_wait()
      end
    else
      if stopping(stop) then
        return finish(inst, STOP)
      end
      if do_wait(inst, user, stop) then
        return finish(inst, STOP)
      end
    end
  end
end

-- One user of selected class `idx` (0-based), until `stop` says so.
-- `stop` is a light userdata (the native helpers read the flag through it);
-- `keepalive` is the userdata that owns the flag, held here for as long as
-- the user runs.
function I.run_user(idx, stop, keepalive)
  local info = P.selected[idx + 1]
  if not info then
    error("no user class with index " .. tostring(idx), 0)
  end
  if stopping(stop) then
    return
  end
  local user = setmetatable({ _cp_last_run = now(), _cp_last_wait = 0 }, info.inst_mt)
  if is_open(stop) then
    open_users[stop] = true
  end
  user.client = new_client(idx, stop)
  run_node(info.node, user, user, stop, true)
  open_users[stop] = nil
  -- A retired user's connection closes now, as Locust's session does.
  close_client(user.client)
  return keepalive
end

-- How often each top-level task of each selected class ran since the
-- start or the last reset_task_runs: one count per task, classes in the
-- engine's order, tasks in listing order (a sequence's task repeated by
-- its weight is one entry, counted once per run).
function I.task_runs()
  local out, k = {}, 0
  for _, info in ipairs(P.selected) do
    local node, seen = info.node, {}
    for i = 1, node.n do
      local t = node.tasks[i]
      if not seen[t] then
        seen[t] = true
        k = k + 1
        out[k] = t.runs or 0
      end
    end
  end
  return out
end

function I.reset_task_runs()
  for _, info in ipairs(P.selected) do
    local node = info.node
    for i = 1, node.n do
      node.tasks[i].runs = 0
    end
  end
end
