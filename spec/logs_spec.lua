-- The logs and messages API: logs, log_entries, message, cancel, cancel_many.
-- The exact requests against the recording test server; the answers against
-- the emulator (10,000 entries paged with the client, cancel for real).
local E = require "spec.support.emulator"
local server = require "spec.support.server"
local cjson = require "cjson"
local qstash = require "qstash"
local qsafe = require "qstash.safe"

local unpack = table.unpack or unpack

describe("logs and messages: requests", function()
  local srv, c

  setup(function() srv = server.start() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function()
    srv:reset()
    if c then c:close() end
    c = qstash.new{ token = "tok", base_url = srv.url, retry = { attempts = 2, base_delay = 0.01 } }
  end)

  it("logs: every filter as QStash names it, multi-value ones repeated", function()
    srv:script{ { status = 200, json = { events = {}, cursor = "" } } }
    local page = c:logs{
      message_id = "msg_1", message_ids = { "a", "b" }, state = "IN_PROGRESS", url = "https://x.io/a b",
      url_group = "grp", schedule_id = "scd", queue_name = "q", label = { "l1", "l2" }, caller_ip = "1.2.3.4",
      flow_control_key = "k", host = "x.io", path = "/a", from_date = 1700000000000, to_date = 1700000000001,
      count = 1000, cursor = "c-1",
    }
    assert.same({ logs = {} }, page)
    local t = srv:requests()[1].target
    assert.equal("/v2/logs?messageId=msg_1&messageIds=a&messageIds=b&state=IN_PROGRESS&url=https%3A%2F%2Fx.io%2Fa%20b"
      .. "&topicName=grp&scheduleId=scd&queueName=q&fromDate=1700000000000&toDate=1700000000001&callerIp=1.2.3.4"
      .. "&label=l1&label=l2&flowControlKey=k&host=x.io&path=%2Fa&count=1000&cursor=c-1", t)
  end)

  it("logs: the entries under `logs` whether QStash names them logs or events", function()
    srv:script{
      { status = 200, json = { logs = { { time = 1, state = "CREATED", messageId = "m" } }, cursor = "x" } },
      { status = 200, json = { events = { { time = 2, state = "ACTIVE", messageId = "m" } } } },
    }
    local a = c:logs()
    assert.equal("CREATED", a.logs[1].state)
    assert.equal("x", a.cursor)
    local b = c:logs()
    assert.equal("ACTIVE", b.logs[1].state)
    assert.is_nil(b.events)
    assert.is_nil(b.cursor)
  end)

  it("logs: a body that is not a logs page is a decode error", function()
    srv:script{ { status = 200, json = { logs = "nope" } }, { status = 200, body = "5" } }
    local _, e1 = qsafe.new{ token = "tok", base_url = srv.url }:logs()
    assert.equal("decode", e1.kind)
    local _, e2 = qsafe.new{ token = "tok", base_url = srv.url }:logs()
    assert.equal("decode", e2.kind)
  end)

  it("log_entries: every entry across pages, then a repeated cursor ends the loop with a decode error", function()
    local function page(n, cursor)
      return { status = 200, json = { logs = { { time = n, state = "CREATED", messageId = "m" .. n } }, cursor = cursor } }
    end
    srv:script{ page(1, "a"), page(2, "b"), page(3, "a") }
    local seen = {}
    local ok, err = pcall(function()
      for e in c:log_entries{ state = "CREATED" } do seen[#seen + 1] = e.messageId end
    end)
    assert.is_false(ok)
    assert.equal("decode", err.kind)
    assert.equal("a", err.cursor)
    assert.same({ "m1", "m2", "m3" }, seen)
    assert.equal(3, #srv:requests())
    assert.equal("/v2/logs?state=CREATED&cursor=b", srv:requests()[3].target)
  end)

  it("message, cancel: one path segment each; 404 is not_found", function()
    srv:script{
      { status = 200, json = { messageId = "a/b", url = "https://x.io" } },
      { status = 202, body = "" },
      { status = 404, json = { error = "message not found" } },
    }
    assert.equal("a/b", c:message("a/b").messageId)
    assert.is_true(c:cancel("a/b"))
    local ok, err = pcall(c.cancel, c, "gone")
    assert.is_false(ok)
    assert.equal("not_found", err.kind)
    assert.equal("DELETE", err.method)
    local reqs = srv:requests()
    assert.equal("GET", reqs[1].method)
    assert.equal("/v2/messages/a%2Fb", reqs[1].target)
    assert.equal("DELETE", reqs[2].method)
    assert.equal("/v2/messages/a%2Fb", reqs[2].target)
  end)

  it("cancel: a repeat after an unknown outcome answers 404, reported as ambiguous", function()
    srv:script{ { fault = "close" }, { status = 404, json = { error = "message not found" } } }
    local ok, err = pcall(c.cancel, c, "msg_1")
    assert.is_false(ok)
    assert.equal("not_found", err.kind)
    assert.is_true(err.ambiguous)
    assert.equal(2, err.attempts)
    assert.equal(2, #srv:requests())
  end)

  it("cancel_many: ids 100 per request, the counts summed", function()
    local ids = {}
    for i = 1, 250 do ids[i] = "msg_" .. i end
    srv:script{
      { status = 200, json = { cancelled = 100 } },
      { status = 200, json = { cancelled = 99 } },
      { status = 200, json = { cancelled = 50 } },
    }
    assert.same({ cancelled = 249 }, c:cancel_many(ids))
    local reqs = srv:requests()
    assert.equal(3, #reqs)
    for _, r in ipairs(reqs) do assert.equal("DELETE", r.method) end
    local _, n1 = reqs[1].target:gsub("messageIds=", "")
    local _, n3 = reqs[3].target:gsub("messageIds=", "")
    assert.equal(100, n1)
    assert.equal(50, n3)
    assert.truthy(reqs[3].target:find("messageIds=msg_250", 1, true))
  end)

  it("cancel_many: a filter is sent again until a request cancels fewer than 100; the error carries the count so far", function()
    srv:script{
      { status = 200, json = { cancelled = 100 } },
      { status = 200, json = { cancelled = 100 } },
      { status = 200, json = { cancelled = 7 } },
    }
    assert.same({ cancelled = 207 }, c:cancel_many{ label = "old", host = "x.io" })
    local reqs = srv:requests()
    assert.equal(3, #reqs)
    -- toDate: the call's start (messages created after it are never cancelled)
    assert.matches("^/v2/messages%?label=old&host=x%.io&toDate=%d+&count=100$", reqs[1].target)
    srv:reset()
    srv:script{ { status = 200, json = { cancelled = 100 } }, { status = 400, json = { error = "bad" } } }
    local ok, err = pcall(c.cancel_many, c, { all = true })
    assert.is_false(ok)
    assert.equal("bad_request", err.kind)
    assert.equal(100, err.cancelled)
    assert.matches("^/v2/messages%?toDate=%d+&count=100$", srv:requests()[1].target)
  end)

  it("cancel_many: a count it did not ask for is a decode error, not an endless loop", function()
    for _, body in ipairs({ '{"cancelled":101}', '{"cancelled":NaN}', '{"cancelled":Infinity}',
                            '{"cancelled":-1}', '{"cancelled":2.5}', '{"cancelled":"3"}', '{}' }) do
      srv:reset()
      srv:script{ { status = 200, body = body, headers = { ["Content-Type"] = "application/json" } } }
      local ok, err = pcall(c.cancel_many, c, { all = true })
      assert.is_false(ok, body)
      assert.equal("decode", err.kind, body)
    end
  end)

  it("log_entries cannot be prepared: its pages are logs calls", function()
    local ok, err = pcall(c.prepare, c, "log_entries", {})
    assert.is_false(ok)
    assert.truthy(err:find("prepare dlq_list or logs pages", 1, true), err)
  end)

  local bad = {
    { "logs", { { stat = "CREATED" } }, "did you mean 'state'" },
    { "logs", { { state = "DONE" } }, "filter 'state' must be one of" },
    { "logs", { { count = 0 } }, "filter 'count' must be an integer from 1 to 1000" },
    { "logs", { { count = 1001 } }, "filter 'count' must be an integer from 1 to 1000" },
    { "logs", { { response_status = 500 } }, "unknown filter 'response_status'" },
    { "logs", { { message_ids = {} } }, "must not be an empty array" },
    { "logs", { "msg_1" }, "filter must be a table" },
    { "log_entries", { { dlq_ids = { "x" } } }, "unknown filter 'dlq_ids'" },
    { "message", { "" }, "message id must not be empty" },
    { "cancel", { ".." }, "message id must not be '.' or '..'" },
    { "cancel", { "a\nb" }, "message id must not contain control bytes" },
    { "cancel_many", { {} }, "an empty list would target every message" },
    { "cancel_many", { "msg_1" }, "use cancel for one id" },
    { "cancel_many", { { "a", "" } }, "message id must not be empty" },
    { "cancel_many", { { all = true, label = "x" } }, "'all = true' cannot be combined with filters" },
    { "cancel_many", { { count = 5, label = "x" } }, "unknown filter 'count'" },
    { "cancel_many", { { state = "CREATED" } }, "unknown filter 'state'" },
  }
  for _, case in ipairs(bad) do
    it(case[1] .. " raises before sending: " .. case[3], function()
      for _, mod in ipairs({ c, qsafe.new{ token = "tok", base_url = srv.url } }) do
        local ok, err = pcall(mod[case[1]], mod, unpack(case[2]))
        assert.is_false(ok)
        assert.is_string(err)
        assert.truthy(err:find(case[3], 1, true), err)
      end
      assert.same({}, srv:requests())
    end)
  end
end)

describe("logs and messages: the emulator", function()
  local fx = E.fixture{ time_scale = 0.001 }
  local emu, sink, c

  teardown(function()
    if c then c:close() end
  end)

  before_each(function()
    emu, sink = fx.emu, fx.sink
    c = c or qstash.new{ token = emu.token, base_url = emu.url }
  end)

  -- n messages that wait a year: each logs CREATED once and nothing else.
  -- (The emulator runs at time_scale 0.001: an hour was 3.6 s, and a slow
  -- run, under ASan on a busy machine, paged through the logs while ten
  -- thousand deliveries began, a page then waiting past the timeout.)
  local function publish_waiting(n)
    local later = os.time() + 365 * 24 * 3600
    for from = 1, n, 100 do
      local batch = {}
      for i = from, math.min(n, from + 99) do
        batch[#batch + 1] = { destination = sink.url .. "/w" .. i, body = tostring(i),
          headers = { ["Upstash-Not-Before"] = tostring(later) } }
      end
      local status = emu:json("POST", "/v2/batch", { body = cjson.encode(batch),
        headers = { ["Content-Type"] = "application/json" } })
      assert.equal(200, status)
    end
  end

  it("log_entries pages through 10,000 entries: each once, newest first", function()
    -- make valgrind runs the interpreter some 40 times slower: there 1,000
    -- entries (ten pages) are enough to follow the cursor under its eye
    local total = os.getenv("QSTASH_SPEC_VALGRIND") and 1000 or 10000
    publish_waiting(total)
    local n, seen, last, dup = 0, {}, math.huge, 0
    for e in c:log_entries{ state = "CREATED", count = 100 } do
      n = n + 1
      if seen[e.messageId] then dup = dup + 1 end
      seen[e.messageId] = true
      assert.is_true(e.time <= last)
      last = e.time
    end
    assert.equal(total, n)
    assert.equal(0, dup)
  end)

  it("message, cancel and cancel_many for real: the message's state ends CANCELLED", function()
    local a = c:publish(sink.url .. "/a", "x", { delay = 86400, label = "batch-1" }).messageId
    local b = c:publish(sink.url .. "/b", "x", { delay = 86400, label = "batch-1" }).messageId
    local d = c:publish(sink.url .. "/d", "x", { delay = 86400 }).messageId
    local m = c:message(a)
    assert.equal(a, m.messageId)
    assert.equal(sink.url .. "/a", m.url)
    assert.is_true(c:cancel(a))
    local ok, err = pcall(c.message, c, a)
    assert.is_false(ok)
    assert.equal("not_found", err.kind)
    assert.same({ cancelled = 1 }, c:cancel_many{ label = "batch-1" })
    assert.same({ cancelled = 1 }, c:cancel_many{ d, "msg_unknown" })
    for _, id in ipairs({ a, b, d }) do
      local page = c:logs{ message_id = id }
      assert.equal("CANCELLED", page.logs[1].state, id)
    end
  end)
end)
