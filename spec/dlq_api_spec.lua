-- The rest of the DLQ API on the wire: list with every filter, paging,
-- get, delete, bulk delete (query form only) and bulk retry.
local server = require "spec.support.server"
local qstash = require "qstash"
local qsafe = require "qstash.safe"

describe("DLQ API", function()
  local srv, client

  setup(function()
    srv = server.start()
    client = qstash.new{ token = "tok-dlq", base_url = srv.url, retry = { base_delay = 0.01 } }
  end)
  teardown(function()
    client:close()
    srv:stop()
  end)
  before_each(function() srv:reset() end)

  local function page(messages, cursor)
    return { status = 200, json = { messages = messages, cursor = cursor } }
  end

  describe("dlq_list", function()
    it("sends every filter with QStash's names, multi-values as repeated keys", function()
      srv:script{ page({}) }
      client:dlq_list{
        message_id = "msg_1", url = { "https://a.com/x", "https://b.com" }, url_group = "grp",
        schedule_id = { "s1" }, queue_name = "q", from_date = 1700000000000, to_date = 1700000001000,
        response_status = { 500, 502 }, caller_ip = "1.2.3.4", label = { "l1", "l2" },
        flow_control_key = "fk", dlq_ids = { "1-0", "2-0" }, count = 50, cursor = "c1",
      }
      local req = srv:requests()[1]
      assert.equal("GET", req.method)
      assert.equal("/v2/dlq", req.path)
      assert.equal(table.concat({
        "messageId=msg_1", "url=https%3A%2F%2Fa.com%2Fx", "url=https%3A%2F%2Fb.com", "topicName=grp",
        "scheduleId=s1", "queueName=q", "fromDate=1700000000000", "toDate=1700000001000",
        "responseStatus=500", "responseStatus=502", "callerIp=1.2.3.4", "label=l1", "label=l2",
        "flowControlKey=fk", "dlqIds=1-0", "dlqIds=2-0", "count=50", "cursor=c1",
      }, "&"), req.query)
      assert.equal("Bearer tok-dlq", req.h.authorization)
    end)

    it("returns messages and cursor; an empty cursor means the end", function()
      srv:script{ page({ { dlqId = "1-0", messageId = "m1", responseStatus = 500 } }, "next"), page({}, "") }
      local res = client:dlq_list()
      assert.equal("/v2/dlq", srv:requests()[1].target)
      assert.equal("1-0", res.messages[1].dlqId)
      assert.equal(500, res.messages[1].responseStatus)
      assert.equal("next", res.cursor)
      res = client:dlq_list{ cursor = res.cursor }
      assert.is_nil(res.cursor)
      assert.same({}, res.messages)
    end)

    it("validates filters and sends nothing when wrong", function()
      local bad = {
        { { count = 0 }, "count" }, { { count = 101 }, "count" }, { { count = 1.5 }, "count" },
        { { url = {} }, "empty array" }, { { label = "" }, "must not be empty" },
        { { response_status = 99 }, "response_status" }, { { from_date = -1 }, "from_date" },
        { { urll = "x" }, "did you mean 'url'" }, { { cursor = 5 }, "cursor" }, { "x", "params must be a table" },
        { { url = "a\nb" }, "control bytes" },
      }
      for _, case in ipairs(bad) do
        local ok, err = pcall(client.dlq_list, client, case[1])
        assert.is_false(ok)
        assert.matches("bad argument #1 to 'dlq_list'", err, 1, true)
        assert.matches(case[2], err, 1, true)
      end
      assert.same({}, srv:requests())
    end)
  end)

  describe("dlq_messages", function()
    it("iterates every message across pages", function()
      srv:script{ page({ { dlqId = "1" }, { dlqId = "2" } }, "c2"), page({ { dlqId = "3" } }, "c3"), page({}) }
      local seen = {}
      for msg in client:dlq_messages{ url = "https://x.com" } do seen[#seen + 1] = msg.dlqId end
      assert.same({ "1", "2", "3" }, seen)
      local reqs = srv:requests()
      assert.equal(3, #reqs)
      assert.equal("url=https%3A%2F%2Fx.com", reqs[1].query)
      assert.equal("url=https%3A%2F%2Fx.com&cursor=c2", reqs[2].query)
      assert.equal("url=https%3A%2F%2Fx.com&cursor=c3", reqs[3].query)
    end)

    it("raises on failure, even in qstash.safe (a nil would end the loop silently)", function()
      local c = qsafe.new{ token = "t", base_url = srv.url, retry = false }
      srv:script{ page({ { dlqId = "1" } }, "c2"), { status = 401, json = { error = "nope" } } }
      local seen = 0
      local ok, err = pcall(function()
        for _ in c:dlq_messages() do seen = seen + 1 end
      end)
      c:close()
      assert.is_false(ok)
      assert.equal(1, seen)
      assert.equal("unauthorized", err.kind)
    end)

    it("raises when the cursor does not move, after the messages it got", function()
      srv:script{ page({ { dlqId = "1" } }, "same"), page({ { dlqId = "2" } }, "same") }
      local seen = {}
      local ok, err = pcall(function()
        for m in client:dlq_messages() do seen[#seen + 1] = m.dlqId end
      end)
      assert.is_false(ok)
      assert.equal("decode", err.kind)
      assert.matches("cursor repeated", err.message, 1, true)
      assert.same({ "1", "2" }, seen)
      assert.equal(2, #srv:requests())
    end)

    it("starts at the cursor given in params", function()
      srv:script{ page({ { dlqId = "5" } }, "") }
      local seen = {}
      for m in client:dlq_messages{ cursor = "c-start", count = 10 } do seen[#seen + 1] = m.dlqId end
      assert.same({ "5" }, seen)
      local reqs = srv:requests()
      assert.equal(1, #reqs)
      assert.matches("cursor=c%-start", reqs[1].target)
    end)

    it("validates params before the loop starts", function()
      assert.has_error(function() client:dlq_messages{ count = 0 } end)
      assert.same({}, srv:requests())
    end)
  end)

  describe("dlq_get", function()
    it("GETs /v2/dlq/{id} and returns the message", function()
      srv:script{ { status = 200, json = { dlqId = "1-0", messageId = "m", body = "hi", retryDelayExpression = "1000",
        responseBody = "err", header = { ["X-A"] = { "1" } } } } }
      local msg = client:dlq_get("1-0")
      local req = srv:requests()[1]
      assert.equal("GET", req.method)
      assert.equal("/v2/dlq/1-0", req.target)
      assert.equal("hi", msg.body)
      assert.equal("1000", msg.retryDelayExpression)
      assert.same({ "1" }, msg.header["X-A"])
    end)

    it("404 raises not_found", function()
      srv:script{ { status = 404, json = { error = "message not found in dlq" } } }
      local ok, err = pcall(client.dlq_get, client, "gone")
      assert.is_false(ok)
      assert.equal("not_found", err.kind)
      assert.equal("GET", err.method)
      assert.equal("/v2/dlq/gone", err.path)
    end)

    it("rejects bad ids", function()
      for _, id in ipairs{ "", ".", "..", "a\rb" } do
        assert.has_error(function() client:dlq_get(id) end)
      end
      assert.same({}, srv:requests())
    end)
  end)

  describe("dlq_delete", function()
    it("DELETEs /v2/dlq/{id} with no body and returns true", function()
      srv:script{ { status = 200, body = "" } }
      assert.is_true(client:dlq_delete("a b"))
      local req = srv:requests()[1]
      assert.equal("DELETE", req.method)
      assert.equal("/v2/dlq/a%20b", req.target)
      assert.equal("", req.body)
    end)

    it("404 raises not_found", function()
      srv:script{ { status = 404, json = { error = "not found" } } }
      local res, err = qsafe.new{ token = "t", base_url = srv.url }:dlq_delete("x")
      assert.is_nil(res)
      assert.equal("not_found", err.kind)
    end)

    it("refuses an empty id: it would be the bulk endpoint", function()
      assert.has_error(function() client:dlq_delete("") end)
      assert.same({}, srv:requests())
    end)
  end)

  describe("dlq_delete_many", function()
    it("sends ids in the query, at most 100 per request, and sums deleted", function()
      local ids = {}
      for i = 1, 150 do ids[i] = "id-" .. i end
      srv:script{ { status = 200, json = { deleted = 100 } }, { status = 200, json = { deleted = 50 } } }
      assert.same({ deleted = 150 }, client:dlq_delete_many(ids))
      local reqs = srv:requests()
      assert.equal(2, #reqs)
      assert.equal("DELETE", reqs[1].method)
      assert.equal("/v2/dlq", reqs[1].path)
      local _, n1 = reqs[1].query:gsub("dlqIds=", "")
      local _, n2 = reqs[2].query:gsub("dlqIds=", "")
      assert.equal(100, n1)
      assert.equal(50, n2)
      assert.matches("^dlqIds=id%-1&dlqIds=id%-2&", reqs[1].query)
      assert.equal("", reqs[1].body) -- never a JSON body
      assert.is_nil(reqs[1].query:find("count=", 1, true))
    end)

    it("loops over cursors for a filter", function()
      srv:script{ { status = 200, json = { deleted = 100, cursor = "c2" } }, { status = 200, json = { deleted = 7 } } }
      assert.same({ deleted = 107 }, client:dlq_delete_many{ url = "https://x.com", label = { "a", "b" } })
      local reqs = srv:requests()
      assert.equal("url=https%3A%2F%2Fx.com&label=a&label=b&count=100", reqs[1].query)
      assert.equal("url=https%3A%2F%2Fx.com&label=a&label=b&count=100&cursor=c2", reqs[2].query)
    end)

    it("deletes everything only with { all = true }", function()
      srv:script{ { status = 200, json = { deleted = 3, cursor = "" } } }
      assert.same({ deleted = 3 }, client:dlq_delete_many{ all = true })
      assert.equal("count=100", srv:requests()[1].query)
    end)

    it("refuses what would implicitly mean everything", function()
      local bad = {
        { {}, "pass { all = true }" },
        { { all = false }, "no filter given" },
        { { all = true, url = "https://x" }, "cannot be combined" },
        { { "a", x = 1 }, "other keys" },
        { { "ok", "" }, "must not be empty" },
        { "id", "dlq_delete for one id" },
        { { all = "yes" }, "'all' must be a boolean" },
        { { count = 5 }, "unknown filter 'count'" },
      }
      for _, case in ipairs(bad) do
        local ok, err = pcall(client.dlq_delete_many, client, case[1])
        assert.is_false(ok)
        assert.matches(case[2], err, 1, true)
      end
      assert.same({}, srv:requests())
    end)

    it("an error on a later page carries what was done", function()
      srv:script{ { status = 200, json = { deleted = 100, cursor = "c2" } }, { status = 400, json = { error = "bad" } } }
      local ok, err = pcall(client.dlq_delete_many, client, { all = true })
      assert.is_false(ok)
      assert.equal("bad_request", err.kind)
      assert.equal(100, err.deleted)
    end)
  end)

  describe("dlq_retry_many", function()
    it("POSTs the ids with the override headers and concatenates responses", function()
      srv:script{ { status = 201, json = { responses = { { messageId = "n1" }, { messageId = "n2", deduplicated = true } } } } }
      local res = client:dlq_retry_many({ "1-0", "2-0" }, { retries = 2, delay = "1m" })
      assert.same({ responses = { { messageId = "n1", deduplicated = false }, { messageId = "n2", deduplicated = true } } }, res)
      local req = srv:requests()[1]
      assert.equal("POST", req.method)
      assert.equal("/v2/dlq/retry?dlqIds=1-0&dlqIds=2-0", req.target)
      assert.equal("2", req.h["upstash-retries"])
      assert.equal("1m", req.h["upstash-delay"])
      assert.equal("0", req.h["content-length"])
    end)

    it("loops over cursors for a filter and for all", function()
      srv:script{ { status = 201, json = { responses = { { messageId = "a" } }, cursor = "k" } },
        { status = 201, json = { responses = { { messageId = "b" } }, cursor = "" } } }
      local res = client:dlq_retry_many({ all = true })
      assert.equal(2, #res.responses)
      local reqs = srv:requests()
      assert.equal("count=100", reqs[1].query)
      assert.equal("count=100&cursor=k", reqs[2].query)
    end)

    it("validates the options before sending", function()
      assert.has_error(function() client:dlq_retry_many({ "x" }, { retires = 1 }) end,
        "bad argument #2 to 'dlq_retry_many' (unknown option 'retires'; did you mean 'retries'?)")
      assert.has_error(function() client:dlq_retry_many({}) end)
      assert.same({}, srv:requests())
    end)

    it("404 (some messages not found) raises not_found", function()
      srv:script{ { status = 404, json = { error = "Some messages were not found in the DLQ" } } }
      local ok, err = pcall(client.dlq_retry_many, client, { "x" })
      assert.is_false(ok)
      assert.equal("not_found", err.kind)
      assert.same({}, err.responses)
    end)
  end)
end)
