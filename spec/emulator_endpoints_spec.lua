-- The emulator's endpoints and request forms that the official SDKs use:
-- URL-group upserts (POST), bulk DLQ delete/retry with the ids in a JSON body
-- (the Python and Go SDKs' form), empty id lists, message get/cancel (one,
-- bulk), batch publish. Raw HTTP, so that nothing of our client is involved.
local E = require("spec.support.emulator")
local cjson = require("cjson")

local JSON = { ["Content-Type"] = "application/json" }

local function pct(s)
  return (s:gsub("[^%w]", function(c) return string.format("%%%02X", c:byte()) end))
end

describe("qstash-dev endpoints", function()
  local fx = E.fixture{ time_scale = 0.001 }
  local emu, sink
  setup(function() emu, sink = fx.emu, fx.sink end)

  local function call(method, path, body, headers)
    return emu:json(method, path, { body = body and (type(body) == "string" and body or cjson.encode(body)),
      headers = headers or (body and JSON) })
  end

  local function dlq_ids(query)
    local status, doc, raw = emu:json("GET", "/v2/dlq" .. (query and ("?" .. query) or ""))
    assert.are.equal(200, status, raw)
    local ids = {}
    for i, m in ipairs(doc.messages) do ids[i] = m.dlqId end
    return ids
  end

  -- publish n messages that fail once (retries 0) and wait for their DLQ entries
  local function fill_dlq(n)
    sink:set_status(500)
    for i = 1, n do
      local status = emu:json("POST", "/v2/publish/" .. sink.url .. "/fill" .. i,
        { headers = { ["Upstash-Retries"] = "0" }, body = "body " .. i })
      assert.are.equal(200, status)
    end
    local ids = E.wait_for(function()
      local got = dlq_ids()
      if #got == n then return got end
    end, 5)
    assert(ids, "expected " .. n .. " DLQ entries")
    sink:clear()
    return ids
  end

  -- publish a message that waits (Upstash-Delay, scaled by 0.001: 100 s) and return its id
  local function pending(path, headers, delay)
    local h = { ["Upstash-Delay"] = delay or "100000s" }
    for k, v in pairs(headers or {}) do h[k] = v end
    local status, doc, raw = emu:json("POST", "/v2/publish/" .. (path:match("^http") and path or (sink.url .. path)),
      { headers = h, body = "p" })
    assert.are.equal(200, status, raw)
    return doc.messageId
  end

  local function exists(id)
    return (emu:json("GET", "/v2/messages/" .. id)) == 200
  end

  describe("URL groups", function()
    it("upserts endpoints with POST, as QStash documents and the SDKs send", function()
      local status, _, raw = call("POST", "/v2/topics/grp/endpoints",
        { endpoints = { { name = "one", url = sink.url .. "/a" } } })
      assert.are.equal(200, status, raw)
      -- the same URL again replaces its endpoint, a new URL is added
      status = call("POST", "/v2/topics/grp/endpoints",
        { endpoints = { { name = "uno", url = sink.url .. "/a" }, { url = sink.url .. "/b" } } })
      assert.are.equal(200, status)
      local doc
      status, doc = emu:json("GET", "/v2/topics/grp")
      assert.are.equal(200, status)
      assert.are.same({ { name = "uno", url = sink.url .. "/a" }, { url = sink.url .. "/b" } }, doc.endpoints)
      -- PUT is still accepted
      assert.are.equal(200, (call("PUT", "/v2/topics/grp/endpoints", { endpoints = { { url = sink.url .. "/c" } } })))
      assert.are.equal(3, #select(2, emu:json("GET", "/v2/topics/grp")).endpoints)
      for _, bad in ipairs({ "{}", '{"endpoints":[]}', '{"endpoints":[{"name":"x"}]}', "nope",
                             '{"endpoints":[{"url":"ftp://x"}]}' }) do
        status, doc = call("POST", "/v2/topics/grp/endpoints", bad)
        assert.are.equal(400, status, bad)
        assert.is_string(doc.error)
      end
      assert.are.equal(405, (call("PATCH", "/v2/topics/grp/endpoints", { endpoints = {} })))
    end)

    it("deletes a group whose last endpoint is removed", function()
      call("POST", "/v2/topics/g2/endpoints", { endpoints = { { url = sink.url .. "/a", name = "a" },
        { url = sink.url .. "/b" } } })
      assert.are.equal(200, (call("DELETE", "/v2/topics/g2/endpoints", { endpoints = { { name = "a" } } })))
      assert.are.equal(1, #select(2, emu:json("GET", "/v2/topics/g2")).endpoints)
      assert.are.equal(200, (call("DELETE", "/v2/topics/g2/endpoints", { endpoints = { { url = sink.url .. "/b" } } })))
      assert.are.equal(404, (emu:json("GET", "/v2/topics/g2")))
    end)
  end)

  describe("bulk DLQ delete and retry", function()
    it("deletes exactly the ids of a JSON body {dlqIds}, unknown ones skipped", function()
      local ids = fill_dlq(4)
      local status, doc, raw = call("DELETE", "/v2/dlq", { dlqIds = { ids[1], ids[3], "1-0" } })
      assert.are.equal(200, status, raw)
      assert.are.same({ deleted = 2 }, doc)
      assert.are.same({ ids[2], ids[4] }, dlq_ids())
      -- ids in the query and in the body together: both count
      status, doc = call("DELETE", "/v2/dlq?dlqIds=" .. ids[2], { dlqIds = { ids[4] } })
      assert.are.equal(200, status)
      assert.are.same({ deleted = 2 }, doc)
      assert.are.same({}, dlq_ids())
    end)

    it("retries exactly the ids of a JSON body {dlqIds}, all or nothing", function()
      local ids = fill_dlq(3)
      local status, doc = call("POST", "/v2/dlq/retry", { dlqIds = { ids[1], "1-0" } })
      assert.are.equal(404, status)
      assert.is_string(doc.error)
      assert.are.equal(3, #dlq_ids())
      -- the destinations of the two retried: the DLQ lists entries in the
      -- order they failed, which need not be the order they were published
      local want = {}
      for i = 1, 2 do
        local _, entry = call("GET", "/v2/dlq/" .. ids[i])
        want[i] = entry.url:match("(/fill%d+)$")
      end
      table.sort(want)
      status, doc = call("POST", "/v2/dlq/retry", { dlqIds = { ids[1], ids[2] } },
        { ["Content-Type"] = "application/json", ["Upstash-Forward-X-Retried"] = "body" })
      assert.are.equal(201, status)
      assert.are.equal(2, #doc.responses)
      assert.is_nil(doc.cursor)
      assert.are.same({ ids[3] }, dlq_ids())
      local got = E.wait_for(function()
        local r = sink:received()
        if #r >= 2 then return r end
      end, 5)
      assert.is_table(got)
      local targets = {}
      for _, r in ipairs(got) do
        assert.are.equal("body", sink:header(r, "X-Retried"))
        targets[#targets + 1] = r.target
      end
      table.sort(targets)
      assert.are.same(want, targets)
    end)

    -- every form of "no ids at all" is a 400 that touches nothing
    local empty_cases = {
      { "DELETE", "/v2/dlq?dlqIds=" },
      { "DELETE", "/v2/dlq?dlqIds=,%20" },
      { "DELETE", "/v2/dlq", '{"dlqIds":[]}' },
      { "POST", "/v2/dlq/retry?dlqIds=" },
      { "POST", "/v2/dlq/retry", '{"dlqIds":[]}' },
      { "GET", "/v2/dlq?dlqIds=" },
    }
    for _, c in ipairs(empty_cases) do
      it("refuses an empty id list with 400: " .. c[1] .. " " .. c[2] .. " " .. (c[3] or ""), function()
        local ids = fill_dlq(2)
        local status, doc = call(c[1], c[2], c[3])
        assert.are.equal(400, status)
        assert.matches("empty dlqIds", doc.error)
        assert.are.same(ids, dlq_ids())
      end)
    end

    -- a body that is not {"dlqIds": [...]} would be "no filter" if ignored
    local bad_bodies = {
      "not json", "[]", '"x"', "{}", '{"dlqIds":"a"}', '{"dlqIds":[1]}', '{"dlqIds":[""]}',
      '{"dlqIds":null}', '{"messageIds":["a"]}', '{"dlqIds":["a"],"label":"x"}',
    }
    for _, body in ipairs(bad_bodies) do
      it("refuses the body " .. body .. " with 400 and deletes or retries nothing", function()
        local ids = fill_dlq(1)
        for _, route in ipairs({ { "DELETE", "/v2/dlq" }, { "POST", "/v2/dlq/retry" } }) do
          local status, doc = call(route[1], route[2], body)
          assert.are.equal(400, status, route[1] .. " " .. body)
          assert.is_string(doc.error)
        end
        assert.are.same(ids, dlq_ids())
      end)
    end

    it("refuses a filter given with no value (it would match everything)", function()
      local ids = fill_dlq(1)
      for _, q in ipairs({ "label=", "url=", "messageId=", "responseStatus=", "label=,", "label=x&url=" }) do
        assert.are.equal(400, (call("DELETE", "/v2/dlq?" .. q)), q)
        assert.are.equal(400, (call("POST", "/v2/dlq/retry?" .. q)), q)
      end
      assert.are.same(ids, dlq_ids())
    end)

    it("deletes everything only when no filter at all is given, paged by count", function()
      fill_dlq(3)
      local status, doc = call("DELETE", "/v2/dlq?count=2")
      assert.are.equal(200, status)
      assert.are.equal(2, doc.deleted)
      assert.is_string(doc.cursor)
      status, doc = call("DELETE", "/v2/dlq")
      assert.are.equal(200, status)
      assert.are.same({ deleted = 1 }, doc)
      assert.are.same({}, dlq_ids())
    end)
  end)

  describe("messages", function()
    it("gets a pending message with QStash's Message fields, 404 once gone", function()
      local id = pending("/get", {
        ["Content-Type"] = "text/plain", ["Upstash-Forward-X-A"] = "1", ["Upstash-Retries"] = "2",
        ["Upstash-Retry-Delay"] = "1000 * retried", ["Upstash-Label"] = "l1,l2", ["Upstash-Method"] = "PUT",
        ["Upstash-Flow-Control-Key"] = "fk", ["Upstash-Flow-Control-Value"] = "parallelism=3, rate=4, period=1d",
        ["Upstash-Callback"] = sink.url .. "/cb",
      })
      local status, m = emu:json("GET", "/v2/messages/" .. id)
      assert.are.equal(200, status)
      assert.are.equal(id, m.messageId)
      assert.are.equal(sink.url .. "/get", m.url)
      assert.are.equal("PUT", m.method)
      local header = {}
      for k, v in pairs(m.header) do header[k:lower()] = v end
      assert.are.same({ "1" }, header["x-a"])
      assert.are.same({ "text/plain" }, header["content-type"])
      assert.are.equal("p", m.body)
      assert.are.equal(2, m.maxRetries)
      assert.are.equal("1000 * retried", m.retryDelayExpression)
      assert.are.equal("l1", m.label)
      assert.are.same({ "l1", "l2" }, m.labels)
      assert.are.equal("fk", m.flowControlKey)
      assert.are.equal(3, m.parallelism)
      assert.are.equal(4, m.rate)
      assert.are.equal(86400, m.period)
      assert.are.equal(sink.url .. "/cb", m.callback)
      assert.are.equal("127.0.0.1", m.callerIP)
      assert.are.equal(100000000, m.notBefore - m.createdAt)
      local doc
      status, doc = emu:json("GET", "/v2/messages/msg_unknown")
      assert.are.equal(404, status)
      assert.is_string(doc.error)
    end)

    it("cancels one message: 200 {cancelled = 1}, then 404, and it is never delivered", function()
      local id = pending("/one", nil, "200s")
      local status, doc, raw = emu:json("DELETE", "/v2/messages/" .. id)
      assert.are.equal(200, status, raw)
      assert.are.same({ cancelled = 1 }, doc)
      assert.are.equal(404, (emu:json("DELETE", "/v2/messages/" .. id)))
      assert.is_false(exists(id))
      E.sleep(0.4)
      assert.are.same({}, sink:received())
    end)

    it("bulk-cancels by ids in the query or in a JSON body {messageIds}", function()
      local a, b, c, d = pending("/a"), pending("/b"), pending("/c"), pending("/d")
      local status, doc = emu:json("DELETE", "/v2/messages?messageIds=" .. a .. "&messageIds=" .. b .. "&messageIds=msg_gone")
      assert.are.equal(200, status)
      assert.are.same({ cancelled = 2 }, doc)
      status, doc = call("DELETE", "/v2/messages", { messageIds = { c } })
      assert.are.equal(200, status)
      assert.are.same({ cancelled = 1 }, doc)
      assert.is_false(exists(a) or exists(b) or exists(c))
      assert.is_true(exists(d))
    end)

    it("bulk-cancels by filters: OR within one, AND across, count caps, oldest first", function()
      assert.are.equal(200, (call("POST", "/v2/topics/fg/endpoints", { endpoints = { { url = sink.url .. "/g" } } })))
      local ids = {
        l1 = pending("/p1", { ["Upstash-Label"] = "one" }),
        l2 = pending("/p2", { ["Upstash-Label"] = "two", ["Upstash-Flow-Control-Key"] = "k",
                              ["Upstash-Flow-Control-Value"] = "rate=1" }),
        l3 = pending("/p3?q=1", { ["Upstash-Label"] = "two" }),
        lh = pending("http://localhost:" .. sink.port .. "/p4"),
      }
      local st, grp = emu:json("POST", "/v2/publish/fg", { headers = { ["Upstash-Delay"] = "100000s" }, body = "g" })
      assert.are.equal(200, st)
      local st2, queued = emu:json("POST", "/v2/enqueue/myq/" .. sink.url .. "/q",
        { headers = { ["Upstash-Delay"] = "100000s" }, body = "q" })
      assert.are.equal(200, st2)
      local function cancel(q)
        local status, doc, raw = emu:json("DELETE", "/v2/messages?" .. q)
        assert.are.equal(200, status, raw)
        return doc.cancelled
      end
      assert.are.equal(0, cancel("label=none"))
      assert.are.equal(1, cancel("label=two&flowControlKey=k"))
      assert.is_false(exists(ids.l2))
      assert.are.equal(1, cancel("path=/p3"))        -- the path, without the query
      assert.is_false(exists(ids.l3))
      assert.are.equal(1, cancel("host=localhost"))
      assert.is_false(exists(ids.lh))
      assert.are.equal(1, cancel("topicName=fg"))
      assert.is_false(exists(grp[1].messageId))
      assert.are.equal(1, cancel("queueName=myq"))
      assert.is_false(exists(queued.messageId))
      assert.are.equal(0, cancel("toDate=1"))
      assert.are.equal(0, cancel("callerIP=10.0.0.1"))
      local a, b = pending("/c1"), pending("/c2")
      assert.are.equal(1, cancel("host=127.0.0.1:" .. sink.port .. "&count=1"))
      assert.is_false(exists(ids.l1)) -- the oldest match went first
      assert.is_true(exists(a) and exists(b))
      assert.are.equal(2, cancel("url=" .. pct(sink.url .. "/c1") .. "," .. pct(sink.url .. "/c2") .. "&callerIp=127.0.0.1"))
      assert.is_false(exists(a) or exists(b))
    end)

    it("cancels every message only when no filter at all is given", function()
      pending("/x1")
      pending("/x2")
      pending("/x3")
      local status, doc = emu:json("DELETE", "/v2/messages?count=2")
      assert.are.equal(200, status)
      assert.are.same({ cancelled = 2 }, doc)
      status, doc = emu:json("DELETE", "/v2/messages")
      assert.are.equal(200, status)
      assert.are.same({ cancelled = 1 }, doc)
    end)

    local bad = {
      { "?messageIds=", "empty messageIds" }, { "?messageIds=,", "empty messageIds" },
      { "", "empty messageIds", '{"messageIds":[]}' }, { "", "JSON body", '{"dlqIds":["a"]}' },
      { "", "JSON body", "junk" }, { "?label=", "no value" }, { "?host=", "no value" },
      { "?labeel=x", "unknown query parameter" }, { "?cursor=1", "unknown query parameter" },
      { "?count=501", "count" }, { "?count=0", "count" }, { "?fromDate=soon", "fromDate" },
    }
    for _, c in ipairs(bad) do
      it("refuses a bulk cancel with 400 and cancels nothing: " .. c[1] .. " " .. (c[3] or ""), function()
        local id = pending("/keep")
        local status, doc = call("DELETE", "/v2/messages" .. c[1], c[3])
        assert.are.equal(400, status)
        assert.matches(c[2], doc.error, 1, true)
        assert.is_true(exists(id))
      end)
    end
  end)

  describe("batch", function()
    it("publishes each message like a publish: URLs, URL groups, queues, headers and bodies", function()
      call("POST", "/v2/topics/bg/endpoints", { endpoints = { { url = sink.url .. "/g1" }, { url = sink.url .. "/g2" } } })
      local status, doc, raw = call("POST", "/v2/batch", {
        { destination = sink.url .. "/u1?x=1", body = '{"n":1}',
          headers = { ["Content-Type"] = "application/json", ["Upstash-Forward-X-N"] = "1" } },
        { destination = "bg", body = "to the group", headers = { ["Upstash-Label"] = "grp" } },
        { destination = sink.url .. "/u2", queue = "bq", headers = {} },
      })
      assert.are.equal(200, status, raw)
      assert.are.equal(3, #doc)
      assert.matches("^msg_", doc[1].messageId)
      assert.are.equal(sink.url .. "/u1?x=1", doc[1].url)
      assert.are.equal(2, #doc[2])
      assert.are.equal(sink.url .. "/g1", doc[2][1].url)
      assert.matches("^msg_", doc[2][2].messageId)
      assert.matches("^msg_", doc[3].messageId)
      local got = E.wait_for(function()
        local r = sink:received()
        if #r >= 4 then return r end
      end, 5)
      assert.is_table(got)
      local by_target = {}
      for _, r in ipairs(got) do by_target[r.target] = r end
      local u1 = by_target["/u1?x=1"]
      assert.are.equal('{"n":1}', u1.body)
      assert.are.equal("application/json", sink:header(u1, "Content-Type"))
      assert.are.equal("1", sink:header(u1, "X-N"))
      assert.are.equal(doc[1].messageId, sink:header(u1, "Upstash-Message-Id"))
      assert.are.equal("to the group", by_target["/g1"].body)
      assert.are.equal("bg", sink:header(by_target["/g2"], "Upstash-Topic-Name"))
      assert.are.equal("", by_target["/u2"].body)
    end)

    it("puts an error in place of a message that cannot be published and sends the others", function()
      sink:set_status(500)
      local status, doc = call("POST", "/v2/batch", {
        { destination = "no-such-group" },
        { destination = sink.url .. "/ok", headers = { ["Upstash-Retries"] = "0" } },
        { destination = sink.url .. "/bad", headers = { ["Upstash-Retries"] = "many" } },
        { destination = sink.url .. "/badq", queue = "bad queue" },
      })
      assert.are.equal(200, status)
      assert.are.equal(4, #doc)
      assert.matches("not found", doc[1].error)
      assert.matches("^msg_", doc[2].messageId)
      assert.matches("Upstash%-Retries", doc[3].error)
      assert.matches("queue", doc[4].error)
      assert.is_truthy(E.wait_for(function() return #dlq_ids() == 1 end, 5))
    end)

    it("deduplicates within and across batches", function()
      local h = { ["Upstash-Deduplication-Id"] = "b-1" }
      local _, doc = call("POST", "/v2/batch", {
        { destination = sink.url .. "/d", headers = h }, { destination = sink.url .. "/d", headers = h } })
      assert.is_not_true(doc[1].deduplicated)
      assert.is_true(doc[2].deduplicated)
      assert.are.equal(doc[1].messageId, doc[2].messageId)
      local _, again = call("POST", "/v2/batch", { { destination = sink.url .. "/d", headers = h } })
      assert.are.equal(doc[1].messageId, again[1].messageId)
      assert.is_true(again[1].deduplicated)
      -- delivered once
      assert.is_truthy(E.wait_for(function() return #sink:received() == 1 end, 5))
      E.sleep(0.05)
      assert.are.equal(1, #sink:received())
    end)

    -- a malformed batch sends nothing at all
    local malformed = {
      "not json", "{}", "[]", "[1]", '[{"body":"no destination"}]', '[{"destination":""}]',
      '[{"destination":"g","unknown":1}]', '[{"destination":"g","headers":["a"]}]',
      '[{"destination":"g","headers":{"X":1}}]', '[{"destination":"g","headers":{"X":"a\\r\\nB: c"}}]',
      '[{"destination":"g","headers":{"Bad Name":"v"}}]', '[{"destination":"g","body":{"a":1}}]',
      '[{"destination":"g","queue":7}]',
    }
    for _, body in ipairs(malformed) do
      it("answers 400 and sends nothing for the batch " .. body, function()
        local payload = body:gsub('"g"', '"' .. sink.url .. '/m"')
        local first = cjson.encode({ destination = sink.url .. "/first" })
        if payload:sub(1, 2) == "[{" then payload = "[" .. first .. "," .. payload:sub(2) end
        local status, doc = call("POST", "/v2/batch", payload)
        assert.are.equal(400, status, payload)
        assert.is_string(doc.error)
        E.sleep(0.05)
        assert.are.same({}, sink:received())
        assert.are.same({}, emu:deliveries())
      end)
    end

    it("is not held to the burst limit, as publish is not", function()
      local limited = E.start{ time_scale = 0.001, burst_limit = 1 }
      local ok, err = pcall(function()
        for i = 1, 4 do
          local status = limited:json("POST", "/v2/batch",
            { body = cjson.encode({ { destination = sink.url .. "/burst" .. i } }), headers = JSON })
          assert.are.equal(200, status)
        end
        local statuses = {}
        for _ = 1, 3 do statuses[#statuses + 1] = (limited:json("GET", "/v2/dlq")) end
        assert.is_truthy(table.concat(statuses, ","):find("429"), "the DLQ list is limited")
      end)
      limited:stop()
      assert(ok, err)
    end)
  end)
end)
