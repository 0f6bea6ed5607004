-- A load shape in k6's stages vocabulary: ramp up, hold, ramp down, then
-- the run ends by itself (20 s in all). The shape sets the users: -u, -r
-- and -t do not apply (locusta warns when given).
--
--   locusta -f lua/examples/stages.lua --headless -H http://127.0.0.1:8080
--   locusta --demo -f lua/examples/stages.lua      (the built-in demo shop)
--   locusta -f lua/examples/stages.lua --headless  (no -H: the demo shop too,
--                                                   as the classes' host says)
local locusta = require "locusta"

local Browser = locusta.user { name = "Browser", host = locusta.DEMO_HOST, weight = 3, wait_time = locusta.between(0.5, 1.5) }

Browser:task(3, function(self) self.client:get("/") end)
Browser:task(1, function(self) self.client:get("/api/products") end)

local Buyer = locusta.user { name = "Buyer", host = locusta.DEMO_HOST, weight = 1, wait_time = locusta.between(1, 2) }

Buyer:task(function(self)
  self.client:get("/api/products/" .. math.random(1, 500), { name = "/api/products/:id" })
  self.client:post("/api/cart", { json = { sku = "A-1" } })
end)

locusta.stages {
  { duration = 5, users = 20, spawn_rate = 5 }, -- ramp to 20 users over 4 s
  { duration = 10, users = 40, spawn_rate = 10, classes = { "Browser" } }, -- browsers only
  { duration = 5, users = 10, spawn_rate = 10 }, -- back down, every class
}
