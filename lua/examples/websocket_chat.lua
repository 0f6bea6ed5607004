-- A WebSocket chat: each user opens a socket to the host's /chat (http ->
-- ws, https -> wss; the user's cookies and default headers go with the
-- upgrade request), then sends a message and waits for its echo, timed as
-- one "WS send+receive" request.
--   locusta -f lua/examples/websocket_chat.lua -H http://127.0.0.1:8080 --headless -u 200 -r 50 -t 1m
-- (tests/script_websocket.rs runs it against an in-process echo server.)
local locusta = require "locusta"

local Chatter = locusta.user { wait_time = locusta.between(0.1, 0.3) }

function Chatter:on_start()
  self.client.headers["X-Client"] = "locusta-chat"
  self.ws = self.client:websocket("/chat", { timeout = 5 })
end

Chatter:task(function(self)
  local text = "hello from " .. tostring(self) .. " #" .. math.random(1, 1e6)
  -- locusta.measure records the block under ("WS", "send+receive") with its
  -- time; an error in it (timeout, connection closed, protocol error) is a
  -- failure of that row, with the error's text.
  locusta.measure("WS", "send+receive", function()
    self.ws:send(text)
    local msg, kind = self.ws:receive() -- pings are answered meanwhile
    if msg ~= text or kind ~= "text" then
      error("unexpected echo: " .. tostring(kind) .. " " .. tostring(msg))
    end
  end)
end)

function Chatter:on_stop()
  -- The close handshake (code 1000); a socket left open is closed anyway
  -- when the user stops.
  if self.ws then self.ws:close(1000, "bye") end
end
