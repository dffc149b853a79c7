-- A game-style frame loop: every frame calls client:poll(0) once, which
-- runs the callbacks of what completed and returns at once. Requests start
-- with client:async (any API function: here a publish, then a follow of the
-- published message to its end, whose polls are timers of the client, never
-- a sleep), so no frame ever waits on the network.
--
--   lua examples/frame_loop.lua DESTINATION_URL [MESSAGES] [MAX_FRAMES]
--
-- The client takes its URL and token from the environment (QSTASH_URL,
-- QSTASH_TOKEN, as qstash.new does). It prints one line per message and a
-- summary, and exits 0 when every message reached its end.
local qstash = require "qstash"
local socket = require "socket" -- a clock and a sleep for the frames

local dest = arg[1] or error("usage: frame_loop.lua DESTINATION_URL [MESSAGES] [MAX_FRAMES]")
local messages = tonumber(arg[2]) or 3
local max_frames = tonumber(arg[3]) or 600
local FRAME = 1 / 60

local client = qstash.new{ retry = { attempts = 3, base_delay = 0.05 } }
local ends, longest_poll = {}, 0

local function start(i)
  client:async("publish", dest .. "/frame", "message " .. i, nil, function(res, err)
    if not res then
      ends[i] = "error: " .. tostring(err)
      return
    end
    -- a second call from the callback: it starts on the next frame's poll
    client:async("follow", res.messageId, { timeout = 10, interval = 0.05 }, function(f, ferr)
      ends[i] = f and f.state or ("error: " .. tostring(ferr))
    end)
  end)
end

local frame, done = 0, 0
while frame < max_frames do
  frame = frame + 1
  local t0 = socket.gettime()
  if frame <= messages then start(frame) end -- one new message a frame

  local p0 = socket.gettime()
  client:poll(0) -- never waits
  longest_poll = math.max(longest_poll, socket.gettime() - p0)

  -- ... the game's update and rendering would go here ...

  done = 0
  for _ in pairs(ends) do done = done + 1 end
  if done == messages then break end
  local rest = t0 + FRAME - socket.gettime()
  if rest > 0 then socket.sleep(rest) end
end

for i = 1, messages do print(string.format("message %d: %s", i, ends[i] or "still in flight")) end
print(string.format("summary: frames=%d messages=%d ended=%d longest_poll_ms=%.1f",
  frame, messages, done, longest_poll * 1000))
client:close()
os.exit(done == messages and 0 or 2)
