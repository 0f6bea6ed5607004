-- locusta prelude, chunk =[locusta/markov]: Markov task sets (Locust's
-- MarkovTaskSet with @transition/@transitions). Owns locusta.markov, the
-- load-time validation of a chain and its compiled node (P.compile_markov,
-- called by finalize.lua), and the step to the next state
-- (P.markov_next, called by run.lua's task loop).
--
--   locusta.markov {
--     start = "browse",                 -- Lua tables have no order: name the first state
--     browse = { task = function(self) ... end, to = { cart = 2, browse = 5 } },
--     cart   = { task = function(self) ... end, to = { "browse" } },  -- list: weight 1 each
--   }
--
-- As Locust: run the current state's task, then move by a weighted choice
-- among its transitions; an instance (each time a user enters the task set)
-- starts at `start`. Errors at load time: no states, `start` missing or not
-- a state, a transition to a missing state or to a state without
-- transitions of its own (a dead end), tags on a state. Unreachable states
-- are a warning, as in Locust.

local M, N, _, P = ...

local random, floor, huge = math.random, math.floor, math.huge
local type, pairs, ipairs, next = type, pairs, ipairs, next
local sort, concat = table.sort, table.concat
local getinfo = debug.getinfo

local describe, fail_at, new_spec, meta = P.describe, P.fail_at, P.new_spec, P.meta
local warn = N.warn -- (message): logged once per process

-- Fields of a markov definition that are not states.
local RESERVED = { start = true, name = true, wait_time = true, tags = true, on_start = true, on_stop = true }
-- Fields of a state.
local STATE_KEYS = { task = true, to = true }

function M.markov(def)
  return new_spec("markov", "locusta.markov", def)
end

-- "file:line" of a state: its task function's definition, else the chain's.
local function state_where(st, info)
  local f = type(st) == "table" and st.task
  if type(f) == "function" then
    local d = getinfo(f, "S")
    if d and d.source:sub(1, 1) == "@" and d.linedefined > 0 then
      return d.short_src .. ":" .. d.linedefined
    end
  end
  return info.where
end

-- A state's transitions as a list of { name, weight } (either form:
-- { cart = 2 } or { "cart", { "browse", 3 } }), sorted by name.
local function transitions(chain, sname, st, where)
  local to = st.to
  if to == nil then
    return {}
  end
  if type(to) ~= "table" then
    fail_at(where, chain .. "." .. sname .. ": to must be a table such as { cart = 2, browse = 1 } (got " .. describe(to) .. ")")
  end
  local out = {}
  local function add(name, w)
    if type(name) ~= "string" then
      fail_at(where, chain .. "." .. sname .. ": transition targets are state names (got " .. describe(name) .. ")")
    end
    if type(w) ~= "number" or w ~= floor(w) or w < 0 or w == huge or w > 2147483647 then
      fail_at(where, chain .. "." .. sname .. ": the weight of the transition to " .. name .. " must be an integer >= 0 (got " .. describe(w) .. ")")
    end
    out[#out + 1] = { name, floor(w) }
  end
  local n = #to
  for i = 1, n do
    local item = to[i]
    if type(item) == "table" then
      add(item[1], item[2] == nil and 1 or item[2])
    else
      add(item, 1)
    end
  end
  for k, w in pairs(to) do
    if not (type(k) == "number" and k >= 1 and k <= n and k == floor(k)) then
      add(k, w)
    end
  end
  sort(out, function(a, b)
    return a[1] < b[1]
  end)
  return out
end

local function total_weight(list)
  local t = 0
  for _, e in ipairs(list) do
    t = t + e[2]
  end
  return t
end

-- The node the task loop runs for a markov task set: tasks[i] is state i
-- (fn or node, plus `to` = next state indices with cumulative weights),
-- node.start the first state's index. `compile_child` compiles a state
-- whose task is a task set.
function P.compile_markov(holder, info, chain, compile_child, base, include, exclude, visiting)
  if #info.tasks > 0 then
    fail_at(info.where, chain .. ": a markov task set takes states (name = { task = fn, to = { ... } }), not :task")
  end
  -- Every field that looks like a state: a table with task or to.
  local names, raw = {}, {}
  for k, v in next, holder do
    if type(k) == "string" and not RESERVED[k] and type(v) == "table" and not meta[v] and (v.task ~= nil or v.to ~= nil) then
      names[#names + 1] = k
      raw[k] = v
    end
  end
  sort(names)
  if #names == 0 then
    fail_at(
      info.where,
      "no states in markov task set " .. chain .. ": add some, as in browse = { task = function(self) ... end, to = { browse = 1 } }"
    )
  end
  local start = holder.start
  if type(start) ~= "string" then
    fail_at(info.where, chain .. ": start must name the first state, as in start = \"" .. names[1] .. "\" (got " .. describe(start) .. ")")
  end
  -- Check each state; transitions by name.
  local edges = {}
  for _, sname in ipairs(names) do
    local st = raw[sname]
    local where = state_where(st, info)
    for k in pairs(st) do
      if k == "tags" then
        fail_at(where, "tags are unsupported in markov task sets since they can make the markov chain invalid (tags on " .. chain .. "." .. sname .. ")")
      end
      if not STATE_KEYS[k] then
        fail_at(where, chain .. "." .. sname .. ": unknown key " .. describe(k) .. " (a state has task and to)")
      end
    end
    local t = st.task
    if type(t) ~= "function" and not (type(t) == "table" and meta[t] and meta[t].kind ~= "user") then
      fail_at(where, chain .. "." .. sname .. ": task must be a function or a task set (got " .. describe(t) .. ")")
    end
    edges[sname] = transitions(chain, sname, st, where)
  end
  if not raw[start] then
    fail_at(info.where, chain .. ": start names no state: " .. describe(start) .. " (states: " .. concat(names, ", ") .. ")")
  end
  -- A state without transitions is a dead end: as Locust, not a target.
  for _, sname in ipairs(names) do
    local where = state_where(raw[sname], info)
    for _, e in ipairs(edges[sname]) do
      local dest = e[1]
      if not raw[dest] then
        fail_at(where, "transition to " .. dest .. " from " .. sname .. " is invalid since no such state exists in " .. chain)
      end
      if total_weight(edges[dest]) == 0 then
        fail_at(
          where,
          chain .. "." .. dest .. " cannot be used as a target for a transition since it does not define any transitions of its own (used as a transition from " .. sname .. ")"
        )
      end
    end
  end
  if total_weight(edges[start]) == 0 then
    fail_at(state_where(raw[start], info), chain .. ": the start state " .. start .. " has no transitions")
  end
  -- Reachable states (weight > 0 edges) from start; the rest: a warning.
  local seen = { [start] = true }
  local stack = { start }
  while #stack > 0 do
    local s = stack[#stack]
    stack[#stack] = nil
    for _, e in ipairs(edges[s]) do
      if e[2] > 0 and not seen[e[1]] then
        seen[e[1]] = true
        stack[#stack + 1] = e[1]
      end
    end
  end
  local unreachable = {}
  for _, sname in ipairs(names) do
    if not seen[sname] and total_weight(edges[sname]) > 0 then
      unreachable[#unreachable + 1] = sname
    end
  end
  if #unreachable > 0 then
    warn(info.where .. ": the following markov states are unreachable in " .. chain .. ": " .. concat(unreachable, ", "))
  end
  -- Compile: reachable states with transitions, indexed.
  local node = { tasks = {}, cum = {}, n = 0, total = 0, markov = true, inst_mt = info.inst_mt, listing = {} }
  local index = {}
  for _, sname in ipairs(names) do
    if seen[sname] then
      node.n = node.n + 1
      index[sname] = node.n
    end
  end
  for _, sname in ipairs(names) do
    local i = index[sname]
    if i then
      local t = raw[sname].task
      local entry = { to = {}, cum = {}, total = 0 }
      if type(t) == "function" then
        entry.fn = t
      else
        entry.node = compile_child(t, base, include, exclude, visiting)
        if entry.node.n == 0 then
          fail_at(state_where(raw[sname], info), chain .. "." .. sname .. ": its task set has no tasks left after --tags/--exclude-tags")
        end
      end
      for _, e in ipairs(edges[sname]) do
        if e[2] > 0 then
          entry.total = entry.total + e[2]
          entry.to[#entry.to + 1] = index[e[1]]
          entry.cum[#entry.cum + 1] = entry.total
        end
      end
      node.tasks[i] = entry
      node.listing[#node.listing + 1] = { name = sname, weight = 1, tags = {} }
    end
  end
  node.start = index[start]
  return node
end

-- The index of the state after `state`: a weighted choice among its
-- transitions (binary search over cumulative weights, no allocation).
function P.markov_next(state)
  local cum = state.cum
  local r = random(state.total)
  local lo, hi = 1, #cum
  while lo < hi do
    local mid = (lo + hi) // 2
    if cum[mid] < r then
      lo = mid + 1
    else
      hi = mid
    end
  end
  return state.to[lo]
end
