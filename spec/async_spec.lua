-- Async requests and batches: callbacks from poll, cancel, errors in
-- callbacks, close inside a callback, dlq_retry_each with its limits.
local server = require "spec.support.server"
local socket = require "socket"
local qstash = require "qstash"
local qsafe = require "qstash.safe"

describe("async", function()
  local srv

  setup(function() srv = server.start() end)
  teardown(function() srv:stop() end)
  before_each(function() srv:reset() end)

  local function new(cfg)
    cfg = cfg or {}
    cfg.token = "tok-async"
    cfg.base_url = cfg.base_url or srv.url
    cfg.retry = cfg.retry or { attempts = 3, base_delay = 0.01, max_delay = 0.05 }
    return qstash.new(cfg)
  end

  describe("dlq_retry_async", function()
    it("runs callbacks from poll, never before", function()
      local c = new()
      local got = {}
      local h = c:dlq_retry_async("a/1", { retries = 2 }, function(res, err) got[#got + 1] = { res, err } end)
      assert.matches("^qstash.request %(waiting%)", tostring(h))
      assert.equal(1, c:pending())
      assert.same({}, got)
      local ran = 0
      local deadline = socket.gettime() + 5
      while ran == 0 and socket.gettime() < deadline do ran = ran + c:poll(0.5) end
      assert.equal(1, ran)
      assert.equal(0, c:pending())
      assert.equal("msg_test", got[1][1].messageId)
      assert.is_nil(got[1][2])
      local req = srv:requests()[1]
      assert.equal("/v2/dlq/retry/a%2F1", req.target)
      assert.equal("2", req.h["upstash-retries"])
      c:close()
    end)

    it("poll returns 0 after its timeout when nothing completes", function()
      local c = new{ timeout = 5 }
      srv:script{ { status = 201, json = { messageId = "slow" }, delay = 0.4 } }
      c:dlq_retry_async("x", nil, function() end)
      assert.equal(0, c:poll(0.1))
      assert.equal(1, c:pending())
      assert.equal(1, c:wait())
      c:close()
    end)

    it("sends concurrent requests at once over http:// too #timing", function()
      local c = new()
      srv:default{ status = 201, json = { messageId = "m" }, delay = 0.3 }
      for i = 1, 5 do c:dlq_retry_async("p-" .. i, nil, function() end) end
      c:wait()
      local reqs = srv:requests()
      assert.equal(5, #reqs)
      -- none waited for another's answer (0.3 s)
      assert.is_true(reqs[5].t - reqs[1].t < 0.2, "spread " .. (reqs[5].t - reqs[1].t))
      c:close()
    end)

    it("wait runs many requests concurrently to completion", function()
      local c = new()
      local n = 0
      for i = 1, 20 do
        c:dlq_retry_async("id-" .. i, nil, function(res) if res then n = n + 1 end end)
      end
      assert.equal(20, c:wait())
      assert.equal(20, n)
      assert.equal(20, #srv:requests())
      c:close()
    end)

    it("retries 5xx and reports errors as in synchronous calls", function()
      local c = new()
      srv:script{ { status = 503 }, { status = 201, json = { messageId = "second" } } }
      local res1
      c:dlq_retry_async("x", nil, function(res) res1 = res end)
      c:wait()
      assert.equal("second", res1.messageId)
      srv:script{ { status = 404, json = { error = "message not found" } } }
      local err2
      c:dlq_retry_async("gone", nil, function(_, err) err2 = err end)
      c:wait()
      assert.is_true(qstash.is_error(err2))
      assert.equal("not_found", err2.kind)
      assert.equal("/v2/dlq/retry/gone", err2.path)
      c:close()
    end)

    -- client:async("dlq_retry") without follow runs as a plain job (as
    -- dlq_retry_async's): every field of its result or error is the
    -- synchronous call's, whatever the server does
    it("async('dlq_retry'), dlq_retry_async and the synchronous call: the same outcome, field by field", function()
      local function fields(v)
        if type(v) ~= "table" then return v end
        local out = {}
        for k, x in pairs(v) do out[k] = fields(x) end
        return out
      end
      local cases = {
        { { status = 201, json = { messageId = "m1", deduplicated = true } } },
        { { status = 503 }, { status = 201, json = { messageId = "m2" } } },
        { { status = 404, json = { error = "message not found" } } },
        { { status = 503 }, { status = 503 }, { status = 503 } },
        { { status = 400, json = { error = "bad retries" } } },
        { { fault = "close" }, { fault = "close" }, { fault = "close" } },
        { { status = 200, body = "not json" } },
        { { status = 429, headers = { ["Retry-After"] = "0" } }, { status = 201, json = { messageId = "m3" } } },
      }
      for i, script in ipairs(cases) do
        local got = {}
        for _, way in ipairs{ "sync", "async", "short" } do
          srv:reset()
          srv:script(script)
          local c = new()
          local res, err
          if way == "sync" then
            local ok, v = pcall(c.dlq_retry, c, "d" .. i, { retries = 1 })
            if ok then res = v else err = v end
          else
            local cb = function(r, e) res, err = r, e end
            if way == "async" then c:async("dlq_retry", "d" .. i, { retries = 1 }, cb)
            else c:dlq_retry_async("d" .. i, { retries = 1 }, cb) end
            c:wait()
          end
          c:close()
          got[way] = { res = fields(res), err = fields(err), sent = #srv:requests() }
        end
        assert.same(got.sync, got.async, "case " .. i .. ": async")
        assert.same(got.sync, got.short, "case " .. i .. ": dlq_retry_async")
      end
    end)

    it("cancel completes the request with a cancelled error", function()
      local c = new{ timeout = 5 }
      srv:script{ { fault = "hang" } }
      local err
      local h = c:dlq_retry_async("x", nil, function(_, e) err = e end)
      c:poll(0.2)
      assert.is_true(h:cancel())
      assert.is_false(h:cancel())
      assert.equal(1, c:poll(0))
      assert.equal("cancelled", err.kind)
      assert.equal(0, c:pending())
      c:close()
    end)

    it("catches an error in a callback and reports it after finishing the others", function()
      local c = new()
      local others = 0
      c:dlq_retry_async("boom", nil, function() error("callback failed") end)
      for i = 1, 3 do c:dlq_retry_async("ok" .. i, nil, function() others = others + 1 end) end
      local ok, err = pcall(c.wait, c)
      assert.is_false(ok)
      assert.matches("callback failed", tostring(err))
      c:wait()
      assert.equal(3, others)
      assert.equal(0, c:pending())
      -- the client still works
      assert.equal("msg_test", c:dlq_retry("after").messageId)
      c:close()
    end)

    it("allows close inside a callback: the rest are dropped", function()
      local c = new{ timeout = 5 }
      srv:script{ { status = 201, json = { messageId = "first" } }, { fault = "hang" }, { fault = "hang" } }
      local calls = 0
      -- whichever completes first closes the client
      local function cb() calls = calls + 1; c:close() end
      c:dlq_retry_async("a", nil, cb)
      c:dlq_retry_async("b", nil, cb)
      c:dlq_retry_async("c", nil, cb)
      local deadline = socket.gettime() + 5
      while calls == 0 and socket.gettime() < deadline do c:poll(0.2) end
      assert.equal(1, calls)
      assert.has_error(function() c:poll(0) end, "qstash: the client is closed")
    end)

    it("forbids poll inside a callback", function()
      local c = new()
      local inner
      c:dlq_retry_async("x", nil, function() inner = select(2, pcall(c.poll, c, 0)) end)
      c:wait()
      assert.matches("poll cannot run inside a callback", inner)
      c:close()
    end)

    it("validates arguments before anything is sent", function()
      local c = new()
      assert.has_error(function() c:dlq_retry_async("", nil, function() end) end)
      assert.has_error(function() c:dlq_retry_async("x", { retires = 1 }, function() end) end)
      assert.has_error(function() c:dlq_retry_async("x", nil, "not a function") end)
      assert.has_error(function() c:poll(-1) end)
      assert.equal(0, c:pending())
      c:close()
      assert.same({}, srv:requests())
    end)

    it("lets a pending request's client be collected only after completion", function()
      local done
      do
        local c = new()
        c:dlq_retry_async("x", nil, function() done = true end)
        c:wait()
      end
      collectgarbage()
      assert.is_true(done)
    end)
  end)

  describe("dlq_retry_each", function()
    it("retries each distinct id once and returns ok, failed and results", function()
      local c = new()
      srv:default{ status = 201, json = { messageId = "m" } }
      local progress = {}
      local seen = {}
      local out = c:dlq_retry_each({ "a", "b", "a", "c" }, { retries = 1 }, {
        concurrency = 2,
        on_result = function(id, res, err) seen[#seen + 1] = id .. ":" .. tostring(res and res.messageId or err.kind) end,
        on_progress = function(done, total) progress[#progress + 1] = done .. "/" .. total end,
      })
      assert.equal(3, out.ok)
      assert.equal(0, out.failed)
      assert.equal("m", out.results.a.messageId)
      assert.equal("m", out.results.c.messageId)
      assert.equal(3, #srv:requests())
      assert.same({ "1/3", "2/3", "3/3" }, progress)
      table.sort(seen)
      assert.same({ "a:m", "b:m", "c:m" }, seen)
      for _, r in ipairs(srv:requests()) do assert.equal("1", r.h["upstash-retries"]) end
      c:close()
    end)

    it("reports failures per id", function()
      local c = new()
      srv:default{ status = 404, json = { error = "message not found" } }
      local out = c:dlq_retry_each({ "x", "y" })
      assert.equal(0, out.ok)
      assert.equal(2, out.failed)
      assert.equal("not_found", out.results.x.kind)
      c:close()
    end)

    it("keeps at most `concurrency` transfers in flight #timing", function()
      local c = new()
      srv:default{ status = 201, json = { messageId = "m" }, delay = 0.2 }
      local ids = {}
      for i = 1, 12 do ids[i] = "id-" .. i end
      local t0 = socket.gettime()
      local out = c:dlq_retry_each(ids, nil, { concurrency = 4 })
      local took = socket.gettime() - t0
      assert.equal(12, out.ok)
      local conns = {}
      for _, r in ipairs(srv:requests()) do conns[r.conn] = true end
      local n = 0
      for _ in pairs(conns) do n = n + 1 end
      assert.is_true(n <= 4 and n >= 2, "connections: " .. n)
      -- 12 requests of 0.2 s, 4 at a time: three rounds, not twelve
      assert.is_true(took >= 0.55 and took < 2.4, "took " .. took)
      c:close()
    end)

    it("pauses the whole batch after a 429 until its wait is over #timing", function()
      local c = new{ retry = { attempts = 3, base_delay = 0.01, max_delay = 3 } }
      srv:script{ { status = 429, headers = { ["Retry-After"] = "1" } } }
      srv:default{ status = 201, json = { messageId = "m" } }
      local ids = {}
      for i = 1, 6 do ids[i] = "id-" .. i end
      local out = c:dlq_retry_each(ids, nil, { concurrency = 1 })
      assert.equal(6, out.ok)
      local reqs = srv:requests()
      assert.equal(7, #reqs)
      -- nothing started during the second after the 429
      assert.is_true(reqs[2].t - reqs[1].t >= 0.9, "gap " .. (reqs[2].t - reqs[1].t))
      c:close()
    end)

    it("stops and reports an error raised by on_result, cancelling the rest", function()
      local c = new()
      srv:default{ status = 201, json = { messageId = "m" }, delay = 0.05 }
      local ids = {}
      for i = 1, 10 do ids[i] = "id-" .. i end
      local ok, err = pcall(c.dlq_retry_each, c, ids, nil, {
        concurrency = 2, on_result = function() error("stop here") end })
      assert.is_false(ok)
      assert.matches("stop here", tostring(err))
      assert.equal(0, c:pending())
      assert.is_true(#srv:requests() < 10)
      c:close()
    end)

    it("validates every id and the batch options before sending", function()
      local c = new()
      local bad = {
        { {}, "empty list" }, { { "ok", "" }, "must not be empty" }, { { "ok", 5 }, "not a string" },
        { "x", "expected an array" },
      }
      for _, case in ipairs(bad) do
        local ok, err = pcall(c.dlq_retry_each, c, case[1])
        assert.is_false(ok)
        assert.matches(case[2], err, 1, true)
      end
      assert.has_error(function() c:dlq_retry_each({ "x" }, nil, { concurency = 2 }) end,
        "bad argument #3 to 'dlq_retry_each' (unknown batch option 'concurency'; did you mean 'concurrency'?)")
      assert.has_error(function() c:dlq_retry_each({ "x" }, nil, { concurrency = 0 }) end)
      assert.has_error(function() c:dlq_retry_each({ "x" }, { retires = 1 }) end)
      assert.same({}, srv:requests())
      c:close()
    end)

    it("works the same in qstash.safe (failures are in results)", function()
      local c = qsafe.new{ token = "t", base_url = srv.url, retry = false }
      srv:default{ status = 500 }
      local out = c:dlq_retry_each({ "x" })
      assert.equal(1, out.failed)
      assert.equal("server", out.results.x.kind)
      c:close()
    end)
  end)
end)
