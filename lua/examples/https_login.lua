-- Log in over HTTPS once per user (on_start), keep the token as a default
-- header of that user only, and use it in every task. Run it against a
-- server with a certificate the box trusts, or give the test CA:
--   locusta -f lua/examples/https_login.lua -H https://localhost:8443 --ca-cert ca.pem
-- TLS sessions are resumed on reconnect; the handshake is part of the
-- first request's time on each connection.
local locusta = require "locusta"

local Member = locusta.user { wait_time = locusta.between(0.1, 0.3) }

function Member:on_start()
  local r = self.client:post("/api/login", { json = { user = "member", password = "pw" } })
  assert(r.ok, "login failed: " .. tostring(r.status) .. " " .. tostring(r.error))
  self.client.headers["Authorization"] = "Bearer " .. r:json().token
end

Member:task(3, function(self)
  self.client:get("/api/cart")
end)

Member:task(1, function(self)
  self.client:get("/api/orders")
end)
