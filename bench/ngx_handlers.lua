-- make bench, nginx comparison: the handlers, loaded by the handler nginx
-- (lua_package_path has bench/). Each makes the same DLQ retry against the
-- stub QStash on 127.0.0.1:`port` and answers the new message id.
--
--   hand:   the minimal cosocket code a user writes by hand: connect, send
--           the POST with the same headers, read the status line, headers and
--           Content-Length body, setkeepalive, cjson.decode.
--   http:   the request value the core's "send" step gives, through
--           qstash.resty.http alone (the cosocket transport), then
--           cjson.decode: where the time of qstash.resty goes.
--   resty:  qr.dlq_retry from qstash.resty: the core's prepare/step over
--           that transport (the config table made once, as a handler's
--           module would).
local cjson = require "cjson"
local http = require "qstash.resty.http"
local qr = require "qstash.resty"

local M = {}

local ID = "1725323658779-0"
local TOKEN = "bench"
local UA = "lua-qstash/0.1.0 bench"

local function fail(what)
  ngx.log(ngx.ERR, "bench handler: ", what)
  return ngx.exit(502)
end

function M.hand(port)
  local sock = ngx.socket.tcp()
  sock:settimeouts(10000, 30000, 30000)
  local ok, err = sock:connect("127.0.0.1", port)
  if not ok then return fail(err) end
  ok, err = sock:send("POST /v2/dlq/retry/" .. ID .. " HTTP/1.1\r\nHost: 127.0.0.1:" .. port
    .. "\r\nAuthorization: Bearer " .. TOKEN .. "\r\nUser-Agent: " .. UA
    .. "\r\nContent-Length: 0\r\n\r\n")
  if not ok then return fail(err) end
  local line
  line, err = sock:receive("*l")
  if not line then return fail(err) end
  local status = tonumber(line:sub(10, 12))
  local len
  while true do
    local h
    h, err = sock:receive("*l")
    if not h then return fail(err) end
    if h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.*)$")
    if k and k:lower() == "content-length" then len = tonumber(v) end
  end
  local body
  body, err = sock:receive(len)
  if not body then return fail(err) end
  sock:setkeepalive()
  if status ~= 201 then return fail("status " .. tostring(status)) end
  ngx.say(cjson.decode(body).messageId)
end

function M.http(port)
  local ok, status, _, body = http.request{
    method = "POST", url = "http://127.0.0.1:" .. port .. "/v2/dlq/retry/" .. ID,
    headers = { { "Authorization", "Bearer " .. TOKEN }, { "User-Agent", UA } },
    body = "", timeout = 30, connect_timeout = 10, max_response_bytes = 8388608,
  }
  if not ok then return fail(status.message) end
  if status ~= 201 then return fail("status " .. tostring(status)) end
  ngx.say(cjson.decode(body).messageId)
end

local configs = {}
function M.resty(port)
  local conf = configs[port]
  if not conf then
    conf = { base_url = "http://127.0.0.1:" .. port, token = TOKEN, user_agent = UA }
    configs[port] = conf
  end
  local res, err = qr.dlq_retry(ID, nil, conf)
  if not res then return fail(tostring(err)) end
  ngx.say(res.messageId)
end

return M
