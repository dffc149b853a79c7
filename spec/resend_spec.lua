-- libcurl resends a request by itself when the reused keep-alive connection
-- it went out on dies before any answer. Every send must be an attempt the
-- client sees and counts: a request that is not safe to resend (a publish
-- without deduplication_id) reaches the server once; `attempts` is the
-- number of requests the server received; a 404 after an earlier send is
-- ambiguous (the DLQ retry may have happened).
--
-- The server's fault "close" reads and records the request, then closes the
-- connection without answering: on a connection that served a request
-- before, that is exactly the case where libcurl resends.
local server = require "spec.support.server"
local qstash = require "qstash"

local DEST = "https://example.com/hook"

describe("resends below the attempt logic", function()
  local srv

  setup(function() srv = server.start() end)
  teardown(function() srv:stop() end)
  before_each(function() srv:reset() end)

  local function new(retry)
    return qstash.new{ token = "tok-resend", base_url = srv.url, timeout = 2, retry = retry }
  end

  -- Leaves `n` idle keep-alive connections in the client's cache, then
  -- forgets the warm-up requests.
  local function warm(c, n)
    if n == 1 then
      c:dlq_retry("warm")
    else
      srv:default{ status = 201, json = { messageId = "warm" }, delay = 0.1 }
      local ids = {}
      for i = 1, n do ids[i] = "warm-" .. i end
      local out = c:dlq_retry_each(ids, nil, { concurrency = n })
      assert.equal(n, out.ok)
    end
    local conns = {}
    for _, r in ipairs(srv:requests()) do conns[r.conn] = true end
    local count = 0
    for _ in pairs(conns) do count = count + 1 end
    assert.equal(n, count, "warm connections")
    srv:reset()
  end

  -- Requests the server received for a path.
  local function received(path)
    local n = 0
    for _, r in ipairs(srv:requests()) do
      if r.path == path then n = n + 1 end
    end
    return n
  end

  local function script_closes(n)
    srv:script{ { fault = "close", ["repeat"] = n } }
  end

  for _, warm_n in ipairs{ 1, 4 } do
    local on = warm_n == 1 and "one warm connection" or warm_n .. " warm connections"

    describe("publish without deduplication_id, " .. on, function()
      for _, retry in ipairs{ false, { attempts = 4, base_delay = 0.01 } } do
        local how = retry and "retry.attempts = 4" or "retry = false"
        it("reaches the server once and fails ambiguous (" .. how .. ") #issue11", function()
          local c = new(retry)
          warm(c, warm_n)
          script_closes(warm_n + 2)
          local ok, err = pcall(c.publish, c, DEST, "body")
          c:close()
          assert.equal(1, received("/v2/publish/" .. DEST), "publish requests received")
          assert.is_false(ok, "the publish succeeded after a resend")
          assert.equal("network", err.kind)
          assert.is_true(err.ambiguous)
          assert.equal(1, err.attempts)
        end)
      end
    end)

    describe("a DLQ retry, " .. on, function()
      it("sync: requests received == attempts <= retry.attempts #issue11", function()
        local c = new{ attempts = 4, base_delay = 0.01 }
        warm(c, warm_n)
        script_closes(20)
        local ok, err = pcall(c.dlq_retry, c, "x")
        c:close()
        assert.is_false(ok)
        local n = received("/v2/dlq/retry/x")
        assert.is_true(n <= 4, n .. " requests for 4 attempts")
        assert.equal(n, err.attempts)
        assert.is_true(err.ambiguous)
      end)

      it("async: requests received == attempts <= retry.attempts #issue11", function()
        local c = new{ attempts = 4, base_delay = 0.01 }
        warm(c, warm_n)
        script_closes(20)
        local res, err
        c:dlq_retry_async("x", nil, function(r, e) res, err = r, e end)
        c:wait()
        c:close()
        assert.is_nil(res)
        local n = received("/v2/dlq/retry/x")
        assert.is_true(n <= 4, n .. " requests for 4 attempts")
        assert.equal(n, err.attempts)
        assert.is_true(err.ambiguous)
      end)

      it("dlq_retry_each: requests received per id == attempts <= retry.attempts #issue11", function()
        local c = new{ attempts = 3, base_delay = 0.01 }
        warm(c, warm_n)
        script_closes(40)
        local out = c:dlq_retry_each({ "a", "b", "c" }, nil, { concurrency = 3 })
        c:close()
        for _, id in ipairs{ "a", "b", "c" } do
          local n = received("/v2/dlq/retry/" .. id)
          local r = out.results[id]
          assert.is_true(n <= 3, id .. ": " .. n .. " requests for 3 attempts")
          if qstash.is_error(r) then
            assert.equal(n, r.attempts, id)
            assert.is_true(r.ambiguous, id)
          end
        end
      end)

      for _, mode in ipairs{ "sync", "async" } do
        it(mode .. ": a 404 after a send the server received is ambiguous #issue11", function()
          local c = new{ attempts = 4, base_delay = 0.01 }
          warm(c, warm_n)
          srv:script{ { fault = "close" }, { status = 404, json = { error = "message not found" } } }
          local err
          if mode == "sync" then
            local ok
            ok, err = pcall(c.dlq_retry, c, "y")
            assert.is_false(ok)
          else
            c:dlq_retry_async("y", nil, function(_, e) err = e end)
            c:wait()
          end
          c:close()
          assert.equal("not_found", err.kind)
          assert.equal(2, received("/v2/dlq/retry/y"))
          assert.equal(2, err.attempts)
          assert.is_true(err.ambiguous, "the first request was received: the retry may have happened")
        end)
      end
    end)
  end
end)
