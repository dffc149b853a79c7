-- qstash.resty's logs and messages calls (logs, log_entries, message,
-- cancel, cancel_many, follow, follow_many) and dlq_retry / dlq_retry_each
-- with `follow`, from content handlers over cosockets: the same results as
-- the C module's libcurl path, and a follow's polls sleep (ngx.sleep)
-- without blocking the worker. Needs LuaJIT and nginx
-- (`make test LUA=luajit SPECS=spec/resty_follow_spec.lua`).

local E = require "spec.support.emulator"
local N = require "spec.support.nginx"
local socket = require "socket"
local cjson = require "cjson"

local skip = N.skip_reason()
if skip then
  describe("qstash.resty follow under nginx", function() pending(skip) end)
  return
end

local qstash = require "qstash"

-- package.loaded.follow_h: the handlers, run by content_by_lua_block.
local HANDLERS = [==[
  local qr = require "qstash.resty"
  local cjson = require "cjson.safe"
  local unpack = table.unpack or unpack
  local H = {}
  local function conf() return package.loaded.follow_env end
  local function out(v) ngx.say(cjson.encode(v)) end
  local function body()
    ngx.req.read_body()
    return cjson.decode(ngx.req.get_body_data() or "null")
  end
  local function pack(res, err)
    return { ok = res ~= nil, res = res, err = err and { kind = err.kind, status = err.status,
      message = err.message } or nil }
  end
  -- { fn, n, args = { ["1"] = ..., ... } }: qr[fn](args 1..n, config)
  function H.call()
    local a = body()
    local args = {}
    for i = 1, a.n do args[i] = a.args[tostring(i)] end
    args[a.n + 1] = conf()
    local t0 = ngx.now()
    local res, err = qr[a.fn](unpack(args, 1, a.n + 1))
    local doc = pack(res, err)
    doc.phase, doc.took = ngx.get_phase(), ngx.now() - t0
    out(doc)
  end
  function H.follow()
    local res, err = qr.follow(ngx.var.arg_id, { timeout = 10, interval = 0.05 }, conf())
    out(pack(res, err))
  end
  function H.entries()
    local list = {}
    for e in qr.log_entries(body(), conf()) do list[#list + 1] = e end
    out(list)
  end
  function H.each()
    local order, progress = {}, {}
    local res, err = qr.dlq_retry_each(body(), { follow = { timeout = 10, interval = 0.05 } }, {
      concurrency = 2,
      on_result = function(id, r, e)
        order[#order + 1] = { id = id, has_delivery = r ~= nil and r.delivery ~= nil,
          state = r and r.delivery and r.delivery.state, dlqId = r and r.delivery and r.delivery.dlqId,
          err = e and e.kind }
      end,
      on_progress = function(done, total) progress[#progress + 1] = { done, total } end,
    }, conf())
    out{ res = res, err = err, order = order, progress = progress }
  end
  package.loaded.follow_h = H
]==]

describe("qstash.resty follow under nginx", function()
  local emu, sink, ng, client, conf

  setup(function()
    emu = E.start{ time_scale = 0.001 }
    sink = E.start_sink()
    conf = { base_url = emu.url, token = emu.token, retry = { base_delay = 0.01 }, timeout = 5 }
    client = qstash.new(conf)
    local locations = {}
    for _, name in ipairs { "call", "follow", "entries", "each" } do
      locations[#locations + 1] = ("location = /%s { content_by_lua_block { package.loaded.follow_h.%s() } }")
        :format(name, name)
    end
    locations[#locations + 1] = 'location = /fast { content_by_lua_block { ngx.say("ok") } }'
    ng = N.start{
      http = ("init_by_lua_block { package.loaded.follow_env = { base_url = %q, token = %q, timeout = 5, "
        .. "retry = { base_delay = 0.01 } }\n%s }"):format(emu.url, emu.token, HANDLERS),
      server = table.concat(locations, "\n    "),
    }
  end)

  teardown(function()
    if ng then ng:stop() end
    if client then client:close() end
    if sink then sink:stop() end
    if emu then emu:stop() end
  end)

  before_each(function()
    emu:reset()
    sink:clear()
    sink:set_status(200)
  end)

  local function post_json(path, value)
    local status, body = E.request(ng.url, "POST", path, { body = cjson.encode(value),
      headers = { ["content-type"] = "application/json" } })
    assert.equal(200, status, path .. " -> " .. status .. " " .. body .. "\n" .. ng:error_log():sub(-3000))
    return cjson.decode(body)
  end

  -- qr[fn](...) in a content handler: { ok, res, err, phase, took }
  local function call(fn, ...)
    local n = select("#", ...)
    local args = {}
    for i = 1, n do
      local v = select(i, ...)
      if v ~= nil then args[tostring(i)] = v end
    end
    if next(args) == nil then args = { ["0"] = false } end
    return post_json("/call", { fn = fn, n = n, args = args })
  end

  -- The value as JSON would carry it (what the handler's answer holds).
  local function as_json(v)
    return cjson.decode(cjson.encode(v))
  end

  -- Publishes to the sink (retries 0) and waits for the message's end.
  local function delivered(path, opts)
    local published = client:publish(sink.url .. path, "body " .. path, opts or { retries = 0 })
    local f = client:follow(published.messageId, { timeout = 10, interval = 0.02 })
    assert.is_true(f.done)
    return published.messageId, f
  end

  local function into_dlq(path)
    sink:set_status(500)
    local mid, f = delivered(path)
    assert.equal("FAILED", f.state)
    sink:clear()
    sink:set_status(200)
    return f.dlqId, mid
  end

  it("follows a message to DELIVERED while the worker serves other requests", function()
    -- delivered in about 1.5 s (the emulator's 1500 s at time_scale 0.001)
    local published = client:publish(sink.url .. "/late", "late", { delay = "1500s" })
    local c = socket.tcp()
    c:settimeout(15)
    assert(c:connect("127.0.0.1", ng.port))
    assert(c:send("GET /follow?id=" .. published.messageId .. " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"))
    -- meanwhile the same (only) worker answers at once, many times
    local served, t_end = 0, E.now() + 1.0
    while E.now() < t_end do
      local t1 = E.now()
      local status, body = E.request(ng.url, "GET", "/fast")
      assert.equal(200, status)
      assert.equal("ok\n", body)
      assert.is_true(E.now() - t1 < 0.3, "the worker was blocked")
      served = served + 1
      socket.sleep(0.05)
    end
    assert.is_true(served >= 5, "served " .. served)
    assert.equal(0, #sink:received(), "delivered too early for the proof")
    local answer = c:receive("*a")
    c:close()
    local doc = cjson.decode(answer:match("\r\n\r\n(.*)$"))
    assert.is_true(doc.ok, answer)
    assert.is_true(doc.res.done)
    assert.equal("DELIVERED", doc.res.state)
    assert.equal(published.messageId, doc.res.messageId)
    local states = {}
    for i, e in ipairs(doc.res.history) do states[i] = e.state end
    assert.equal("CREATED", states[1])
    assert.equal("DELIVERED", states[#states])
    assert.equal(1, #sink:received())
  end)

  it("logs, log_entries, message, follow and follow_many return what the C module returns", function()
    local m1, f1 = delivered("/p1")
    sink:set_status(500)
    local m2, f2 = delivered("/p2")
    local c = call("follow", m1, { timeout = 5, interval = 0.05 })
    assert.equal("content", c.phase)
    assert.same(as_json(f1), c.res)
    c = call("follow", m2, { timeout = 5, interval = 0.05 })
    assert.same(as_json(f2), c.res)
    assert.equal("FAILED", c.res.state)
    assert.matches("%d+%-%d+", c.res.dlqId)

    local many = client:follow_many({ m1, m2 }, { timeout = 5, interval = 0.05 })
    assert.same(as_json(many), call("follow_many", { m1, m2 }, { timeout = 5, interval = 0.05 }).res)

    local logs = client:logs{ message_id = m2 }
    assert.same(as_json(logs), call("logs", { message_id = m2 }).res)
    local page = client:logs{ count = 2 }
    assert.truthy(page.cursor)
    assert.same(as_json(page), call("logs", { count = 2 }).res)

    local all = {}
    for e in client:log_entries{ count = 3 } do all[#all + 1] = e end
    assert.is_true(#all > 3) -- across pages
    assert.same(as_json(all), post_json("/entries", { count = 3 }))

    -- a message still waiting: message() and then cancel() it
    local waiting = client:publish(sink.url .. "/wait", "w", { delay = "1d" })
    local direct = client:message(waiting.messageId)
    assert.same(as_json(direct), call("message", waiting.messageId).res)
    c = call("cancel", waiting.messageId)
    assert.is_true(c.ok, cjson.encode(c))
    assert.is_true(c.res)
    -- cancelled: following it ends at once
    local f = call("follow", waiting.messageId, { timeout = 5, interval = 0.05 })
    assert.is_true(f.res.done)
    assert.equal("CANCELLED", f.res.state)

    -- errors are the same too
    local ok_c, err_c = pcall(client.message, client, "msg_nosuch")
    assert.is_false(ok_c)
    c = call("message", "msg_nosuch")
    assert.is_false(c.ok)
    assert.same({ kind = err_c.kind, status = err_c.status, message = err_c.message }, c.err)
  end)

  it("cancel_many cancels by ids and by filter, as the C module counts", function()
    local ids = {}
    for i = 1, 3 do ids[i] = client:publish(sink.url .. "/cm/" .. i, "c", { delay = "1d" }).messageId end
    local c = call("cancel_many", { ids[1], ids[2] })
    assert.is_true(c.ok, cjson.encode(c))
    assert.same({ cancelled = 2 }, c.res)
    local direct = client:cancel_many{ ids[3] }
    assert.same({ cancelled = 1 }, direct)
    for _, id in ipairs(ids) do
      assert.equal("CANCELLED", client:follow(id, { timeout = 5, interval = 0.05 }).state)
    end
  end)

  it("dlq_retry with follow waits for the new message in the handler", function()
    local dlq_id = into_dlq("/r1")
    local c = call("dlq_retry", dlq_id, { follow = { timeout = 10, interval = 0.05 } })
    assert.is_true(c.ok, cjson.encode(c))
    assert.matches("^msg_", c.res.messageId)
    assert.is_true(c.res.delivery.done)
    assert.equal("DELIVERED", c.res.delivery.state)
    assert.equal(c.res.messageId, c.res.delivery.messageId)
    assert.equal(1, #sink:received())

    -- failing again: the new DLQ id, as dlq_retry's C path gives it
    local again = into_dlq("/r2")
    sink:set_status(500)
    c = call("dlq_retry", again, { retries = 0, follow = { timeout = 10, interval = 0.05 } })
    assert.equal("FAILED", c.res.delivery.state)
    local entry = client:dlq_messages{ message_id = c.res.messageId }()
    assert.equal(entry.dlqId, c.res.delivery.dlqId)
  end)

  it("dlq_retry_each with follow: on_result per id once its new message ended", function()
    local a = into_dlq("/e1")
    local b = into_dlq("/e2")
    local doc = post_json("/each", { a, b, "1-404" })
    assert.equal(2, doc.res.ok)
    assert.equal(1, doc.res.failed)
    -- the failure to retry reports first, at once; the followed ids after
    assert.equal(3, #doc.order)
    local by = {}
    for _, o in ipairs(doc.order) do by[o.id] = o end
    assert.equal("not_found", by["1-404"].err)
    for _, id in ipairs { a, b } do
      assert.is_true(by[id].has_delivery)
      assert.equal("DELIVERED", by[id].state)
      assert.equal("DELIVERED", doc.res.results[id].delivery.state)
    end
    assert.equal("1-404", doc.order[1].id)
    assert.same({ { 1, 3 }, { 2, 3 }, { 3, 3 } }, doc.progress)
    assert.equal(2, #sink:received())

    -- the same shape as the C module's
    local c1, c2 = into_dlq("/e3"), into_dlq("/e4")
    local direct = client:dlq_retry_each({ c1, c2, "1-404" }, { follow = { timeout = 10, interval = 0.05 } })
    assert.equal(doc.res.ok, direct.ok)
    assert.equal(doc.res.failed, direct.failed)
    assert.equal("DELIVERED", direct.results[c1].delivery.state)
  end)
end)
