-- locusta prelude, chunk =[locusta/shape]: load shapes (Locust's
-- LoadTestShape), declared by the script, run by src/shape/ in Rust.
--
-- locusta.shape(fn): fn(run_time) returns users, spawn_rate [, classes]
-- each second, or nil to end the run.
-- locusta.stages { {duration = 60, users = 100, spawn_rate = 10}, ... }:
-- k6's stages (or `rate = R` stages: an open-model arrival rate).
--
-- This chunk only records the declaration in I.shape and checks what can
-- be checked at load (the stages, one shape per script), failing at the
-- script's line. Every Lua state loads the script, so shards record it too
-- and never look at it; only the state the shape runner builds calls the
-- function (src/script/runtime/shape.rs).

local M, _, I, P = ...

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local floor, huge = math.floor, math.huge
local describe, fail, script_where = P.describe, P.fail, P.script_where

-- Highest arrival rate a stage may ask for (engine::MAX_ARRIVAL_RATE).
local MAX_RATE = 10000000
local MAX_COUNT = 2147483647

local function declared(kind)
  if I.shape ~= nil then
    fail("only one shape per script: " .. kind .. " here, but the script already declared one at " .. I.shape.where)
  end
end

local function finite(v)
  return type(v) == "number" and v == v and v ~= huge and v ~= -huge
end

local function check_classes(v, what)
  if type(v) ~= "table" then
    fail(what .. ".classes must be a list of user class names (got " .. describe(v) .. ")")
  end
  local out = {}
  for k in pairs(v) do
    if type(k) ~= "number" or k < 1 or k ~= floor(k) or k > #v then
      fail(what .. ".classes must be a list of user class names (has key " .. describe(k) .. ")")
    end
  end
  for i, name in ipairs(v) do
    if type(name) ~= "string" then
      fail(what .. ".classes[" .. i .. "] must be a class name (got " .. describe(name) .. ")")
    end
    out[#out + 1] = name
  end
  if #out == 0 then
    fail(what .. ".classes must name at least one user class")
  end
  return out
end

function M.shape(fn)
  declared("locusta.shape")
  if type(fn) ~= "function" then
    fail("locusta.shape takes a function(run_time) returning users, spawn_rate [, classes] (got " .. describe(fn) .. ")")
  end
  I.shape = { kind = "function", fn = fn, where = script_where(2) or "?" }
end

local STAGE_FIELDS = { duration = true, users = true, spawn_rate = true, rate = true, classes = true }
local STAGES_FIELDS = { start_rate = true, max_users = true }

function M.stages(def)
  declared("locusta.stages")
  if type(def) ~= "table" then
    fail("locusta.stages takes a list of stages such as {duration = 60, users = 100, spawn_rate = 10} (got " .. describe(def) .. ")")
  end
  local n = #def
  for k in pairs(def) do
    if type(k) == "number" then
      if k < 1 or k ~= floor(k) or k > n then
        fail("locusta.stages: the stages must be a list (has key " .. describe(k) .. ")")
      end
    elseif not STAGES_FIELDS[k] then
      fail("locusta.stages: unknown field " .. describe(k) .. " (fields: start_rate, max_users, and the stages)")
    end
  end
  if n == 0 then
    fail("locusta.stages: no stage given")
  end
  local kind -- "users" or "rate", from the first stage
  local stages = {}
  for i, s in ipairs(def) do
    local what = "stage " .. i
    if type(s) ~= "table" then
      fail(what .. " must be a table such as {duration = 60, users = 100, spawn_rate = 10} (got " .. describe(s) .. ")")
    end
    for k in pairs(s) do
      if not STAGE_FIELDS[k] then
        fail(what .. ": unknown field " .. describe(k) .. " (fields: duration, users, spawn_rate, rate, classes)")
      end
    end
    if not finite(s.duration) or s.duration <= 0 then
      fail(what .. ": duration must be a number of seconds > 0 (got " .. describe(s.duration) .. ")")
    end
    local this
    if s.users ~= nil and s.rate ~= nil then
      fail(what .. ": give users or rate, not both")
    elseif s.users ~= nil then
      this = "users"
      local u = s.users
      if not finite(u) or u ~= floor(u) or u < 0 or u > MAX_COUNT then
        fail(what .. ": users must be an integer >= 0 (got " .. describe(u) .. ")")
      end
      if s.spawn_rate ~= nil and (not finite(s.spawn_rate) or s.spawn_rate <= 0) then
        fail(what .. ": spawn_rate must be a number > 0 (got " .. describe(s.spawn_rate) .. ")")
      end
    elseif s.rate ~= nil then
      this = "rate"
      if not finite(s.rate) or s.rate < 0 or s.rate > MAX_RATE then
        fail(what .. ": rate must be a number of iterations per second from 0 to " .. MAX_RATE .. " (got " .. describe(s.rate) .. ")")
      end
      if s.spawn_rate ~= nil then
        fail(what .. ": spawn_rate applies to users stages only (a rate stage ramps its rate over its duration)")
      end
    else
      fail(what .. ": give users (closed model) or rate (open model)")
    end
    if kind and kind ~= this then
      fail(what .. ": stages mix users and rate: all stages must give users, or all rate")
    end
    kind = this
    stages[i] = {
      duration = s.duration,
      users = s.users,
      spawn_rate = s.spawn_rate,
      rate = s.rate,
      classes = s.classes ~= nil and check_classes(s.classes, what) or nil,
    }
  end
  local start_rate, max_users = def.start_rate, def.max_users
  if start_rate ~= nil then
    if kind ~= "rate" then
      fail("locusta.stages: start_rate applies to rate stages only")
    end
    if not finite(start_rate) or start_rate < 0 or start_rate > MAX_RATE then
      fail("locusta.stages: start_rate must be a number from 0 to " .. MAX_RATE .. " (got " .. describe(start_rate) .. ")")
    end
  end
  if max_users ~= nil then
    if kind ~= "rate" then
      fail("locusta.stages: max_users applies to rate stages only (users stages give users)")
    end
    if not finite(max_users) or max_users ~= floor(max_users) or max_users < 1 or max_users > MAX_COUNT then
      fail("locusta.stages: max_users must be an integer >= 1 (got " .. describe(max_users) .. ")")
    end
  end
  I.shape = {
    kind = "stages",
    model = kind,
    stages = stages,
    start_rate = start_rate,
    max_users = max_users,
    where = script_where(2) or "?",
  }
end

