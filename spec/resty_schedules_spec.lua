-- qstash.resty's schedule calls (schedule_create, schedule_create_json,
-- schedule_get, schedule_list, schedule_delete, schedule_pause,
-- schedule_resume) from content handlers over cosockets, against the
-- emulator: what the C module's libcurl path returns, the runs reach the
-- destination, and a slow answer does not block the worker. Needs LuaJIT
-- and nginx (`make test LUA=luajit SPECS=spec/resty_schedules_spec.lua`).

local E = require "spec.support.emulator"
local N = require "spec.support.nginx"
local server = require "spec.support.server"
local socket = require "socket"
local cjson = require "cjson"

local skip = N.skip_reason()
if skip then
  describe("qstash.resty schedules under nginx", function() pending(skip) end)
  return
end

local qstash = require "qstash"

-- package.loaded.schedules_h: the handlers, run by content_by_lua_block.
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
    ngx.say(cjson.encode{ ok = res ~= nil, res = res, phase = ngx.get_phase(),
      err = err and { kind = err.kind, status = err.status } or nil })
  end
  package.loaded.schedules_h = H
]==]

describe("qstash.resty schedules under nginx", function()
  local emu, sink, srv, ng, client, conf

  setup(function()
    emu = E.start{ time_scale = 0.001 }
    sink = E.start_sink()
    srv = server.start()
    conf = { base_url = emu.url, token = emu.token, retry = { base_delay = 0.01 }, timeout = 5 }
    client = qstash.new(conf)
    ng = N.start{
      http = ("init_by_lua_block { %s }"):format(HANDLERS),
      server = table.concat({
        "location = /call { content_by_lua_block { package.loaded.schedules_h.call() } }",
        'location = /fast { content_by_lua_block { ngx.say("ok") } }',
      }, "\n    "),
    }
  end)

  teardown(function()
    if ng then ng:stop() end
    if client then client:close() end
    if srv then srv:stop() end
    if sink then sink:stop() end
    if emu then emu:stop() end
  end)

  before_each(function()
    emu:reset()
    sink:clear()
  end)

  -- qr[fn](...) in a content handler: { ok, res, err, phase } or { raised }
  local function call(fn, n, ...)
    local args = { ["0"] = false }
    for i = 1, n do
      local v = select(i, ...)
      if v ~= nil then args[tostring(i)] = v end
    end
    local status, body = E.request(ng.url, "POST", "/call", {
      body = cjson.encode{ fn = fn, n = n, args = args, conf = conf },
      headers = { ["content-type"] = "application/json" } })
    assert.equal(200, status, body .. "\n" .. ng:error_log():sub(-3000))
    return cjson.decode(body)
  end

  it("runs every schedule call from a handler, with the C module's results", function()
    local c = call("schedule_create", 4, sink.url .. "/a", "* * * * *", "one", { schedule_id = "rs", retries = 0 })
    assert.equal("content", c.phase)
    assert.same({ scheduleId = "rs" }, c.res)
    c = call("schedule_create_json", 4, sink.url .. "/b", "CRON_TZ=Asia/Tokyo 0 0 1 1 *", { n = 2 }, nil)
    assert.is_string(c.res.scheduleId)
    local other = c.res.scheduleId
    local got = call("schedule_get", 1, other).res
    assert.equal('{"n":2}', got.body)
    assert.equal("CRON_TZ=Asia/Tokyo 0 0 1 1 *", got.cron)
    -- the runs of "rs" (every minute: 60 ms at this time scale) reach the sink
    local body = E.wait_for(function()
      local r = sink:received()
      if #r >= 1 then return r[1].body end
    end, 5, 0.02)
    assert.equal("one", body)
    assert.is_true(call("schedule_pause", 1, "rs").res)
    assert.is_true(call("schedule_get", 1, "rs").res.isPaused)
    assert.is_true(call("schedule_resume", 1, "rs").res)
    assert.is_true(call("schedule_delete", 1, "rs").res)
    local list = call("schedule_list", 0).res
    assert.equal(1, #list)
    assert.equal(other, list[1].scheduleId)
    -- the same object as the C module's libcurl path makes of it (read
    -- together: the schedule does not run again for a year)
    assert.same(cjson.decode(cjson.encode(client:schedule_get(other))), call("schedule_get", 1, other).res)
    c = call("schedule_get", 1, "rs")
    assert.is_false(c.ok)
    assert.equal("not_found", c.err.kind)
  end)

  it("raises an argument error for a bad cron or id before sending anything", function()
    local c = call("schedule_create", 4, sink.url, "*/0 * * * *", "x", nil)
    assert.matches("bad argument #2 to 'schedule_create' (field 1 (minute): the step 0", c.raised, 1, true)
    c = call("schedule_get", 1, "a/b")
    assert.matches("bad argument #1 to 'schedule_get' (schedule id may hold only", c.raised, 1, true)
    c = call("schedule_create", 4, sink.url, "* * * * *", "x", { not_before = 1 })
    assert.matches("option 'not_before' does not apply to schedules", c.raised, 1, true)
    assert.same({}, client:schedule_list())
  end)

  it("does not block the worker while an answer is slow", function()
    srv:reset()
    srv:script{ { status = 200, delay = 1, json = { scheduleId = "slow", cron = "* * * * *",
      destination = "https://example.com" } } }
    local slow_conf = { base_url = srv.url, token = "t", retry = false, timeout = 5 }
    local sock = socket.tcp()
    sock:settimeout(15)
    assert(sock:connect("127.0.0.1", ng.port))
    local req = cjson.encode{ fn = "schedule_get", n = 1, args = { ["1"] = "slow" }, conf = slow_conf }
    assert(sock:send("POST /call HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" ..
      "Content-Length: " .. #req .. "\r\n\r\n" .. req))
    local served, t_end = 0, E.now() + 0.6
    while E.now() < t_end do
      local t1 = E.now()
      local status = E.request(ng.url, "GET", "/fast")
      assert.equal(200, status)
      assert.is_true(E.now() - t1 < 0.3, "the worker was blocked")
      served = served + 1
      socket.sleep(0.05)
    end
    assert.is_true(served >= 3, "served " .. served)
    local answer = sock:receive("*a")
    sock:close()
    local doc = cjson.decode(answer:match("\r\n\r\n(.*)$"))
    assert.equal("slow", doc.res.scheduleId)
  end)
end)
