-- locusta prelude, chunk =[locusta/finalize]: after the script has run,
-- validate every class and build its task tree (tags applied, cumulative
-- weights, checks), then select the engine's classes. Drives I.finalize
-- and I.select; leaves the selected class descriptions in P.selected for
-- the task loop (lua/prelude/run.lua).

local _, _, I, P = ...

local floor, tointeger = math.floor, math.tointeger
local type, error, pairs, ipairs, rawget = type, error, pairs, ipairs, rawget
local concat, sort = table.concat, table.sort
local getinfo = debug.getinfo

local describe, fail_at = P.describe, P.fail_at
local classes, meta = P.classes, P.meta

P.selected = {} -- engine class index + 1 -> class description

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

-- Default names of unnamed task sets, by kind.
local PREFIX = { sequence = "sequence@", markov = "markov@" }

local function default_name(holder, target)
  if type(target) == "table" then
    local n = rawget(target, "name")
    if type(n) == "string" then
      return n
    end
    return (PREFIX[meta[target].kind] or "taskset@") .. (meta[target].where or "?")
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
  return (PREFIX[info.kind] or "taskset@") .. (info.where or "?")
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
  if info.kind == "markov" then
    -- The whole chain is one task for --tags (states cannot have tags).
    local base = union(inherited, info.tags)
    if not passes(base, include, exclude) then
      return { n = 0 }
    end
    visiting[holder] = true
    local node = P.compile_markov(holder, info, holder_name(holder), compile, base, include, exclude, visiting)
    visiting[holder] = nil
    return node
  end
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
    -- A class the tags leave without tasks is listed with none: only the
    -- classes that run must have tasks (the caller drops the empty ones,
    -- and I.select refuses them), as Locust filters only selected classes.
    local node = compile(cls, {}, include, exclude, {})
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
  local selected = {}
  P.selected = selected
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
    if found.node.n == 0 then
      fail_at(found.where, "class " .. name .. " has no tasks left after --tags/--exclude-tags")
    end
    selected[i] = found
  end
end
