-- benches/compare.py --tools lua: the Lua-scripted counterpart of wrk's loop.
-- One user class, one task doing one GET, no think time; each user keeps one
-- keep-alive connection, so -u C users = wrk -c C connections.
local locusta = require "locusta"

local U = locusta.user { wait_time = locusta.constant(0) }

U:task(1, function(self) self.client:get("/") end)
