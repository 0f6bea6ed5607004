-- Tagged tasks: `-T browse` runs only the browsing tasks,
-- `-E checkout` runs everything but checkout.
local locusta = require "locusta"

local Customer = locusta.user { wait_time = locusta.between(0.5, 1) }

Customer:task(4, { tags = { "browse" } }, function(self)
  self.client:get("/api/products")
end)
Customer:task(2, { tags = { "browse", "detail" } }, function(self)
  self.client:get("/api/products/" .. math.random(1, 500), { name = "/api/products/:id" })
end)
Customer:task(1, { tags = { "checkout" } }, function(self)
  self.client:post("/api/checkout", { json = { pay = "card" } })
end)
