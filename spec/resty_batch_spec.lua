-- qstash.resty's batch and batch_json from content handlers over cosockets:
-- the emulator's answer (one slot per item, a URL group's array, a refused
-- item's error), argument errors raised in the handler, and a slow answer
-- that does not block the worker. Needs LuaJIT and nginx
-- (`make test LUA=luajit SPECS=spec/resty_batch_spec.lua`).

local E = require "spec.support.emulator"
local N = require "spec.support.nginx"
local server = require "spec.support.server"
local socket = require "socket"
local cjson = require "cjson"

local skip = N.skip_reason()
if skip then
  describe("qstash.resty batch under nginx", function() pending(skip) end)
  return
end

-- package.loaded.batch_h: the handlers, run by content_by_lua_block.
local HANDLERS = [==[
  local qr = require "qstash.resty"
  local cjson = require "cjson.safe"
  local H = {}
  -- { fn = "batch" or "batch_json", items = {...}, slow = bool }
  function H.batch()
    ngx.req.read_body()
    local a = cjson.decode(ngx.req.get_body_data())
    local conf = a.slow and package.loaded.batch_slow or package.loaded.batch_env
    local ok, res, err = pcall(qr[a.fn], a.items, conf)
    ngx.say(cjson.encode{ ok = ok and res ~= nil, res = ok and res or nil,
      raised = not ok and res or nil, err = err and { kind = err.kind } or nil, phase = ngx.get_phase() })
  end
  package.loaded.batch_h = H
]==]

describe("qstash.resty batch under nginx", function()
  local emu, sink, srv, ng

  setup(function()
    emu = E.start{ time_scale = 0.001 }
    sink = E.start_sink()
    srv = server.start()
    ng = N.start{
      http = ("init_by_lua_block { package.loaded.batch_env = { base_url = %q, token = %q, timeout = 5, "
        .. "retry = { base_delay = 0.01 } }\npackage.loaded.batch_slow = { base_url = %q, token = 't', "
        .. "timeout = 5, retry = false }\n%s }"):format(emu.url, emu.token, srv.url, HANDLERS),
      server = "location = /batch { content_by_lua_block { package.loaded.batch_h.batch() } }\n    "
        .. 'location = /fast { content_by_lua_block { ngx.say("ok") } }',
    }
  end)

  teardown(function()
    if ng then ng:stop() end
    if srv then srv:stop() end
    if sink then sink:stop() end
    if emu then emu:stop() end
  end)

  before_each(function()
    emu:reset()
    sink:clear()
    srv:reset()
  end)

  local function post(value)
    local status, body = E.request(ng.url, "POST", "/batch", { body = cjson.encode(value),
      headers = { ["content-type"] = "application/json" } })
    assert.equal(200, status, body .. "\n" .. ng:error_log():sub(-3000))
    return cjson.decode(body)
  end

  it("publishes a batch: one slot per item, a URL group's array, a refused item's error", function()
    local status = emu:request("POST", "/v2/topics/grp/endpoints", { body = cjson.encode{
      endpoints = { { url = sink.url .. "/g1" }, { url = sink.url .. "/g2" } } },
      headers = { ["Content-Type"] = "application/json" } })
    assert.equal(200, status)
    local doc = post{ fn = "batch", items = {
      { destination = sink.url .. "/a", body = "one" },
      { destination = "grp", body = "fan" },
      { destination = "missing-group" },
    } }
    assert.is_true(doc.ok, cjson.encode(doc))
    assert.equal("content", doc.phase)
    assert.matches("^msg_", doc.res[1].messageId)
    assert.equal(2, #doc.res[2])
    assert.is_string(doc.res[3].error)
    assert.is_true(E.wait_for(function() return #sink:received() >= 3 end, 5))

    doc = post{ fn = "batch_json", items = { { destination = sink.url .. "/j", body = { k = "v" } } } }
    assert.is_true(doc.ok, cjson.encode(doc))
    assert.is_true(E.wait_for(function()
      for _, r in ipairs(sink:received()) do
        if r.target == "/j" then return r.body == '{"k":"v"}' end
      end
    end, 5))
  end)

  it("raises an argument error in the handler and sends nothing", function()
    local doc = post{ fn = "batch", slow = true,
      items = { { destination = sink.url .. "/a" }, { body = "no destination" } } }
    assert.is_false(doc.ok)
    assert.matches("bad argument #1 to 'batch' %(item 2: destination", doc.raised)
    doc = post{ fn = "batch_json", slow = true, items = {} }
    assert.matches("bad argument #1 to 'batch_json' %(items must not be empty", doc.raised)
    assert.equal(0, #srv:requests())
  end)

  it("waits for a slow answer without blocking the worker", function()
    srv:script{ { status = 200, json = { { messageId = "m1" }, { messageId = "m2" } }, delay = 1 } }
    local c = socket.tcp()
    c:settimeout(15)
    assert(c:connect("127.0.0.1", ng.port))
    local body = cjson.encode{ fn = "batch", slow = true, items = {
      { destination = "https://example.com/1" }, { destination = "https://example.com/2" } } }
    assert(c:send("POST /batch HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      .. "Content-Length: " .. #body .. "\r\n\r\n" .. body))
    srv:wait_requests(1, 5)
    -- meanwhile the same (only) worker answers at once
    local served = 0
    for _ = 1, 5 do
      local t1 = E.now()
      local status, fast = E.request(ng.url, "GET", "/fast")
      assert.equal(200, status)
      assert.equal("ok\n", fast)
      assert.is_true(E.now() - t1 < 0.3, "the worker was blocked")
      served = served + 1
    end
    local answer = c:receive("*a")
    c:close()
    local doc = cjson.decode(answer:match("\r\n\r\n(.*)$"))
    assert.is_true(doc.ok, answer)
    assert.equal("m2", doc.res[2].messageId)
    assert.equal(5, served)
  end)
end)
