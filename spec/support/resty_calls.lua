--- qstash.resty's calls run in an nginx content handler, for the specs that
-- compare them with the C module's (resty_queues_spec, resty_schedules_spec,
-- ...): one nginx whose /call runs qr[fn](args..., conf) and answers
-- { ok, res, err = { kind, status, ambiguous, attempts, is_error }, phase }
-- or { raised }, and whose /fast
-- answers at once (to see that a slow call does not block the worker), beside
-- the emulator, a sink and a scriptable server.
--
--   local RC = require "spec.support.resty_calls"
--   local env
--   setup(function() env = RC.start() end)
--   teardown(function() env:stop() end)
--   before_each(function() env:reset() end)
--   it("...", function() local c = env:call("queue_get", 1, "q") ... end)
local E = require "spec.support.emulator"
local N = require "spec.support.nginx"
local server = require "spec.support.server"
local socket = require "socket"
local cjson = require "cjson"

local M = {}

-- package.loaded.resty_calls_h: the handler, run by content_by_lua_block.
local HANDLERS = [==[
  local qr = require "qstash.resty"
  local cjson = require "cjson.safe"
  local unpack = table.unpack or unpack
  local H = {}
  local function body()
    ngx.req.read_body()
    return cjson.decode(ngx.req.get_body_data() or "null")
  end
  -- { fn, n, args = { ["1"] = ..., ... }, conf }: qr[fn](args 1..n, conf)
  function H.call()
    local a = body()
    local args = {}
    for i = 1, a.n do args[i] = a.args[tostring(i)] end
    args[a.n + 1] = a.conf
    local ok, res, err = pcall(qr[a.fn], unpack(args, 1, a.n + 1))
    if not ok then
      ngx.say(cjson.encode{ raised = tostring(res) })
      return
    end
    ngx.say(cjson.encode{ ok = res ~= nil, res = res, phase = ngx.get_phase(), err = err and {
      kind = err.kind, status = err.status, ambiguous = err.ambiguous == true,
      attempts = err.attempts, is_error = require("qstash").is_error(err) } or nil })
  end
  package.loaded.resty_calls_h = H
]==]

--- Why these specs cannot run here (no LuaJIT or nginx), or nil.
M.skip_reason = N.skip_reason

local Env = {}
Env.__index = Env

--- start([{ time_scale = s }]) -> env: { emu, sink, srv, ng, conf (the
-- emulator's), client (the C module's, on conf) }. The emulator's time
-- scale is 0.001 unless given (a minute of QStash's is 60 ms).
function M.start(opts)
  local qstash = require "qstash"
  local env = setmetatable({}, Env)
  env.emu = E.start{ time_scale = (opts or {}).time_scale or 0.001 }
  env.sink = E.start_sink()
  env.srv = server.start()
  env.conf = { base_url = env.emu.url, token = env.emu.token, retry = { base_delay = 0.01 }, timeout = 5 }
  env.client = qstash.new(env.conf)
  env.ng = N.start{
    http = ("init_by_lua_block { %s }"):format(HANDLERS),
    server = table.concat({
      "location = /call { content_by_lua_block { package.loaded.resty_calls_h.call() } }",
      'location = /fast { content_by_lua_block { ngx.say("ok") } }',
    }, "\n    "),
  }
  return env
end

function Env:stop()
  if self.ng then self.ng:stop() end
  if self.client then self.client:close() end
  if self.srv then self.srv:stop() end
  if self.sink then self.sink:stop() end
  if self.emu then self.emu:stop() end
end

--- Between specs: the emulator's state and the sink's deliveries go.
function Env:reset()
  self.emu:reset()
  self.sink:clear()
end

local function encode_args(n, ...)
  local args = { ["0"] = false }
  for i = 1, n do
    local v = select(i, ...)
    if v ~= nil then args[tostring(i)] = v end
  end
  return args
end

--- call_conf(conf, fn, n, ...) -> qr[fn](the n arguments, conf) in a
-- content handler: { ok, res, err, phase } or { raised }.
function Env:call_conf(conf, fn, n, ...)
  local status, body = E.request(self.ng.url, "POST", "/call", {
    body = cjson.encode{ fn = fn, n = n, args = encode_args(n, ...), conf = conf },
    headers = { ["content-type"] = "application/json" } })
  assert(status == 200, body .. "\n" .. self.ng:error_log():sub(-3000))
  return cjson.decode(body)
end

--- call(fn, n, ...): call_conf with the emulator's configuration.
function Env:call(fn, n, ...)
  return self:call_conf(self.conf, fn, n, ...)
end

--- slow_call(fn, n, ..., answer) -> what qr[fn] returned, called against the
-- scriptable server answering `answer` after a second; meanwhile the
-- worker keeps answering /fast at once (raises if it was blocked).
function Env:slow_call(fn, n, ...)
  local answer = select(n + 1, ...)
  self.srv:reset()
  self.srv:script{ { status = 200, delay = 1, json = answer } }
  local slow_conf = { base_url = self.srv.url, token = "t", retry = false, timeout = 5 }
  local sock = socket.tcp()
  sock:settimeout(15)
  assert(sock:connect("127.0.0.1", self.ng.port))
  local req = cjson.encode{ fn = fn, n = n, args = encode_args(n, ...), conf = slow_conf }
  assert(sock:send("POST /call HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" ..
    "Content-Length: " .. #req .. "\r\n\r\n" .. req))
  local served, t_end = 0, E.now() + 0.6
  while E.now() < t_end do
    local t1 = E.now()
    local status = E.request(self.ng.url, "GET", "/fast")
    assert(status == 200, "/fast answered " .. tostring(status))
    assert(E.now() - t1 < 0.3, "the worker was blocked")
    served = served + 1
    socket.sleep(0.05)
  end
  assert(served >= 3, "served " .. served)
  local got = sock:receive("*a")
  sock:close()
  return cjson.decode(got:match("\r\n\r\n(.*)$"))
end

return M
