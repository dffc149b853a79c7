-- Contender: plain Lua over luasocket (+ luasec for https), the same POSTs in
-- a sequential loop on one keep-alive connection. socket.http cannot be
-- used for this: it sends "Connection: close" and opens a connection per
-- request, so this is a minimal HTTP/1.1 client over a raw socket. Bodies
-- are decoded with lua-cjson, as lua-qstash decodes them.
-- Usage: lua5.4 bench/luasocket_seq.lua BASE_URL N WARMUP CA_FILE
local socket = require "socket"
local cjson = require "cjson"
local bu = require "benchutil"

local url, n, warm, ca = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4]
local scheme, host, port = url:match("^(https?)://([^:/]+):(%d+)$")
assert(scheme, "BASE_URL must be http(s)://host:port")
port = tonumber(port)

local conn = assert(socket.tcp())
assert(conn:connect(host, port))
conn:setoption("tcp-nodelay", true)
if scheme == "https" then
  local ssl = require "ssl"
  -- luasec verifies the chain against ca_file; it does not check the host
  -- name (the certificate is for IP 127.0.0.1 anyway).
  conn = assert(ssl.wrap(conn, {
    mode = "client", protocol = "any", verify = "peer", cafile = ca,
    options = { "all", "no_sslv2", "no_sslv3", "no_tlsv1", "no_tlsv1_1" },
  }))
  assert(conn:dohandshake())
end

local prefix = "POST /v2/dlq/retry/"
local suffix = " HTTP/1.1\r\nHost: " .. host .. ":" .. port ..
  "\r\nAuthorization: Bearer bench\r\nUser-Agent: luasocket-bench/0.1 lua/5.4" ..
  "\r\nContent-Length: 0\r\n\r\n"

local function read_body(headers)
  local len = headers["content-length"]
  if len then return assert(conn:receive(tonumber(len))) end
  assert((headers["transfer-encoding"] or ""):lower():find("chunked"), "no body length")
  local parts = {}
  while true do
    local size = tonumber(assert(conn:receive("*l")):match("^%x+"), 16)
    if size == 0 then
      repeat local l = assert(conn:receive("*l")) until l == ""
      return table.concat(parts)
    end
    parts[#parts + 1] = assert(conn:receive(size))
    assert(conn:receive("*l"))
  end
end

local function retry(id)
  assert(conn:send(prefix .. id .. suffix))
  local status = tonumber(assert(conn:receive("*l")):match("^HTTP/1%.%d (%d%d%d)"))
  local headers = {}
  while true do
    local line = assert(conn:receive("*l"))
    if line == "" then break end
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    if k then headers[k:lower()] = v end
  end
  local body = read_body(headers)
  if status < 200 or status > 202 then error("HTTP " .. status .. " for " .. id) end
  local res = cjson.decode(body)
  if res.messageId ~= "msg_bench" then error("unexpected result for " .. id) end
  return res
end

for i = 1, warm do retry("w-" .. i) end
local t0, c0 = bu.now(), bu.cpu()
for i = 1, n do retry("id-" .. i) end
local t1, c1 = bu.now(), bu.cpu()
conn:close()
io.write(string.format("RESULT calls=%d wall=%.6f cpu=%.6f\n", n, t1 - t0, c1 - c0))
