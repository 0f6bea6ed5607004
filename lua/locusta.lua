-- locusta prelude: user classes, task sets, task picking, wait times, events.
--
-- Compiled into the binary (include_str!) and run once per Lua state, with
-- chunk name "=[locusta]", before the user's script. It is called with
-- (M, N): M is the `locusta` module table (json and client already
-- installed by Rust), N the native helpers from src/script/runtime.rs. It
-- fills M with the script API and returns the internal table I that Rust
-- drives (finalize, select, run_user, fire).
--
-- The hot path is `run_node`: one call per task, no allocation of its own
-- (xpcall with a shared message handler, a binary search over a
-- precomputed cumulative-weight array, a native stop check, a native wait).

local M, N = ...

local random, floor, tointeger, huge = math.random, math.floor, math.tointeger, math.huge
local type, error, tostring, select, pairs, ipairs = type, error, tostring, select, pairs, ipairs
local setmetatable, getmetatable, xpcall, rawget = setmetatable, getmetatable, xpcall, rawget
local concat, sort = table.concat, table.sort
local traceback, getinfo = debug.traceback, debug.getinfo

local stopping = N.stopping -- (stop) -> bool: graceful stop asked (a C function)
local wait_native = N.wait -- async (stop, seconds): returns early on graceful stop
local yield_native = N.yield -- async (): let the shard's other tasks run once
local record_exception = N.record_exception -- (message, traceback)
local now = N.now -- () -> seconds (monotonic, float)
local new_client = N.new_client -- (class index, 0-based) -> client userdata
local errmsg = N.errmsg -- (error value) -> string, for non-string errors
local request_listeners = N.request_listeners -- registry "locusta.request_listeners"

local PRELUDE = getinfo(1, "S").source

local I = {} -- internal API, driven from Rust
local classes = {} -- user classes in script order
local meta = {} -- class / task set table -> private description
local selected = {} -- engine class index + 1 -> class description

---------------------------------------------------------------------------
-- Errors and locations
---------------------------------------------------------------------------

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
    if info.what ~= "C" and info.source ~= PRELUDE and info.source:sub(1, 1) == "@" and info.currentline > 0 then
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

local last_traceback = "" -- set by on_error, read right after xpcall returns

-- xpcall message handler: the message with the script's file:line, and the
-- Lua traceback (cut at the task runner, whose frames are noise).
local function on_error(e)
  if e == INTERRUPT or e == INTERRUPT_WAIT then
    return e
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
  if err == INTERRUPT or err == INTERRUPT_WAIT then
    record_exception(tostring(INTERRUPT), last_traceback)
  else
    record_exception(err, last_traceback)
  end
end

---------------------------------------------------------------------------
-- Declarations: locusta.user, locusta.taskset, locusta.sequence, :task
---------------------------------------------------------------------------

local function check_count(v, what, allow_zero)
  if
    type(v) ~= "number"
    or v ~= v
    or v == huge
    or v ~= floor(v)
    or v < (allow_zero and 0 or 1)
    or v > 2147483647
  then
    fail(what .. " must be " .. (allow_zero and "an integer >= 0" or "a positive integer") .. " (got " .. describe(v) .. ")")
  end
  return tointeger(v)
end

local function check_wait_time(v)
  if v ~= nil and type(v) ~= "function" then
    fail(
      "wait_time must be a function such as locusta.between(1, 5), locusta.constant(1), "
        .. "locusta.constant_pacing(2) or locusta.constant_throughput(0.5) (got "
        .. describe(v)
        .. ")"
    )
  end
end

local function check_tags(tags)
  if type(tags) ~= "table" then
    fail("tags must be a list of strings (got " .. describe(tags) .. ")")
  end
  local out = {}
  for i, t in ipairs(tags) do
    if type(t) ~= "string" then
      fail("tags must be a list of strings (item " .. i .. " is " .. describe(t) .. ")")
    end
    out[#out + 1] = t
  end
  return out
end

local UserBase = {}
local UserMeta = { __index = UserBase }
local TaskSetBase = {}
local TaskSetMeta = { __index = TaskSetBase }

local function is_taskset(v)
  local info = type(v) == "table" and meta[v]
  return info and info.kind ~= "user"
end

-- Class:task(weight, [opts], fn); also task(fn) and task(opts, fn).
-- `fn` may be a task set or a sequence. Returns the class, for chaining.
local function add_task(holder, ...)
  local info = type(holder) == "table" and meta[holder]
  if not info then
    fail("task: call it with ':' on a user class or task set, as in MyUser:task(1, function(self) ... end)")
  end
  local n = select("#", ...)
  local a, b, c = ...
  local weight, opts, target
  if n >= 3 then
    weight, opts, target = a, b, c
  elseif n == 2 then
    if type(a) == "table" and not meta[a] then
      opts, target = a, b
    else
      weight, target = a, b
    end
  else
    target = a
  end
  if weight == nil then
    weight = 1
  end
  weight = check_count(weight, "task weight", false)
  local tags, name = {}, nil
  if opts ~= nil then
    if type(opts) ~= "table" then
      fail("task options must be a table such as { tags = { \"checkout\" }, name = \"buy\" } (got " .. describe(opts) .. ")")
    end
    if opts.tags ~= nil then
      tags = check_tags(opts.tags)
    end
    if opts.name ~= nil then
      if type(opts.name) ~= "string" then
        fail("task name must be a string (got " .. describe(opts.name) .. ")")
      end
      name = opts.name
    end
  end
  if type(target) ~= "function" and not is_taskset(target) then
    fail("task: expected a function or a task set (got " .. describe(target) .. ")")
  end
  if target == holder then
    fail("task: a task set cannot be a task of itself")
  end
  info.tasks[#info.tasks + 1] = { weight = weight, tags = tags, name = name, target = target, where = script_where(2) }
  return holder
end

UserBase.task = add_task
TaskSetBase.task = add_task

function TaskSetBase:interrupt(reschedule)
  error(reschedule == false and INTERRUPT_WAIT or INTERRUPT, 0)
end

local function check_def(def, what)
  if def == nil then
    def = {}
  end
  if type(def) ~= "table" then
    fail(what .. " expects a table, as in " .. what .. " { wait_time = locusta.between(1, 5) } (got " .. describe(def) .. ")")
  end
  if meta[def] then
    fail(what .. ": this table is already a user class or task set")
  end
  if def.name ~= nil and type(def.name) ~= "string" then
    fail("name must be a string (got " .. describe(def.name) .. ")")
  end
  check_wait_time(def.wait_time)
  return def
end

function M.user(def)
  def = check_def(def, "locusta.user")
  if def.weight ~= nil then
    def.weight = check_count(def.weight, "weight", false)
  end
  if def.fixed_count ~= nil then
    def.fixed_count = check_count(def.fixed_count, "fixed_count", true)
  end
  if def.host ~= nil and type(def.host) ~= "string" then
    fail("host must be a string such as \"http://localhost:8080\" (got " .. describe(def.host) .. ")")
  end
  local info = { kind = "user", tasks = {}, where = script_where(2), tags = {} }
  info.inst_mt = { __index = def }
  meta[def] = info
  classes[#classes + 1] = def
  return setmetatable(def, UserMeta)
end

local function new_spec(kind, what, def)
  def = check_def(def, what)
  local tags = {}
  if def.tags ~= nil then
    tags = check_tags(def.tags)
  end
  local info = { kind = kind, tasks = {}, where = script_where(2), tags = tags }
  info.inst_mt = { __index = def }
  meta[def] = info
  return setmetatable(def, TaskSetMeta)
end

function M.taskset(def)
  return new_spec("taskset", "locusta.taskset", def)
end

function M.sequence(def)
  return new_spec("sequence", "locusta.sequence", def)
end

---------------------------------------------------------------------------
-- Wait times (Locust's meanings); each returns a function(self) -> seconds
---------------------------------------------------------------------------

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

function M.constant(s)
  check_seconds(s, "locusta.constant")
  return function()
    return s
  end
end

-- Wait so that each task starts `s` seconds after the previous one (the
-- wait is max(0, s - the task's run time)). Per user (or task set instance).
local function pacing(s)
  return function(self)
    local t = now()
    local last = rawget(self, "_cp_last_run")
    local wait
    if last == nil then
      wait = s
    else
      local run_time = t - last - rawget(self, "_cp_last_wait")
      wait = s - run_time
      if wait < 0 then
        wait = 0
      end
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

---------------------------------------------------------------------------
-- Events
---------------------------------------------------------------------------

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

---------------------------------------------------------------------------
-- Finalize: tags, cumulative weights, checks (after the script has run)
---------------------------------------------------------------------------

local function union(a, b)
  if #b == 0 then
    return a
  end
  if #a == 0 then
    return b
  end
  local out, seen = {}, {}
  for _, list in ipairs({ a, b }) do
    for _, t in ipairs(list) do
      if not seen[t] then
        seen[t] = true
        out[#out + 1] = t
      end
    end
  end
  return out
end

local function passes(tags, include, exclude)
  if include then
    local hit = false
    for _, t in ipairs(tags) do
      if include[t] then
        hit = true
        break
      end
    end
    if not hit then
      return false
    end
  end
  for _, t in ipairs(tags) do
    if exclude[t] then
      return false
    end
  end
  return true
end

local function default_name(holder, target)
  if type(target) == "table" then
    local n = rawget(target, "name")
    if type(n) == "string" then
      return n
    end
    return (meta[target].kind == "sequence" and "sequence@" or "taskset@") .. (meta[target].where or "?")
  end
  local names = {}
  for k, v in pairs(holder) do
    if v == target and type(k) == "string" then
      names[#names + 1] = k
    end
  end
  if #names > 0 then
    sort(names)
    return names[1]
  end
  local info = getinfo(target, "S")
  return info.short_src .. ":" .. info.linedefined
end

local function holder_name(holder)
  local info = meta[holder]
  if info.name then
    return info.name
  end
  local n = rawget(holder, "name")
  if type(n) == "string" then
    return n
  end
  return (info.kind == "sequence" and "sequence@" or "taskset@") .. (info.where or "?")
end

local function check_fields(holder, info)
  local wt = rawget(holder, "wait_time")
  if wt ~= nil and type(wt) ~= "function" then
    fail_at(
      info.where,
      holder_name(holder) .. ": wait_time must be a function such as locusta.between(1, 5) (got " .. describe(wt) .. ")"
    )
  end
  for _, k in ipairs({ "on_start", "on_stop" }) do
    local f = rawget(holder, k)
    if f ~= nil and type(f) ~= "function" then
      fail_at(info.where, holder_name(holder) .. ": " .. k .. " must be a function (got " .. describe(f) .. ")")
    end
  end
end

-- A node is what the task loop runs: the filtered tasks of one class or task
-- set at one place in the tree, with cumulative weights.
local function compile(holder, inherited, include, exclude, visiting)
  local info = meta[holder]
  if visiting[holder] then
    fail_at(info.where, holder_name(holder) .. " contains itself (task sets cannot nest in a cycle)")
  end
  check_fields(holder, info)
  if #info.tasks == 0 then
    if info.kind == "user" then
      fail_at(
        info.where,
        "class " .. info.name .. " has no tasks: add one with " .. info.name .. ":task(1, function(self) ... end)"
      )
    end
    fail_at(info.where, "task set " .. holder_name(holder) .. " has no tasks")
  end
  visiting[holder] = true
  local base = union(inherited, info.tags)
  local node = {
    tasks = {},
    cum = {},
    n = 0,
    total = 0,
    sequential = info.kind == "sequence",
    inst_mt = info.inst_mt,
    listing = {},
  }
  for _, e in ipairs(info.tasks) do
    local tags = union(base, e.tags)
    local entry, listed_tags
    if type(e.target) == "table" then
      local child = compile(e.target, tags, include, exclude, visiting)
      if child.n > 0 then
        entry = { node = child }
      end
      listed_tags = union(union(e.tags, meta[e.target].tags), {})
    elseif passes(tags, include, exclude) then
      entry = { fn = e.target }
      listed_tags = union(union(info.tags, e.tags), {})
    end
    if entry then
      if node.sequential then
        for _ = 1, e.weight do
          node.n = node.n + 1
          node.tasks[node.n] = entry
        end
      else
        node.n = node.n + 1
        node.total = node.total + e.weight
        node.tasks[node.n] = entry
        node.cum[node.n] = node.total
      end
      node.listing[#node.listing + 1] = {
        name = e.name or default_name(holder, e.target),
        weight = e.weight,
        tags = listed_tags,
      }
    end
  end
  visiting[holder] = nil
  return node
end

-- Validate every class and build its task tree. Returns the class
-- descriptions (name, weight, fixed_count, host, tasks) in script order.
function I.finalize(include_list, exclude_list)
  if #classes == 0 then
    error("no user classes: define one with locusta.user { wait_time = locusta.between(1, 5) }", 0)
  end
  local include, exclude = nil, {}
  if include_list then
    include = {}
    for _, t in ipairs(include_list) do
      include[t] = true
    end
  end
  for _, t in ipairs(exclude_list) do
    exclude[t] = true
  end
  local out, names = {}, {}
  for i, cls in ipairs(classes) do
    local info = meta[cls]
    local name = rawget(cls, "name")
    if name == nil then
      name = "User" .. i
    elseif type(name) ~= "string" or name == "" then
      fail_at(info.where, "class name must be a non-empty string (got " .. describe(name) .. ")")
    end
    if names[name] then
      fail_at(info.where, "duplicate user class name " .. describe(name))
    end
    names[name] = true
    info.name = name
    local weight = rawget(cls, "weight")
    if weight == nil then
      weight = 1
    elseif type(weight) ~= "number" or weight ~= floor(weight) or weight < 1 or weight > 2147483647 then
      fail_at(info.where, "class " .. name .. ": weight must be a positive integer (got " .. describe(weight) .. ")")
    end
    local fixed = rawget(cls, "fixed_count")
    if fixed ~= nil and (type(fixed) ~= "number" or fixed ~= floor(fixed) or fixed < 0 or fixed > 2147483647) then
      fail_at(info.where, "class " .. name .. ": fixed_count must be an integer >= 0 (got " .. describe(fixed) .. ")")
    end
    local host = rawget(cls, "host")
    if host ~= nil and type(host) ~= "string" then
      fail_at(info.where, "class " .. name .. ": host must be a string (got " .. describe(host) .. ")")
    end
    local node = compile(cls, {}, include, exclude, {})
    if node.n == 0 then
      fail_at(info.where, "class " .. name .. " has no tasks left after --tags/--exclude-tags")
    end
    info.node = node
    out[i] = {
      name = name,
      weight = tointeger(weight),
      fixed_count = fixed and tointeger(fixed),
      host = host,
      tasks = node.listing,
    }
  end
  return out
end

-- The engine's classes, by name, in the engine's order.
function I.select(names)
  selected = {}
  for i, name in ipairs(names) do
    local found
    for _, cls in ipairs(classes) do
      if meta[cls].name == name then
        found = meta[cls]
      end
    end
    if not found then
      local all = {}
      for _, cls in ipairs(classes) do
        all[#all + 1] = meta[cls].name
      end
      error("unknown user class " .. describe(name) .. " (the script has: " .. concat(all, ", ") .. ")", 0)
    end
    selected[i] = found
  end
end

---------------------------------------------------------------------------
-- Running users
---------------------------------------------------------------------------

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

local function do_wait(inst, user, stop)
  local wt, owner = inst.wait_time, inst
  if wt == nil and inst ~= user then
    wt, owner = user.wait_time, user
  end
  if wt == nil then
    return zero_wait()
  end
  local ok, secs = xpcall(wt, on_error, owner)
  if not ok then
    report(secs)
    return zero_wait()
  end
  if type(secs) ~= "number" then
    last_traceback = ""
    report((script_where(1) or "wait_time") .. ": wait_time returned " .. describe(secs) .. ", not a number of seconds")
    return zero_wait()
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
    if not is_root and (err == INTERRUPT or err == INTERRUPT_WAIT) then
      return finish(inst, interrupt_result(err))
    end
    report(err)
    -- Like Locust: a user whose on_start fails stops (no tasks, no
    -- on_stop); a task set whose on_start fails returns to its parent.
    return is_root and STOP or nil
  end
  local tasks, n, cum, total, sequential = node.tasks, node.n, node.cum, node.total, node.sequential
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
    local result
    local child = task.node
    if child then
      local sub = setmetatable({ user = user, client = user.client, parent = inst }, child.inst_mt)
      result = run_node(child, sub, user, stop, false)
      if result == STOP then
        return finish(inst, STOP)
      end
    else
      local ok2, err2 = xpcall(task.fn, on_error, inst)
      if not ok2 then
        if err2 == INTERRUPT or err2 == INTERRUPT_WAIT then
          if not is_root then
            return finish(inst, interrupt_result(err2))
          end
        end
        report(err2)
      end
    end
    if result == NOW then
      zero_wait()
    else
      if stopping(stop) then
        return finish(inst, STOP)
      end
      do_wait(inst, user, stop)
    end
  end
end

-- One user of selected class `idx` (0-based), until `stop` says so.
-- `stop` is a light userdata (the native helpers read the flag through it);
-- `keepalive` is the userdata that owns the flag, held here for as long as
-- the user runs.
function I.run_user(idx, stop, keepalive)
  local info = selected[idx + 1]
  if not info then
    error("no user class with index " .. tostring(idx), 0)
  end
  if stopping(stop) then
    return
  end
  local user = setmetatable({}, info.inst_mt)
  user.client = new_client(idx)
  run_node(info.node, user, user, stop, true)
  return keepalive
end

-- Fire test_start / test_stop listeners; errors go to the exceptions table.
function I.fire(which)
  for _, fn in ipairs(M.events[which]._listeners) do
    local ok, err = xpcall(fn, on_error)
    if not ok then
      report(err)
    end
  end
end

return I
