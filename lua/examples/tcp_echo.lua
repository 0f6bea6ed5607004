-- A raw TCP service: each user opens one connection to a line echo server,
-- sends a line and reads it back, timed as a "TCP" request.
--   ECHO_PORT=7000 locusta -f lua/examples/tcp_echo.lua --headless -u 10 -r 10 -t 30s
-- (tests/script_tcp.rs runs it against an in-process echo server.)
local locusta = require "locusta"

local HOST = os.getenv("ECHO_HOST") or "127.0.0.1"
local PORT = tonumber(os.getenv("ECHO_PORT") or "7000")

-- Every user class needs a host (-H or `host`); this one never makes an
-- HTTP request, so the echo server's address serves.
local Echo = locusta.user {
  host = "http://" .. HOST .. ":" .. PORT,
  wait_time = locusta.between(0.05, 0.1),
}

function Echo:on_start()
  -- One connection per user, like a client session. Errors (refused,
  -- timed out) are Lua errors: they end on_start and are counted.
  self.conn = locusta.tcp.connect(HOST, PORT, { timeout = 5 })
end

Echo:task(function(self)
  local msg = "ping " .. math.random(1, 1000000)
  -- locusta.measure times the block and records it under ("TCP", "echo");
  -- an error raised inside is recorded as a failure of that row.
  locusta.measure("TCP", "echo", function()
    self.conn:send(msg .. "\n")
    local back = self.conn:receive("*l") -- one line, without its "\n"
    if back ~= msg then
      error("echo mismatch: sent " .. msg .. ", got " .. back)
    end
  end)
end)

function Echo:on_stop()
  -- Optional: a connection the script leaves open is closed when its
  -- user stops.
  if self.conn then self.conn:close() end
end
