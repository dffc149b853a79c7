--- A plain nginx (Debian's nginx-light, no Lua module: any Lua ABI can run
-- it) answering POST /v2/dlq/retry/{id} over HTTP and over HTTPS with
-- HTTP/2 offered (ALPN), on free loopback ports. Each answer names the HTTP
-- version it came over and the connection that carried it, so that a spec
-- can tell what the client negotiated and how many connections it used:
--   {"messageId":"msg_<connection serial>","deduplicated":false,"protocol":"HTTP/2.0"}
--
--   local plain_nginx = require "spec.support.plain_nginx"
--   local why = plain_nginx.unavailable()       -- nil, or why it cannot run here
--   local ngx = plain_nginx.start()             -- ngx.http_url, ngx.https_url, ngx.ca_file
--   ngx:stop()                                  -- always, in teardown
local E = require "spec.support.emulator"
local socket = require "socket"
local tls = require "spec.support.tls"

local M = {}

local NGINX = "/usr/sbin/nginx"
local q = E.shell_quote

--- Why it cannot run here (nil when it can).
function M.unavailable()
  local f = io.open(NGINX, "rb")
  if not f then return "needs Debian's nginx-light (make deps)" end
  f:close()
end

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local function own_pid()
  local stat = E.read_file("/proc/self/stat")
  return stat and tonumber(stat:match("^(%d+)"))
end

-- One worker: every connection is counted by the same process, so
-- $connection serials are distinct per connection.
local CONF = [[
user root;
worker_processes 1;
pid @PREFIX@/nginx.pid;
error_log @PREFIX@/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/json;
  client_body_temp_path @PREFIX@/client_body;
  proxy_temp_path @PREFIX@/proxy;
  fastcgi_temp_path @PREFIX@/fastcgi;
  uwsgi_temp_path @PREFIX@/uwsgi;
  scgi_temp_path @PREFIX@/scgi;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:@HTTP_PORT@;
    listen 127.0.0.1:@HTTPS_PORT@ ssl http2;
    ssl_certificate @CERT@;
    ssl_certificate_key @KEY@;
    ssl_protocols TLSv1.2 TLSv1.3;
    location /v2/dlq/retry/ {
      return 201 '{"messageId":"msg_$connection","deduplicated":false,"protocol":"$server_protocol"}';
    }
    location / { return 404 '{"error":"not found"}'; }
  }
}
]]

local Nginx = {}
Nginx.__index = Nginx

function Nginx:stop()
  if self.pid then
    E.exec_ok("kill -TERM " .. self.pid .. " 2>/dev/null")
    if not E.wait_for(function() return not E.alive(self.pid) end, 5) then
      E.exec_ok("kill -KILL " .. self.pid .. " 2>/dev/null")
      E.wait_for(function() return not E.alive(self.pid) end, 2)
    end
    self.pid = nil
  end
  if self.cert then
    self.cert:remove()
    self.cert = nil
  end
  if self.prefix then
    os.execute("rm -rf " .. q(self.prefix))
    self.prefix = nil
  end
end

local function listening(port)
  local c = socket.tcp()
  c:settimeout(0.5)
  local ok = c:connect("127.0.0.1", port)
  c:close()
  return ok
end

--- Starts nginx in the foreground of a background shell.
function M.start()
  local prefix = E.tmpdir()
  local cert = tls.self_signed()
  local last
  for _ = 1, 3 do
    local http_port, https_port = free_port(), free_port()
    local subst = { PREFIX = prefix, HTTP_PORT = tostring(http_port), HTTPS_PORT = tostring(https_port),
                    CERT = cert.cert, KEY = cert.key }
    E.write_file(prefix .. "/nginx.conf", (CONF:gsub("@([%u_]+)@", subst)))
    local cmd = table.concat({ q(NGINX), "-p", q(prefix .. "/"), "-c", q(prefix .. "/nginx.conf"),
      "-e", q(prefix .. "/error.log"), "-g", q("daemon off;") }, " ")
    assert(E.exec_ok(cmd .. " >" .. q(prefix .. "/stdout") .. " 2>&1 </dev/null & echo $! >"
      .. q(prefix .. "/master.pid")))
    local pid = tonumber((E.read_file(prefix .. "/master.pid") or ""):match("%d+"))
    assert(pid, "nginx did not start")
    -- stop nginx if this process goes away without stop()
    local me = own_pid()
    if me then
      E.exec_ok(("(while kill -0 %d 2>/dev/null && kill -0 %d 2>/dev/null; do sleep 1; done; "
        .. "kill -TERM %d 2>/dev/null) >/dev/null 2>&1 </dev/null &"):format(me, pid, pid))
    end
    local up = E.wait_for(function()
      if not E.alive(pid) then return "dead" end
      return listening(http_port) and listening(https_port) and "up" or nil
    end, 20)
    if up == "up" then
      return setmetatable({ pid = pid, prefix = prefix, cert = cert, ca_file = cert.cert,
        http_url = "http://127.0.0.1:" .. http_port,
        https_url = "https://127.0.0.1:" .. https_port }, Nginx)
    end
    last = (E.read_file(prefix .. "/stdout") or "") .. (E.read_file(prefix .. "/error.log") or "")
    E.exec_ok("kill -KILL " .. pid .. " 2>/dev/null")
  end
  cert:remove()
  os.execute("rm -rf " .. q(prefix))
  error("nginx did not start:\n" .. tostring(last), 0)
end

return M
