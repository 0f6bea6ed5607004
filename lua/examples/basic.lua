-- The smallest useful script: one user class, two weighted tasks.
-- locusta -f lua/examples/basic.lua -H http://127.0.0.1:8080 --headless -u 10 -r 5 -t 1m
local locusta = require "locusta"

local Visitor = locusta.user { wait_time = locusta.between(1, 2) }

Visitor:task(3, function(self) self.client:get("/") end)
Visitor:task(1, function(self) self.client:get("/api/products") end)
