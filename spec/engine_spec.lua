-- The engine: one keep-alive connection for sequential calls, timeouts,
-- retries with backoff, 429 waits, and the client's lifecycle.
local server = require "spec.support.server"
local ports = require "spec.support.ports"
local socket = require "socket"
local qstash = require "qstash"

describe("engine", function()
  local srv

  setup(function() srv = server.start() end)
  teardown(function() srv:stop() end)
  before_each(function() srv:reset() end)

  local function new(cfg)
    cfg = cfg or {}
    cfg.token = cfg.token or "tok-engine"
    cfg.base_url = cfg.base_url or srv.url
    if cfg.retry == nil then cfg.retry = { attempts = 4, base_delay = 0.01, max_delay = 0.05 } end
    return qstash.new(cfg)
  end

  it("makes 100 sequential calls over one connection", function()
    local c = new()
    for i = 1, 100 do
      assert.equal("msg_test", c:dlq_retry("id-" .. i).messageId)
    end
    c:close()
    local reqs = srv:requests()
    assert.equal(100, #reqs)
    for _, r in ipairs(reqs) do assert.equal(reqs[1].conn, r.conn) end
  end)

  it("carries nothing from one call to the next: method, body, headers, timeouts", function()
    -- sequential calls alternate between two libcurl handles, each reset
    -- ahead of its next use: every call sends exactly its own request
    local c = new{ retry = false, timeout = 0.5 } -- one call hangs: it only needs to time out
    srv:script{
      { status = 201, json = { messageId = "m1" } },
      { status = 200, json = { messageId = "m2" } },
      { status = 200, json = {} },
      { status = 200, json = { dlqId = "d1", messageId = "m4" } },
      { status = 201, json = { messageId = "m5" } },
      { status = 200, json = { messageId = "m6" } },
      { fault = "hang" },
      { status = 201, json = { messageId = "m8" } },
      { status = 201, json = { messageId = "m9" } },
    }
    c:dlq_retry("a", { retries = 3, headers = { ["X-One"] = "1" } })
    c:publish("https://example.com/x", "body-2", { content_type = "text/plain" })
    c:dlq_delete("d0")
    c:dlq_get("d1")
    c:dlq_retry("b")
    c:publish("https://example.com/y", ("z"):rep(2000))
    local ok, err = pcall(c.dlq_retry, c, "c")
    assert.is_false(ok)
    assert.equal("timeout", err.kind)
    assert.equal("m8", c:dlq_retry("d").messageId)
    assert.equal("m9", c:dlq_retry("e").messageId)
    c:close()
    local r = srv:requests()
    assert.equal(9, #r)
    local methods = {}
    for i = 1, #r do methods[i] = r[i].method end
    assert.same({ "POST", "POST", "DELETE", "GET", "POST", "POST", "POST", "POST", "POST" }, methods)
    assert.equal("3", r[1].h["upstash-retries"])
    assert.equal("1", r[1].h["upstash-forward-x-one"])
    assert.equal("text/plain", r[2].h["content-type"])
    assert.equal("body-2", r[2].body)
    for i = 2, #r do
      assert.is_nil(r[i].h["upstash-retries"], "request " .. i)
      assert.is_nil(r[i].h["upstash-forward-x-one"], "request " .. i)
      if i ~= 2 then assert.is_nil(r[i].h["content-type"], "request " .. i) end
    end
    for _, i in ipairs{ 3, 4 } do assert.equal("", r[i].body) end
    for _, i in ipairs{ 5, 7, 8, 9 } do
      assert.equal("", r[i].body)
      assert.equal("0", r[i].h["content-length"], "request " .. i)
    end
    assert.equal(2000, r[6].body_len)
    assert.equal("/v2/dlq/retry/e", r[9].target)
  end)

  it("honours the timeout within a second of its limit #timing", function()
    local c = new{ timeout = 1, retry = false }
    srv:script{ { fault = "hang" } }
    local t0 = socket.gettime()
    local ok, err = pcall(c.dlq_retry, c, "x")
    local took = socket.gettime() - t0
    c:close()
    assert.is_false(ok)
    assert.equal("timeout", err.kind)
    assert.is_true(took >= 0.9 and took < 2.5, "took " .. took)
  end)

  it("bounds a stalled body by the timeout too #timing", function()
    local c = new{ timeout = 1, retry = false }
    srv:script{ { status = 201, body = '{"messageId":"m"}', fault = "headers_then_stall" } }
    local t0 = socket.gettime()
    local ok, err = pcall(c.dlq_retry, c, "x")
    c:close()
    assert.is_false(ok)
    assert.equal("timeout", err.kind)
    assert.is_true(socket.gettime() - t0 < 2.5)
  end)

  it("waits out a 429 by its reset header, then succeeds #timing", function()
    local c = new{ retry = { attempts = 3, base_delay = 0.01, max_delay = 5 } }
    srv:script{
      { status = 429, json = { error = "burst" }, headers = { ["Retry-After"] = "1" } },
      { status = 201, json = { messageId = "after-wait" } },
    }
    local t0 = socket.gettime()
    assert.equal("after-wait", c:dlq_retry("x").messageId)
    local waited = socket.gettime() - t0
    c:close()
    assert.is_true(waited >= 0.9, "waited " .. waited)
    local reqs = srv:requests()
    assert.equal(2, #reqs)
  end)

  it("waits per Burst-RateLimit-Reset (unix seconds) #timing", function()
    local c = new{ retry = { attempts = 2, base_delay = 0.01, max_delay = 5 } }
    local reset = math.ceil(socket.gettime()) + 1
    srv:script{
      { status = 429, headers = { ["Burst-RateLimit-Reset"] = tostring(reset), ["Burst-RateLimit-Limit"] = "10",
        ["Burst-RateLimit-Remaining"] = "0" } },
      { status = 201, json = { messageId = "ok" } },
    }
    assert.equal("ok", c:dlq_retry("x").messageId)
    assert.is_true(socket.gettime() >= reset - 0.05)
    c:close()
  end)

  it("does not sleep a 429 wait longer than max_delay: raises with retry_after at once #timing", function()
    local c = new{ retry = { attempts = 4, base_delay = 0.01, max_delay = 1 } }
    srv:script{ { status = 429, headers = { ["Retry-After"] = "30" } } }
    local t0 = socket.gettime()
    local ok, err = pcall(c.dlq_retry, c, "x")
    c:close()
    assert.is_false(ok)
    assert.equal("rate_limited", err.kind)
    assert.equal(30, err.retry_after)
    assert.equal(1, err.attempts)
    assert.is_true(socket.gettime() - t0 < 1)
  end)

  it("retries 5xx with backoff up to the attempts, counting them", function()
    local c = new()
    srv:script{ { status = 500 }, { status = 502 }, { status = 503 }, { status = 504 } }
    local ok, err = pcall(c.dlq_retry, c, "x")
    c:close()
    assert.is_false(ok)
    assert.equal("server", err.kind)
    assert.equal(504, err.status)
    assert.equal(4, err.attempts)
    assert.equal(4, #srv:requests())
  end)

  it("succeeds after transient 5xx", function()
    local c = new()
    srv:script{ { status = 503 }, { status = 201, json = { messageId = "third-time" } } }
    assert.equal("third-time", c:dlq_retry("x").messageId)
    c:close()
  end)

  it("never retries other 4xx", function()
    local c = new()
    for _, status in ipairs{ 400, 401, 403, 404, 412, 418 } do
      srv:reset()
      srv:script{ { status = status } }
      local ok, err = pcall(c.dlq_retry, c, "x")
      assert.is_false(ok)
      assert.equal(1, err.attempts)
      assert.equal(1, #srv:requests())
    end
    c:close()
  end)

  it("retries connection failures (nothing sent, not ambiguous)", function()
    local c = new{ base_url = "http://127.0.0.1:" .. ports.closed() }
    local ok, err = pcall(c.dlq_retry, c, "x")
    c:close()
    assert.is_false(ok)
    assert.equal("network", err.kind)
    assert.equal(4, err.attempts)
    assert.is_false(err.ambiguous)
  end)

  it("reports a 404 after an unknown outcome as ambiguous", function()
    local c = new{ timeout = 0.5 } -- the hang only needs to end in a timeout
    srv:script{ { fault = "hang" }, { status = 404, json = { error = "message not found" } } }
    local ok, err = pcall(c.dlq_retry, c, "x")
    c:close()
    assert.is_false(ok)
    assert.equal("not_found", err.kind)
    assert.is_true(err.ambiguous)
    assert.equal(2, err.attempts)
    assert.matches("may already have taken effect", err.message, 1, true)
  end)

  it("retry = false makes exactly one attempt", function()
    local c = new{ retry = false }
    srv:script{ { status = 503 }, { status = 201, json = { messageId = "never" } } }
    local ok, err = pcall(c.dlq_retry, c, "x")
    c:close()
    assert.is_false(ok)
    assert.equal(1, err.attempts)
    assert.equal(1, #srv:requests())
  end)

  it("does not follow redirects (and so never sends the token elsewhere)", function()
    local other = server.start()
    local c = new{ retry = false }
    srv:script{ { status = 307, headers = { Location = other.url .. "/v2/dlq/retry/x" } } }
    local ok, err = pcall(c.dlq_retry, c, "x")
    c:close()
    assert.is_false(ok)
    assert.equal("http", err.kind)
    assert.equal(307, err.status)
    assert.same({}, other:requests())
    other:stop()
  end)

  describe("lifecycle", function()
    it("close is idempotent and use after close raises", function()
      local c = new()
      c:close()
      c:close()
      assert.has_error(function() c:dlq_retry("x") end, "qstash: the client is closed")
      assert.matches("closed", tostring(c))
    end)

    it("is closed by garbage collection", function()
      local weak = setmetatable({}, { __mode = "v" })
      do
        local c = new()
        c:dlq_retry("x")
        weak[1] = c
      end
      collectgarbage()
      collectgarbage()
      assert.is_nil(weak[1])
    end)

    if _VERSION == "Lua 5.4" then
      it("closes a <close> variable at the end of its scope", function()
        local f = assert(load([[
          local new = ...
          local keep
          do
            local c <close> = new()
            keep = c
          end
          return keep
        ]]))
        local c = f(new)
        assert.has_error(function() c:dlq_retry("x") end, "qstash: the client is closed")
      end)
    end

    it("rejects unknown config keys with a suggestion", function()
      assert.has_error(function() qstash.new{ tokn = "x" } end,
        "bad argument #1 to 'new' (unknown config key 'tokn'; did you mean 'token'?)")
    end)
  end)
end)
