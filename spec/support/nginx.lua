--- A test nginx (Debian's nginx-light with libnginx-mod-http-lua) for the
-- OpenResty specs, running the checkout's lua/ and LuaJIT build: run as root
-- with `user root;` (so that its workers can read a checkout in a private
-- directory), in the foreground of a background shell, stopped by teardown
-- or when the spec process is gone.
--
--   local N = require "spec.support.nginx"
--   if N.pending_unless_runnable("what this file describes") then return end
--   local why = N.unavailable()     -- nil, or why the nginx specs are pending
--   -- the whole nginx.conf, on free ports picked for this start:
--   local ng = N.start(function(ports, prefix) return conf_text end, { nports = 3, files = {...} })
--   -- or one server from a template: main/http lines, the server's body
--   local ng = N.start{ main = "env X=1;", http = "...", server = "location / { ... }", workers = 2 }
--   ng.url, ng.port, ng.ports[1], ng.prefix, ng:error_log(), ng:stop()
--
-- `conf` gets the free ports and the prefix, and returns the text of
-- nginx.conf; `files` (name -> text) are written to the prefix first.

local E = require "spec.support.emulator"
local socket = require "socket"

local q = E.shell_quote

local M = {}

M.NGINX = "/usr/sbin/nginx"
M.MODULES = "/usr/lib/nginx/modules"
M.LUA_CJSON_DIR = "/usr/lib/x86_64-linux-gnu/lua/5.1"

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end
M.exists = exists

--- nil when a test nginx can run here, else why not.
function M.unavailable()
  if rawget(_G, "jit") == nil then
    return "nginx loads the LuaJIT build: run it with make test LUA=luajit"
  end
  if not (exists(M.NGINX) and exists(M.MODULES .. "/ngx_http_lua_module.so")
          and exists(M.MODULES .. "/ndk_http_module.so")) then
    return "needs Debian's nginx-light and libnginx-mod-http-lua (make deps)"
  end
  if not exists(M.root() .. "/build/luajit/qstash.so") then
    return "needs the LuaJIT build: make LUA=luajit"
  end
  return nil
end
M.skip_reason = M.unavailable

--- The preamble of every nginx spec file: when nginx cannot run here,
-- registers `describe(name)` with one pending test saying why and returns
-- that reason (the file then returns); else nil, and the file goes on.
function M.pending_unless_runnable(name)
  local why = M.unavailable()
  if why then
    -- busted's describe and pending are the spec file's, not this module's
    local env = E.spec_env(2)
    env.describe(name, function() env.pending(why) end)
  end
  return why
end

function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

--- The absolute path of the checkout (for lua_package_path).
function M.root()
  local root = E.root
  if root:sub(1, 1) ~= "/" then
    local p = io.popen("pwd")
    root = p:read("*l") .. (root == "." and "" or "/" .. root)
    p:close()
  end
  return root
end

--- The lines every test nginx.conf starts with (modules, paths, one worker).
function M.preamble(prefix, extra_modules)
  local lines = {
    "user root;",
    "worker_processes 1;",
    "pid " .. prefix .. "/nginx.pid;",
    "error_log " .. prefix .. "/error.log warn;",
    "load_module " .. M.MODULES .. "/ndk_http_module.so;",
    "load_module " .. M.MODULES .. "/ngx_http_lua_module.so;",
  }
  for _, m in ipairs(extra_modules or {}) do
    lines[#lines + 1] = "load_module " .. M.MODULES .. "/" .. m .. ";"
  end
  return table.concat(lines, "\n") .. "\n"
end

--- The http{} lines that let handlers load the checkout's modules.
function M.lua_paths(prefix)
  local root = M.root()
  return ('lua_package_path "%s/lua/?.lua;%s/lua/?/init.lua;%s/?.lua;%s/?.lua;;";\n'
    .. 'lua_package_cpath "%s/build/luajit/?.so;%s/?.so;;";\n'
    .. 'client_body_temp_path %s/client_body;\n'):format(root, root, root, prefix, root,
    M.LUA_CJSON_DIR, prefix)
end

local function own_pid()
  local stat = E.read_file("/proc/self/stat")
  return stat and tonumber(stat:match("^(%d+)"))
end

local Nginx = {}
Nginx.__index = Nginx

function Nginx:error_log()
  return E.read_file(self.prefix .. "/error.log") or ""
end

function Nginx:stop()
  if self.pid then
    local pid = self.pid
    self.pid = nil
    E.exec_ok("kill -TERM " .. pid .. " 2>/dev/null")
    local gone = E.wait_for(function() return not E.alive(pid) end, 5)
    if not gone then
      E.exec_ok("kill -KILL " .. pid .. " 2>/dev/null")
      E.wait_for(function() return not E.alive(pid) end, 2)
    end
  end
  if self.prefix and not self.keep then
    os.execute("rm -rf " .. q(self.prefix))
    self.prefix = nil
  end
end

-- The nginx.conf of N.start{ main, http, server, workers }: one server.
local TEMPLATE = [[
@WORKERS_LINE@
@MAIN@
events { worker_connections 256; }

http {
  access_log off;
  default_type text/plain;
@PATHS@
  @HTTP@
  server {
    listen 127.0.0.1:@PORT@;
    @SERVER@
  }
}
]]

local function from_template(t)
  return function(ports, prefix)
    local preamble = M.preamble(prefix):gsub("worker_processes 1;",
      "worker_processes " .. (t.workers or 1) .. ";")
    local subst = { WORKERS_LINE = preamble, MAIN = t.main or "", HTTP = t.http or "",
                    SERVER = t.server or "", PORT = tostring(ports[1]), PATHS = M.lua_paths(prefix) }
    return (TEMPLATE:gsub("@([%u_]+)@", function(k) return subst[k] end))
  end
end

--- Starts nginx; retries with other ports if one was taken meanwhile.
function M.start(conf, opts)
  if type(conf) == "table" then conf, opts = from_template(conf), nil end
  opts = opts or {}
  local prefix = opts.prefix or E.tmpdir()
  for name, text in pairs(opts.files or {}) do E.write_file(prefix .. "/" .. name, text) end
  local last
  for _ = 1, 3 do
    local ports = {}
    for i = 1, opts.nports or 1 do ports[i] = M.free_port() end
    E.write_file(prefix .. "/nginx.conf", conf(ports, prefix))
    os.remove(prefix .. "/error.log")
    local cmd = table.concat({ q(M.NGINX), "-p", q(prefix .. "/"), "-c", q(prefix .. "/nginx.conf"),
      "-e", q(prefix .. "/error.log"), "-g", q("daemon off;") }, " ")
    assert(E.exec_ok(cmd .. " >" .. q(prefix .. "/stdout") .. " 2>&1 </dev/null & echo $! >"
      .. q(prefix .. "/master.pid")))
    local pid = tonumber((E.read_file(prefix .. "/master.pid") or ""):match("%d+"))
    assert(pid, "nginx did not start")
    local me = own_pid()
    if me then
      E.exec_ok(("(while kill -0 %d 2>/dev/null && kill -0 %d 2>/dev/null; do sleep 1; done; "
        .. "kill -TERM %d 2>/dev/null) >/dev/null 2>&1 </dev/null &"):format(me, pid, pid))
    end
    local up = E.wait_for(function()
      if not E.alive(pid) then return "dead" end
      for _, port in ipairs(ports) do
        local c = socket.tcp()
        c:settimeout(0.5)
        local ok = c:connect("127.0.0.1", port)
        c:close()
        if not ok then return nil end
      end
      return "up"
    end, 20)
    if up == "up" then
      return setmetatable({ pid = pid, ports = ports, prefix = prefix, port = ports[1],
                            url = "http://127.0.0.1:" .. ports[1] }, Nginx)
    end
    last = (E.read_file(prefix .. "/stdout") or "") .. (E.read_file(prefix .. "/error.log") or "")
    E.exec_ok("kill -KILL " .. pid .. " 2>/dev/null")
  end
  error("nginx did not start:\n" .. tostring(last), 0)
end

return M
