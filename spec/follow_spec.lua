-- Following a message to its end (client:follow, follow_many, dlq_retry
-- with `follow`, dlq_retry_each with `follow`) against the emulator, which
-- logs QStash's states as it delivers, retries, fails and cancels; and the
-- paths the emulator never takes (a DLQ lookup that finds nothing, a cursor
-- that cycles) against the scripted test server.
local E = require "spec.support.emulator"
local server = require "spec.support.server"
local step_http = require "spec.support.step_http"
local socket = require "socket"
local qstash = require "qstash"

local FAST = { timeout = 5, interval = 0.02 }
local unpack = table.unpack or unpack

local function states(res)
  local t = {}
  for i, e in ipairs(res.history) do t[i] = e.state end
  return table.concat(t, " ")
end

describe("follow against the emulator", function()
  local fx = E.fixture{ time_scale = 0.001 }
  local emu, sink, c

  teardown(function()
    if c then c:close() end
  end)

  before_each(function()
    emu, sink = fx.emu, fx.sink
    if c then c:close() end
    c = qstash.new{ token = emu.token, base_url = emu.url, retry = { attempts = 2, base_delay = 0.01 } }
  end)

  local function dlq_entry(retries)
    sink:set_status(500)
    local id = c:publish(sink.url .. "/fail", "body", { retries = retries or 0 }).messageId
    local f = c:follow(id, FAST)
    sink:set_status(200)
    assert.equal("FAILED", f.state)
    return f.dlqId, id
  end

  it("reaches DELIVERED, with every state in order, oldest first", function()
    local id = c:publish(sink.url .. "/ok", "hi").messageId
    local f = c:follow(id, FAST)
    assert.equal(id, f.messageId)
    assert.equal("DELIVERED", f.state)
    assert.is_true(f.done)
    assert.is_nil(f.dlqId)
    assert.equal("CREATED ACTIVE DELIVERED", states(f))
    for i = 2, #f.history do assert.is_true(f.history[i].time >= f.history[i - 1].time) end
    assert.equal(math.type and "integer" or "number", math.type and math.type(f.history[1].time) or type(f.history[1].time))
  end)

  it("reaches FAILED after its retries, with the new DLQ entry's id", function()
    sink:set_status(500)
    local id = c:publish(sink.url .. "/fail", "body", { retries = 1 }).messageId
    local f = c:follow(id, FAST)
    assert.equal("FAILED", f.state)
    assert.is_true(f.done)
    assert.equal("CREATED ACTIVE ERROR RETRY ACTIVE ERROR FAILED", states(f))
    assert.equal(id, c:dlq_get(f.dlqId).messageId)
  end)

  it("reaches CANCELLED when the message is cancelled mid-follow", function()
    local id = c:publish(sink.url .. "/later", "x", { delay = 86400 }).messageId
    local call = c:prepare("follow", id, { timeout = 5, interval = 0.02 })
    local what, v, why = call:step()
    local polls, cancelled = 0, false
    while what == "send" or what == "wait" do
      if what == "send" then
        local ok, status, headers, body = step_http.send(v)
        assert.is_true(ok)
        polls = polls + 1
        what, v, why = call:step{ status = status, headers = headers, body = body }
      else
        assert.equal("poll", why)
        if polls >= 2 and not cancelled then
          assert.is_true(c:cancel(id))
          cancelled = true
        end
        what, v, why = call:step()
      end
    end
    assert.equal("done", what)
    assert.equal("CANCELLED", v.state)
    assert.is_true(v.done)
    assert.equal("CREATED CANCEL_REQUESTED CANCELLED", states(v))
  end)

  it("stops at its timeout with done = false and the states seen so far #timing", function()
    local id = c:publish(sink.url .. "/later", "x", { delay = 86400 }).messageId
    local t0 = socket.gettime()
    local f = c:follow(id, { timeout = 0.3, interval = 0.05 })
    local took = socket.gettime() - t0
    assert.is_false(f.done)
    assert.equal("CREATED", f.state)
    assert.equal("CREATED", states(f))
    assert.is_true(took >= 0.3 and took < 2.5, took)
  end)

  it("a timeout of 0 looks once", function()
    local id = c:publish(sink.url .. "/later", "x", { delay = 86400 }).messageId
    local call = c:prepare("follow", id, { timeout = 0 })
    local sends, what, v = 0, call:step()
    while what == "send" or what == "wait" do
      if what == "send" then
        sends = sends + 1
        local ok, status, headers, body = step_http.send(v)
        assert.is_true(ok)
        what, v = call:step{ status = status, headers = headers, body = body }
      else
        what, v = call:step()
      end
    end
    assert.equal(1, sends)
    assert.is_false(v.done)
  end)

  it("dlq_retry with follow: the retry's answer with the delivery of the new message", function()
    local dlq_id = dlq_entry()
    local res = c:dlq_retry(dlq_id, { retries = 2, follow = FAST })
    assert.is_string(res.messageId)
    assert.is_false(res.deduplicated)
    assert.equal(res.messageId, res.delivery.messageId)
    assert.equal("DELIVERED", res.delivery.state)
    assert.is_true(res.delivery.done)
  end)

  it("dlq_retry with follow sends the override headers on the retry only, never on the polls", function()
    local dlq_id = dlq_entry()
    local call = c:prepare("dlq_retry", dlq_id, { retries = 2, label = "again", follow = FAST })
    local what, v = call:step()
    local seen = {}
    while what ~= "done" and what ~= "fail" do
      if what == "send" then
        local upstash = {}
        for _, h in ipairs(v.headers) do
          if h[1]:lower():find("^upstash%-") then upstash[#upstash + 1] = h[1] end
        end
        seen[#seen + 1] = { target = v.url:match("//[^/]+(/[^?]*)"), upstash = #upstash }
        local ok, status, headers, body = step_http.send(v)
        assert.is_true(ok)
        what, v = call:step{ status = status, headers = headers, body = body }
      else
        what, v = call:step()
      end
    end
    assert.equal("done", what)
    assert.equal("/v2/dlq/retry/" .. dlq_id, seen[1].target)
    assert.equal(2, seen[1].upstash)
    assert.is_true(#seen >= 2)
    for i = 2, #seen do
      assert.equal("/v2/logs", seen[i].target)
      assert.equal(0, seen[i].upstash)
    end
  end)

  it("a message that fails again: FAILED with the id of its new DLQ entry", function()
    local dlq_id = dlq_entry()
    sink:set_status(500)
    local res = c:dlq_retry(dlq_id, { retries = 0, follow = FAST })
    assert.equal("FAILED", res.delivery.state)
    assert.is_string(res.delivery.dlqId)
    assert.are_not.equal(dlq_id, res.delivery.dlqId)
    assert.equal(res.messageId, c:dlq_get(res.delivery.dlqId).messageId)
  end)

  it("follow_many: every message to its end, one logs request per 100 messages per round", function()
    local ids, n = {}, 250
    sink:set_status(200)
    for i = 1, n do ids[i] = c:publish(sink.url .. "/m" .. i, "x").messageId end
    local call = c:prepare("follow_many", ids, FAST)
    local what, v = call:step()
    local rounds, in_round, worst = 1, 0, 0
    while what == "send" or what == "wait" do
      if what == "send" then
        in_round = in_round + 1
        assert.truthy(v.url:find("/v2/logs?", 1, true))
        assert.is_nil(v.url:find("messageId=", 1, true))
        local ok, status, headers, body = step_http.send(v)
        assert.is_true(ok)
        what, v = call:step{ status = status, headers = headers, body = body }
      else
        if in_round > worst then worst = in_round end
        rounds, in_round = rounds + 1, 0
        what, v = call:step()
      end
    end
    if in_round > worst then worst = in_round end
    assert.equal("done", what)
    -- 250 messages: 3 requests a round (100, 100, 50), never one per message
    assert.is_true(worst <= 3, "a round made " .. worst .. " logs requests")
    for _, id in ipairs(ids) do
      assert.equal("DELIVERED", v[id].state, id)
      assert.is_true(v[id].done)
    end
  end)

  it("dlq_retry_each with follow: on_result runs once per id, when its new message has ended", function()
    local dlq_ids = {}
    sink:set_status(500)
    local msgs = {}
    for i = 1, 6 do msgs[i] = c:publish(sink.url .. "/e" .. i, "x", { retries = 0 }).messageId end
    local failed = c:follow_many(msgs, FAST)
    for i, m in ipairs(msgs) do dlq_ids[i] = failed[m].dlqId end
    sink:set_status(200)
    dlq_ids[#dlq_ids + 1] = "1-404" -- gone: fails to retry, reported at once
    local calls, progress = {}, 0
    local out = c:dlq_retry_each(dlq_ids, { follow = FAST }, {
      concurrency = 3,
      on_result = function(id, res, err)
        calls[#calls + 1] = id
        if id == "1-404" then
          assert.equal("not_found", err.kind)
        else
          assert.is_nil(err)
          assert.equal("DELIVERED", res.delivery.state)
          assert.equal(res.messageId, res.delivery.messageId)
        end
      end,
      on_progress = function(done, total)
        assert.equal(7, total)
        assert.is_true(done > progress)
        progress = done
      end,
    })
    assert.equal(6, out.ok)
    assert.equal(1, out.failed)
    assert.equal(7, #calls)
    assert.equal(7, progress)
    assert.equal("DELIVERED", out.results[dlq_ids[1]].delivery.state)
  end)

  it("dlq_retry_each with follow: close() from on_result stops; the rest are retried without delivery", function()
    sink:set_status(500)
    local msgs = {}
    for i = 1, 4 do msgs[i] = c:publish(sink.url .. "/c" .. i, "x", { retries = 0 }).messageId end
    local failed = c:follow_many(msgs, FAST)
    local dlq_ids = {}
    for i, m in ipairs(msgs) do dlq_ids[i] = failed[m].dlqId end
    sink:set_status(200)
    local runs = 0
    local out = c:dlq_retry_each(dlq_ids, { follow = FAST }, {
      on_result = function() runs = runs + 1; c:close() end,
    })
    assert.equal(1, runs)
    assert.equal(4, out.ok)
    local with = 0
    for _, id in ipairs(dlq_ids) do
      if out.results[id].delivery then with = with + 1 end
    end
    assert.is_true(with >= 1 and with <= 4)
  end)

  it("dlq_retry_each with follow: on_result may make calls of its own on the same client", function()
    local dlq_id = dlq_entry()
    local other = c:publish(sink.url .. "/other", "x").messageId
    local nested
    local out = c:dlq_retry_each({ dlq_id }, { follow = FAST }, {
      on_result = function(_, res)
        nested = c:follow(other, FAST)
        assert.equal("DELIVERED", res.delivery.state)
      end,
    })
    assert.equal(1, out.ok)
    assert.equal("DELIVERED", nested.state)
  end)

  it("follow options whose __index closes the client: the call says so and sends nothing", function()
    local before = select(2, emu:json("GET", "/__dev/requests"))
    local opts = setmetatable({}, { __index = function() c:close() end })
    local ok, err = pcall(c.follow, c, "msg_x", opts)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("closed", 1, true), tostring(err))
    local after = select(2, emu:json("GET", "/__dev/requests"))
    assert.same(before, after)
  end)

  it("dlq_retry with a follow option whose __index closes the client: nothing is sent", function()
    local before = select(2, emu:json("GET", "/__dev/requests"))
    local opts = setmetatable({ retries = 1 }, { __index = function(_, k) if k == "follow" then c:close() end end })
    local ok, err = pcall(c.dlq_retry, c, "1-1", opts)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("closed", 1, true), tostring(err))
    assert.same(before, select(2, emu:json("GET", "/__dev/requests")))
  end)

  it("dlq_retry_each with follow: an error in on_result is raised after the batch", function()
    local dlq_id = dlq_entry()
    assert.has_error(function()
      c:dlq_retry_each({ dlq_id }, { follow = FAST }, { on_result = function() error("boom") end })
    end, "qstash: error in a callback: " .. debug.getinfo(1, "S").short_src:gsub("^.*/", "spec/") ..
      ":" .. (debug.getinfo(1, "l").currentline - 2) .. ": boom")
  end)
end)

describe("follow against a scripted server", function()
  local srv

  setup(function() srv = server.start() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  local function client()
    return qstash.new{ token = "tok", base_url = srv.url, retry = { attempts = 2, base_delay = 0.01 } }
  end

  it("FAILED without a dlqId in the log: looked up in the DLQ; an entry deleted meanwhile leaves dlqId nil", function()
    srv:script{
      { status = 200, json = { events = { { time = "1700000000002", state = "failed", messageId = "msg_1" },
        { time = 1700000000001, state = "ACTIVE", messageId = "msg_1" },
        { time = 1700000000000, state = "CREATED", messageId = "msg_1" } } } },
      { status = 200, json = { messages = {} } },
    }
    local c = client()
    local f = c:follow("msg_1", FAST)
    c:close()
    assert.equal("FAILED", f.state)
    assert.is_true(f.done)
    assert.is_nil(f.dlqId)
    assert.equal("CREATED ACTIVE FAILED", states(f))
    local reqs = srv:requests()
    assert.equal(2, #reqs)
    assert.equal("/v2/logs?messageId=msg_1", reqs[1].target)
    assert.equal("/v2/dlq?messageId=msg_1", reqs[2].target)
  end)

  it("FAILED: the DLQ lookup gives the new entry's id", function()
    srv:script{
      { status = 200, json = { logs = { { time = 2, state = "FAILED", messageId = "msg_1" } } } },
      { status = 200, json = { messages = { { dlqId = "9-1", messageId = "msg_1" } } } },
    }
    local c = client()
    local f = c:follow("msg_1", FAST)
    c:close()
    assert.equal("9-1", f.dlqId)
  end)

  it("a cursor that repeats inside a poll ends the follow with a decode error", function()
    local page = function(cursor)
      return { status = 200, json = { logs = { { time = 1, state = "ACTIVE", messageId = "msg_1" } }, cursor = cursor } }
    end
    srv:script{ page("a"), page("b"), page("a"), page("c") }
    local c = client()
    local ok, err = pcall(c.follow, c, "msg_1", FAST)
    c:close()
    assert.is_false(ok)
    assert.equal("decode", err.kind)
    assert.equal("a", err.cursor)
    assert.equal(3, #srv:requests())
  end)

  it("a logs request that fails fails the follow; after dlq_retry the error carries the new messageId", function()
    srv:script{
      { status = 201, json = { messageId = "msg_new" } },
      { status = 500, json = { error = "boom" } },
      { status = 500, json = { error = "boom" } },
    }
    local c = client()
    local ok, err = pcall(c.dlq_retry, c, "1-1", { follow = FAST })
    c:close()
    assert.is_false(ok)
    assert.equal("server", err.kind)
    assert.equal("msg_new", err.messageId)
    assert.equal(3, #srv:requests())
  end)

  it("a poll whose pages never end stops at the timeout, with what was seen #timing", function()
    local pages = {}
    for i = 1, 40 do
      pages[i] = { status = 200, delay = 0.05, json = { cursor = "c" .. i,
        logs = { { time = 100 - i, state = i == 1 and "RETRY" or "ACTIVE", messageId = "msg_1" } } } }
    end
    srv:script(pages)
    local c = client()
    local t0 = socket.gettime()
    local f = c:follow("msg_1", { timeout = 0.3, interval = 0.01 })
    local took = socket.gettime() - t0
    c:close()
    assert.is_false(f.done)
    assert.equal("RETRY", f.state)
    assert.is_true(#srv:requests() < 40, #srv:requests() .. " requests")
    assert.is_true(took < 2.5, took)
  end)

  it("entries of other messages, and entries without a usable time or state, are ignored", function()
    srv:script{
      { status = 200, json = { logs = {
        { time = 5, state = "DELIVERED", messageId = "msg_other" },
        { state = "DELIVERED", messageId = "msg_1" },
        { time = 1e300, state = "DELIVERED", messageId = "msg_1" },
        { time = -5, state = "DELIVERED", messageId = "msg_1" },
        { time = "soon", state = "DELIVERED", messageId = "msg_1" },
        { time = 4, state = string.rep("X", 40), messageId = "msg_1" },
        { time = 4, state = 7, messageId = "msg_1" },
        "not an entry",
        { time = 3, state = "CANCELLED", messageId = "msg_1" } } } },
    }
    local c = client()
    local f = c:follow("msg_1", FAST)
    c:close()
    assert.equal("CANCELLED", f.state)
    assert.equal(1, #f.history)
  end)
end)

describe("follow arguments", function()
  local c = qstash.new{ token = "tok", base_url = "http://127.0.0.1:9" }

  local cases = {
    { "follow", { "" }, "message id must not be empty" },
    { "follow", { 5 }, "message id must be a string" },
    { "follow", { "m", { timout = 1 } }, "did you mean 'timeout'" },
    { "follow", { "m", { timeout = -1 } }, "follow 'timeout' must be a number of seconds from 0 to 86400" },
    { "follow", { "m", { interval = 0 } }, "follow 'interval' must be a number of seconds from 0.01 to 3600" },
    { "follow", { "m", "5s" }, "options must be a table" },
    { "follow_many", { {} }, "an empty list of message ids" },
    { "follow_many", { { "a", x = 1 } }, "must not have other keys" },
    { "follow_many", { { "a", 2 } }, "message id #2 is not a string" },
    { "dlq_retry", { "1-1", { follow = "yes" } }, "option 'follow' must be true or a table" },
    { "dlq_retry", { "1-1", { follow = { every = 1 } } }, "unknown follow option 'every'" },
    { "dlq_retry_many", { { "1-1" }, { follow = true } }, "option 'follow' applies to dlq_retry and dlq_retry_each" },
    { "dlq_retry_async", { "1-1", { follow = true }, function() end }, "option 'follow' applies to dlq_retry and dlq_retry_each" },
    { "publish", { "https://example.com", "x", { follow = true } }, "option 'follow' applies to dlq_retry only" },
  }
  for _, case in ipairs(cases) do
    it(case[1] .. ": " .. case[3], function()
      local ok, err = pcall(c[case[1]], c, unpack(case[2]))
      assert.is_false(ok)
      assert.is_string(err)
      assert.truthy(err:find(case[3], 1, true), err)
    end)
  end
end)
