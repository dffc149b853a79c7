--- A test nginx (Debian's nginx-light with libnginx-mod-http-lua) on a free
-- loopback port, running the checkout's lua/ and LuaJIT build.
--
--   local nginx = require "spec.support.nginx"
--   local why = nginx.unavailable()          -- nil, or why the nginx specs are pending
--   local ngx_srv = nginx.start{ main = "env X=1;", server = "location / { ... }", workers = 2 }
--   ngx_srv.url, ngx_srv:error_log(), ngx_srv:stop()
local E = require "spec.support.emulator"
local socket = require "socket"

local M = {}

local NGINX = "/usr/sbin/nginx"
local MODULES = "/usr/lib/nginx/modules"
local LUA_CJSON_DIR = "/usr/lib/x86_64-linux-gnu/lua/5.1"
local q = E.shell_quote

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

--- Why nginx specs cannot run here (nil when they can).
function M.unavailable()
  if rawget(_G, "jit") == nil then
    return "nginx loads the LuaJIT build: run it with make test LUA=luajit"
  end
  if not (exists(NGINX) and exists(MODULES .. "/ngx_http_lua_module.so") and exists(MODULES .. "/ndk_http_module.so")) then
    return "needs Debian's nginx-light and libnginx-mod-http-lua (make deps)"
  end
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

local function abs_root()
  local root = E.root
  if root:sub(1, 1) == "/" then return root end
  local p = io.popen("pwd")
  local cwd = p:read("*l")
  p:close()
  return cwd .. (root == "." and "" or "/" .. root)
end

-- The test nginx runs as root (`user root`) so that its workers can read a
-- checkout in a private directory.
local CONF = [[
user root;
worker_processes @WORKERS@;
pid @PREFIX@/nginx.pid;
error_log @PREFIX@/error.log warn;
load_module @MODULES@/ndk_http_module.so;
load_module @MODULES@/ngx_http_lua_module.so;
@MAIN@
events { worker_connections 256; }

http {
  access_log off;
  default_type text/plain;
  client_body_temp_path @PREFIX@/client_body;
  lua_package_path "@ROOT@/lua/?.lua;@ROOT@/lua/?/init.lua;@ROOT@/?.lua;@PREFIX@/?.lua;;";
  lua_package_cpath "@ROOT@/build/luajit/?.so;@CJSON@/?.so;;";
  @HTTP@
  server {
    listen 127.0.0.1:@PORT@;
    @SERVER@
  }
}
]]

local Nginx = {}
Nginx.__index = Nginx

function Nginx:error_log()
  return E.read_file(self.prefix .. "/error.log") or ""
end

function Nginx:stop()
  if self.pid then
    E.exec_ok("kill -TERM " .. self.pid .. " 2>/dev/null")
    if not E.wait_for(function() return not E.alive(self.pid) end, 5) then
      E.exec_ok("kill -KILL " .. self.pid .. " 2>/dev/null")
      E.wait_for(function() return not E.alive(self.pid) end, 2)
    end
    self.pid = nil
  end
  if self.prefix then
    os.execute("rm -rf " .. q(self.prefix))
    self.prefix = nil
  end
end

--- Starts nginx in the foreground of a background shell. opts: main (lines of
-- the main context), http (lines of the http block), server (the server
-- block's body), workers (default 1).
function M.start(opts)
  local prefix = E.tmpdir()
  local last
  for _ = 1, 3 do
    local port = free_port()
    local subst = { WORKERS = tostring(opts.workers or 1), PREFIX = prefix, MODULES = MODULES,
                    ROOT = abs_root(), CJSON = LUA_CJSON_DIR, PORT = tostring(port),
                    MAIN = opts.main or "", HTTP = opts.http or "", SERVER = opts.server or "" }
    E.write_file(prefix .. "/nginx.conf", (CONF:gsub("@(%u+)@", subst)))
    os.remove(prefix .. "/error.log")
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
      local c = socket.tcp()
      c:settimeout(0.5)
      local ok = c:connect("127.0.0.1", port)
      c:close()
      return ok and "up" or nil
    end, 20)
    if up == "up" then
      return setmetatable({ pid = pid, port = port, url = "http://127.0.0.1:" .. port, prefix = prefix }, Nginx)
    end
    last = (E.read_file(prefix .. "/stdout") or "") .. (E.read_file(prefix .. "/error.log") or "")
    E.exec_ok("kill -KILL " .. pid .. " 2>/dev/null")
  end
  os.execute("rm -rf " .. q(prefix))
  error("nginx did not start:\n" .. tostring(last), 0)
end

return M
