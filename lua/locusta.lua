-- locusta prelude: the `locusta` module table and user classes
-- (locusta.user, locusta.taskset, locusta.sequence, Class:task).
--
-- The prelude is compiled into the binary (include_str!) and runs once per
-- Lua state, before the user's script, as chunks loaded in this order by
-- src/script/runtime/state.rs, each with its own chunk name:
--
--   lua/prelude/errors.lua    =[locusta/errors]    messages, locations, tracebacks
--   lua/locusta.lua           =[locusta]           module table, user classes (this file)
--   lua/prelude/wait.lua      =[locusta/wait]      wait times, locusta.sleep
--   lua/prelude/events.lua    =[locusta/events]    locusta.events, I.fire
--   lua/prelude/guard.lua     =[locusta/guard]     (see that file)
--   lua/prelude/shape.lua     =[locusta/shape]     locusta.shape, locusta.stages (load shapes)
--   lua/prelude/markov.lua    =[locusta/markov]    locusta.markov: Markov task sets
--   lua/prelude/finalize.lua  =[locusta/finalize]  tags, weights, checks: I.finalize, I.select
--   lua/prelude/run.lua       =[locusta/run]       the task loop: I.run_user
--
-- Each chunk is called with (M, N, I, P): M is the `locusta` module table
-- (json and client already installed by Rust), N the native helpers from
-- src/script/runtime/state.rs, I the internal table that Rust drives
-- (finalize, select, run_user, fire), P the table the chunks share their
-- private helpers and state through (read into locals at load time).
--
-- The hot path is `run_node` (lua/prelude/run.lua): one call per task, no
-- allocation of its own (xpcall with a shared message handler, a binary
-- search over a precomputed cumulative-weight array, a native stop check,
-- a native wait).

local M, _, _, P = ...

local floor, tointeger, huge = math.floor, math.tointeger, math.huge
local type, error, select, ipairs = type, error, select, ipairs
local setmetatable = setmetatable

local describe, script_where, fail = P.describe, P.script_where, P.fail
local INTERRUPT, INTERRUPT_WAIT = P.INTERRUPT, P.INTERRUPT_WAIT

-- A class host meaning "the built-in demo target unless -H is given"
-- (script::DEMO_HOST).
M.DEMO_HOST = "locusta:demo"

local classes = {} -- user classes in script order
local meta = {} -- class / task set table -> private description
P.classes = classes
P.meta = meta

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
P.UserBase = UserBase -- methods of every user instance (self:stop() is in guard.lua)

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

P.new_spec = new_spec -- for locusta.markov (lua/prelude/markov.lua)

function M.taskset(def)
  return new_spec("taskset", "locusta.taskset", def)
end

function M.sequence(def)
  return new_spec("sequence", "locusta.sequence", def)
end
