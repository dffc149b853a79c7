-- The local QStash emulator (tools/qstash-dev), driven with raw HTTP.
local E = require("spec.support.emulator")
local cjson = require("cjson")

local function pct(s)
  return (s:gsub("[^%w]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- case-insensitive lookup in a {name = {values}} map
local function hget(map, name)
  name = name:lower()
  for k, v in pairs(map or {}) do
    if k:lower() == name then return v end
  end
  return nil
end

local function sorted_by_t(list)
  table.sort(list, function(a, b) return a.t < b.t end)
  return list
end

describe("qstash-dev", function()
  local fx = E.fixture{ time_scale = 0.001 }
  local emu, sink
  setup(function() emu, sink = fx.emu, fx.sink end)

  local function publish(path, headers, body)
    return emu:json("POST", "/v2/publish/" .. sink.url .. path, { headers = headers, body = body })
  end

  local function dlq(query)
    local status, doc, raw = emu:json("GET", "/v2/dlq" .. (query and ("?" .. query) or ""))
    assert.are.equal(200, status, raw)
    return doc.messages, doc.cursor, doc
  end

  local function wait_dlq(n, query)
    local got = E.wait_for(function()
      local m = dlq(query)
      if #m >= n then return m end
    end, 5)
    assert(got, "expected " .. n .. " DLQ entries for " .. tostring(query))
    return got
  end

  local function wait_received(n, pred)
    local got = E.wait_for(function()
      local out = {}
      for _, r in ipairs(sink:received()) do
        if not pred or pred(r) then out[#out + 1] = r end
      end
      if #out >= n then return out end
    end, 5)
    assert(got, "expected " .. n .. " requests at the sink")
    return got
  end

  local function deliveries_of(id)
    local out = {}
    for _, d in ipairs(emu:deliveries()) do
      if d.messageId == id and d.kind == "message" then out[#out + 1] = d end
    end
    return sorted_by_t(out)
  end

  -- publish `n` failing messages (retries 0) and wait for their DLQ entries
  local function fill_dlq(n, extra)
    sink:set_status(500)
    local ids = {}
    for i = 1, n do
      local h = { ["Upstash-Retries"] = "0" }
      for k, v in pairs(extra and extra(i) or {}) do h[k] = v end
      local status, doc = publish("/fill" .. i, h, "body " .. i)
      assert.are.equal(200, status)
      ids[i] = doc.messageId
    end
    return ids, wait_dlq(n)
  end

  describe("auth", function()
    it("answers 401 with a JSON error for a missing or wrong token", function()
      local status, doc = emu:json("GET", "/v2/keys", { token = false })
      assert.are.equal(401, status)
      assert.is_string(doc.error)
      status, doc = emu:json("GET", "/v2/dlq", { token = "not-the-token" })
      assert.are.equal(401, status)
      assert.is_string(doc.error)
      status = emu:json("POST", "/v2/publish/" .. sink.url .. "/x", { token = "bad", body = "x" })
      assert.are.equal(401, status)
    end)

    it("accepts ?qstash_token= and strips it from a publish destination", function()
      local status, doc = emu:json("GET", "/v2/keys?qstash_token=" .. pct(emu.token), { token = false })
      assert.are.equal(200, status)
      assert.are.equal(E.CURRENT_SIGNING_KEY, doc.current)
      status, doc = emu:json("POST", "/v2/publish/" .. sink.url .. "/q?a=1&b=two&qstash_token=" .. pct(emu.token),
        { token = false, body = "q" })
      assert.are.equal(200, status)
      assert.matches("^msg_", doc.messageId)
      local r = wait_received(1)[1]
      assert.are.equal("/q?a=1&b=two", r.target)
    end)
  end)

  it("serves the signing keys at /v2/keys", function()
    local status, doc = emu:json("GET", "/v2/keys")
    assert.are.equal(200, status)
    assert.are.same({ current = E.CURRENT_SIGNING_KEY, next = E.NEXT_SIGNING_KEY }, doc)
  end)

  describe("delivery", function()
    it("puts a message that fails with retries=0 in the DLQ with the last response", function()
      sink:set_status(500, { body = "boom" })
      local status, doc = publish("/fail", { ["Upstash-Retries"] = "0", ["Content-Type"] = "text/plain" }, "payload-1")
      assert.are.equal(200, status)
      local id = doc.messageId
      assert.matches("^msg_%w+$", id)
      local e = wait_dlq(1)[1]
      assert.matches("^%d+%-%d+$", e.dlqId)
      assert.are.equal(id, e.messageId)
      assert.are.equal(sink.url .. "/fail", e.url)
      assert.are.equal("POST", e.method)
      assert.are.equal("payload-1", e.body)
      assert.are.same({ "text/plain" }, hget(e.header, "Content-Type"))
      assert.are.equal(0, e.maxRetries)
      assert.are.equal(500, e.responseStatus)
      assert.are.equal("boom", e.responseBody)
      assert.are.same({ "text/plain; charset=utf-8" }, hget(e.responseHeader, "Content-Type"))
      assert.are.equal("127.0.0.1", e.callerIP)
      assert.is_number(e.createdAt)
      assert.is_number(e.notBefore)
      assert.is_nil(e.topicName)
      assert.is_nil(e.labels)
      assert.are.equal(1, #deliveries_of(id))
    end)

    it("sends a 489 with Upstash-NonRetryable-Error straight to the DLQ", function()
      sink:set_status(489, { headers = { ["Upstash-NonRetryable-Error"] = "true" } })
      local _, doc = publish("/nonretry", { ["Upstash-Retries"] = "3", ["Upstash-Retry-Delay"] = "1" }, "x")
      local e = wait_dlq(1)[1]
      assert.are.equal(489, e.responseStatus)
      assert.are.equal(3, e.maxRetries)
      E.sleep(0.1)
      assert.are.equal(1, #deliveries_of(doc.messageId))
    end)

    it("honours Upstash-Retries and Upstash-Retry-Delay", function()
      sink:set_status(500)
      local _, doc = publish("/retries", { ["Upstash-Retries"] = "2", ["Upstash-Retry-Delay"] = "10 * (1 + retried)" }, "r")
      local e = wait_dlq(1)[1]
      assert.are.equal(2, e.maxRetries)
      assert.are.equal("10 * (1 + retried)", e.retryDelayExpression)
      local ds = deliveries_of(doc.messageId)
      assert.are.equal(3, #ds)
      for i, d in ipairs(ds) do
        assert.are.equal(i - 1, d.retried)
        assert.are.equal(tostring(i - 1), d.headers["Upstash-Retried"])
      end
      local seen = {}
      for _, r in ipairs(sorted_by_t(sink:received())) do seen[#seen + 1] = sink:header(r, "Upstash-Retried") end
      assert.are.same({ "0", "1", "2" }, seen)
    end)

    it("uses the default exponential backoff (time-scaled) without Upstash-Retry-Delay", function()
      sink:set_status(503)
      local _, doc = publish("/backoff", { ["Upstash-Retries"] = "1" }, "b")
      local e = wait_dlq(1)[1]
      assert.are.equal(503, e.responseStatus)
      local ds = deliveries_of(doc.messageId)
      assert.are.equal(2, #ds)
      assert.is_true(ds[2].t - ds[1].t >= 0.010) -- e^2.5 s * 0.001
    end)

    it("records a network failure as responseStatus 0 with an empty body", function()
      local status = emu:json("POST", "/v2/publish/http://127.0.0.1:1/closed",
        { headers = { ["Upstash-Retries"] = "0" }, body = "n" })
      assert.are.equal(200, status)
      local e = wait_dlq(1)[1]
      assert.are.equal(0, e.responseStatus)
      assert.are.equal("", e.responseBody)
    end)

    it("treats Upstash-Timeout expiry as a failure", function()
      sink:set_status(200, { delay = 2 })
      local t0 = E.now()
      publish("/slow", { ["Upstash-Retries"] = "0", ["Upstash-Timeout"] = "1s" }, "slow")
      local e = wait_dlq(1)[1]
      assert.are.equal(0, e.responseStatus)
      assert.is_true(E.now() - t0 < 1.9)
    end)

    it("forwards Upstash-Forward-* without the prefix and adds QStash's headers", function()
      local status, doc = publish("/fwd", {
        ["Upstash-Forward-X-Custom"] = "abc",
        ["Upstash-Method"] = "put",
        ["Content-Type"] = "application/json",
        ["X-Not-Forwarded"] = "no",
      }, '{"a":1}')
      assert.are.equal(200, status)
      local r = wait_received(1)[1]
      assert.are.equal("PUT", r.method)
      assert.are.equal("/fwd", r.target)
      assert.are.equal('{"a":1}', r.body)
      assert.are.equal("abc", sink:header(r, "X-Custom"))
      assert.is_nil(sink:header(r, "Upstash-Forward-X-Custom"))
      assert.is_nil(sink:header(r, "X-Not-Forwarded"))
      assert.are.equal("application/json", sink:header(r, "Content-Type"))
      assert.are.equal("Upstash-QStash", sink:header(r, "User-Agent"))
      assert.are.equal(doc.messageId, sink:header(r, "Upstash-Message-Id"))
      assert.are.equal("0", sink:header(r, "Upstash-Retried"))
      assert.are.equal("EU-CENTRAL-1", sink:header(r, "upstash-region"))
      assert.are.equal("127.0.0.1", sink:header(r, "Upstash-Caller-Ip"))
      assert.is_nil(sink:header(r, "Upstash-Topic-Name"))
    end)

    it("signs deliveries with a verifiable HS256 JWT", function()
      local body = '{"sig":"nature","n":42}'
      publish("/sig?x=1", nil, body)
      local r = wait_received(1)[1]
      local jwt = sink:header(r, "Upstash-Signature")
      assert.is_string(jwt)
      local bodyfile = os.tmpname()
      E.write_file(bodyfile, r.body)
      local function check(key, url)
        return E.exec_ok(table.concat({ E.shell_quote(E.python),
          E.shell_quote(E.root .. "/spec/support/jwt_check.py"), E.shell_quote(jwt),
          E.shell_quote(key), E.shell_quote(bodyfile), E.shell_quote(url) }, " ") .. " 2>/dev/null")
      end
      local ok = check(E.CURRENT_SIGNING_KEY, sink.url .. "/sig?x=1")
      local wrong_key = check(E.NEXT_SIGNING_KEY, sink.url .. "/sig?x=1")
      local wrong_url = check(E.CURRENT_SIGNING_KEY, sink.url .. "/other")
      E.write_file(bodyfile, body .. " ")
      local wrong_body = check(E.CURRENT_SIGNING_KEY, sink.url .. "/sig?x=1")
      os.remove(bodyfile)
      assert.is_true(ok)
      assert.is_false(wrong_key)
      assert.is_false(wrong_url)
      assert.is_false(wrong_body)
    end)

    it("keeps a non-UTF-8 body as bodyBase64", function()
      sink:set_status(500, { body = "err" })
      publish("/bin", { ["Upstash-Retries"] = "0", ["Content-Type"] = "application/octet-stream" }, "\255\254")
      local e = wait_dlq(1)[1]
      assert.are.equal("//4=", e.bodyBase64)
      assert.is_nil(e.body)
    end)

    it("honours Upstash-Delay and Upstash-Not-Before, scaled by --time-scale", function()
      local t0 = E.now()
      local _, doc = publish("/delay", { ["Upstash-Delay"] = "400s" }, "d")
      local status, m = emu:json("GET", "/v2/messages/" .. doc.messageId)
      assert.are.equal(200, status)
      assert.are.equal(400000, m.notBefore - m.createdAt)
      E.sleep(0.15)
      assert.are.equal(0, #sink:received())
      local r = wait_received(1)[1]
      assert.is_true(r.t - t0 >= 0.35, "delivered too early")
      local id = doc.messageId
      assert.is_truthy(E.wait_for(function() return (emu:json("GET", "/v2/messages/" .. id)) == 404 end, 2),
        "a delivered message leaves /v2/messages")

      sink:clear()
      t0 = E.now()
      local nb = os.time() + 300
      _, doc = publish("/nb", { ["Upstash-Not-Before"] = tostring(nb), ["Upstash-Delay"] = "1d" }, "nb")
      status, m = emu:json("GET", "/v2/messages/" .. doc.messageId)
      assert.are.equal(200, status)
      assert.are.equal(nb * 1000, m.notBefore)
      r = wait_received(1)[1]
      assert.is_true(r.t - t0 >= 0.2 and r.t - t0 < 2, "not-before must win over the delay")
    end)

    it("sends the failure callback with dlqId and the base64 source body", function()
      sink:set_status(500)
      local _, doc = publish("/fc", { ["Upstash-Retries"] = "0", ["Upstash-Failure-Callback"] = sink.url .. "/fcb" }, "src")
      local e = wait_dlq(1)[1]
      local cb = wait_received(1, function(r) return r.target == "/fcb" end)[1]
      local payload = cjson.decode(cb.body)
      assert.are.equal(e.dlqId, payload.dlqId)
      assert.are.equal("c3Jj", payload.sourceBody)
      assert.are.equal(doc.messageId, payload.sourceMessageId)
      assert.are.equal(500, payload.status)
      assert.are.equal(sink.url .. "/fc", payload.url)
      assert.are.equal(sink.url .. "/fcb", e.failureCallback)
      assert.is_string(sink:header(cb, "Upstash-Signature"))
    end)

    it("calls Upstash-Callback after a delivery attempt", function()
      local _, doc = publish("/withcb", { ["Upstash-Callback"] = sink.url .. "/cb" }, "cbsrc")
      local cb = wait_received(1, function(r) return r.target == "/cb" end)[1]
      local payload = cjson.decode(cb.body)
      assert.are.equal(200, payload.status)
      assert.are.equal(doc.messageId, payload.sourceMessageId)
      assert.are.equal("b2s=", payload.body) -- base64("ok"), the sink's answer
      assert.is_nil(payload.dlqId)
      assert.are.equal("application/json", sink:header(cb, "Content-Type"))
    end)

    it("fans out to URL group endpoints", function()
      local status, _, raw = emu:json("PUT", "/v2/topics/grp/endpoints", { body = cjson.encode({ endpoints = {
        { url = sink.url .. "/g1", name = "one" }, { url = sink.url .. "/g2" } } }) })
      assert.are.equal(200, status, raw)
      sink:set_status(500)
      local doc
      status, doc = emu:json("POST", "/v2/publish/grp", { headers = { ["Upstash-Retries"] = "0" }, body = "g" })
      assert.are.equal(200, status)
      assert.are.equal(2, #doc)
      assert.matches("^msg_", doc[1].messageId)
      assert.are.equal(sink.url .. "/g1", doc[1].url)
      local got = wait_received(2)
      for _, r in ipairs(got) do assert.are.equal("grp", sink:header(r, "Upstash-Topic-Name")) end
      local es = wait_dlq(2, "topicName=grp")
      local by_url = {}
      for _, e in ipairs(es) do by_url[e.url] = e end
      assert.are.equal("grp", by_url[sink.url .. "/g1"].topicName)
      assert.are.equal("one", by_url[sink.url .. "/g1"].endpointName)
      assert.is_nil(by_url[sink.url .. "/g2"].endpointName)
      assert.are.equal(404, (emu:json("POST", "/v2/publish/nogroup", { body = "x" })))
    end)

    it("records the queue name of /v2/enqueue", function()
      sink:set_status(500)
      local status = emu:json("POST", "/v2/enqueue/myq/" .. sink.url .. "/e", { headers = { ["Upstash-Retries"] = "0" }, body = "e" })
      assert.are.equal(200, status)
      local e = wait_dlq(1, "queueName=myq")[1]
      assert.are.equal("myq", e.queueName)
      assert.are.equal(0, #dlq("queueName=other"))
    end)
  end)

  describe("publish validation", function()
    local cases = {
      { "Upstash-Retries", "abc" }, { "Upstash-Retries", "-1" }, { "Upstash-Delay", "10x" },
      { "Upstash-Method", "FETCH" }, { "Upstash-Retry-Delay", "__import__('os')" },
      { "Upstash-Retry-Delay", "pow(2)" }, { "Upstash-Not-Before", "soon" }, { "Upstash-Timeout", "5" },
      { "Upstash-Callback", "ftp://x" }, { "Upstash-Content-Based-Deduplication", "yes" },
      { "Upstash-Flow-Control-Value", "rate=2" },
    }
    for _, c in ipairs(cases) do
      it("answers 400 naming the field for " .. c[1] .. ": " .. c[2], function()
        local status, doc = publish("/v", { [c[1]] = c[2] }, "v")
        assert.are.equal(400, status)
        assert.matches(c[1] == "Upstash-Flow-Control-Value" and "Flow%-Control" or c[1]:gsub("%-", "%%-"), doc.error)
      end)
    end

    it("answers 400 for an invalid destination, 404/405 for unknown paths and methods", function()
      assert.are.equal(400, (emu:json("POST", "/v2/publish/ftp://example.com/x", { body = "x" })))
      assert.are.equal(400, (emu:json("POST", "/v2/publish/not%20a%20name", { body = "x" })))
      local status, doc = emu:json("GET", "/v2/nothing-here")
      assert.are.equal(404, status)
      assert.is_string(doc.error)
      status, doc = emu:json("DELETE", "/v2/keys")
      assert.are.equal(405, status)
      assert.is_string(doc.error)
      assert.are.equal(405, (emu:json("GET", "/v2/publish/" .. sink.url)))
      assert.are.equal(405, (emu:json("GET", "/v2/dlq/retry")))
    end)
  end)

  describe("deduplication", function()
    it("answers 202 with the original messageId for a duplicate id and delivers once", function()
      local s1, d1 = publish("/dedup", { ["Upstash-Deduplication-Id"] = "d-1" }, "one")
      local s2, d2 = publish("/dedup", { ["Upstash-Deduplication-Id"] = "d-1" }, "two")
      assert.are.equal(200, s1)
      assert.is_not_true(d1.deduplicated)
      assert.are.equal(202, s2)
      assert.are.equal(d1.messageId, d2.messageId)
      assert.is_true(d2.deduplicated)
      wait_received(1)
      E.sleep(0.1)
      assert.are.equal(1, #sink:received())
    end)

    it("deduplicates on content when asked", function()
      local h = { ["Upstash-Content-Based-Deduplication"] = "true", ["Content-Type"] = "text/plain" }
      local _, d1 = publish("/cdedup", h, "same")
      local s2, d2 = publish("/cdedup", h, "same")
      local s3, d3 = publish("/cdedup", h, "different")
      assert.are.equal(202, s2)
      assert.are.equal(d1.messageId, d2.messageId)
      assert.are.equal(200, s3)
      assert.are_not.equal(d1.messageId, d3.messageId)
      wait_received(2)
    end)
  end)

  describe("DLQ", function()
    it("lists with filters and pages with count + cursor, oldest first", function()
      local ids = fill_dlq(5, function(i)
        return { ["Upstash-Label"] = i <= 3 and "a" or "b", ["Upstash-Flow-Control-Key"] = "fk" .. (i % 2),
          ["Upstash-Flow-Control-Value"] = "parallelism=2, rate=10, period=1m" }
      end)
      local all = dlq()
      assert.are.equal(5, #all)

      -- paging
      local seen, pages, cursor = {}, {}, nil
      repeat
        local msgs, next_cursor = dlq("count=2" .. (cursor and ("&cursor=" .. pct(cursor)) or ""))
        pages[#pages + 1] = #msgs
        for _, m in ipairs(msgs) do seen[#seen + 1] = m.dlqId end
        cursor = next_cursor
      until not cursor
      assert.are.same({ 2, 2, 1 }, pages)
      local expect = {}
      for i, m in ipairs(all) do expect[i] = m.dlqId end
      assert.are.same(expect, seen)

      assert.are.equal(2, #dlq("label=b"))
      assert.are.equal(5, #dlq("label=a&label=b"))
      assert.are.equal(5, #dlq("label=a,b"))
      assert.are.equal(1, #dlq("url=" .. pct(sink.url .. "/fill1")))
      assert.are.equal(2, #dlq("url=" .. pct(sink.url .. "/fill1") .. "&url=" .. pct(sink.url .. "/fill2")))
      assert.are.equal(5, #dlq("responseStatus=500"))
      assert.are.equal(0, #dlq("responseStatus=404"))
      assert.are.equal(1, #dlq("messageId=" .. ids[3]))
      assert.are.equal(5, #dlq("callerIp=127.0.0.1"))
      assert.are.equal(2, #dlq("flowControlKey=fk0"))
      assert.are.equal(1, #dlq("label=b&flowControlKey=fk1"))
      assert.are.equal(0, #dlq("scheduleId=s"))
      assert.are.equal(2, #dlq("dlqIds=" .. all[1].dlqId .. "&dlqIds=" .. all[2].dlqId))
      local created = all[1].createdAt
      assert.are.equal(5, #dlq(string.format("fromDate=%d", created - 60000)))
      assert.are.equal(0, #dlq(string.format("fromDate=%d", created + 60000)))
      assert.are.equal(0, #dlq("toDate=1"))
      assert.are.equal(5, #dlq("someUnknownKey=1"))
      assert.are.equal(2, all[1].parallelism)
      assert.are.equal(10, all[1].rate)
      assert.are.equal(60, all[1].period)

      for _, bad in ipairs({ "count=101", "count=0", "count=x", "responseStatus=abc", "fromDate=yesterday" }) do
        local status, doc = emu:json("GET", "/v2/dlq?" .. bad)
        assert.are.equal(400, status, bad)
        assert.is_string(doc.error)
      end
      assert.are.equal(200, (emu:json("GET", "/v2/dlq?count=100")))
    end)

    it("gets one entry and answers 404 for an unknown id", function()
      local _, entries = fill_dlq(1, function() return { ["Upstash-Label"] = "l1,l2" } end)
      local id = entries[1].dlqId
      local status, doc = emu:json("GET", "/v2/dlq/" .. pct(id))
      assert.are.equal(200, status)
      assert.are.equal(id, doc.dlqId)
      assert.are.equal("l1", doc.label)
      assert.are.same({ "l1", "l2" }, doc.labels)
      status, doc = emu:json("GET", "/v2/dlq/1-0")
      assert.are.equal(404, status)
      assert.are.equal("message not found in dlq", doc.error)
    end)

    it("deletes one entry with an empty 200 body, then 404", function()
      local _, entries = fill_dlq(1)
      local id = entries[1].dlqId
      local status, raw = emu:request("DELETE", "/v2/dlq/" .. id)
      assert.are.equal(200, status)
      assert.are.equal("", raw)
      assert.are.equal(404, (emu:request("DELETE", "/v2/dlq/" .. id)))
      assert.are.equal(404, (emu:request("GET", "/v2/dlq/" .. id)))
    end)

    it("bulk-deletes by dlqIds and by filter, and rejects unknown query keys", function()
      fill_dlq(5, function(i) return { ["Upstash-Label"] = i <= 2 and "x" or "y" } end)
      local status, doc = emu:json("DELETE", "/v2/dlq?labeel=x")
      assert.are.equal(400, status)
      assert.is_string(doc.error)
      assert.are.equal(5, #dlq())

      local xs = dlq("label=x")
      -- unknown ids are skipped (spec/emulator_endpoints_spec.lua: the JSON body form)
      status, doc = emu:json("DELETE", "/v2/dlq?dlqIds=" .. xs[1].dlqId .. "&dlqIds=" .. xs[2].dlqId .. "&dlqIds=1-0")
      assert.are.equal(200, status)
      assert.are.same({ deleted = 2 }, doc)
      assert.are.equal(3, #dlq())

      status, doc = emu:json("DELETE", "/v2/dlq?label=y&count=2")
      assert.are.equal(200, status)
      assert.are.equal(2, doc.deleted)
      assert.is_string(doc.cursor)
      status, doc = emu:json("DELETE", "/v2/dlq?label=y&count=2&cursor=" .. pct(doc.cursor))
      assert.are.equal(200, status)
      assert.are.same({ deleted = 1 }, doc)
      assert.are.equal(0, #dlq())
    end)

    it("retries one entry as a new message with override headers (201)", function()
      local _, entries = fill_dlq(1, function()
        return { ["Upstash-Forward-X-Keep"] = "k", ["Upstash-Forward-X-Over"] = "old" }
      end)
      local e = entries[1]
      sink:clear() -- back to 200
      local status, doc = emu:json("POST", "/v2/dlq/retry/" .. pct(e.dlqId),
        { headers = { ["Upstash-Forward-X-Over"] = "new", ["Upstash-Retries"] = "1" } })
      assert.are.equal(201, status)
      assert.matches("^msg_", doc.messageId)
      assert.are_not.equal(e.messageId, doc.messageId)
      assert.are.equal(404, (emu:request("GET", "/v2/dlq/" .. e.dlqId)))
      local r = wait_received(1)[1]
      assert.are.equal(doc.messageId, sink:header(r, "Upstash-Message-Id"))
      assert.are.equal("k", sink:header(r, "X-Keep"))
      assert.are.equal("new", sink:header(r, "X-Over"))
      assert.are.equal(e.body, r.body)
      status, doc = emu:json("POST", "/v2/dlq/retry/" .. pct(e.dlqId))
      assert.are.equal(404, status)
      assert.are.equal("message not found in dlq", doc.error)
    end)

    it("applies overridden settings when the retried message fails again", function()
      local _, entries = fill_dlq(1)
      local status, doc = emu:json("POST", "/v2/dlq/retry/" .. entries[1].dlqId, { headers = {
        ["Upstash-Retries"] = "2", ["Upstash-Retry-Delay"] = "5", ["Upstash-Label"] = "relabel" } })
      assert.are.equal(201, status)
      local e = wait_dlq(1, "messageId=" .. doc.messageId)[1]
      assert.are.equal(2, e.maxRetries)
      assert.are.equal("5", e.retryDelayExpression)
      assert.are.same({ "relabel" }, e.labels)
      assert.are.equal(3, #deliveries_of(doc.messageId))
    end)

    it("bulk-retries by dlqIds (all or nothing) and by filter", function()
      local _, entries = fill_dlq(3)
      sink:clear()
      local status, doc = emu:json("POST", "/v2/dlq/retry?dlqIds=" .. entries[1].dlqId .. "&dlqIds=1-0")
      assert.are.equal(404, status)
      assert.are.equal("Some messages were not found in the DLQ", doc.error)
      assert.are.equal(3, #dlq())

      status, doc = emu:json("POST", "/v2/dlq/retry?dlqIds=" .. entries[1].dlqId .. "&dlqIds=" .. entries[2].dlqId)
      assert.are.equal(201, status)
      assert.are.equal(2, #doc.responses)
      assert.is_nil(doc.cursor)
      for _, r in ipairs(doc.responses) do assert.matches("^msg_", r.messageId) end
      assert.are.equal(1, #dlq())

      assert.are.equal(400, (emu:json("POST", "/v2/dlq/retry?labeel=x")))
      status, doc = emu:json("POST", "/v2/dlq/retry?count=100", { headers = { ["Upstash-Forward-X-Bulk"] = "yes" } })
      assert.are.equal(201, status)
      assert.are.equal(1, #doc.responses)
      assert.are.equal(0, #dlq())
      local got = wait_received(3)
      local bulk = 0
      for _, r in ipairs(got) do if sink:header(r, "X-Bulk") == "yes" then bulk = bulk + 1 end end
      assert.are.equal(1, bulk)
    end)

    it("shows redacted fields as REDACTED:<sha256> and delivers the originals on retry", function()
      local _, entries = fill_dlq(1, function()
        return { ["Upstash-Redact-Fields"] = "body,header[X-Secret]",
          ["Upstash-Forward-X-Secret"] = "s3cret", ["Upstash-Forward-X-Plain"] = "p" }
      end)
      local e = entries[1]
      assert.matches("^REDACTED:%x+$", e.body)
      assert.are.equal(64 + #"REDACTED:", #e.body)
      assert.matches("^REDACTED:%x+$", hget(e.header, "X-Secret")[1])
      assert.are.same({ "p" }, hget(e.header, "X-Plain"))
      sink:clear()
      assert.are.equal(201, (emu:json("POST", "/v2/dlq/retry/" .. e.dlqId)))
      local r = wait_received(1)[1]
      assert.are.equal("body 1", r.body)
      assert.are.equal("s3cret", sink:header(r, "X-Secret"))
    end)
  end)

  it("exposes every attempt at /__dev/deliveries and clears state with /__dev/reset", function()
    local _, doc = publish("/dev", nil, "dev")
    wait_received(1)
    assert.is_truthy(E.wait_for(function() local d = emu:deliveries(); if #d > 0 then return d end end, 2))
    E.sleep(0.05)
    local ds = emu:deliveries()
    assert.are.equal(1, #ds)
    assert.are.equal(doc.messageId, ds[1].messageId)
    assert.are.equal(sink.url .. "/dev", ds[1].url)
    assert.are.equal("POST", ds[1].method)
    assert.are.equal(200, ds[1].status)
    assert.are.equal(0, ds[1].retried)
    assert.are.equal("dev", ds[1].body)
    assert.is_number(ds[1].t)
    assert.are.equal(401, (emu:request("GET", "/__dev/deliveries", { token = false })))
    emu:reset()
    assert.are.equal(0, #emu:deliveries())
  end)

  describe("burst limit", function()
    local limited
    setup(function() limited = E.start{ time_scale = 0.001, burst_limit = 3 } end)
    teardown(function() if limited then limited:stop() end end)

    it("answers 429 with Burst-RateLimit-* headers beyond N requests per second", function()
      local hit
      for _ = 1, 10 do
        local status, doc, _, headers = limited:json("GET", "/v2/keys")
        if status == 429 then
          hit = { doc = doc, headers = headers }
          break
        end
        assert.are.equal(200, status)
      end
      assert.is_table(hit, "no 429 within 10 requests")
      assert.is_string(hit.doc.error)
      assert.are.equal("3", hit.headers["burst-ratelimit-limit"])
      assert.are.equal("0", hit.headers["burst-ratelimit-remaining"])
      local reset = tonumber(hit.headers["burst-ratelimit-reset"])
      assert.is_true(reset >= os.time() and reset <= os.time() + 2)
      -- publish is not limited
      for i = 1, 6 do
        local status = limited:json("POST", "/v2/publish/" .. sink.url .. "/burst" .. i, { body = "b" })
        assert.are.equal(200, status)
      end
    end)
  end)

  -- RFC 9112 chunk sizes: 1*HEXDIG, nothing else. The answer must come at
  -- once with the connection still open: a request that reads until the
  -- client closes would make receive() time out (a short socket timeout,
  -- not a wall-clock bound).
  describe("chunked request bodies #issue24", function()
    local socket = require("socket")

    -- Sends the head and `chunks` on a raw connection held open; returns
    -- the status of the answer, or nil and why none came.
    local function post_chunked(chunks)
      local c = socket.tcp()
      c:settimeout(2)
      assert(c:connect("127.0.0.1", emu.port))
      assert(c:send("POST /v2/publish/" .. sink.url .. "/chunked HTTP/1.1\r\n" ..
                    "Host: 127.0.0.1\r\nAuthorization: Bearer " .. emu.token .. "\r\n" ..
                    "Transfer-Encoding: chunked\r\n\r\n" .. chunks))
      local line, err = c:receive("*l")
      c:close()
      if not line then return nil, err end
      return tonumber(line:match("^HTTP/1%.%d (%d%d%d)")), line
    end

    for _, case in ipairs{
      { "-1", "-1\r\nabc\r\n" },
      { "-0", "-0\r\n\r\n" },
      { "a sign", "+5\r\nhello\r\n0\r\n\r\n" },
      { "a 0x prefix", "0x5\r\nhello\r\n0\r\n\r\n" },
      { "an underscore", "1_0\r\n" .. string.rep("x", 16) .. "\r\n0\r\n\r\n" },
      { "a space before it", " 5\r\nhello\r\n0\r\n\r\n" },
      { "two numbers", "5 5\r\nhello\r\n0\r\n\r\n" },
      { "no digits", ";ext\r\nhello\r\n0\r\n\r\n" },
      { "chunk data without its CRLF", "5\r\nhelloXY" },
    } do
      it("answers 400 at once to a chunk size line with " .. case[1], function()
        local status, why = post_chunked(case[2])
        assert.are.equal(400, status, "no 400: " .. tostring(why))
      end)
    end

    it("answers 413 at once to a chunk size over the body limit, however many digits", function()
      for _, size in ipairs{ "A00001", string.rep("f", 40) } do
        local status, why = post_chunked(size .. "\r\nabc")
        assert.are.equal(413, status, size .. ": " .. tostring(why))
      end
    end)

    it("still takes a well-formed chunked body, with extensions and upper-case hex", function()
      local status = post_chunked("5;name=v\r\nhello\r\nA \r\n0123456789\r\n0\r\n\r\n")
      assert.are.equal(200, status)
    end)
  end)
end)
