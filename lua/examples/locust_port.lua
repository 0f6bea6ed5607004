-- A typical Locust file, translated line by line (README: "Coming from
-- Locust" has the whole mapping). The tests run it against the built-in
-- demo shop (the one `locusta --demo` starts); elsewhere:
-- `locusta -f lua/examples/locust_port.lua -H http://127.0.0.1:8080`.
-- Its Python twin:
--
--   import random
--   from locust import HttpUser, task, tag, between, constant_pacing, events
--   from locust.user.markov_taskset import MarkovTaskSet, transition, transitions
--
--   @events.test_start.add_listener
--   def on_test_start(environment, **kwargs):
--       environment.started = True
--
--   class Shopper(HttpUser):
--       weight = 3
--       wait_time = between(0.5, 2)
--
--       def on_start(self):
--           r = self.client.post("/api/login", data={"user": "demo", "password": "secret"})
--           r.raise_for_status()
--           self.client.headers["Authorization"] = "Bearer " + r.json()["token"]
--
--       @task(5)
--       def products(self):
--           self.client.get("/api/products", params={"page": 1, "q": "red shoes"}, name="/api/products")
--
--       @task(3)
--       def product(self):
--           self.client.get(f"/api/products/{random.randint(1, 500)}", name="/api/products/:id")
--
--       @tag("cart")
--       @task(2)
--       def add_to_cart(self):
--           with self.client.post("/api/cart", json={"sku": "A-1"}, catch_response=True) as r:
--               if r.status_code != 201:
--                   r.failure(f"cart not updated: HTTP {r.status_code}")
--
--       @tag("checkout")
--       @task(1)
--       def checkout(self):
--           self.client.post("/api/checkout", json={"pay": "card"}, cookies={"promo": "spring"})
--
--   class Browse(MarkovTaskSet):
--       @transitions({"product": 3, "home": 1})
--       def home(self):
--           self.client.get("/")
--
--       @transition("home")
--       @transition("product", weight=2)
--       def product(self):
--           self.client.get(f"/api/products/{random.randint(1, 500)}", name="/api/products/:id")
--
--   class Browser(HttpUser):
--       weight = 1
--       wait_time = constant_pacing(1)
--       tasks = [Browse]

local locusta = require "locusta"                                    -- from locust import …

local started = false
locusta.events.test_start(function()                                 -- @events.test_start.add_listener
  started = true
end)

local Shopper = locusta.user {                                       -- class Shopper(HttpUser):
  name = "Shopper",                                                  --   (Lua tables have no class name)
  weight = 3,                                                        --   weight = 3
  wait_time = locusta.between(0.5, 2),                               --   wait_time = between(0.5, 2)
}

function Shopper:on_start()                                          -- def on_start(self):
  local r = self.client:post("/api/login", { data = { user = "demo", password = "secret" } })
  r:raise_for_status()                                               --   r.raise_for_status()
  self.client.headers["Authorization"] = "Bearer " .. r:json().token
end

Shopper:task(5, function(self)                                       -- @task(5) def products(self):
  self.client:get("/api/products", { params = { page = 1, q = "red shoes" }, name = "/api/products" })
end)

Shopper:task(3, function(self)                                       -- @task(3) def product(self):
  self.client:get("/api/products/" .. math.random(1, 500), { name = "/api/products/:id" })
end)

Shopper:task(2, { tags = { "cart" } }, function(self)                -- @tag("cart") @task(2)
  self.client:post("/api/cart", { json = { sku = "A-1" }, catch_response = true },
    function(r)                                                      -- with … as r:
      if r.status_code ~= 201 then
        r:failure("cart not updated: HTTP " .. r.status_code)
      end
    end)
end)

Shopper:task(1, { tags = { "checkout" } }, function(self)            -- @tag("checkout") @task(1)
  self.client:post("/api/checkout", { json = { pay = "card" }, cookies = { promo = "spring" } })
end)

local Browse = locusta.markov {                                      -- class Browse(MarkovTaskSet):
  start = "home",                                                    --   (the first method, in Python)
  home = {                                                           --   @transitions({"product": 3, "home": 1})
    task = function(self) self.client:get("/") end,
    to = { product = 3, home = 1 },
  },
  product = {                                                        --   @transition("home")
    task = function(self)                                            --   @transition("product", weight=2)
      self.client:get("/api/products/" .. math.random(1, 500), { name = "/api/products/:id" })
    end,
    to = { home = 1, product = 2 },
  },
}

local Browser = locusta.user {                                       -- class Browser(HttpUser):
  name = "Browser",
  weight = 1,                                                        --   weight = 1
  wait_time = locusta.constant_pacing(1),                            --   wait_time = constant_pacing(1)
}
Browser:task(Browse)                                                 --   tasks = [Browse]

locusta.events.test_stop(function()
  assert(started, "test_start ran")
end)
