--- Test harness around spec/support/http_server.py, a scriptable, recording,
-- fault-injecting HTTP/1.1 server.
--
--   local server = require "spec.support.server"
--
--   describe("something", function()
--     local srv
--     setup(function() srv = server.start() end)
--     teardown(function() srv:stop() end)      -- always stop it in teardown
--     before_each(function() srv:reset() end)
--
--     it("...", function()
--       srv:script{ {status = 404, json = {error = "message not found"}} }
--       -- ... exercise the client against srv.url ...
--       local req = srv:requests()[1]
--       assert.equal("POST", req.method)
--       assert.equal("3", srv:header(req, "Upstash-Retries"))
--     end)
--   end)
--
-- The control calls use luasocket and cjson only, never the module under test.
--
-- Safety nets against leftover processes (srv:stop() in teardown remains the
-- rule): the server exits by itself once the Lua process that started it is
-- gone, and servers still running when this module is garbage collected
-- (e.g. after busted's per-file insulation drops it, or when the Lua state is
-- closed) are stopped.

local socket = require "socket"
local cjson_module = require "cjson"
local mime = require "mime"

local json = cjson_module.new and cjson_module.new() or cjson_module

local M = {}

local Server = {}
Server.__index = Server
M.Server = Server

local toint = math.tointeger and function(x)
  return (type(x) == "number" and math.tointeger(x)) or x
end or function(x) return x end

-- ---------------------------------------------------------------------------
-- Helpers

local function shquote(s)
  return "'" .. (tostring(s):gsub("'", "'\\''")) .. "'"
end

local function execute(cmd)
  local a, _, c = os.execute(cmd)
  if type(a) == "number" then return a == 0 end -- Lua 5.1 / LuaJIT without 5.2 compat
  return a == true and (c == nil or c == 0)
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function script_dir()
  local info = debug.getinfo(1, "S")
  local src = info and info.source or ""
  if src:sub(1, 1) == "@" then
    local dir = src:sub(2):match("^(.*)[/\\][^/\\]*$")
    if dir then return dir end
    return "."
  end
  return "spec/support"
end

M.script_path = script_dir() .. "/http_server.py"

local HAVE_PROC = read_file("/proc/self/stat") ~= nil

-- PID of this Lua process (for the server's --watch-pid), or nil.
local function own_pid()
  local stat = read_file("/proc/self/stat")
  return stat and tonumber(stat:match("^(%d+)"))
end

-- true while the process exists and is not a zombie.
local function alive(pid)
  if HAVE_PROC then
    local stat = read_file("/proc/" .. pid .. "/stat")
    if not stat or stat == "" then return false end
    local state = stat:match(".*%)%s+(%a)")
    return state ~= "Z" and state ~= "X"
  end
  return execute("kill -0 " .. pid .. " 2>/dev/null")
end

local function wait_dead(pid, seconds)
  local deadline = socket.gettime() + seconds
  while alive(pid) do
    if socket.gettime() >= deadline then return false end
    socket.sleep(0.01)
  end
  return true
end

-- ---------------------------------------------------------------------------
-- Minimal HTTP/1.1 client for the control endpoints (Connection: close).

local function ctl(self, method, path, payload)
  if self._stopped then
    error("test server: " .. method .. " " .. path .. " after stop()", 3)
  end
  local body = ""
  if payload ~= nil then body = json.encode(payload) end
  local c = assert(socket.tcp())
  c:settimeout(10)
  local ok, err = c:connect("127.0.0.1", self.port)
  if not ok then
    c:close()
    error("test server: cannot connect to " .. self.url .. ": " .. tostring(err), 3)
  end
  local req = method .. " " .. path .. " HTTP/1.1\r\n" ..
    "Host: 127.0.0.1:" .. self.port .. "\r\n" ..
    "Connection: close\r\n" ..
    "Content-Type: application/json\r\n" ..
    "Content-Length: " .. #body .. "\r\n\r\n" .. body
  ok, err = c:send(req)
  if not ok then
    c:close()
    error("test server: sending " .. path .. " failed: " .. tostring(err), 3)
  end
  local data, rerr, partial = c:receive("*a")
  c:close()
  data = data or partial or ""
  local status = tonumber(data:match("^HTTP/1%.%d (%d%d%d)"))
  local head_end = data:find("\r\n\r\n", 1, true)
  if not status or not head_end then
    error("test server: bad control response for " .. path .. " (" .. tostring(rerr) .. "): " .. data, 3)
  end
  local resp_body = data:sub(head_end + 4)
  local cl = tonumber(data:sub(1, head_end):lower():match("\r\ncontent%-length:%s*(%d+)"))
  if cl then resp_body = resp_body:sub(1, cl) end
  local decoded_ok, value = pcall(json.decode, resp_body)
  if status ~= 200 then
    local msg = decoded_ok and type(value) == "table" and value.error or resp_body
    error("test server: " .. method .. " " .. path .. " -> " .. status .. ": " .. tostring(msg), 3)
  end
  if not decoded_ok then
    error("test server: invalid JSON from " .. path .. ": " .. tostring(value), 3)
  end
  return value
end

-- ---------------------------------------------------------------------------
-- Registry of running servers, stopped when this module is collected.

local live = {}

function M.stop_all()
  local list = {}
  for s in pairs(live) do list[#list + 1] = s end
  for _, s in ipairs(list) do pcall(s.stop, s) end
end

do
  local function finalize() pcall(M.stop_all) end
  if newproxy then -- Lua 5.1 / LuaJIT: tables have no __gc
    local p = newproxy(true)
    getmetatable(p).__gc = finalize
    M._sentinel = p
  else
    M._sentinel = setmetatable({}, { __gc = finalize })
  end
end

-- ---------------------------------------------------------------------------
-- Public API

--- Start a server.  opts (all optional):
--   python  = interpreter command (default: $PYTHON or "python3")
--   timeout = seconds to wait for readiness (default 10)
--   verbose = true to make the server log every request (see srv:log())
--   tls     = { cert = PEM file, key = PEM file }: also serve TLS on a second
--             port, at srv.tls_url ("https://127.0.0.1:<port>"), with the same
--             queue, records and control endpoints
function M.start(opts)
  opts = opts or {}
  local python = opts.python or os.getenv("PYTHON") or "python3"
  local timeout = opts.timeout or 10
  local base = os.tmpname()
  local self = setmetatable({
    pid = nil,
    port = nil,
    url = nil,
    _base = base,
    _pidfile = base .. ".pid",
    _portfile = base .. ".port",
    _logfile = base .. ".log",
    _stopped = false,
  }, Server)

  local watch = own_pid()
  -- Under `make asan` the sanitizer runtime is preloaded for the module's
  -- sake: Python has no use for it and starts seconds slower with it.
  local cmd = table.concat({
    "env -u LD_PRELOAD", shquote(python), shquote(M.script_path),
    "--port-file", shquote(self._portfile),
    watch and ("--watch-pid " .. watch) or "",
    opts.verbose and "--verbose" or "",
    opts.tls and ("--tls " .. shquote(opts.tls.cert) .. " " .. shquote(opts.tls.key)) or "",
    "</dev/null >/dev/null 2>" .. shquote(self._logfile),
    "& echo $! >" .. shquote(self._pidfile),
  }, " ")
  execute(cmd)
  self.pid = tonumber((read_file(self._pidfile) or ""):match("%d+"))
  if not self.pid then
    self:_cleanup_files()
    self._stopped = true
    error("test server: could not start " .. cmd, 2)
  end
  live[self] = true

  local deadline = socket.gettime() + timeout
  local last_err = "port file not written"
  while true do
    if not self.port then
      local text = read_file(self._portfile) or ""
      local p, tp = text:match("^(%d+)\n"), text:match("^%d+\n(%d+)\n")
      if p and (tp or not opts.tls) then
        self.port = tonumber(p)
        self.url = "http://127.0.0.1:" .. p
        if tp then
          self.tls_port = tonumber(tp)
          self.tls_url = "https://127.0.0.1:" .. tp
        end
      end
    end
    if self.port then
      local c = socket.tcp()
      c:settimeout(1)
      local ok, err = c:connect("127.0.0.1", self.port)
      c:close()
      if ok then break end
      last_err = "connect: " .. tostring(err)
    end
    if not alive(self.pid) then
      local log = self:log()
      self:stop()
      error("test server exited during startup (" .. python .. "): " .. log, 2)
    end
    if socket.gettime() >= deadline then
      local log = self:log()
      self:stop()
      error("test server not ready after " .. timeout .. " s (" .. last_err .. "): " .. log, 2)
    end
    socket.sleep(0.01)
  end
  return self
end

--- Append responses to the FIFO queue.  Accepts an array of response
-- objects, or a single response object.  Returns the number queued.
function Server:script(responses)
  assert(type(responses) == "table", "script: expected a table of responses")
  local list = responses
  if responses[1] == nil and next(responses) ~= nil then list = { responses } end
  local r = ctl(self, "POST", "/__ctl/script", { responses = list })
  return toint(r.queued)
end

--- Set the response used when the queue is empty (until reset()).
function Server:default(response)
  ctl(self, "POST", "/__ctl/default", response or {})
  return self
end

--- Recorded requests, oldest first.  Each is
--   { method, target, path, query, version,
--     headers = { {name, value}, ... }  -- original case and order
--     h       = { [lower-case name] = value }  -- last one wins
--     trailers = { {name, value}, ... },
--     body (exact bytes), body_len, chunked, conn, t }
function Server:requests()
  local list = ctl(self, "GET", "/__ctl/requests")
  for _, req in ipairs(list) do
    req.body_len = toint(req.body_len)
    req.conn = toint(req.conn)
    if req.body_b64 and req.body_b64 ~= "" then
      req.body = mime.unb64(req.body_b64)
    elseif req.body_b64 == "" then
      req.body = ""
    end
    req.h = {}
    for _, pair in ipairs(req.headers) do
      req.h[pair[1]:lower()] = pair[2]
    end
  end
  return list
end

--- The last recorded request (or nil).
function Server:last_request()
  local list = self:requests()
  return list[#list]
end

--- Poll until at least n requests are recorded (default timeout 5 s).
-- Returns the request list; raises an error on timeout.
function Server:wait_requests(n, timeout)
  local deadline = socket.gettime() + (timeout or 5)
  while true do
    local list = self:requests()
    if #list >= n then return list end
    if socket.gettime() >= deadline then
      error("test server: expected " .. n .. " request(s), got " .. #list, 2)
    end
    socket.sleep(0.01)
  end
end

--- Case-insensitive header lookup on a recorded request; the last value wins.
-- Works as srv:header(req, name) and as server.header(req, name).
function M.header(a, b, c)
  local req, name = a, b
  if getmetatable(a) == Server then req, name = b, c end
  local lname = name:lower()
  local value
  for _, pair in ipairs(req.headers or {}) do
    if pair[1]:lower() == lname then value = pair[2] end
  end
  return value
end
Server.header = M.header

--- All values of a header (case-insensitive), in order.
function M.header_values(a, b, c)
  local req, name = a, b
  if getmetatable(a) == Server then req, name = b, c end
  local lname = name:lower()
  local values = {}
  for _, pair in ipairs(req.headers or {}) do
    if pair[1]:lower() == lname then values[#values + 1] = pair[2] end
  end
  return values
end
Server.header_values = M.header_values

--- Clear queue and records, restore the built-in default response.
function Server:reset()
  ctl(self, "POST", "/__ctl/reset")
  return self
end

--- Total TCP connections accepted so far (control connections included).
function Server:connections()
  return toint(ctl(self, "GET", "/__ctl/connections").accepted)
end

--- Chaos mode (see http_server.py): every request that is not a control
-- request is answered by an outcome drawn from `weights` ({ ok = w, fail = w,
-- drop = w, short = w, reset = w, stall = w }) for a DLQ id that executes
-- once. cfg = { seed = s, weights = {...}, hold = seconds a stall lasts,
-- follow = { outcomes = {...}, fates = {...}, mess = {...}, page = n } (optional:
-- the logs and DLQ lookups of follows, see chaos_follow.py) }.
function Server:chaos(cfg)
  ctl(self, "POST", "/__ctl/chaos", cfg)
  return self
end

--- What chaos mode did, per id: { [id] = { received = n, executed = bool,
-- outcomes = { "ok" | "fail" | "drop" | "short" | "reset" | "stall" | "gone", ... },
-- messageId = the new message its retry answers } }; with `follow`, also per
-- path of the follows' requests ("/v2/logs", "/v2/dlq") their outcomes.
function Server:chaos_log()
  local ids = ctl(self, "GET", "/__ctl/chaos").ids
  for _, e in pairs(ids) do e.received = toint(e.received) end
  return ids
end

--- With chaos{ follow = {...} } (see chaos_follow.py): what the follows'
-- requests were served, { messages = { [messageId] = { fate, needed, polls,
-- lookups, served_final, served_dlq, time } }, first = wall-clock time of the
-- first logs or DLQ-lookup request (nil before any) }.
function Server:chaos_follow_log()
  local f = ctl(self, "GET", "/__ctl/chaos").follow or {}
  for _, m in pairs(f.messages or {}) do
    m.polls, m.lookups, m.needed = toint(m.polls), toint(m.lookups), toint(m.needed)
  end
  return { messages = f.messages or {}, first = f.first ~= json.null and f.first or nil }
end

--- Number of scripted responses not consumed yet.
function Server:pending()
  return toint(ctl(self, "GET", "/__ctl/pending").pending)
end

--- The server's stderr so far (errors; every request with verbose = true).
function Server:log()
  return read_file(self._logfile) or ""
end

function Server:_cleanup_files()
  os.remove(self._pidfile)
  os.remove(self._portfile)
  os.remove(self._logfile)
  os.remove(self._base)
end

--- SIGTERM the server, wait for it (SIGKILL after 3 s), remove temp files.
-- Idempotent.
function Server:stop()
  if self._stopped then return true end
  self._stopped = true
  live[self] = nil
  local pid = self.pid
  if pid and alive(pid) then
    execute("kill -TERM " .. pid .. " 2>/dev/null")
    if not wait_dead(pid, 3) then
      execute("kill -KILL " .. pid .. " 2>/dev/null")
      wait_dead(pid, 2)
    end
  end
  self:_cleanup_files()
  return true
end

Server.close = Server.stop

--- true while process pid exists (and is not a zombie).
M.alive = alive

return M
