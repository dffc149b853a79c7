-- The caller-driven transport (client:prepare / call:step, design.md
-- "Architecture"): every API function run both ways, over libcurl and over
-- a plain luasocket transport driven by step(), gives the same bytes on the
-- wire, the same decisions after each attempt, and the same results.
local qstash = require "qstash"
local server = require "spec.support.server"
local E = require "spec.support.emulator"
local step_http = require "spec.support.step_http"

local TOKEN = "tok_step_0123456789"

-- What a request is, less what belongs to each transport's framing.
local FRAMING = { host = true, ["content-length"] = true, connection = true, accept = true,
                  expect = true, ["transfer-encoding"] = true }

local function wire(req)
  local headers = {}
  for _, h in ipairs(req.headers) do
    if not FRAMING[h[1]:lower()] then headers[#headers + 1] = h[1] .. ": " .. h[2] end
  end
  return { method = req.method, target = req.target, body = req.body, headers = headers }
end

local function wires(list)
  local out = {}
  for i, r in ipairs(list) do out[i] = wire(r) end
  return out
end

-- The fields of an error that a decision sets.
local function verdict(res, err)
  if res then return { ok = true, res = res } end
  return { kind = err.kind, status = err.status, attempts = err.attempts, ambiguous = err.ambiguous,
           retry_after = err.retry_after, message = err.message, deleted = err.deleted,
           is_error = qstash.is_error(err) }
end

describe("call:step against the recording server", function()
  local srv, client

  setup(function()
    srv = server.start()
    client = qstash.new{ token = TOKEN, base_url = srv.url, timeout = 5,
                         retry = { attempts = 4, base_delay = 0.01, max_delay = 0.05 } }
  end)
  teardown(function()
    client:close()
    srv:stop()
  end)
  before_each(function() srv:reset() end)

  -- Runs fname(...) both ways with the same scripted answers; returns what
  -- each way sent and how each ended.
  local function both_ways(script, fname, ...)
    local args = table.pack and table.pack(...) or { n = select("#", ...), ... }
    local unpack = table.unpack or unpack
    local out = {}
    for way = 1, 2 do
      srv:reset()
      if script then srv:script(script) end
      local res, err
      if way == 1 then
        local ok, r = pcall(client[fname], client, unpack(args, 1, args.n))
        if ok then res = r else err = r end
      else
        res, err = step_http.run(client:prepare(fname, unpack(args, 1, args.n)))
      end
      out[way] = { sent = wires(srv:requests()), verdict = verdict(res, err) }
    end
    return out[1], out[2]
  end

  local ids150 = {}
  for i = 1, 150 do ids150[i] = "1700000000000-" .. i end

  local cases = {
    { "dlq_retry", nil, "1725323658779-0",
      { retries = 1, delay = "10s", headers = { ["X-A"] = "b" }, label = { "a", "b" },
        callback_options = { method = "put", headers = { B = "x" } } } },
    { "dlq_retry (an id needing encoding)", "dlq_retry", "a/b c%2F\"?#" },
    { "dlq_list", nil, { url = "https://example.com/x", count = 5, cursor = "abc", response_status = { 500, 502 } },
      script = { { json = { messages = { { dlqId = "1-0" } }, cursor = "" } } } },
    { "dlq_get", nil, "1-0", script = { { json = { dlqId = "1-0", body = "x" } } } },
    { "dlq_delete", nil, "1-0", script = { { status = 200, body = "" } } },
    { "dlq_delete_many (150 ids: two pages)", "dlq_delete_many", ids150,
      script = { { json = { deleted = 100 } }, { json = { deleted = 50 } } } },
    { "dlq_delete_many (a filter, with cursors)", "dlq_delete_many", { url = "https://example.com/x" },
      script = { { json = { deleted = 2, cursor = "c1" } }, { json = { deleted = 1, cursor = "" } } } },
    { "dlq_retry_many", nil, { all = true }, { retries = 2 },
      script = { { json = { responses = { { messageId = "msg_1" } }, cursor = "n" } },
                 { json = { responses = { { messageId = "msg_2", deduplicated = true } } } } } },
    { "publish", nil, "https://example.com/x?y=1", "hello",
      { content_type = "text/plain", deduplication_id = "d-1", headers = { ["X-T"] = "1" } } },
    { "publish (a body over 1 KiB)", "publish", "https://example.com/big", string.rep("b", 5000) },
    { "publish (no body)", "publish", "group-1" },
    { "publish_json", nil, "group-1", { a = 1, list = { 1, 2 } }, { delay = 5 } },
    { "logs", nil, { state = "FAILED", message_ids = { "a", "b" }, count = 1000, cursor = "c" },
      script = { { json = { events = { { time = 1, state = "FAILED", messageId = "a" } }, cursor = "" } } } },
    { "message", nil, "msg_1", script = { { json = { messageId = "msg_1" } } } },
    { "cancel", nil, "msg_1", script = { { status = 202, body = "" } } },
    { "cancel_many (150 ids: two requests)", "cancel_many", ids150,
      script = { { json = { cancelled = 100 } }, { json = { cancelled = 50 } } } },
    { "flow_control_get", nil, "tenant/1", script = { { json = { flowControlKey = "tenant/1" } } } },
    { "flow_control_pin", nil, "k", { parallelism = 2, rate = 5, period = "1m" },
      script = { { status = 200, body = "" } } },
    { "flow_control_unpin", nil, "k", { rate = true }, script = { { status = 200, body = "" } } },
    { "flow_control_reset_rate", nil, "k", script = { { status = 200, body = "" } } },
    { "global_parallelism", nil, script = { { json = { parallelismMax = 100 } } } },
    { "signing_keys", nil, script = { { json = { current = "sig_a", next = "sig_b" } } } },
    { "signing_keys_rotate", nil, script = { { json = { current = "sig_b", next = "sig_c" } } } },
    { "schedule_create", nil, "https://example.com/x?y=1", "CRON_TZ=Europe/Paris 0 9 * * 1-5", "hello",
      { schedule_id = "s-1", queue = "q", retries = 2, headers = { ["X-T"] = "1" } },
      script = { { json = { scheduleId = "s-1" } } } },
    { "schedule_create_json", nil, "group-1", "*/5 * * * *", { a = 1 }, script = { { json = { scheduleId = "s" } } } },
    { "schedule_get", nil, "s-1",
      script = { { json = { scheduleId = "s-1", cron = "* * * * *", destination = "g", callerIP = "::1" } } } },
    { "schedule_list", nil, script = { { json = { { scheduleId = "s", cron = "* * * * *", destination = "g" } } } } },
    { "schedule_delete", nil, "s-1", script = { { status = 200, body = "" } } },
    { "schedule_pause", nil, "s-1", script = { { status = 200, body = "" } } },
    { "schedule_resume", nil, "s-1", script = { { status = 200, body = "" } } },
    { "follow (polls until DELIVERED)", "follow", "msg_1", { interval = 0.01, timeout = 5 },
      script = { { json = { logs = { { time = 1, state = "CREATED", messageId = "msg_1" } } } },
                 { json = { logs = { { time = 2, state = "DELIVERED", messageId = "msg_1" } } } } } },
    { "follow_many (FAILED: a DLQ lookup)", "follow_many", { "m1", "m2" }, { interval = 0.01 },
      script = { { json = { logs = { { time = 1, state = "DELIVERED", messageId = "m1" },
                                     { time = 1, state = "FAILED", messageId = "m2" } } } },
                 { json = { messages = { { dlqId = "9-9", messageId = "m2" } } } } } },
    { "dlq_retry with follow", "dlq_retry", "1-0", { retries = 1, follow = { interval = 0.01 } },
      script = { { status = 201, json = { messageId = "msg_n" } },
                 { json = { logs = { { time = 1, state = "DELIVERED", messageId = "msg_n" } } } } } },
  }

  for _, case in ipairs(cases) do
    local name, fname = case[1], case[2] or case[1]
    it("sends the same request for " .. name, function()
      local unpack = table.unpack or unpack
      -- the arguments: case[3] on, counted without # (a nil at case[2]
      -- makes the length of a table with holes differ between interpreters)
      local last = 2
      for i = 3, 10 do if case[i] ~= nil then last = i end end
      local curl, step = both_ways(case.script, fname, unpack(case, 3, last))
      assert.is_true(curl.verdict.ok, "libcurl way failed: " .. tostring(curl.verdict.message))
      assert.is_true(#curl.sent > 0)
      assert.same(curl.sent, step.sent)
      assert.same(curl.verdict, step.verdict)
    end)
  end

  it("announces each wait once: after it, the next step sends", function()
    -- step() after a "wait" used to answer "wait" again, and every caller
    -- (the libcurl path and qstash.resty too) waited twice as long
    local c = qstash.new{ token = TOKEN, base_url = srv.url, retry = { attempts = 3, base_delay = 0.01, max_delay = 5 } }
    srv:reset()
    srv:script{ { status = 429, headers = { ["Retry-After"] = "1" } }, { status = 503 },
                { status = 201, json = { messageId = "m" } } }
    local verbs = {}
    local call = c:prepare("dlq_retry", "1-0")
    local what, v, why = call:step()
    while what == "send" or what == "wait" do
      verbs[#verbs + 1] = what .. (why and (":" .. why) or "")
      if what == "send" then
        local ok, status, headers, body = step_http.send(v)
        assert.is_true(ok)
        what, v, why = call:step{ status = status, headers = headers, body = body }
      else
        what, v, why = call:step()
      end
    end
    assert.equal("done", what)
    assert.same({ "send", "wait:rate_limited", "send", "wait:backoff", "send" }, verbs)
    c:close()
  end)

  it("sends the token as a query the same way", function()
    local c = qstash.new{ token = TOKEN, base_url = srv.url, token_in_query = true }
    srv:reset()
    c:dlq_retry("1-0")
    local curl = wires(srv:requests())
    srv:reset()
    step_http.run(c:prepare("dlq_retry", "1-0"))
    assert.same(curl, wires(srv:requests()))
    assert.matches("qstash_token=", curl[1].target, 1, true)
    c:close()
  end)

  local failures = {
    { "503s, then success", "dlq_retry", { "1-0" },
      { { status = 503 }, { status = 503 }, { status = 201, json = { messageId = "m" } } } },
    { "a 429 with Retry-After, then success", "dlq_retry", { "1-0" },
      { { status = 429, headers = { ["Retry-After"] = "0" } }, { status = 201, json = { messageId = "m" } } } },
    { "a 429 asking too long a wait", "dlq_retry", { "1-0" },
      { { status = 429, headers = { ["Retry-After"] = "60", ["Burst-RateLimit-Limit"] = "10" } } } },
    { "a 404", "dlq_retry", { "1-0" }, { { status = 404, json = { error = "message not found" } } } },
    { "a 503 then a 404 (ambiguous)", "dlq_retry", { "1-0" },
      { { status = 503 }, { status = 404, json = { error = "message not found" } } } },
    { "5xx until the attempts run out", "dlq_get", { "1-0" }, { { status = 500, repeat_ = 4 } } },
    { "invalid JSON in a 201", "dlq_retry", { "1-0" }, { { status = 201, body = "{nope" } } },
    { "a 503 to a publish without deduplication_id", "publish", { "https://example.com/x", "b" },
      { { status = 503 } } },
    { "a 400", "publish_json", { "g", { 1 } }, { { status = 400, json = { error = "bad" } } } },
    { "a 503 to a key rotation (not repeated)", "signing_keys_rotate", {}, { { status = 503 } } },
    { "a failing second page", "dlq_delete_many", { { url = "https://example.com/x" } },
      { { json = { deleted = 3, cursor = "p2" } }, { status = 401, json = { error = "no" } } } },
  }

  for _, f in ipairs(failures) do
    it("decides the same after " .. f[1], function()
      local script = {}
      for _, r in ipairs(f[4]) do
        local copy = {}
        for k, v in pairs(r) do copy[k] = v end
        if copy.repeat_ then copy["repeat"], copy.repeat_ = copy.repeat_, nil end
        script[#script + 1] = copy
      end
      local unpack = table.unpack or unpack
      local curl, step = both_ways(script, f[2], unpack(f[3]))
      assert.same(curl.verdict, step.verdict)
      assert.same(curl.sent, step.sent)
    end)
  end

  it("reports a connection that died unanswered as ambiguous both ways, and never resends a publish", function()
    local c = qstash.new{ token = TOKEN, base_url = srv.url, retry = { attempts = 4, base_delay = 0.01 } }
    srv:script{ { fault = "close" }, { status = 201, json = { messageId = "m" } } }
    local ok, curl_err = pcall(c.publish, c, "https://example.com/x", "b")
    assert.is_false(ok)
    local curl_sent = #srv:requests()
    srv:reset()
    srv:script{ { fault = "close" }, { status = 201, json = { messageId = "m" } } }
    local _, step_err = step_http.run(c:prepare("publish", "https://example.com/x", "b"))
    assert.equal(1, curl_sent)
    assert.equal(1, #srv:requests())
    for _, err in ipairs{ curl_err, step_err } do
      assert.equal("network", err.kind)
      assert.is_true(err.ambiguous)
      assert.equal(1, err.attempts)
    end
    c:close()
  end)

  describe("misuse", function()
    it("raises argument errors from prepare, before anything is sent", function()
      assert.has_error(function() client:prepare("dlq_retry", "") end)
      assert.has_error(function() client:prepare("dlq_retry", "1-0", { retries = -1 }) end)
      assert.has_error(function() client:prepare("nope") end)
      assert.has_error(function() client:prepare(42) end)
      assert.same({}, srv:requests())
    end)

    it("refuses a response when none is awaited, and a missing one when one is", function()
      local call = client:prepare("dlq_retry", "1-0")
      assert.has_error(function() call:step{ status = 200 } end)
      local what = call:step()
      assert.equal("send", what)
      assert.has_error(function() call:step() end)
      assert.has_error(function() call:step{ status = 42 } end)
      assert.has_error(function() call:step{ failure = "gone" } end)
      assert.has_error(function() call:step{ status = 201, body = 5 } end)
    end)

    it("treats a body over max_response_bytes as too_large", function()
      local c = qstash.new{ token = TOKEN, base_url = srv.url, max_response_bytes = 10 }
      local call = c:prepare("dlq_retry", "1-0")
      call:step()
      local what, err = call:step{ status = 201, body = string.rep("x", 11) }
      assert.equal("fail", what)
      assert.equal("too_large", err.kind)
      c:close()
    end)

    it("fails a call without a token at its first step, with the config error", function()
      local c = qstash.new{ base_url = srv.url, dev = false }
      local what, err = c:prepare("dlq_retry", "1-0"):step()
      if os.getenv("QSTASH_TOKEN") and os.getenv("QSTASH_TOKEN") ~= "" then
        assert.equal("send", what) -- the environment gave one
      else
        assert.equal("fail", what)
        assert.equal("config", err.kind)
        assert.is_true(qstash.is_error(err))
      end
      assert.same({}, srv:requests())
      c:close()
    end)

    it("keeps a prepared call usable after its client is closed", function()
      local c = qstash.new{ token = TOKEN, base_url = srv.url }
      local call = c:prepare("dlq_retry", "1-0")
      c:close()
      srv:reset()
      local res = step_http.run(call)
      assert.equal("msg_test", res.messageId)
      assert.equal(1, #srv:requests())
    end)

    it("says done or fail again, without sending, when stepped past its end", function()
      local call = client:prepare("dlq_retry", "1-0")
      local res = step_http.run(call)
      assert.equal("done", (call:step()))
      assert.equal(res, select(2, call:step()))
      assert.equal(1, #srv:requests())
    end)
  end)
end)

describe("call:step against the emulator", function()
  local fx = E.fixture{ time_scale = 0.001 }
  local emu, sink, client

  setup(function()
    emu, sink = fx.emu, fx.sink
    client = qstash.new{ base_url = emu.url, token = emu.token, retry = { base_delay = 0.01 }, timeout = 5 }
  end)
  teardown(function() if client then client:close() end end)

  -- n messages failed into the DLQ; returns their DLQ entries.
  local function dlq_entries(n)
    sink:set_status(500, { body = "down" })
    local ids = {}
    for i = 1, n do ids[#ids + 1] = client:publish(sink.url .. "/p" .. i, "body " .. i, { retries = 0 }).messageId end
    local entries
    E.wait_for(function()
      entries = client:dlq_list{}.messages
      return #entries >= n
    end, 10)
    assert.equal(n, #entries)
    sink:set_status(200)
    return entries
  end

  local function step(fname, ...)
    return step_http.run(client:prepare(fname, ...))
  end

  it("lists, gets, retries and deletes alike", function()
    local entries = dlq_entries(6)
    local listed = assert(step("dlq_list", {}))
    assert.same(client:dlq_list{}, listed)
    assert.same(client:dlq_get(entries[1].dlqId), assert(step("dlq_get", entries[1].dlqId)))

    local a = client:dlq_retry(entries[1].dlqId)
    local b = assert(step("dlq_retry", entries[2].dlqId))
    assert.matches("^msg_", a.messageId)
    assert.matches("^msg_", b.messageId)
    assert.same({ messageId = true, deduplicated = false }, { messageId = true, deduplicated = b.deduplicated })

    local _, err = step("dlq_retry", entries[2].dlqId)
    local ok, curl_err = pcall(client.dlq_retry, client, entries[1].dlqId)
    assert.is_false(ok)
    assert.equal(curl_err.kind, err.kind)
    assert.equal("not_found", err.kind)

    assert.is_true(client:dlq_delete(entries[3].dlqId))
    assert.is_true(step("dlq_delete", entries[4].dlqId))
    assert.same({ deleted = 1 }, client:dlq_delete_many{ entries[5].dlqId })
    assert.same({ deleted = 1 }, step("dlq_delete_many", { entries[6].dlqId }))
    assert.same({}, client:dlq_list{}.messages)
  end)

  it("retries in bulk and publishes alike", function()
    dlq_entries(3)
    local res = assert(step("dlq_retry_many", { all = true }, { retries = 0 }))
    assert.equal(3, #res.responses)
    local p1 = client:publish_json(sink.url .. "/j", { a = 1 })
    local p2 = assert(step("publish_json", sink.url .. "/j", { a = 1 }))
    assert.matches("^msg_", p1.messageId)
    assert.matches("^msg_", p2.messageId)
    assert.is_false(p2.deduplicated)
  end)
end)
