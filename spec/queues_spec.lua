-- enqueue, enqueue_json and the queue_* functions on the wire, against a
-- scripted server: the requests they send, the results they make of the
-- answers, what they refuse before sending, and when they are repeated.
local server = require "spec.support.server"
local step_http = require "spec.support.step_http"
local qstash = require "qstash"
local safe = require "qstash.safe"

local unpack = table.unpack or unpack -- luacheck: ignore 143

local QUEUE = { name = "orders", parallelism = 2, lag = 3, paused = false, createdAt = 1, updatedAt = 2 }

describe("queues", function()
  local srv, client

  setup(function()
    srv = server.start()
    client = qstash.new{ token = "tok-q", base_url = srv.url, retry = { base_delay = 0.01 }, timeout = 1 }
  end)
  teardown(function()
    client:close()
    srv:stop()
  end)
  before_each(function() srv:reset() end)

  describe("enqueue", function()
    it("POSTs to /v2/enqueue/<queue>/<destination raw> with publish's options and result", function()
      srv:script{ { status = 200, json = { messageId = "msg_q", url = "https://example.com/a?x=1" } } }
      local res = client:enqueue("orders", "https://example.com/a?x=1", "hello\0world", {
        content_type = "text/plain", retries = 2, headers = { ["X-Tenant"] = "t1" },
        redact = { body = true, header = { "Authorization" } } })
      assert.same({ messageId = "msg_q", url = "https://example.com/a?x=1", deduplicated = false }, res)
      local req = srv:requests()[1]
      assert.equal("POST", req.method)
      assert.equal("/v2/enqueue/orders/https://example.com/a?x=1", req.target)
      assert.equal("hello\0world", req.body)
      assert.equal("text/plain", req.h["content-type"])
      assert.equal("2", req.h["upstash-retries"])
      assert.equal("t1", req.h["upstash-forward-x-tenant"])
      assert.equal("body,header[Authorization]", req.h["upstash-redact-fields"])
    end)

    it("enqueue_json encodes the value and sends application/json; a URL group answers a list", function()
      srv:script{ { status = 200, json = { { messageId = "m1", url = "https://a.example" },
        { messageId = "m2", url = "https://b.example", deduplicated = true } } } }
      local res = client:enqueue_json("q.1_-", "my-group", { hello = "world" })
      assert.same({ { messageId = "m1", url = "https://a.example", deduplicated = false },
        { messageId = "m2", url = "https://b.example", deduplicated = true } }, res)
      local req = srv:requests()[1]
      assert.equal("/v2/enqueue/q.1_-/my-group", req.target)
      assert.equal('{"hello":"world"}', req.body)
      assert.equal("application/json", req.h["content-type"])
    end)

    it("is not repeated after an unknown outcome, unless deduplication_id is set", function()
      local c = qstash.new{ token = "t", base_url = srv.url, timeout = 1,
        retry = { attempts = 4, base_delay = 0.01 } }
      srv:script{ { fault = "close", ["repeat"] = 8 } }
      local ok, err = pcall(c.enqueue, c, "orders", "https://example.com", "b")
      assert.is_false(ok)
      assert.is_true(err.ambiguous)
      assert.equal(1, #srv:requests())
      srv:reset()
      srv:script{ { fault = "close" }, { status = 200, json = { messageId = "m" } } }
      assert.equal("m", c:enqueue("orders", "https://example.com", "b", { deduplication_id = "d1" }).messageId)
      assert.equal(2, #srv:requests())
      c:close()
    end)
  end)

  describe("the queue resource", function()
    it("queue_upsert POSTs /v2/queues with JSON; parallelism defaults to 1, paused only when given", function()
      srv:script{ { status = 200, body = "" }, { status = 200, body = "" }, { status = 200, body = "" } }
      assert.is_true(client:queue_upsert("orders", { parallelism = 5, paused = true }))
      assert.is_true(client:queue_upsert("orders", { paused = false }))
      assert.is_true(client:queue_upsert("orders"))
      local reqs = srv:requests()
      assert.equal("POST", reqs[1].method)
      assert.equal("/v2/queues", reqs[1].target)
      assert.equal("application/json", reqs[1].h["content-type"])
      assert.equal('{"queueName":"orders","parallelism":5,"paused":true}', reqs[1].body)
      assert.equal('{"queueName":"orders","parallelism":1,"paused":false}', reqs[2].body)
      assert.equal('{"queueName":"orders","parallelism":1}', reqs[3].body)
    end)

    it("queue_get, queue_list: QStash's objects, zero and false filled in where left out", function()
      srv:script{ { status = 200, json = QUEUE }, { status = 200, json = { QUEUE, { name = "bare" } } },
        { status = 200, body = "[]" } }
      assert.same(QUEUE, client:queue_get("orders"))
      assert.same({ QUEUE, { name = "bare", parallelism = 0, lag = 0, paused = false, createdAt = 0,
        updatedAt = 0 } }, client:queue_list())
      assert.same({}, client:queue_list())
      local reqs = srv:requests()
      assert.equal("GET /v2/queues/orders", reqs[1].method .. " " .. reqs[1].target)
      assert.equal("GET /v2/queues", reqs[2].method .. " " .. reqs[2].target)
    end)

    it("queue_delete, queue_pause, queue_resume: true, whatever the body", function()
      srv:script{ { status = 200, body = "" }, { status = 200, body = "OK" }, { status = 200, json = {} } }
      assert.is_true(client:queue_delete("orders"))
      assert.is_true(client:queue_pause("orders"))
      assert.is_true(client:queue_resume("orders"))
      local got = {}
      for _, r in ipairs(srv:requests()) do got[#got + 1] = r.method .. " " .. r.target end
      assert.same({ "DELETE /v2/queues/orders", "POST /v2/queues/orders/pause",
        "POST /v2/queues/orders/resume" }, got)
    end)

    it("a malformed answer is a decode error, a 404 not_found", function()
      srv:script{ { status = 200, json = { name = 5 } }, { status = 200, json = { messageId = 1 } },
        { status = 404, json = { error = "queue not found" } } }
      local ok, err = pcall(client.queue_get, client, "orders")
      assert.is_false(ok)
      assert.equal("decode", err.kind)
      ok, err = pcall(client.queue_list, client)
      assert.is_false(ok)
      assert.equal("decode", err.kind)
      ok, err = pcall(client.queue_get, client, "orders")
      assert.is_false(ok)
      assert.equal("not_found", err.kind)
    end)

    it("upsert, pause, resume, delete and get are repeated after an unknown outcome", function()
      local c = qstash.new{ token = "t", base_url = srv.url, timeout = 1,
        retry = { attempts = 4, base_delay = 0.01 } }
      for _, f in ipairs{ "queue_upsert", "queue_pause", "queue_resume", "queue_delete" } do
        srv:reset()
        srv:script{ { fault = "close" }, { status = 200, body = "" } }
        assert.is_true(c[f](c, "orders"), f)
        assert.equal(2, #srv:requests(), f)
      end
      srv:reset()
      srv:script{ { fault = "close" }, { status = 200, json = QUEUE } }
      assert.same(QUEUE, c:queue_get("orders"))
      c:close()
    end)
  end)

  describe("bad input raises an argument error and sends nothing", function()
    local cases = {
      { "queue_get", { "a/b" }, "#1 to 'queue_get' (queue name may hold only letters" },
      { "queue_get", { "" }, "queue name must not be empty" },
      { "queue_get", { ".." }, "queue name must not be '.' or '..'" },
      { "queue_get", { "a%2Fb" }, "queue name may hold only" },
      { "queue_get", { "caf\195\169" }, "queue name may hold only" },
      { "queue_get", { ("q"):rep(257) }, "longer than 256 bytes" },
      { "queue_get", { 7 }, "queue name must be a string, got number" },
      { "queue_delete", { "a b" }, "queue name may hold only" },
      { "queue_pause", { "a?b" }, "queue name may hold only" },
      { "queue_resume", { nil }, "queue name must be a string, got nil" },
      { "queue_upsert", { "q/x", { parallelism = 1 } }, "#1 to 'queue_upsert'" },
      { "queue_upsert", { "q", { parallelism = 0 } }, "#2 to 'queue_upsert' (parallelism must be a whole number from 1 to 10000)" },
      { "queue_upsert", { "q", { parallelism = 1e9 } }, "parallelism must be a whole number from 1 to 10000" },
      { "queue_upsert", { "q", { parallelism = 1.5 } }, "parallelism must be a whole number" },
      { "queue_upsert", { "q", { parallelism = 0 / 0 } }, "parallelism must be a whole number" },
      { "queue_upsert", { "q", { parallelism = "2" } }, "parallelism must be a whole number" },
      { "queue_upsert", { "q", { paused = "yes" } }, "paused must be a boolean, got string" },
      { "queue_upsert", { "q", { parallelsim = 2 } }, "parallelism" },
      { "queue_upsert", { "q", 2 }, "queue settings must be a table, got number" },
      { "enqueue", { "a/b", "https://example.com", "x" }, "#1 to 'enqueue' (queue name may hold only" },
      { "enqueue", { "q", "ftp://example.com", "x" }, "#2 to 'enqueue' (destination must be" },
      { "enqueue", { "q", "https://example.com", 5 }, "#3 to 'enqueue' (body must be a string" },
      { "enqueue", { "q", "https://example.com", "x", { retries = -1 } }, "#4 to 'enqueue'" },
      { "enqueue_json", { "q", "https://example.com", { f = print } }, "#3 to 'enqueue_json' (cannot encode" },
      { "enqueue_json", { "q", "https://e.com", {}, { content_type = "text/plain" } }, "application/json" },
    }
    for _, case in ipairs(cases) do
      local fname, args, want = case[1], case[2], case[3]
      it(fname .. ": " .. want, function()
        local ok, err = pcall(client[fname], client, unpack(args, 1, 4))
        assert.is_false(ok)
        assert.is_string(err)
        assert.truthy(err:find(want, 1, true), err)
        -- qstash.safe raises argument errors too (they are the caller's bug)
        local sc = safe.new{ token = "t", base_url = srv.url }
        assert.has_error(function() sc[fname](sc, unpack(args, 1, 4)) end)
        sc:close()
        assert.equal(0, #srv:requests())
      end)
    end
  end)

  it("runs through qstash.safe (nil, err), prepare/step and the module functions", function()
    srv:script{ { status = 404, json = { error = "queue not found" } }, { status = 200, json = QUEUE },
      { status = 200, json = { messageId = "m" } } }
    local sc = safe.new{ token = "t", base_url = srv.url, retry = false }
    local res, err = sc:queue_get("orders")
    assert.is_nil(res)
    assert.equal("not_found", err.kind)
    sc:close()
    local got = step_http.run(client:prepare("queue_get", "orders"))
    assert.same(QUEUE, got)
    got = step_http.run(client:prepare("enqueue", "orders", "https://example.com", "b", { retries = 1 }))
    assert.equal("m", got.messageId)
    local req = srv:requests()[3]
    assert.equal("/v2/enqueue/orders/https://example.com", req.target)
    assert.equal("1", req.h["upstash-retries"])
    assert.equal("function", type(qstash.enqueue))
    assert.equal("function", type(safe.queue_list))
  end)
end)
