-- benches/rss.py: users that are connected and then sit in think time.
-- Each user opens its keep-alive connection with one GET in on_start; its
-- task is a no-op followed by a 600 s wait, so after spawning every user is a
-- parked coroutine plus an idle connection, which is what RSS per user measures.
local locusta = require "locusta"

local Idle = locusta.user { wait_time = locusta.constant(600) }

function Idle:on_start()
  self.client:get("/")
end

Idle:task(1, function(self) end)
