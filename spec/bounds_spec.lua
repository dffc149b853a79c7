-- Whole-call bounds: every call has one deadline (call_timeout; a follow's
-- is its timeout plus one attempt's) and one request limit (max_requests),
-- counted over every request it sends, attempts and pages included. A bound
-- ends a call with a `limit` error carrying what was done, or, for a follow,
-- with its result(s) `done = false` and `limit` set. Hostile servers here
-- would otherwise keep a call going for as long as they answer.
local E = require "spec.support.emulator"
local server = require "spec.support.server"
local step_http = require "spec.support.step_http"
local socket = require "socket"
local qstash = require "qstash"
local qsafe = require "qstash.safe"

local unpack = table.unpack or unpack

local function elapsed_since(t0) return socket.gettime() - t0 end

describe("whole-call bounds", function()
  local srv

  setup(function() srv = server.start() end)
  teardown(function() srv:stop() end)
  before_each(function()
    srv:reset()
    -- a client that misses its bound fails here instead of hanging the suite
    srv:default{ status = 400, json = { error = "a request past the bound" } }
  end)

  local function new(cfg, variant)
    cfg = cfg or {}
    cfg.token = "t"
    cfg.base_url = srv.url
    cfg.retry = cfg.retry or { attempts = 2, base_delay = 0.01 }
    return (variant or qstash).new(cfg)
  end

  describe("configuration", function()
    it("takes call_timeout and max_requests, and refuses bad values", function()
      new{ call_timeout = 0.5, max_requests = 1 }:close()
      for _, bad in ipairs{ { call_timeout = 0 }, { call_timeout = -1 }, { call_timeout = "1" },
                            { max_requests = 0 }, { max_requests = 1.5 }, { max_requests = "3" },
                            { max_requests = 0 / 0 }, { call_timeout = 0 / 0 } } do
        local ok = pcall(new, bad)
        assert.is_false(ok)
      end
    end)
  end)

  describe("cancel_many(filter) against a server that cancels 100 for ever #issue24", function()
    before_each(function() srv:default{ status = 200, json = { cancelled = 100 } } end)

    it("ends at max_requests with the count cancelled so far", function()
      local c = new{ max_requests = 5 }
      local ok, err = pcall(c.cancel_many, c, { url = "https://example.com/a" })
      c:close()
      assert.is_false(ok)
      assert.equal("limit", err.kind, tostring(err))
      assert.equal("requests", err.limit)
      assert.equal(5, err.requests)
      assert.equal(500, err.cancelled)
      assert.equal(5, #srv:requests())
      local s = tostring(err)
      assert.truthy(s:find("max_requests", 1, true), s)
      assert.truthy(s:find("cancelled 500 so far", 1, true), s)
    end)

    it("ends at call_timeout with the count cancelled so far (qstash.safe: nil, err)", function()
      local c = new({ call_timeout = 0.3 }, qsafe)
      local t0 = socket.gettime()
      local res, err = c:cancel_many{ all = true }
      local took = elapsed_since(t0)
      c:close()
      assert.is_nil(res)
      assert.equal("limit", err.kind, tostring(err))
      assert.equal("deadline", err.limit)
      assert.is_true(took < 2.5, "took " .. took .. " s")
      local sent = err.requests
      assert.is_true(sent >= 1)
      -- the last one may have been cut at the deadline before the server read all of it
      assert.is_true(#srv:requests() == sent or #srv:requests() == sent - 1)
      -- and its answer lost: its count unknown, and said so
      if err.cancelled ~= 100 * sent then
        assert.equal(100 * (sent - 1), err.cancelled)
        assert.is_true(err.ambiguous)
      end
      local s = tostring(err)
      assert.truthy(s:find("deadline", 1, true), s)
      assert.truthy(s:find("cancelled " .. err.cancelled .. " so far", 1, true), s)
    end)
  end)

  describe("cancel_many(filter) never cancels messages created after it began #issue24", function()
    local function to_dates(req)
      local t = {}
      for v in ("&" .. req.query):gmatch("&toDate=([^&]*)") do t[#t + 1] = v end
      return t
    end

    it("sends toDate = the call's start on every request", function()
      srv:script{ { status = 200, json = { cancelled = 100 } }, { status = 200, json = { cancelled = 3 } } }
      local c = new()
      local before = math.floor(socket.gettime() * 1000)
      assert.same({ cancelled = 103 }, c:cancel_many{ url = "https://example.com/a" })
      local after = math.ceil(socket.gettime() * 1000)
      c:close()
      local reqs = srv:requests()
      assert.equal(2, #reqs)
      local first = to_dates(reqs[1])
      assert.equal(1, #first, reqs[1].target)
      local to = tonumber(first[1])
      assert.is_true(to >= before and to <= after, reqs[1].target)
      assert.same(first, to_dates(reqs[2]))
    end)

    it("keeps the caller's to_date when it is earlier, and caps a later one", function()
      local c = new()
      srv:script{ { status = 200, json = { cancelled = 0 } } }
      c:cancel_many{ label = "x", to_date = 1000 }
      assert.same({ "1000" }, to_dates(srv:requests()[1]))
      srv:reset()
      srv:script{ { status = 200, json = { cancelled = 0 } } }
      local later = (math.floor(socket.gettime()) + 86400) * 1000
      local before = math.floor(socket.gettime() * 1000)
      c:cancel_many{ label = "x", to_date = later }
      c:close()
      local got = to_dates(srv:requests()[1])
      assert.equal(1, #got)
      assert.is_true(tonumber(got[1]) >= before and tonumber(got[1]) < later, got[1])
    end)

    it("sends no toDate with a list of ids", function()
      srv:script{ { status = 200, json = { cancelled = 1 } } }
      local c = new()
      c:cancel_many{ "msg_1" }
      c:close()
      assert.same({}, to_dates(srv:requests()[1]))
    end)
  end)

  it("dlq_delete_many(filter) over endless distinct cursors ends at max_requests #issue24", function()
    local pages = {}
    for i = 1, 30 do pages[i] = { status = 200, json = { deleted = 2, cursor = "c" .. i } } end
    srv:script(pages)
    local c = new{ max_requests = 10 }
    local ok, err = pcall(c.dlq_delete_many, c, { url = "https://example.com/a" })
    c:close()
    assert.is_false(ok)
    assert.equal("limit", err.kind, tostring(err))
    assert.equal("requests", err.limit)
    assert.equal(10, err.requests)
    assert.equal(20, err.deleted)
    assert.equal(10, #srv:requests())
  end)

  describe("the calls of batch, queues and URL groups", function()
    local ITEMS = { { destination = "https://e.com/1", opts = { deduplication_id = "a" } },
                    { destination = "https://e.com/2", opts = { deduplication_id = "b" } } }
    local calls = {
      { "batch", { ITEMS }, "POST /v2/batch" },
      { "queue_list", {}, "GET /v2/queues" },
      { "url_group_list", {}, "GET /v2/topics" },
    }
    for _, row in ipairs(calls) do
      local fn, args = row[1], row[2]

      it(fn .. " ends at max_requests, saying which bound and that its outcome is unknown", function()
        srv:default{ status = 503, json = { error = "down" } }
        local c = new{ max_requests = 3, retry = { attempts = 10, base_delay = 0.01, max_delay = 0.02 } }
        local ok, err = pcall(c[fn], c, unpack(args))
        c:close()
        assert.is_false(ok)
        assert.equal("limit", err.kind, tostring(err))
        assert.equal("requests", err.limit)
        assert.equal(3, err.requests)
        assert.is_true(err.ambiguous)
        assert.equal(3, #srv:requests())
        local s = tostring(err)
        assert.truthy(s:find(row[3] .. ": the call sent 3 requests (max_requests); whether QStash "
          .. "acted on it is unknown (ambiguous)", 1, true), s)
      end)

      it(fn .. " ends at call_timeout at once when a 429's wait would pass it", function()
        srv:default{ status = 429, headers = { ["Retry-After"] = "30" }, json = { error = "slow down" } }
        local c = new{ call_timeout = 5, retry = { attempts = 4, base_delay = 0.01, max_delay = 60 } }
        local ok, err = pcall(c[fn], c, unpack(args))
        c:close()
        assert.is_false(ok)
        assert.equal("limit", err.kind, tostring(err))
        assert.equal("deadline", err.limit)
        assert.equal(1, err.requests)
        assert.equal(1, #srv:requests())
        local s = tostring(err)
        assert.truthy(s:find("call_timeout", 1, true), s)
      end)
    end
  end)

  it("attempts count as requests: retries stop at max_requests", function()
    srv:default{ status = 503, json = { error = "down" } }
    local c = new{ max_requests = 3, retry = { attempts = 10, base_delay = 0.01, max_delay = 0.02 } }
    local ok, err = pcall(c.dlq_list, c)
    c:close()
    assert.is_false(ok)
    assert.equal("limit", err.kind, tostring(err))
    assert.equal("requests", err.limit)
    assert.equal(3, err.requests)
    assert.equal(3, #srv:requests())
  end)

  it("a backoff or 429 wait past call_timeout is not slept: the call ends at once", function()
    srv:default{ status = 429, headers = { ["Retry-After"] = "3" }, json = { error = "slow down" } }
    local c = new{ call_timeout = 1, retry = { attempts = 4, base_delay = 0.01, max_delay = 5 } }
    local t0 = socket.gettime()
    local ok, err = pcall(c.dlq_list, c)
    local took = elapsed_since(t0)
    c:close()
    assert.is_false(ok)
    assert.equal("limit", err.kind, tostring(err))
    assert.equal("deadline", err.limit)
    assert.equal(1, err.requests)
    assert.is_true(took < 0.9, "took " .. took .. " s")
  end)

  it("an attempt is clamped to what is left of call_timeout", function()
    srv:default{ status = 200, json = { messages = {} }, delay = 3 }
    local c = new{ timeout = 2, call_timeout = 0.4, retry = false }
    local t0 = socket.gettime()
    local ok, err = pcall(c.dlq_list, c)
    local took = elapsed_since(t0)
    c:close()
    assert.is_false(ok)
    assert.equal("limit", err.kind, tostring(err))
    assert.equal("deadline", err.limit)
    assert.is_true(took < 1.5, "took " .. took .. " s")
  end)

  it("dlq_retry with follow ended by a bound keeps the new messageId #issue24", function()
    srv:script{ { status = 201, json = { messageId = "msg_new" } } }
    srv:default{ status = 429, headers = { ["Retry-After"] = "3" }, json = { error = "slow down" } }
    local c = new{ timeout = 1 }
    local t0 = socket.gettime()
    local res = c:dlq_retry("d1", { follow = { timeout = 1 } })
    local took = elapsed_since(t0)
    c:close()
    assert.equal("msg_new", res.messageId)
    assert.is_false(res.delivery.done)
    assert.equal("deadline", res.delivery.limit)
    assert.equal("msg_new", res.delivery.messageId)
    assert.is_true(took < 2.5, "took " .. took .. " s")
  end)

  describe("a follow's own deadline: its timeout plus one attempt's #issue24", function()
    it("a follow under 429 storms (Retry-After: 3) ends within timeout + one attempt", function()
      srv:default{ status = 429, headers = { ["Retry-After"] = "3" }, json = { error = "slow down" } }
      local c = new{ timeout = 1, retry = { attempts = 4, base_delay = 0.01 } }
      local t0 = socket.gettime()
      local res = c:follow("msg_1", { timeout = 1 })
      local took = elapsed_since(t0)
      c:close()
      assert.equal("msg_1", res.messageId)
      assert.is_false(res.done)
      assert.equal("deadline", res.limit)
      assert.is_true(took < 2.5, "took " .. took .. " s")
    end)

    it("whatever call_timeout says", function()
      srv:script{ { status = 200, json = { logs = {} } } }
      srv:default{ status = 200, json = { logs = {
        { messageId = "msg_1", state = "DELIVERED", time = 5 } } } }
      -- a call_timeout shorter than the follow's does not cut it short
      local c = new{ call_timeout = 0.05, timeout = 1 }
      local res = c:follow("msg_1", { timeout = 1, interval = 0.1 })
      c:close()
      assert.is_true(res.done)
      assert.equal("DELIVERED", res.state)
      assert.is_nil(res.limit)
    end)

    it("follow_many over endless pages, one stalling, ends by its deadline", function()
      local pages = {}
      for i = 1, 3 do
        pages[i] = { status = 200, json = { logs = {
          { messageId = "msg_" .. i, state = "ACTIVE", time = 10 + i } }, cursor = "p" .. i } }
      end
      pages[4] = { status = 200, json = { logs = {}, cursor = "p4" }, delay = 5 }
      srv:script(pages)
      srv:default{ status = 200, json = { logs = {}, cursor = "again" }, delay = 5 }
      local c = new{ timeout = 1, retry = { attempts = 4, base_delay = 0.01 } }
      local t0 = socket.gettime()
      local res = c:follow_many({ "msg_1", "msg_2", "msg_3" }, { timeout = 0.5 })
      local took = elapsed_since(t0)
      c:close()
      for i = 1, 3 do
        local r = res["msg_" .. i]
        assert.is_table(r, "msg_" .. i)
        assert.is_false(r.done)
        assert.equal("ACTIVE", r.state)
        assert.equal("deadline", r.limit)
      end
      assert.is_true(took < 2.5, "took " .. took .. " s")
    end)

    it("follow_many ended by max_requests says so", function()
      local pages = {}
      for i = 1, 20 do pages[i] = { status = 200, json = { logs = {}, cursor = "p" .. i } } end
      srv:script(pages)
      local c = new{ max_requests = 4 }
      local res = c:follow_many({ "msg_1", "msg_2" }, { timeout = 5 })
      c:close()
      assert.equal(4, #srv:requests())
      assert.is_false(res.msg_1.done)
      assert.equal("requests", res.msg_1.limit)
      assert.equal("requests", res.msg_2.limit)
    end)
  end)

  describe("through prepare/step", function()
    -- drives a call with a transport of the spec's own: `answer(request)`
    -- is how each request ended; waits are not slept, only summed
    local function drive(call, answer)
      local what, v = call:step()
      local sends, waited, timeouts = 0, 0, {}
      while what == "send" or what == "wait" do
        if what == "send" then
          sends = sends + 1
          timeouts[#timeouts + 1] = v.timeout
          what, v = call:step(answer(v))
        else
          waited = waited + v
          what, v = call:step()
        end
      end
      return what, v, sends, waited, timeouts
    end

    it("cancel_many ends at max_requests with a fail carrying the count", function()
      local c = new{ max_requests = 3 }
      local call = c:prepare("cancel_many", { url = "https://example.com/a" })
      local what, err, sends = drive(call, function(req)
        assert.truthy(req.url:find("toDate=%d+"), req.url)
        return { status = 200, body = '{"cancelled":100}' }
      end)
      c:close()
      assert.equal("fail", what)
      assert.equal(3, sends)
      assert.equal("limit", err.kind)
      assert.equal("requests", err.limit)
      assert.equal(3, err.requests)
      assert.equal(300, err.cancelled)
      -- asked again after its end: the same error
      local again, err2 = call:step()
      assert.equal("fail", again)
      assert.equal(err, err2)
    end)

    it("a follow under 429s is done with done = false and limit, never a wait past its deadline", function()
      local c = new{ timeout = 1 }
      local call = c:prepare("follow", "msg_1", { timeout = 1 })
      local what, res, _, waited = drive(call, function()
        return { status = 429, headers = { ["Retry-After"] = "3" }, body = '{"error":"slow down"}' }
      end)
      c:close()
      assert.equal("done", what)
      assert.is_false(res.done)
      assert.equal("deadline", res.limit)
      assert.is_true(waited < 2, "waited " .. waited)
    end)

    it("the send value's timeout is clamped to what is left of call_timeout", function()
      local c = new{ timeout = 30, call_timeout = 2 }
      local call = c:prepare("dlq_list")
      local what, v = call:step()
      assert.equal("send", what)
      assert.is_true(v.timeout <= 2 and v.timeout > 0, "timeout " .. v.timeout)
      what = call:step{ status = 200, body = '{"messages":[]}' }
      assert.equal("done", what)
      -- a follow's deadline is its own (timeout + one attempt), not call_timeout's
      call = c:prepare("follow", "msg_1", { timeout = 0.5 })
      what, v = call:step()
      c:close()
      assert.equal("send", what)
      assert.is_true(v.timeout <= 30.5 and v.timeout > 29, "timeout " .. v.timeout)
    end)

    it("a wait past the deadline ends the call at once with the limit error", function()
      local c = new{ call_timeout = 5, retry = { attempts = 4, base_delay = 0.01, max_delay = 60 } }
      local call = c:prepare("dlq_list")
      local what, err, sends, waited = drive(call, function()
        return { status = 429, headers = { ["Retry-After"] = "30" }, body = '{"error":"slow down"}' }
      end)
      c:close()
      assert.equal("fail", what)
      assert.equal("limit", err.kind)
      assert.equal("deadline", err.limit)
      assert.equal(1, sends)
      assert.equal(0, waited)
    end)
  end)

  describe("against the emulator", function()
    local fx = E.fixture{}

    it("cancel_many(filter) leaves a message published while it runs #issue24", function()
      local c = qstash.new{ token = fx.emu.token, base_url = fx.emu.url }
      local url = fx.sink.url .. "/later"
      local before = c:publish(url, "x", { delay = 86400, label = "bounds-cut" }).messageId
      socket.sleep(0.01)
      -- the call is made (and its start read) now; a message arrives before it runs
      local call = c:prepare("cancel_many", { label = "bounds-cut" })
      socket.sleep(0.01)
      local after = c:publish(url, "x", { delay = 86400, label = "bounds-cut" }).messageId
      local res, err = step_http.run(call)
      assert.is_nil(err)
      assert.same({ cancelled = 1 }, res)
      assert.equal(after, c:message(after).messageId)
      local ok, gone = pcall(c.message, c, before)
      assert.is_false(ok)
      assert.equal("not_found", gone.kind)
      c:cancel(after)
      c:close()
    end)
  end)
end)
