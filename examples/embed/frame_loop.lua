-- A game/tool frame loop that retries DLQ messages without ever blocking a
-- frame. Run by the C host in this directory:
--
--   build/lua5.4/embed-host examples/embed/frame_loop.lua \
--       [--url URL] [--token TOKEN] [--requests N] [--start-every K]
--       [--frames MAX] [--frame-ms MS] [--timeout S] [--id-prefix P]
--
-- Without --url / --token the client takes them from the environment
-- (QSTASH_URL, QSTASH_TOKEN, QSTASH_DEV, ... as qstash.new does).
--
-- Every frame (MS milliseconds, 16 by default) it starts the next retry every
-- K frames until N are started, then calls client:poll(0), which runs the
-- callbacks of completed requests and returns at once. It stops when every
-- request has completed or after MAX frames, prints one line per request and
-- a summary line, and returns the exit status to the host: 0 when every
-- request completed (a request answered with an error, e.g. 404, completed
-- too: its error is printed), 2 when some had not completed after MAX frames,
-- 64 for bad arguments. A Lua error escaping the script makes the host print
-- it with a traceback and exit 1.

local qstash = require "qstash"
local qsafe = require "qstash.safe" -- runtime failures come back as nil, err
local host = require "host"         -- the C host's monotonic clock and sleep

local USAGE = "usage: frame_loop.lua [--url URL] [--token TOKEN] [--requests N] " ..
  "[--start-every K] [--frames MAX] [--frame-ms MS] [--timeout S] [--id-prefix P]"

local function parse_args(argv)
  local o = { requests = 5, start_every = 1, frames = 600, frame_ms = 16, timeout = 10,
              id_prefix = "1725323658779-" }
  local numeric = { requests = true, start_every = true, frames = true, frame_ms = true,
                    timeout = true }
  local i = 1
  while i <= #argv do
    local flag = argv[i]
    local key = type(flag) == "string" and flag:match("^%-%-([%w-]+)$")
    key = key and key:gsub("-", "_")
    if not key or (o[key] == nil and key ~= "url" and key ~= "token") or argv[i + 1] == nil then
      return nil, USAGE
    end
    local v = argv[i + 1]
    if numeric[key] then
      v = tonumber(v)
      if not v or v < 0 or (key ~= "timeout" and v ~= math.floor(v)) then
        local what = key == "timeout" and "a number" or "a whole number"
        return nil, "frame_loop.lua: " .. flag .. " needs " .. what .. " >= 0\n" .. USAGE
      end
    end
    o[key] = v
    i = i + 2
  end
  return o
end

local function ms(s) return s * 1000 end

local function main(argv)
  local o, usage = parse_args(argv)
  if not o then
    io.stderr:write(usage, "\n")
    return 64
  end
  local frame_s = o.frame_ms / 1000

  local client <close>, cerr = qsafe.new{
    base_url = o.url,
    token = o.token,
    timeout = o.timeout,
    retry = { attempts = 3, base_delay = 0.05, max_delay = 0.5 },
  }
  if not client then
    io.stderr:write("frame_loop.lua: ", tostring(cerr), "\n")
    return 1
  end
  print(string.format("frame_loop: lua-qstash %s, %d request(s), one every %d frame(s), %g ms frames",
    qstash._VERSION, o.requests, o.start_every, o.frame_ms))

  local reqs = {}              -- i -> { id, started, frame, ms, res, err }
  local started, completed, ok, failed = 0, 0, 0, 0
  local frame, in_flight_frames = 0, 0
  local longest_frame, longest_poll = 0, 0

  local function start_next()
    started = started + 1
    local r = { id = o.id_prefix .. started, started = host.now() }
    reqs[started] = r
    local handle, err = client:dlq_retry_async(r.id, { retries = 3 }, function(res, cb_err)
      -- Runs from client:poll, inside the frame that completed it.
      r.frame, r.ms = frame, ms(host.now() - r.started)
      r.res, r.err = res, cb_err
      completed = completed + 1
      if res then ok = ok + 1 else failed = failed + 1 end
    end)
    if not handle then -- e.g. no token configured: reported, never raised
      r.err, r.not_started = err, true
    end
  end

  while frame < o.frames do
    frame = frame + 1
    local t0 = host.now()

    if started < o.requests and (frame - 1) % math.max(o.start_every, 1) == 0 then
      start_next()
    end

    if client:pending() > 0 then in_flight_frames = in_flight_frames + 1 end
    local p0 = host.now()
    client:poll(0)                               -- never waits
    longest_poll = math.max(longest_poll, host.now() - p0)

    -- ... the rest of the frame (game update, rendering) would go here ...

    local rest = t0 + frame_s - host.now()
    if rest > 0 then host.sleep(rest) end
    longest_frame = math.max(longest_frame, host.now() - t0)

    if started == o.requests and client:pending() == 0 then break end
  end

  local missing = 0
  for i = 1, started do
    local r = reqs[i]
    if r.res then
      print(string.format("request %d (%s): ok messageId=%s in frame %d after %.1f ms",
        i, r.id, tostring(r.res.messageId), r.frame, r.ms))
    elseif r.frame then
      print(string.format("request %d (%s): error %s in frame %d after %.1f ms",
        i, r.id, tostring(r.err), r.frame, r.ms))
    elseif r.not_started then
      missing = missing + 1
      print(string.format("request %d (%s): not started: %s", i, r.id, tostring(r.err)))
    else
      missing = missing + 1
      print(string.format("request %d (%s): still in flight after %d frames", i, r.id, frame))
    end
  end
  missing = missing + (o.requests - started)
  print(string.format("summary: frames=%d in_flight_frames=%d requests=%d completed=%d ok=%d failed=%d " ..
    "longest_frame_ms=%.1f longest_poll_ms=%.1f",
    frame, in_flight_frames, o.requests, completed, ok, failed, ms(longest_frame), ms(longest_poll)))

  -- `client` is closed here (<close>): requests still in flight are cancelled.
  return missing == 0 and 0 or 2
end

return main(arg)
