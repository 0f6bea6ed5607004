-- benches/soak.py and tests/script_soak.rs: users with think time. Each
-- task is one GET, then a 1 s wait, so responses and waits keep being
-- made while most users sleep (what made RSS grow without bound before
-- the collector was paced by memory held outside Lua's heap).
local locusta = require "locusta"

local Thinker = locusta.user { wait_time = locusta.constant(1) }

Thinker:task(1, function(self)
  self.client:get("/")
end)
