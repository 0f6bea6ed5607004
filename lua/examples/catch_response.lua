-- Decide yourself what counts as a failure: a product id over 500 is a 404
-- that we expect (success), and a 200 without a body is a failure.
local locusta = require "locusta"

local Checker = locusta.user { wait_time = locusta.constant_throughput(2) }

Checker:task(1, function(self)
  local id = math.random(400, 600)
  self.client:get("/api/products/" .. id, { name = "/api/products/:id", catch_response = true },
    function(r)
      if r.status == 404 and id > 500 then
        r:success()
      elseif r.status == 200 and #r.body == 0 then
        r:failure("empty product body")
      end
    end)
end)
