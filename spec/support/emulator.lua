-- Test harness: start/stop the local QStash emulator (tools/qstash-dev) and a
-- controllable destination (spec/support/sink.py) on free loopback ports.
--
--   local emu_mod = require("spec.support.emulator")
--   local emu = emu_mod.start{ time_scale = 0.001, burst_limit = nil, token = nil }
--   emu.port, emu.url, emu.token
--   emu:request(method, path, { headers = {...}, body = "...", token = false })
--       --> status, body, headers (names lower-cased)
--   emu:json(method, path, opts)     --> status, decoded body (or nil), raw body, headers
--   emu:deliveries([query])          --> array of delivery attempts (GET /__dev/deliveries)
--   emu:reset()                      --> POST /__dev/reset
--   emu:api_requests_since(#emu:log()) --> { "POST /v2/...", ... } (with quiet = false)
--   emu:stop()                       --> SIGTERM, KILL after 3 s; idempotent
--
--   local sink = emu_mod.start_sink()
--   sink.url, sink.port
--   sink:set_status(500, { headers = {...}, body = "...", delay = 0.5, statuses = {500, 200} })
--   sink:received()                  --> array of {method, target, headers = {{name, value}}, body}
--   sink:header(req, name)           --> first value of a header of a received request
--   sink:clear()                     --> forget received requests, back to 200
--   sink:stop()
--
--   -- one emulator and one sink for a describe block: registers busted's
--   -- setup (start both), teardown (stop both) and before_each (emu:reset(),
--   -- sink:clear()) in the block it is called from
--   local fx = emu_mod.fixture{ time_scale = 0.001 }   -- E.start's options
--   setup(function() emu, sink = fx.emu, fx.sink end)  -- set once setup ran
--
-- Works under Lua 5.1-5.4 and LuaJIT; needs luasocket, lua-cjson and python3.

local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"

local M = {}

M.DEFAULT_TOKEN = "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="
M.CURRENT_SIGNING_KEY = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
M.NEXT_SIGNING_KEY = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"
M.python = os.getenv("PYTHON") or "python3"
M.start_timeout = 30 -- only waited out when a start fails

http.TIMEOUT = 30 -- the harness's own requests; only waited out when the emulator is stuck

local function repo_root()
  local src = debug.getinfo(1, "S").source
  if src:sub(1, 1) == "@" then src = src:sub(2) end
  local dir = src:match("^(.*)/spec/support/[^/]+$")
  if dir == nil or dir == "" then
    dir = src:sub(1, 1) == "/" and "/" or "."
  end
  return dir
end
M.root = repo_root()

local function q(s)
  return "'" .. (tostring(s):gsub("'", "'\\''")) .. "'"
end
M.shell_quote = q

-- os.execute's result differs between 5.1/LuaJIT (a number) and 5.2+ (true/nil, "exit", code).
local function exec_ok(cmd)
  local a, _, c = os.execute(cmd)
  if type(a) == "number" then return a == 0 end
  return a == true and (c == nil or c == 0)
end
M.exec_ok = exec_ok

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end
M.read_file = read_file

function M.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local function popen_line(cmd)
  local p = io.popen(cmd)
  local line = p:read("*l")
  p:close()
  return line
end

local my_pid
local function self_pid()
  -- the shell io.popen starts is our child, so its $PPID is this process
  if not my_pid then my_pid = tonumber(popen_line("echo $PPID")) end
  return my_pid
end

function M.tmpdir()
  local d = popen_line("mktemp -d 2>/dev/null")
  assert(d and d ~= "", "mktemp -d failed")
  return d
end

function M.sleep(s) socket.sleep(s) end
function M.now() return socket.gettime() end

-- Poll fn() until it returns a truthy value; returns that value, or nil after timeout.
function M.wait_for(fn, timeout, interval)
  local deadline = socket.gettime() + (timeout or 5)
  repeat
    local v = fn()
    if v then return v end
    socket.sleep(interval or 0.02)
  until socket.gettime() > deadline
  return fn()
end

local function alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  if stat then
    local state = stat:match(".*%)%s+(%a)")
    return state ~= "Z" and state ~= "X"
  end
  return exec_ok("kill -0 " .. pid .. " 2>/dev/null")
end
M.alive = alive

-- Start `cmd` (a shell command line) in the background; returns its pid.
local function spawn(cmd, dir)
  local pidfile = dir .. "/pid"
  assert(exec_ok(cmd .. " >" .. q(dir .. "/log") .. " 2>&1 </dev/null & echo $! >" .. q(pidfile)),
    "cannot start: " .. cmd)
  local pid = tonumber((read_file(pidfile) or ""):match("%d+"))
  assert(pid, "no pid for: " .. cmd)
  return pid
end

local function wait_listening(name, pid, dir, timeout)
  local portfile = dir .. "/port"
  local deadline = socket.gettime() + timeout
  while socket.gettime() < deadline do
    local port = tonumber((read_file(portfile) or ""):match("%d+"))
    if port then
      local c = socket.tcp()
      c:settimeout(0.5)
      local ok = c:connect("127.0.0.1", port)
      c:close()
      if ok then return port end
    end
    if not alive(pid) then
      error(name .. " exited during start-up:\n" .. (read_file(dir .. "/log") or ""), 0)
    end
    socket.sleep(0.02)
  end
  exec_ok("kill -9 " .. pid .. " 2>/dev/null")
  error(name .. " did not start within " .. timeout .. " s:\n" .. (read_file(dir .. "/log") or ""), 0)
end

local function terminate(pid)
  exec_ok("kill -TERM " .. pid .. " 2>/dev/null")
  local deadline = socket.gettime() + 3
  while alive(pid) and socket.gettime() < deadline do socket.sleep(0.02) end
  if alive(pid) then
    exec_ok("kill -KILL " .. pid .. " 2>/dev/null")
    deadline = socket.gettime() + 1
    while alive(pid) and socket.gettime() < deadline do socket.sleep(0.02) end
  end
end

-- Plain HTTP over luasocket.  Returns status, body, headers (lower-cased names).
function M.request(base_url, method, path, opts)
  opts = opts or {}
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  local body = opts.body
  if body == nil and (method == "POST" or method == "PUT" or method == "PATCH") then body = "" end
  if body ~= nil then headers["content-length"] = tostring(#body) end
  local chunks = {}
  local ok, code, rh = http.request{
    url = base_url .. path,
    method = method,
    headers = headers,
    source = body and ltn12.source.string(body) or nil,
    sink = ltn12.sink.table(chunks),
  }
  if not ok then error("HTTP " .. method .. " " .. path .. " failed: " .. tostring(code), 2) end
  return code, table.concat(chunks), rh or {}
end

local function decode(raw)
  if raw == nil or raw == "" then return nil end
  local ok, v = pcall(cjson.decode, raw)
  if ok then return v end
  return nil
end
M.decode = decode

---------------------------------------------------------------- emulator

local Emu = {}
Emu.__index = Emu

-- opts.launcher: the emulator's launcher to run (default tools/qstash-dev of
-- this tree), e.g. an installed copy.
function M.start(opts)
  opts = opts or {}
  local dir = M.tmpdir()
  local args = {
    -- Python without the ASan runtime that `make asan` preloads for Lua:
    -- it only slows the emulator's start (past 10 s on a busy machine)
    "env -u LD_PRELOAD", q(M.python), q(opts.launcher or (M.root .. "/tools/qstash-dev")),
    "--port", "0", "--port-file", q(dir .. "/port"),
    "--watch-pid", tostring(self_pid()),
  }
  if opts.quiet ~= false then args[#args + 1] = "--quiet" end
  if opts.time_scale then args[#args + 1] = "--time-scale " .. q(string.format("%.17g", opts.time_scale)) end
  if opts.burst_limit then args[#args + 1] = "--burst-limit " .. q(opts.burst_limit) end
  if opts.token then args[#args + 1] = "--token " .. q(opts.token) end
  local pid = spawn(table.concat(args, " "), dir)
  local ok, port = pcall(wait_listening, "qstash-dev", pid, dir, opts.timeout or M.start_timeout)
  if not ok then
    os.execute("rm -rf " .. q(dir))
    error(port, 2)
  end
  return setmetatable({
    pid = pid, dir = dir, port = port,
    url = "http://127.0.0.1:" .. port,
    token = opts.token or M.DEFAULT_TOKEN,
  }, Emu)
end

-- opts.token: a token to send instead of emu.token; false sends none.
function Emu:request(method, path, opts)
  opts = opts or {}
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  local token = opts.token
  if token == nil then token = self.token end
  if token then headers["authorization"] = "Bearer " .. token end
  return M.request(self.url, method, path, { headers = headers, body = opts.body })
end

function Emu:json(method, path, opts)
  local status, raw, headers = self:request(method, path, opts)
  return status, decode(raw), raw, headers
end

function Emu:deliveries(query)
  local status, doc, raw = self:json("GET", "/__dev/deliveries" .. (query and ("?" .. query) or ""))
  assert(status == 200, "GET /__dev/deliveries: " .. tostring(status) .. " " .. tostring(raw))
  return doc
end

function Emu:reset()
  local status, raw = self:request("POST", "/__dev/reset")
  assert(status == 200, "POST /__dev/reset: " .. tostring(status) .. " " .. tostring(raw))
end

function Emu:log()
  return read_file(self.dir .. "/log") or ""
end

--- The API requests ("METHOD /v2/...") the emulator logged after `offset`
-- bytes of its log (`#emu:log()` taken before), up to a marker request made
-- now: its line proves every line before it is written. Needs quiet = false.
function Emu:api_requests_since(offset)
  local marker = "/v2/queues/log-marker-" .. tostring(offset)
  assert(self:request("GET", marker) == 404, "the marker request was not answered 404")
  local lines = M.wait_for(function()
    local log = self:log():sub(offset + 1)
    if log:find(marker, 1, true) then return log end
  end, 10)
  assert(lines, "the marker request never reached the emulator's log (started with quiet = false?)")
  local out = {}
  for line in lines:gmatch("[^\n]+") do
    local method, target = line:match('"(%u+) (/v2/%S*) HTTP/1%.1"')
    if method and target ~= marker then out[#out + 1] = method .. " " .. target end
  end
  return out
end

function Emu:stop()
  if self.stopped then return end
  self.stopped = true
  terminate(self.pid)
  os.execute("rm -rf " .. q(self.dir))
end

---------------------------------------------------------------- spec helpers

--- The environment of the function `level` calls up (2: the caller of the
-- function calling this): in a spec file, where busted's describe, setup,
-- pending... are, which a module required from it does not see.
function M.spec_env(level)
  level = (level or 1) + 1
  if getfenv then
    local env = getfenv(level) -- not a tail call: LuaJIT would drop this frame
    return env
  end
  local fn = debug.getinfo(level, "f").func
  for i = 1, math.huge do
    local k, v = debug.getupvalue(fn, i)
    if k == nil then break end
    if k == "_ENV" then return v end
  end
  return _G
end

--- One emulator (started with `opts`) and one sink for the describe block
-- this is called in: registers busted's setup, teardown and before_each
-- there (or in `env`, busted's environment a helper module passes on).
-- Returns the fixture; fx.emu and fx.sink are set once setup ran.
function M.fixture(opts, env)
  env = env or M.spec_env(2)
  local fx = {}
  env.setup(function()
    fx.emu = M.start(opts)
    fx.sink = M.start_sink()
  end)
  env.teardown(function()
    if fx.sink then fx.sink:stop() end
    if fx.emu then fx.emu:stop() end
  end)
  env.before_each(function()
    fx.emu:reset()
    fx.sink:clear()
  end)
  return fx
end

---------------------------------------------------------------- sink

local Sink = {}
Sink.__index = Sink

function M.start_sink(opts)
  opts = opts or {}
  local dir = M.tmpdir()
  local cmd = table.concat({
    "env -u LD_PRELOAD", q(M.python), q(M.root .. "/spec/support/sink.py"),
    "--port", "0", "--port-file", q(dir .. "/port"), "--watch-pid", tostring(self_pid()),
  }, " ")
  local pid = spawn(cmd, dir)
  local ok, port = pcall(wait_listening, "sink", pid, dir, opts.timeout or M.start_timeout)
  if not ok then
    os.execute("rm -rf " .. q(dir))
    error(port, 2)
  end
  return setmetatable({ pid = pid, dir = dir, port = port, url = "http://127.0.0.1:" .. port }, Sink)
end

function Sink:set_mode(mode)
  local status, raw = M.request(self.url, "POST", "/__sink/mode", { body = cjson.encode(mode) })
  assert(status == 200, "sink mode: " .. tostring(status) .. " " .. tostring(raw))
end

function Sink:set_status(status, opts)
  local mode = { status = status }
  for k, v in pairs(opts or {}) do mode[k] = v end
  self:set_mode(mode)
end

function Sink:received()
  local status, raw = M.request(self.url, "GET", "/__sink/received")
  assert(status == 200, "sink received: " .. tostring(status))
  return cjson.decode(raw)
end

function Sink:clear()
  local status = M.request(self.url, "POST", "/__sink/reset")
  assert(status == 200, "sink reset: " .. tostring(status))
end

-- First value of header `name` (case-insensitive) in a received request.
function Sink.header(_, req, name)
  name = name:lower()
  for _, h in ipairs(req.headers) do
    if h[1]:lower() == name then return h[2] end
  end
  return nil
end

function Sink:stop()
  if self.stopped then return end
  self.stopped = true
  terminate(self.pid)
  os.execute("rm -rf " .. q(self.dir))
end

return M
