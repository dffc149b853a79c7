-- Every error kind with its fields, tostring, the token never shown, and
-- qstash.safe returning nil, err.
local server = require "spec.support.server"
local ports = require "spec.support.ports"
local qstash = require "qstash"
local qsafe = require "qstash.safe"

local TOKEN = "sekret-token-value"

describe("errors", function()
  local srv, client, safe_client

  setup(function()
    srv = server.start()
    local cfg = { token = TOKEN, base_url = srv.url, retry = false, timeout = 1 }
    client = qstash.new(cfg)
    safe_client = qsafe.new(cfg)
  end)
  teardown(function()
    client:close()
    safe_client:close()
    srv:stop()
  end)
  before_each(function() srv:reset() end)

  local function failure(c)
    local ok, err = pcall((c or client).dlq_retry, c or client, "abc")
    assert.is_false(ok)
    assert.is_true(qstash.is_error(err), tostring(err))
    return err
  end

  local statuses = {
    { 404, "not_found" }, { 401, "unauthorized" }, { 403, "unauthorized" }, { 400, "bad_request" },
    { 412, "quota" }, { 418, "http" }, { 409, "http" },
  }
  for _, case in ipairs(statuses) do
    it(case[1] .. " raises kind " .. case[2] .. " with every field", function()
      srv:script{ { status = case[1], json = { error = "the reason" } } }
      local err = failure()
      assert.equal(case[2], err.kind)
      assert.equal(case[1], err.status)
      assert.equal("the reason", err.message)
      assert.equal("POST", err.method)
      assert.equal("/v2/dlq/retry/abc", err.path)
      assert.equal('{"error":"the reason"}', err.body)
      assert.equal(1, err.attempts)
      assert.is_false(err.ambiguous)
      assert.is_nil(err.curl_code)
      assert.equal(1, #srv:requests())
    end)
  end

  it("reads like 'qstash: not_found (404) POST /v2/dlq/retry/abc: message not found'", function()
    srv:script{ { status = 404, json = { error = "message not found" } } }
    assert.equal("qstash: not_found (404) POST /v2/dlq/retry/abc: message not found", tostring(failure()))
  end)

  it("uses a non-JSON error body as the message", function()
    srv:script{ { status = 400, body = "plain words" } }
    local err = failure()
    assert.equal("plain words", err.message)
    srv:script{ { status = 400, body = "" } }
    assert.equal("HTTP 400", failure().message)
  end)

  it("5xx raises kind server", function()
    srv:script{ { status = 503, json = { error = "down" } } }
    local err = failure()
    assert.equal("server", err.kind)
    assert.equal(503, err.status)
    assert.is_true(err.ambiguous) -- the server may have acted before failing
  end)

  it("429 raises kind rate_limited with retry_after and ratelimit", function()
    local reset = os.time() + 100
    srv:script{ { status = 429, json = { error = "slow down" }, headers = {
      ["Burst-RateLimit-Limit"] = "100", ["Burst-RateLimit-Remaining"] = "0",
      ["Burst-RateLimit-Reset"] = tostring(reset) } } }
    local err = failure()
    assert.equal("rate_limited", err.kind)
    assert.equal(429, err.status)
    assert.is_true(err.retry_after >= 98 and err.retry_after <= 101, tostring(err.retry_after))
    assert.same({ scope = "burst", limit = 100, remaining = 0, reset = reset }, err.ratelimit)
    assert.is_false(err.ambiguous)
  end)

  it("429 with daily headers reports scope daily", function()
    srv:script{ { status = 429, headers = { ["RateLimit-Limit"] = "1000", ["RateLimit-Remaining"] = "0",
      ["RateLimit-Reset"] = tostring((os.time() + 3600) * 1000) } } }
    local err = failure()
    assert.equal("daily", err.ratelimit.scope)
    assert.equal(1000, err.ratelimit.limit)
    assert.is_true(err.retry_after > 3500 and err.retry_after <= 3601)
  end)

  it("rate-limit headers come from the final response, never from a 1xx before it", function()
    srv:script{ { status = 429, interim = {
        { status = 103, headers = { ["Retry-After"] = "5000", ["Burst-RateLimit-Limit"] = "1",
          ["Burst-RateLimit-Remaining"] = "1", ["Burst-RateLimit-Reset"] = "1" } } },
      headers = { ["Retry-After"] = "60", ["RateLimit-Limit"] = "1000", ["RateLimit-Remaining"] = "0" } } }
    local err = failure()
    assert.equal("rate_limited", err.kind)
    assert.equal(60, err.retry_after)
    assert.same({ scope = "daily", limit = 1000, remaining = 0 }, err.ratelimit)
  end)

  it("a rate-limit header sent twice counts by its last value, names in any case", function()
    srv:script{ { status = 429, headers = { { "retry-after", "5" }, { "RETRY-AFTER", "7" },
      { "burst-ratelimit-limit", "10" } } } }
    local err = failure()
    assert.equal(7, err.retry_after)
    assert.same({ scope = "burst", limit = 10 }, err.ratelimit)
  end)

  it("a 1xx before a success leaves no rate-limit trace on a later failure", function()
    srv:script{
      { status = 201, json = { messageId = "m1" }, interim = { { status = 103, headers = { ["Retry-After"] = "9" } } } },
      { status = 503, json = { error = "down" } },
    }
    assert.equal("m1", client:dlq_retry("abc").messageId)
    local err = failure()
    assert.equal("server", err.kind)
    assert.is_nil(err.retry_after)
    assert.is_nil(err.ratelimit)
  end)

  it("a refused connection raises kind network with curl_code", function()
    local c = qstash.new{ token = TOKEN, base_url = "http://127.0.0.1:" .. ports.closed(), retry = false }
    local ok, err = pcall(c.dlq_retry, c, "abc")
    c:close()
    assert.is_false(ok)
    assert.equal("network", err.kind)
    assert.equal(7, err.curl_code) -- CURLE_COULDNT_CONNECT
    assert.is_nil(err.status)
    assert.is_false(err.ambiguous) -- nothing was sent
    assert.matches("^qstash: network POST /v2/dlq/retry/abc: ", tostring(err))
  end)

  it("a closed connection after the request raises network, ambiguous", function()
    -- a fresh client: on a reused connection libcurl itself resends once
    local c = qstash.new{ token = TOKEN, base_url = srv.url, retry = false, timeout = 1 }
    srv:script{ { fault = "close" } }
    local err = failure(c)
    c:close()
    assert.equal("network", err.kind)
    assert.is_true(err.ambiguous)
    assert.is_number(err.curl_code)
  end)

  it("no answer within timeout raises kind timeout", function()
    srv:script{ { fault = "hang" } }
    -- the server never answers: any timeout ends in one, so a short one
    local c = qstash.new{ token = TOKEN, base_url = srv.url, retry = false, timeout = 0.2 }
    local err = failure(c)
    c:close()
    assert.equal("timeout", err.kind)
    assert.equal(28, err.curl_code)
    assert.is_true(err.ambiguous)
  end)

  it("invalid JSON on success raises kind decode with the status", function()
    srv:script{ { status = 201, body = "{not json" } }
    local err = failure()
    assert.equal("decode", err.kind)
    assert.equal(201, err.status)
    assert.equal("{not json", err.body)
  end)

  for _, body in ipairs{ "[]", '"str"', "{}", '{"messageId":5}', '{"messageId":"m","deduplicated":"no"}' } do
    it("a 201 with the wrong shape " .. body .. " raises kind decode", function()
      srv:script{ { status = 201, body = body } }
      assert.equal("decode", failure().kind)
    end)
  end

  it("a body over max_response_bytes raises kind too_large", function()
    local c = qstash.new{ token = TOKEN, base_url = srv.url, retry = false, max_response_bytes = 1000 }
    srv:script{ { status = 201, body_size = 5000 }, { status = 201, body_size = 5000, fault = "chunked" } }
    for _ = 1, 2 do
      local ok, err = pcall(c.dlq_retry, c, "abc")
      assert.is_false(ok)
      assert.equal("too_large", err.kind)
    end
    c:close()
  end)

  it("a missing token raises kind config naming the variables", function()
    local child = require "spec.support.child"
    local out, ok = child.run([[
      local q = require "qstash"
      local c = q.new{ base_url = "http://127.0.0.1:9" }
      local ok, err = pcall(c.dlq_retry, c, "abc")
      print(err.kind, err.message)
    ]], { QSTASH_REGION = "us-east-1" })
    assert.is_true(ok, out)
    assert.matches("^config", out)
    assert.matches("US_EAST_1_QSTASH_TOKEN", out, 1, true)
    assert.matches("QSTASH_TOKEN", out, 1, true)
  end)

  describe("the token", function()
    it("never appears in message, body or tostring, even when echoed", function()
      srv:script{ { status = 401, json = { error = "bad token " .. TOKEN }, headers = { ["X-Echo"] = TOKEN } } }
      local err = failure()
      assert.equal("unauthorized", err.kind)
      assert.is_nil(err.message:find(TOKEN, 1, true))
      assert.is_nil(err.body:find(TOKEN, 1, true))
      assert.is_nil(tostring(err):find(TOKEN, 1, true))
      assert.matches("[REDACTED]", err.message, 1, true)
    end)

    it("never appears in the path with token_in_query", function()
      local c = qstash.new{ token = TOKEN, base_url = srv.url, retry = false, token_in_query = true }
      srv:script{ { status = 404, body = "no " .. TOKEN } }
      local ok, err = pcall(c.dlq_retry, c, "abc")
      c:close()
      assert.is_false(ok)
      local req = srv:requests()[1]
      assert.equal("/v2/dlq/retry/abc?qstash_token=" .. TOKEN, req.target)
      assert.is_nil(req.h["authorization"])
      assert.equal("/v2/dlq/retry/abc", err.path)
      assert.is_nil(tostring(err):find(TOKEN, 1, true))
      assert.is_nil(err.body:find(TOKEN, 1, true))
    end)
  end)

  describe("qstash.safe", function()
    it("returns nil, err for runtime failures", function()
      srv:script{ { status = 404, json = { error = "gone" } } }
      local res, err = safe_client:dlq_retry("abc")
      assert.is_nil(res)
      assert.is_true(qsafe.is_error(err))
      assert.equal("not_found", err.kind)
    end)

    it("returns the result on success", function()
      local res, err = safe_client:dlq_retry("abc")
      assert.is_nil(err)
      assert.equal("msg_test", res.messageId)
    end)
  end)

  it("is_error is true for error tables only", function()
    assert.is_false(qstash.is_error({ kind = "not_found" }))
    assert.is_false(qstash.is_error("x"))
    assert.is_false(qstash.is_error(nil))
  end)
end)
