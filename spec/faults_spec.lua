-- Every fault the server side can throw at the client: the right error
-- kind, bounded time, the configured number of attempts, and a client that
-- keeps working for the next call.
local server = require "spec.support.server"
local ports = require "spec.support.ports"
local socket = require "socket"
local qstash = require "qstash"

describe("faults", function()
  local srv, client
  local TIMEOUT = 0.5 -- the hang tests wait it out on every attempt

  setup(function()
    srv = server.start()
    client = qstash.new{ token = "tok-faults-123", base_url = srv.url, timeout = TIMEOUT,
      max_response_bytes = 4096, retry = { attempts = 2, base_delay = 0.01, max_delay = 0.05 } }
  end)
  teardown(function()
    client:close()
    srv:stop()
  end)
  before_each(function() srv:reset() end)

  -- Runs dlq_retry expecting a failure; checks time and that the client recovers.
  local function fails(kind, attempts, bound)
    local t0 = socket.gettime()
    local ok, err = pcall(client.dlq_retry, client, "fault-id")
    local took = socket.gettime() - t0
    assert.is_false(ok, "expected a failure")
    assert.is_true(qstash.is_error(err), tostring(err))
    assert.equal(kind, err.kind, tostring(err))
    if attempts then assert.equal(attempts, err.attempts) end
    assert.is_true(took < (bound or 2 * TIMEOUT + 1.5), "took " .. took)
    assert.is_nil(tostring(err):find("tok-faults-123", 1, true))
    -- the same client works for the next call
    srv:reset()
    assert.equal("msg_test", client:dlq_retry("next-id").messageId)
    return err
  end

  local transport = {
    { "close", "network" },
    { "hang", "timeout" },
    { "headers_then_stall", "timeout" },
    { "reset_in_headers", "network" },
    { "reset_in_body", "network" },
    { "short_body", "network" },
  }
  for _, case in ipairs(transport) do
    it(case[1] .. " -> " .. case[2] .. ", retried up to the attempts", function()
      srv:script{ { status = 201, json = { messageId = "x" }, fault = case[1] },
        { status = 201, json = { messageId = "x" }, fault = case[1] } }
      local err = fails(case[2], 2)
      assert.is_number(err.curl_code)
      assert.is_true(err.ambiguous)
    end)
  end

  it("a refused connection -> network, every attempt, never ambiguous", function()
    local c = qstash.new{ token = "t", base_url = "http://127.0.0.1:" .. ports.closed(),
      retry = { attempts = 3, base_delay = 0.01 } }
    local ok, err = pcall(c.dlq_retry, c, "x")
    c:close()
    assert.is_false(ok)
    assert.equal("network", err.kind)
    assert.equal(3, err.attempts)
    assert.is_false(err.ambiguous)
  end)

  it("a chunked body is read whole", function()
    srv:script{ { status = 201, json = { messageId = "chunked-id", deduplicated = false }, fault = "chunked", chunk_size = 3 } }
    assert.equal("chunked-id", client:dlq_retry("x").messageId)
  end)

  it("a slow body within the timeout is fine", function()
    srv:script{ { status = 201, body = '{"messageId":"slow"}', fault = "slow_body", delay_per_byte = 0.01 } }
    assert.equal("slow", client:dlq_retry("x").messageId)
  end)

  for _, body in ipairs{ "{oops", "[1,2]", '"text"', "{}", '{"messageId":null}', "" } do
    it("a 201 with " .. (body == "" and "an empty body" or body) .. " -> decode, not retried", function()
      srv:script{ { status = 201, body = body } }
      local err = fails("decode", 1)
      assert.equal(201, err.status)
    end)
  end

  it("a body over max_response_bytes -> too_large, announced or chunked", function()
    srv:script{ { status = 201, body_size = 10000 } }
    fails("too_large", 1)
    srv:script{ { status = 201, body_size = 10000, fault = "chunked" } }
    fails("too_large", 1)
  end)

  it("a large error body is cut to 4 KiB in err.body", function()
    local c = qstash.new{ token = "t", base_url = srv.url, retry = false }
    srv:script{ { status = 400, body_size = 6000 } }
    local ok, err = pcall(c.dlq_retry, c, "x")
    c:close()
    assert.is_false(ok)
    assert.equal(4096, #err.body)
  end)

  describe("429", function()
    local families = {
      { { ["Retry-After"] = "0" } },
      { { ["Retry-After"] = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() - 5) } },
      { { ["Burst-RateLimit-Reset"] = tostring(os.time() - 1) } },
      { { ["RateLimit-Reset"] = tostring((os.time() - 1) * 1000) } },
    }
    for i, case in ipairs(families) do
      it("family #" .. i .. " is waited out, then the call succeeds", function()
        srv:script{ { status = 429, headers = case[1] } }
        assert.equal("msg_test", client:dlq_retry("x").messageId)
        assert.equal(2, #srv:requests())
      end)
    end

    local malformed = {
      { ["Retry-After"] = "soon" }, { ["Retry-After"] = "-5" }, { ["Burst-RateLimit-Reset"] = "abc" },
      { ["RateLimit-Reset"] = "" }, { ["Retry-After"] = ("9"):rep(60) },
    }
    for i, headers in ipairs(malformed) do
      it("malformed header set #" .. i .. " falls back to backoff", function()
        srv:script{ { status = 429, headers = headers }, { status = 429, headers = headers } }
        local err = fails("rate_limited", 2)
        assert.is_false(err.ambiguous)
      end)
    end
  end)

  it("a sequence of 500/502/503/504 exhausts the attempts with the last status", function()
    local c = qstash.new{ token = "t", base_url = srv.url, retry = { attempts = 4, base_delay = 0.01, max_delay = 0.02 } }
    srv:script{ { status = 500 }, { status = 502 }, { status = 503 }, { status = 504 } }
    local ok, err = pcall(c.dlq_retry, c, "x")
    c:close()
    assert.is_false(ok)
    assert.equal("server", err.kind)
    assert.equal(504, err.status)
    assert.equal(4, err.attempts)
  end)

  for _, target in ipairs{ "https://evil.example.com/steal", "ftp://127.0.0.1/x", "http://127.0.0.1:9/x" } do
    it("a redirect to " .. target .. " is not followed", function()
      srv:script{ { status = 302, headers = { Location = target } } }
      local err = fails("http", 1)
      assert.equal(302, err.status)
    end)
  end
end)
