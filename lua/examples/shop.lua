-- The scripted shop demo (`locusta --demo` runs it against the built-in
-- shop target). Two kinds of users: shoppers who log in, browse and buy,
-- and browsers who only look. Weights 3:1, like Locust's `weight`.
local locusta = require "locusta"

local Shopper = locusta.user {
  name = "Shopper",
  weight = 3,
  wait_time = locusta.between(0.5, 2),
}

function Shopper:on_start()
  local r = self.client:post("/api/login", { json = { user = "demo", password = "secret" } })
  if r.ok then
    self.client.headers["Authorization"] = "Bearer " .. r:json().token
  end
end

Shopper:task(5, function(self)
  self.client:get("/api/products")
end)

Shopper:task(3, function(self)
  self.client:get("/api/products/" .. math.random(1, 500), { name = "/api/products/:id" })
end)

Shopper:task(2, { tags = { "cart" } }, function(self)
  self.client:post("/api/cart", { json = { sku = "A-" .. math.random(1, 40) }, catch_response = true },
    function(r)
      if r.status ~= 201 then r:failure("cart not updated: HTTP " .. r.status) end
    end)
end)

Shopper:task(1, { tags = { "checkout" } }, function(self)
  self.client:post("/api/checkout", { json = { pay = "card" } })
end)

local Browser = locusta.user {
  name = "Browser",
  weight = 1,
  wait_time = locusta.between(1, 3),
}

Browser:task(1, function(self) self.client:get("/") end)
Browser:task(3, function(self) self.client:get("/api/products") end)
