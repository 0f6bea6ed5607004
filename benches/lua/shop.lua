-- benches/compare.py --tools shop: a realistic script's CPU per request.
-- The shop example's mix (lua/examples/shop.lua) with no think time,
-- against the shop locations of benches/nginx.conf: a login that sets a
-- session cookie and returns a token (JSON parsed), JSON request bodies,
-- `name=` grouping, `catch_response`, and a 1 KB JSON product list parsed
-- by the script. Its Locust twin is benches/locust_shop.py.
local locusta = require "locusta"

local Shopper = locusta.user { wait_time = locusta.constant(0) }

function Shopper:on_start()
  local r = self.client:post("/api/login", { json = { user = "demo", password = "secret" } })
  self.client.headers["Authorization"] = "Bearer " .. r:json().token
end

Shopper:task(5, function(self)
  local r = self.client:get("/api/products")
  if r.ok and #r:json().products ~= 18 then error("product list: expected 18 products") end
end)

Shopper:task(3, function(self)
  self.client:get("/api/products/" .. math.random(1, 500), { name = "/api/products/:id" })
end)

Shopper:task(2, function(self)
  self.client:post("/api/cart", { json = { sku = "A-" .. math.random(1, 40) }, catch_response = true },
    function(r)
      if r.status ~= 201 then r:failure("cart not updated: HTTP " .. r.status) end
    end)
end)

Shopper:task(1, function(self)
  self.client:post("/api/checkout", { json = { pay = "card" } })
end)
