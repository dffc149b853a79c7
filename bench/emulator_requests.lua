-- Contender: the local emulator's (tools/qstash-dev) time per request, the
-- same GET /v2/dlq either on one keep-alive connection or on a new connection
-- each (connect, request, answer, close). A minimal HTTP/1.1 client over
-- luasocket, so that only the emulator and the connection handling are timed.
-- Usage: lua5.4 bench/emulator_requests.lua BASE_URL TOKEN N WARMUP keepalive|new
-- Prints "RESULT calls=N wall=S cpu=S median_us=U p90_us=U" (the timed loop only).
local socket = require "socket"
local bu = require "benchutil"

local url, token, n, warm, mode = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4]), arg[5]
local host, port = url:match("^http://([^:/]+):(%d+)$")
assert(host, "BASE_URL must be http://host:port")
assert(mode == "keepalive" or mode == "new", "mode must be keepalive or new")

local request = "GET /v2/dlq HTTP/1.1\r\nHost: " .. host .. ":" .. port ..
  "\r\nAuthorization: Bearer " .. token .. "\r\nUser-Agent: qstash-dev-bench\r\n" ..
  (mode == "new" and "Connection: close\r\n" or "") .. "\r\n"

local function connect()
  local c = assert(socket.tcp())
  c:settimeout(10)
  assert(c:connect(host, tonumber(port)))
  return c
end

local function exchange(c)
  assert(c:send(request))
  local status = tonumber(assert(c:receive("*l")):match("^HTTP/1%.%d (%d%d%d)"))
  local length
  while true do
    local line = assert(c:receive("*l"))
    if line == "" then break end
    length = length or tonumber(line:lower():match("^content%-length:%s*(%d+)"))
  end
  assert(length, "no Content-Length")
  local body = assert(c:receive(length))
  if status ~= 200 or not body:find('"messages"', 1, true) then
    error("unexpected answer: " .. status .. " " .. body)
  end
end

local conn = mode == "keepalive" and connect() or nil
local function one()
  if conn then return exchange(conn) end
  local c = connect()
  exchange(c)
  c:close()
end

for _ = 1, warm do one() end
local times = {}
local t0, c0 = bu.now(), bu.cpu()
for i = 1, n do
  local s = bu.now()
  one()
  times[i] = bu.now() - s
end
local t1, c1 = bu.now(), bu.cpu()
if conn then conn:close() end
table.sort(times)
local function pct(p) return times[math.max(1, math.ceil(#times * p))] * 1e6 end
io.write(string.format("RESULT calls=%d wall=%.6f cpu=%.6f median_us=%.1f p90_us=%.1f\n",
  n, t1 - t0, c1 - c0, pct(0.5), pct(0.9)))
