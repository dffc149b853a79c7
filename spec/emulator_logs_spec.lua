-- The emulator's logs API (GET /v2/logs, and /v2/events, the path qstash-js
-- calls): the states each message logs as it goes, the filters, the cursor,
-- the entries' shape. Raw HTTP, so that nothing of our client is involved.
local E = require("spec.support.emulator")
local cjson = require("cjson")
local socket = require("socket")

local JSON = { ["Content-Type"] = "application/json" }
local FAR = "4102444800" -- Upstash-Not-Before: 2100-01-01, never delivered

local function pct(s)
  return (s:gsub("[^%w]", function(c) return string.format("%%%02X", c:byte()) end))
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local q = {}
    for k = 4, 1, -1 do
      q[k] = n % 64
      n = (n - q[k]) / 64
    end
    out[#out + 1] = B64:sub(q[1] + 1, q[1] + 1) .. B64:sub(q[2] + 1, q[2] + 1)
      .. (b and B64:sub(q[3] + 1, q[3] + 1) or "=") .. (c and B64:sub(q[4] + 1, q[4] + 1) or "=")
  end
  return table.concat(out)
end

-- The entries' allowed fields and their types. qstash-js src/client/types.ts
-- (v2.11.3, 81d951b): `Log` (time: number, state: State, messageId: string,
-- nextDeliveryTime?: number, error?: string, url: string, urlGroup?,
-- topicName?: string, endpointName?: string, header?, body?: string (base64),
-- label?: string, labels?: string[]), `LogPayload` = Log without urlGroup
-- (the SDK adds urlGroup from topicName), `GetLogsPayload` = {cursor?: string,
-- events: LogPayload[]}; src/client/client.ts `logs()` GETs /v2/events and
-- reads `events` and `cursor`. Differences, by design:
-- - header: types.ts says Record<string, string>; the REST API returns headers
--   as {Name: [values]} everywhere (the message's `header`), so do we;
-- - state: types.ts's State lists CANCELED and IN_PROGRESS; QStash's docs
--   (debug-logs.mdx) log CANCEL_REQUESTED and CANCELLED, and IN_PROGRESS is
--   only a filter. We follow the docs;
-- - queueName, scheduleId, responseStatus (the OpenAPI LogEntry's) and dlqId
--   (on FAILED, an emulator extra) are not in types.ts, nor is flowControlKey
--   (a message's flow-control key, which the logs filter by).
local STATES = { CREATED = true, ACTIVE = true, RETRY = true, ERROR = true, DELIVERED = true,
                 FAILED = true, CANCEL_REQUESTED = true, CANCELLED = true }
local FIELDS = {
  time = "ms", state = "state", messageId = "string", url = "string", -- required
  nextDeliveryTime = "ms", error = "string", topicName = "string", endpointName = "string",
  header = "header", body = "base64", label = "string", labels = "strings",
  queueName = "string", scheduleId = "string", responseStatus = "int", dlqId = "string",
  flowControlKey = "string",
}
local REQUIRED = { "time", "state", "messageId", "url" }

-- case-insensitive lookup in a {name = {values}} map
local function hget(map, name)
  name = name:lower()
  for k, v in pairs(map or {}) do
    if k:lower() == name then return v end
  end
  return nil
end

local function is_int(v) return type(v) == "number" and v == math.floor(v) end

local CHECK = {
  ms = function(v) return is_int(v) and v > 1.6e12 and v < 1e13 end,
  int = is_int,
  string = function(v) return type(v) == "string" end,
  state = function(v) return STATES[v] == true end,
  base64 = function(v) return type(v) == "string" and #v % 4 == 0 and v:match("^[%w+/]*=?=?$") ~= nil end,
  strings = function(v)
    if type(v) ~= "table" or #v == 0 then return false end
    for k, x in pairs(v) do
      if type(k) ~= "number" or type(x) ~= "string" then return false end
    end
    return true
  end,
  header = function(v)
    if type(v) ~= "table" then return false end
    for k, vals in pairs(v) do
      if type(k) ~= "string" or type(vals) ~= "table" or #vals == 0 then return false end
      for i, x in pairs(vals) do
        if type(i) ~= "number" or type(x) ~= "string" then return false end
      end
    end
    return true
  end,
}

local function check_shape(entry)
  for _, k in ipairs(REQUIRED) do
    assert(entry[k] ~= nil, "entry without " .. k .. ": " .. cjson.encode(entry))
  end
  for k, v in pairs(entry) do
    local kind = FIELDS[k]
    assert(kind, "unexpected field " .. tostring(k) .. ": " .. cjson.encode(entry))
    assert(CHECK[kind](v), "field " .. k .. " is not " .. kind .. ": " .. cjson.encode(entry))
  end
end

describe("qstash-dev logs", function()
  local fx = E.fixture{ time_scale = 0.001 }
  local emu, sink

  before_each(function()
    emu, sink = fx.emu, fx.sink
  end)

  -- GET /v2/logs?query: the decoded answer (asserting 200)
  local function logs(query, path)
    local status, doc, raw = emu:json("GET", (path or "/v2/logs") .. (query and ("?" .. query) or ""))
    assert.are.equal(200, status, raw)
    return doc
  end

  -- every entry of the query, newest first, with the shape checked
  local function all(query)
    local out, cursor = {}, nil
    repeat
      local doc = logs((query and (query .. "&") or "") .. "count=1000" .. (cursor and ("&cursor=" .. cursor) or ""))
      for _, e in ipairs(doc.logs) do
        check_shape(e)
        out[#out + 1] = e
      end
      cursor = doc.cursor
    until cursor == nil
    return out
  end

  -- one message's states, oldest first
  local function states(id)
    local list = all("messageId=" .. id)
    local out = {}
    for i = #list, 1, -1 do out[#out + 1] = list[i].state end
    return out, list
  end

  local function wait_state(id, state)
    local got = E.wait_for(function()
      local st, list = states(id)
      if st[#st] == state then return list end
    end, 5, 0.01)
    assert(got, id .. " never reached " .. state .. ": " .. table.concat((states(id)), ","))
    return got
  end

  local function by_state(list)
    local out = {}
    for _, e in ipairs(list) do out[e.state] = e end
    return out
  end

  local function publish(dest, headers, body)
    local status, doc, raw = emu:json("POST", "/v2/publish/" .. dest, { headers = headers, body = body or "b" })
    assert.are.equal(200, status, raw)
    return doc
  end

  local function pending(path, headers)
    local h = { ["Upstash-Not-Before"] = FAR }
    for k, v in pairs(headers or {}) do h[k] = v end
    return publish((path:match("^http") and path or (sink.url .. path)), h).messageId
  end

  local function ids_of(list)
    local out = {}
    for _, e in ipairs(list) do out[#out + 1] = e.messageId end
    table.sort(out)
    return out
  end

  local function set(...)
    local out = { ... }
    table.sort(out)
    return out
  end

  local function dlq_entry(id)
    local status, doc = emu:json("GET", "/v2/dlq?messageId=" .. id)
    assert.are.equal(200, status)
    return doc.messages[1]
  end

  describe("states", function()
    it("logs CREATED, ACTIVE, DELIVERED for a message the destination takes", function()
      local id = publish(sink.url .. "/ok?x=1", { ["Content-Type"] = "text/plain", ["Upstash-Forward-X-A"] = "1",
        ["Upstash-Label"] = "l1,l2" }, "hello").messageId
      local list = wait_state(id, "DELIVERED")
      assert.are.same({ "CREATED", "ACTIVE", "DELIVERED" }, (states(id)))
      local s = by_state(list)
      assert.are.equal(200, s.DELIVERED.responseStatus)
      assert.is_nil(s.DELIVERED.error)
      assert.is_nil(s.CREATED.nextDeliveryTime)
      assert.is_nil(s.CREATED.responseStatus)
      for _, e in ipairs(list) do
        assert.are.equal(id, e.messageId)
        assert.are.equal(sink.url .. "/ok?x=1", e.url)
        assert.are.equal(b64("hello"), e.body)
        assert.are.same({ "text/plain" }, hget(e.header, "Content-Type"))
        assert.are.same({ "1" }, hget(e.header, "X-A"))
        assert.are.equal("l1", e.label)
        assert.are.same({ "l1", "l2" }, e.labels)
        assert.is_nil(e.topicName)
      end
      assert.is_true(list[3].time <= list[2].time and list[2].time <= list[1].time)
    end)

    it("logs every failed attempt as ERROR, then RETRY or FAILED with the DLQ entry's dlqId", function()
      sink:set_status(500)
      local id = publish(sink.url .. "/fail", { ["Upstash-Retries"] = "1" }).messageId
      local list = wait_state(id, "FAILED")
      assert.are.same({ "CREATED", "ACTIVE", "ERROR", "RETRY", "ACTIVE", "ERROR", "FAILED" }, (states(id)))
      local s = by_state(list)
      local dlq = dlq_entry(id)
      assert.is_table(dlq)
      assert.are.equal(dlq.dlqId, s.FAILED.dlqId)
      assert.are.equal("status 500", s.FAILED.error)
      assert.are.equal(500, s.FAILED.responseStatus)
      for _, e in ipairs(list) do
        if e.state == "ERROR" then
          assert.are.equal("status 500", e.error)
          assert.are.equal(500, e.responseStatus)
        elseif e.state ~= "FAILED" then
          assert.is_nil(e.error)
          assert.is_nil(e.dlqId)
        end
      end
      -- QStash's own backoff for the first retry, e^2.5 s (the emulator's wait is scaled)
      local wait = s.RETRY.nextDeliveryTime - s.RETRY.time
      assert.is_true(wait >= 12000 and wait <= 12300, tostring(wait))
    end)

    it("fails at once on 489 with Upstash-NonRetryable-Error, and says a network error in words", function()
      sink:set_status(489, { headers = { ["Upstash-NonRetryable-Error"] = "true" } })
      local id = publish(sink.url .. "/nr", { ["Upstash-Retries"] = "3" }).messageId
      wait_state(id, "FAILED")
      assert.are.same({ "CREATED", "ACTIVE", "ERROR", "FAILED" }, (states(id)))
      -- a port nothing listens on
      local s = socket.bind("127.0.0.1", 0)
      local _, port = s:getsockname()
      s:close()
      local url = "http://127.0.0.1:" .. port .. "/gone"
      local nid = publish(url, { ["Upstash-Retries"] = "0" }).messageId
      local failed = by_state(wait_state(nid, "FAILED"))
      assert.matches("refused", failed.ERROR.error:lower())
      assert.is_nil(failed.ERROR.responseStatus)
      assert.are.equal(failed.ERROR.error, failed.FAILED.error)
      assert.are.equal(dlq_entry(nid).dlqId, failed.FAILED.dlqId)
    end)

    it("logs CREATED with nextDeliveryTime for a delayed message, then CANCEL_REQUESTED and CANCELLED", function()
      local id = publish(sink.url .. "/later", { ["Upstash-Delay"] = "100000s" }).messageId
      local _, m = emu:json("GET", "/v2/messages/" .. id)
      local created = all("messageId=" .. id)[1]
      assert.are.equal("CREATED", created.state)
      assert.are.equal(m.notBefore, created.nextDeliveryTime)
      assert.are.equal(200, (emu:json("DELETE", "/v2/messages/" .. id)))
      assert.are.same({ "CREATED", "CANCEL_REQUESTED", "CANCELLED" }, (states(id)))
      -- the bulk cancel too
      local a, b = pending("/a", { ["Upstash-Label"] = "bulk" }), pending("/b", { ["Upstash-Label"] = "bulk" })
      local status, doc = emu:json("DELETE", "/v2/messages?label=bulk")
      assert.are.equal(200, status)
      assert.are.equal(2, doc.cancelled)
      assert.are.same({ "CREATED", "CANCEL_REQUESTED", "CANCELLED" }, (states(a)))
      assert.are.same({ "CREATED", "CANCEL_REQUESTED", "CANCELLED" }, (states(b)))
      -- a message cancelled, delivered or unknown: 404, and nothing logged
      assert.are.equal(404, (emu:json("DELETE", "/v2/messages/" .. id)))
      assert.are.equal(404, (emu:json("DELETE", "/v2/messages/msg_unknown")))
      local ok = publish(sink.url .. "/ok").messageId
      wait_state(ok, "DELIVERED")
      assert.are.equal(404, (emu:json("DELETE", "/v2/messages/" .. ok)))
      assert.are.same({ "CREATED", "CANCEL_REQUESTED", "CANCELLED" }, (states(id)))
      assert.are.same({ "CREATED", "ACTIVE", "DELIVERED" }, (states(ok)))
    end)

    it("gives a message retried from the DLQ (one, bulk) a new messageId with its own CREATED...", function()
      sink:set_status(500)
      local one = publish(sink.url .. "/r1", { ["Upstash-Retries"] = "0" }).messageId
      local two = publish(sink.url .. "/r2", { ["Upstash-Retries"] = "0" }).messageId
      local f1 = by_state(wait_state(one, "FAILED")).FAILED
      local f2 = by_state(wait_state(two, "FAILED")).FAILED
      sink:set_status(200)
      local status, doc, raw = emu:json("POST", "/v2/dlq/retry/" .. f1.dlqId)
      assert.are.equal(201, status, raw)
      local new1 = doc.messageId
      status, doc, raw = emu:json("POST", "/v2/dlq/retry?dlqIds=" .. f2.dlqId)
      assert.are.equal(201, status, raw)
      local new2 = doc.responses[1].messageId
      for _, pair in ipairs({ { one, new1 }, { two, new2 } }) do
        assert.are_not.equal(pair[1], pair[2])
        wait_state(pair[2], "DELIVERED")
        assert.are.same({ "CREATED", "ACTIVE", "DELIVERED" }, (states(pair[2])))
        assert.are.same({ "CREATED", "ACTIVE", "ERROR", "FAILED" }, (states(pair[1])))
      end
    end)

    it("logs every message published: batch, queue, and one per endpoint of a URL group", function()
      assert.are.equal(200, (emu:json("POST", "/v2/topics/grp/endpoints", { headers = JSON,
        body = cjson.encode({ endpoints = { { name = "e1", url = sink.url .. "/g1" }, { url = sink.url .. "/g2" } } }) })))
      local h = { ["Upstash-Not-Before"] = FAR }
      local grp = publish("grp", h)
      local q = emu:json("POST", "/v2/enqueue/myq/" .. sink.url .. "/q", { headers = h, body = "q" })
      assert.are.equal(200, q)
      local status, batch = emu:json("POST", "/v2/batch", { headers = JSON, body = cjson.encode({
        { destination = sink.url .. "/b1", headers = h }, { destination = "grp", headers = h } }) })
      assert.are.equal(200, status)
      local list = all()
      assert.are.equal(6, #list)
      for _, e in ipairs(list) do assert.are.equal("CREATED", e.state) end
      local by_id = {}
      for _, e in ipairs(list) do by_id[e.messageId] = e end
      assert.are.equal("grp", by_id[grp[1].messageId].topicName)
      assert.are.equal("e1", by_id[grp[1].messageId].endpointName)
      assert.are.equal(sink.url .. "/g2", by_id[grp[2].messageId].url)
      assert.is_nil(by_id[grp[2].messageId].endpointName)
      assert.is_table(by_id[batch[1].messageId])
      assert.are.equal("grp", by_id[batch[2][2].messageId].topicName)
      local queued = all("queueName=myq")
      assert.are.equal(1, #queued)
      assert.are.equal(sink.url .. "/q", queued[1].url)
    end)

    it("forgets everything on reset, and a delivery that ends after a reset logs nothing", function()
      sink:set_status(200, { delay = 0.2 })
      local id = publish(sink.url .. "/slow").messageId
      wait_state(id, "ACTIVE")
      emu:reset()
      assert.are.same({}, logs().logs)
      E.sleep(0.3) -- the delivery ends meanwhile
      assert.are.equal(1, #sink:received())
      assert.are.same({}, logs().logs)
    end)
  end)

  describe("GET /v2/logs and /v2/events", function()
    it("answer the same list under both events and logs, newest first, no cursor on the last page", function()
      local a, b = pending("/a"), pending("/b")
      for _, path in ipairs({ "/v2/logs", "/v2/events" }) do
        local doc = logs(nil, path)
        assert.are.same(doc.logs, doc.events)
        assert.are.same({ b, a }, { doc.logs[1].messageId, doc.logs[2].messageId })
        assert.is_nil(doc.cursor)
      end
      local doc = logs("count=1")
      assert.are.equal(b, doc.logs[1].messageId)
      assert.is_string(doc.cursor)
      doc = logs("count=1&cursor=" .. doc.cursor)
      assert.are.equal(a, doc.logs[1].messageId)
      assert.is_nil(doc.cursor)
      assert.are.same({}, logs("label=none").logs)
      assert.are.equal(405, (emu:json("POST", "/v2/logs")))
    end)

    it("gets a pending message with qstash-js's MessagePayload fields", function()
      assert.are.equal(200, (emu:json("POST", "/v2/topics/mg/endpoints", { headers = JSON,
        body = cjson.encode({ endpoints = { { name = "ep", url = sink.url .. "/m" } } }) })))
      local id = publish("mg", { ["Upstash-Not-Before"] = FAR, ["Upstash-Forward-X-A"] = "1",
        ["Upstash-Retries"] = "2", ["Upstash-Callback"] = sink.url .. "/cb" }, "body")[1].messageId
      local status, m = emu:json("GET", "/v2/messages/" .. id)
      assert.are.equal(200, status)
      -- qstash-js src/client/messages.ts `Message` (MessagePayload: topicName
      -- for urlGroup); callerIP is the REST API's spelling (types.ts: callerIp)
      local want = { messageId = "string", url = "string", topicName = "string", endpointName = "string",
                     method = "string", header = "header", body = "string", maxRetries = "int",
                     notBefore = "ms", createdAt = "ms", callback = "string", callerIP = "string" }
      for k, kind in pairs(want) do
        assert(m[k] ~= nil and CHECK[kind](m[k]), k .. " is not " .. kind .. ": " .. cjson.encode(m))
      end
      assert.are.same({ id, "mg", "ep", "POST", "body", 2, 4102444800000 },
        { m.messageId, m.topicName, m.endpointName, m.method, m.body, m.maxRetries, m.notBefore })
      assert.are.same({ "1" }, hget(m.header, "X-A"))
    end)

    describe("filters", function()
      -- pending messages (CREATED only) with distinct fields; one cancelled
      local ids
      local function fixture()
        assert.are.equal(200, (emu:json("POST", "/v2/topics/fg/endpoints", { headers = JSON,
          body = cjson.encode({ endpoints = { { url = sink.url .. "/g" } } }) })))
        ids = {
          l1 = pending("/p1", { ["Upstash-Label"] = "one" }),
          l2 = pending("/p2", { ["Upstash-Label"] = "two,three", ["Upstash-Flow-Control-Key"] = "k" }),
          l3 = pending("/p3?q=1", { ["Upstash-Label"] = "three" }),
          lh = pending("http://localhost:" .. sink.port .. "/p4"),
        }
        ids.grp = publish("fg", { ["Upstash-Not-Before"] = FAR })[1].messageId
        local status, doc = emu:json("POST", "/v2/enqueue/fq/" .. sink.url .. "/q",
          { headers = { ["Upstash-Not-Before"] = FAR }, body = "q" })
        assert.are.equal(200, status)
        ids.q = doc.messageId
        assert.are.equal(200, (emu:json("DELETE", "/v2/messages/" .. ids.q)))
      end

      local cases = {
        { "label=one", { "l1" } }, { "label=one&label=three", { "l1", "l2", "l3" } },
        { "label=one,two", { "l1", "l2" } }, { "flowControlKey=k", { "l2" } },
        { "path=/p3", { "l3" } }, { "path=/p1&path=/p2", { "l1", "l2" } }, { "host=localhost", { "lh" } },
        { "topicName=fg", { "grp" } }, { "urlGroup=fg", { "grp" } }, { "queueName=fq", { "q" } },
        { "scheduleId=scd_none", {} }, { "callerIp=10.0.0.1", {} },
        { "callerIp=127.0.0.1", { "l1", "l2", "l3", "lh", "grp", "q" } },
        { "label=one&path=/p2", {} }, -- AND across filters
      }
      for _, c in ipairs(cases) do
        it("filters by " .. c[1], function()
          fixture()
          local want = {}
          for _, k in ipairs(c[2]) do want[#want + 1] = ids[k] end
          table.sort(want)
          local got = {}
          for _, id in ipairs(ids_of(all(c[1]))) do
            if got[#got] ~= id then got[#got + 1] = id end
          end
          assert.are.same(want, got)
        end)
      end

      it("filters by url (repeated values OR'ed), host with its port, messageId and messageIds", function()
        fixture()
        local u1, u3 = pct(sink.url .. "/p1"), pct(sink.url .. "/p3?q=1")
        assert.are.same(set(ids.l1, ids.l3), ids_of(all("url=" .. u1 .. "&url=" .. u3)))
        local hosted = ids_of(all("host=" .. pct("127.0.0.1:" .. sink.port)))
        assert.are.same(set(ids.l1, ids.l2, ids.l3, ids.grp, ids.q, ids.q, ids.q), hosted) -- q: 3 entries
        assert.are.same({ ids.l2 }, ids_of(all("messageId=" .. ids.l2)))
        assert.are.same(set(ids.l1, ids.lh), ids_of(all("messageIds=" .. ids.l1 .. "&messageIds=" .. ids.lh)))
      end)

      it("filters by state, one or several, and IN_PROGRESS (ACTIVE, RETRY or ERROR)", function()
        fixture()
        assert.are.same({ ids.q }, ids_of(all("state=CANCELLED")))
        assert.are.same({ ids.q }, ids_of(all("state=CANCEL_REQUESTED")))
        assert.are.same(set(ids.q, ids.q), ids_of(all("state=CANCELLED&state=CANCEL_REQUESTED")))
        assert.are.equal(6, #all("state=CREATED"))
        assert.are.same({}, all("state=IN_PROGRESS"))
        sink:set_status(500)
        local id = publish(sink.url .. "/f", { ["Upstash-Retries"] = "1" }).messageId
        wait_state(id, "FAILED")
        local st = {}
        for _, e in ipairs(all("state=IN_PROGRESS")) do
          assert.are.equal(id, e.messageId)
          table.insert(st, 1, e.state)
        end
        assert.are.same({ "ACTIVE", "ERROR", "RETRY", "ACTIVE", "ERROR" }, st)
        assert.are.equal(1, #all("state=DELIVERED&state=FAILED"))
      end)

      it("filters by fromDate and toDate (unix ms, both inclusive) on the entry's time", function()
        fixture()
        local list = all()
        local t = list[math.floor(#list / 2) + 1].time
        local function ms(x) return string.format("%.0f", x) end
        local function count_where(pred)
          local n = 0
          for _, e in ipairs(list) do if pred(e.time) then n = n + 1 end end
          return n
        end
        assert.are.equal(count_where(function(x) return x >= t end), #all("fromDate=" .. ms(t)))
        assert.are.equal(count_where(function(x) return x <= t end), #all("toDate=" .. ms(t)))
        local same = all("fromDate=" .. ms(t) .. "&toDate=" .. ms(t))
        assert.is_true(#same >= 1)
        assert.are.equal(count_where(function(x) return x == t end), #same)
        assert.are.equal(count_where(function(x) return x > t end), #all("fromDate=" .. ms(t + 1)))
        assert.are.same({}, all("toDate=1"))
      end)
    end)

    local bad = {
      { "labeel=x", "unknown query parameter" }, { "dlqIds=x", "unknown query parameter" },
      { "state=BOGUS", "state" }, { "state=created", "state" }, { "state=CANCELED", "state" },
      { "count=0", "count" }, { "count=-1", "count" }, { "count=1.5", "count" }, { "count=1001", "count" },
      { "count=abc", "count" }, { "cursor=junk", "cursor" }, { "cursor=123", "cursor" },
      { "cursor=1-", "cursor" }, { "cursor=-1", "cursor" }, { "fromDate=soon", "fromDate" },
      { "messageIds=", "messageIds" },
    }
    for _, c in ipairs(bad) do
      it("refuses ?" .. c[1] .. " with 400", function()
        for _, path in ipairs({ "/v2/logs", "/v2/events" }) do
          local status, doc = emu:json("GET", path .. "?" .. c[1])
          assert.are.equal(400, status)
          assert.matches(c[2], doc.error, 1, true)
        end
      end)
    end

    it("takes count up to 1000", function()
      assert.are.equal(200, (emu:json("GET", "/v2/logs?count=1000")))
      assert.are.equal(200, (emu:json("GET", "/v2/logs?count=1")))
    end)
  end)

  describe("paging", function()
    local N, PAGE = 10000, 100

    -- publish n pending messages through /v2/batch, 100 a request; returns their ids in order
    local function fill(n, into)
      into = into or {}
      local item = { destination = sink.url .. "/many", headers = { ["Upstash-Not-Before"] = FAR }, body = "x" }
      local done = 0
      while done < n do
        local items = {}
        for i = 1, math.min(100, n - done) do items[i] = item end
        local status, doc, raw = emu:json("POST", "/v2/batch", { headers = JSON, body = cjson.encode(items) })
        assert.are.equal(200, status, raw)
        for _, r in ipairs(doc) do into[#into + 1] = r.messageId end
        done = done + #items
      end
      return into
    end

    -- pages of count=100; between(page) runs after each page
    local function page_all(between)
      local seen, pages, cursor = {}, 0, nil
      local t0 = socket.gettime()
      repeat
        local doc = logs("count=" .. PAGE .. (cursor and ("&cursor=" .. cursor) or ""))
        pages = pages + 1
        for _, e in ipairs(doc.logs) do seen[#seen + 1] = e end
        cursor = doc.cursor
        if cursor then
          assert.are.equal(PAGE, #doc.logs)
          if between then between(pages) end
        end
      until cursor == nil or pages > N
      return seen, pages, socket.gettime() - t0
    end

    it("pages 10,000 entries 100 at a time: 100 pages, each entry once, newest first", function()
      local published = fill(N)
      assert.are.equal(N, #published)
      local seen, pages, secs = page_all()
      assert.are.equal(N / PAGE, pages)
      assert.are.equal(N, #seen)
      for i, e in ipairs(seen) do
        assert.are.equal("CREATED", e.state)
        if e.messageId ~= published[N + 1 - i] then
          error("entry " .. i .. " is " .. e.messageId .. ", want " .. published[N + 1 - i])
        end
        if i > 1 then assert(e.time <= seen[i - 1].time, "not newest first at " .. i) end
      end
      -- well under a second of server time; the bound is generous for the client's share
      assert.is_true(secs < 10, "paging took " .. secs .. " s")
    end)

    it("neither repeats nor skips older entries when messages are published between pages", function()
      local M = 2000 -- 20 pages, each followed by new messages
      local published = fill(M)
      local added = {}
      local seen, pages = page_all(function() fill(3, added) end)
      assert.are.equal(M / PAGE, pages)
      assert.are.equal(M, #seen)
      for i, e in ipairs(seen) do
        if e.messageId ~= published[M + 1 - i] then
          error("entry " .. i .. " is " .. e.messageId .. ", want " .. published[M + 1 - i])
        end
      end
      assert.are.equal(3 * (pages - 1), #added)
      -- the new ones are there, on a new first page
      local first = logs("count=" .. #added).logs
      assert.are.equal(added[#added], first[1].messageId)
      assert.are.equal(added[1], first[#first].messageId)
    end)
  end)
end)
