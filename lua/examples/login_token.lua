-- Log in once per user (on_start), keep the token as a default header of
-- that user only, and use it in every task.
local locusta = require "locusta"

local Member = locusta.user { wait_time = locusta.constant(1) }

function Member:on_start()
  local r = self.client:post("/api/login", { json = { user = "member", password = "pw" } })
  assert(r.ok, "login failed: " .. tostring(r.status))
  self.token = r:json().token
  self.client.headers["Authorization"] = "Bearer " .. self.token
end

Member:task(1, function(self)
  self.client:get("/api/cart")
end)

function Member:on_stop()
  self.client:get("/", { name = "logout" })
end
