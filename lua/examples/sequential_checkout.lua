-- A purchase funnel as a sequence: the steps run in order, then loop.
local locusta = require "locusta"

local Funnel = locusta.sequence {}
Funnel:task(1, function(self) self.client:get("/") end)
Funnel:task(1, function(self) self.client:get("/api/products") end)
Funnel:task(1, function(self)
  self.client:post("/api/cart", { json = { sku = "A-1" } })
end)
Funnel:task(1, function(self)
  self.client:post("/api/checkout", { json = { pay = "card" } })
end)

local Buyer = locusta.user { wait_time = locusta.constant_pacing(1) }
Buyer:task(1, Funnel)
