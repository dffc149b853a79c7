-- qstash.dlq_retry: options -> exact headers, validation before sending,
-- id encoding and the result shape.
local server = require "spec.support.server"
local qstash = require "qstash"

describe("dlq_retry", function()
  local srv, client

  setup(function()
    srv = server.start()
    client = qstash.new{ token = "tok-123", base_url = srv.url, retry = { base_delay = 0.01 } }
  end)
  teardown(function()
    client:close()
    srv:stop()
  end)
  before_each(function() srv:reset() end)

  -- Retries with opts and returns the single recorded request.
  local function sent(opts, id)
    client:dlq_retry(id or "1725323658779-0", opts)
    local reqs = srv:requests()
    assert.equal(1, #reqs)
    return reqs[1]
  end

  -- The Upstash-* headers of a request, as a name -> value map.
  local function upstash_headers(req)
    local out = {}
    for _, pair in ipairs(req.headers) do
      if pair[1]:match("^Upstash%-") then out[pair[1]] = pair[2] end
    end
    return out
  end

  describe("request", function()
    it("is POST /v2/dlq/retry/{id} with the bearer token, no body and our User-Agent", function()
      local req = sent(nil)
      assert.equal("POST", req.method)
      assert.equal("/v2/dlq/retry/1725323658779-0", req.target)
      assert.equal("Bearer tok-123", req.h["authorization"])
      assert.equal("0", req.h["content-length"])
      assert.equal("", req.body)
      assert.is_nil(req.h["content-type"])
      assert.is_nil(req.h["expect"])
      assert.matches("^lua%-qstash/%d+%.%d+%.%d+ libcurl/", req.h["user-agent"])
      assert.same({}, upstash_headers(req))
    end)

    it("returns the PublishResponse with deduplicated as a boolean", function()
      srv:script{ { status = 201, json = { messageId = "msg_abc" } } }
      local res = client:dlq_retry("x")
      assert.same({ messageId = "msg_abc", deduplicated = false }, res)
      srv:script{ { status = 201, json = { messageId = "msg_d", deduplicated = true, url = "https://e.com" } } }
      assert.same({ messageId = "msg_d", deduplicated = true, url = "https://e.com" }, client:dlq_retry("x"))
    end)

    it("accepts 200 and 202 as success", function()
      srv:script{ { status = 200, json = { messageId = "m1" } }, { status = 202, json = { messageId = "m2" } } }
      assert.equal("m1", client:dlq_retry("x").messageId)
      assert.equal("m2", client:dlq_retry("x").messageId)
    end)

    it("never lets cjson.null out and gives integers for integral numbers", function()
      srv:script{ { status = 201, body = '{"messageId":"m","deduplicated":null,"extra":null,"n":3,"list":[1,null,2]}' } }
      local res = client:dlq_retry("x")
      assert.is_false(res.deduplicated)
      assert.is_nil(res.extra)
      assert.equal(3, res.n)
      if math.type then assert.equal("integer", math.type(res.n)) end
      assert.equal(1, res.list[1])
      assert.is_nil(res.list[2])
    end)

    it("is available at module level through qstash.safe too", function()
      local qsafe = require "qstash.safe"
      local c = qsafe.new{ token = "t", base_url = srv.url }
      srv:script{ { status = 201, json = { messageId = "m" } } }
      assert.equal("m", c:dlq_retry("x").messageId)
      c:close()
    end)
  end)

  describe("options -> headers", function()
    local cases = {
      { { retries = 0 }, { ["Upstash-Retries"] = "0" } },
      { { retries = 3.0 }, { ["Upstash-Retries"] = "3" } },
      { { retry_delay = "pow(2, retried) * 1000" }, { ["Upstash-Retry-Delay"] = "pow(2, retried) * 1000" } },
      { { delay = 10 }, { ["Upstash-Delay"] = "10s" } },
      { { delay = "1d10h30m" }, { ["Upstash-Delay"] = "1d10h30m" } },
      { { not_before = 1767225600 }, { ["Upstash-Not-Before"] = "1767225600" } },
      { { timeout = 30 }, { ["Upstash-Timeout"] = "30s" } },
      { { timeout = "2m" }, { ["Upstash-Timeout"] = "2m" } },
      { { method = "put" }, { ["Upstash-Method"] = "PUT" } },
      { { callback = "https://cb.example.com/x?y=1" }, { ["Upstash-Callback"] = "https://cb.example.com/x?y=1" } },
      { { failure_callback = "http://fail.example.com" }, { ["Upstash-Failure-Callback"] = "http://fail.example.com" } },
      { { callback_options = { method = "patch", timeout = 5, retries = 2, retry_delay = "1000", headers = { ["X-A"] = "1" } } },
        { ["Upstash-Callback-Method"] = "PATCH", ["Upstash-Callback-Timeout"] = "5s", ["Upstash-Callback-Retries"] = "2",
          ["Upstash-Callback-Retry-Delay"] = "1000", ["Upstash-Callback-Forward-X-A"] = "1" } },
      { { failure_callback_options = { method = "GET", timeout = "1m", retries = 0, retry_delay = "500", headers = { B = "2" } } },
        { ["Upstash-Failure-Callback-Method"] = "GET", ["Upstash-Failure-Callback-Timeout"] = "1m",
          ["Upstash-Failure-Callback-Retries"] = "0", ["Upstash-Failure-Callback-Retry-Delay"] = "500",
          ["Upstash-Failure-Callback-Forward-B"] = "2" } },
      { { deduplication_id = "dedup-1" }, { ["Upstash-Deduplication-Id"] = "dedup-1" } },
      { { content_based_deduplication = true }, { ["Upstash-Content-Based-Deduplication"] = "true" } },
      { { content_based_deduplication = false }, { ["Upstash-Content-Based-Deduplication"] = "false" } },
      { { flow_control = { key = "k", parallelism = 5, rate = 10, period = 60 } },
        { ["Upstash-Flow-Control-Key"] = "k", ["Upstash-Flow-Control-Value"] = "parallelism=5, rate=10, period=60s" } },
      { { flow_control = { key = "k", rate = 3, period = "1m" } },
        { ["Upstash-Flow-Control-Key"] = "k", ["Upstash-Flow-Control-Value"] = "rate=3, period=1m" } },
      { { flow_control = { key = "k", parallelism = 2 } },
        { ["Upstash-Flow-Control-Key"] = "k", ["Upstash-Flow-Control-Value"] = "parallelism=2" } },
      { { label = "one" }, { ["Upstash-Label"] = "one" } },
      { { label = { "a", "b" } }, { ["Upstash-Label"] = "a,b" } },
      { { redact = { body = true } }, { ["Upstash-Redact-Fields"] = "body" } },
      { { redact = { body = true, header = true } }, { ["Upstash-Redact-Fields"] = "body,header" } },
      { { redact = { header = { "Authorization", "X-Key" } } },
        { ["Upstash-Redact-Fields"] = "header[Authorization],header[X-Key]" } },
      { { headers = { ["X-Trace"] = "abc", ["Upstash-Header-Forward"] = "true" } },
        { ["Upstash-Forward-X-Trace"] = "abc", ["Upstash-Header-Forward"] = "true" } },
    }
    for i, case in ipairs(cases) do
      local opts, want = case[1], case[2]
      local keys = {}
      for k in pairs(opts) do keys[#keys + 1] = k end
      it("#" .. i .. " " .. table.concat(keys, ","), function()
        assert.same(want, upstash_headers(sent(opts)))
      end)
    end

    it("combines every option in one request", function()
      local req = sent{ retries = 1, delay = "5s", not_before = 1767225600, label = { "x" }, headers = { A = "b" } }
      assert.same({ ["Upstash-Retries"] = "1", ["Upstash-Delay"] = "5s", ["Upstash-Not-Before"] = "1767225600",
        ["Upstash-Label"] = "x", ["Upstash-Forward-A"] = "b" }, upstash_headers(req))
    end)
  end)

  describe("validation", function()
    local bad = {
      { { retires = 1 }, "unknown option 'retires'; did you mean 'retries'%?" },
      { { dealy = 1 }, "did you mean 'delay'" },
      { { zzzzzzzz = 1 }, "unknown option 'zzzzzzzz'" },
      { { retries = -1 }, "option 'retries' must be an integer >= 0" },
      { { retries = 1.5 }, "option 'retries' must be an integer >= 0" },
      { { retries = "3" }, "option 'retries' must be an integer >= 0" },
      { { delay = 1.5 }, "whole seconds" },
      { { delay = -1 }, "whole seconds" },
      { { delay = "10" }, "duration" },
      { { delay = "10x" }, "duration" },
      { { delay = "s" }, "duration" },
      { { delay = "" }, "duration" },
      { { timeout = "1d" }, "duration" },
      { { not_before = 1767225600000 }, "looks like milliseconds" },
      { { not_before = -5 }, "not_before" },
      { { method = "TRACE" }, "GET, POST, PUT, PATCH or DELETE" },
      { { method = 1 }, "must be a string" },
      { { callback = "ftp://x" }, "http:// or https:// URL" },
      { { callback = "https://a b" }, "spaces" },
      { { failure_callback = "nope" }, "URL" },
      { { retry_delay = "1000\r\nX-Evil: 1" }, "CR, LF or NUL" },
      { { deduplication_id = "a\nb" }, "CR, LF or NUL" },
      { { deduplication_id = "" }, "must not be empty" },
      { { content_based_deduplication = "yes" }, "boolean" },
      { { flow_control = { rate = 1 } }, "needs a key" },
      { { flow_control = { key = "k" } }, "needs parallelism or rate" },
      { { flow_control = { key = "k", rate = 0 } }, "flow_control.rate" },
      { { flow_control = { key = "k", rate = 1, periode = 1 } }, "did you mean 'period'" },
      { { label = "a,b" }, "comma" },
      { { label = {} }, "empty array" },
      { { label = { "a", 1 } }, "must be a string" },
      { { redact = { body = false } }, "body = true and/or header" },
      { { redact = { bodies = true } }, "did you mean 'body'" },
      { { redact = { header = { "bad name" } } }, "not a header name" },
      { { headers = { ["bad name"] = "v" } }, "not a valid token" },
      { { headers = { ["X-A"] = "v\r\nInjected: 1" } }, "CR, LF or NUL" },
      { { headers = { ["X-A"] = "v\0" } }, "CR, LF or NUL" },
      { { headers = { ["X-A"] = 1 } }, "must be a string" },
      { { headers = { "positional" } }, "string names" },
      { { callback_options = { methd = "GET" } }, "did you mean 'method'" },
      { { callback_options = { headers = { ["X:Y"] = "1" } } }, "not a valid token" },
      { { content_type = "text/plain" }, "applies to publish only" },
      { "not a table", "options must be a table" },
    }
    for i, case in ipairs(bad) do
      it("#" .. i .. " raises '" .. case[2] .. "' and sends nothing", function()
        local ok, err = pcall(client.dlq_retry, client, "id-1", case[1])
        assert.is_false(ok)
        assert.equal("string", type(err))
        assert.matches("bad argument #2 to 'dlq_retry'", err, 1, true)
        assert.matches(case[2], err)
        assert.same({}, srv:requests())
      end)
    end

    it("raises argument errors in qstash.safe too", function()
      local qsafe = require "qstash.safe"
      local c = qsafe.new{ token = "t", base_url = srv.url }
      assert.has_error(function() c:dlq_retry("x", { retires = 1 }) end,
        "bad argument #2 to 'dlq_retry' (unknown option 'retires'; did you mean 'retries'?)")
      assert.has_error(function() c:dlq_retry("") end)
      c:close()
      assert.same({}, srv:requests())
    end)
  end)

  describe("ids", function()
    local encoded = {
      { "a/b?c#d", "/v2/dlq/retry/a%2Fb%3Fc%23d" },
      { "with space", "/v2/dlq/retry/with%20space" },
      { "ünï", "/v2/dlq/retry/%C3%BCn%C3%AF" },
      { "A-z_0.9~", "/v2/dlq/retry/A-z_0.9~" },
      { "...", "/v2/dlq/retry/..." },
      { "%2F", "/v2/dlq/retry/%252F" },
      { ("x"):rep(512), "/v2/dlq/retry/" .. ("x"):rep(512) },
    }
    for _, case in ipairs(encoded) do
      it("encodes " .. case[1]:sub(1, 20) .. " as one path segment", function()
        assert.equal(case[2], sent(nil, case[1]).target)
      end)
    end

    local rejected = {
      { "", "must not be empty" },
      { ".", "'.' or '..'" },
      { "..", "'.' or '..'" },
      { ("x"):rep(513), "longer than 512 bytes" },
      { "a\nb", "control bytes" },
      { "a\0b", "control bytes" },
      { "a\127", "control bytes" },
      { 42, "must be a string" },
      { nil, "must be a string" },
    }
    for _, case in ipairs(rejected) do
      it("rejects " .. string.format("%q", tostring(case[1])):sub(1, 20), function()
        local ok, err = pcall(client.dlq_retry, client, case[1])
        assert.is_false(ok)
        assert.matches("bad argument #1 to 'dlq_retry'", err, 1, true)
        assert.matches(case[2], err, 1, true)
        assert.same({}, srv:requests())
      end)
    end

    it("numbers arguments the same at module level", function()
      local ok, err = pcall(qstash.dlq_retry, "", nil)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'dlq_retry'", err, 1, true)
      ok, err = pcall(qstash.dlq_retry, "x", { retires = 1 })
      assert.is_false(ok)
      assert.matches("bad argument #2 to 'dlq_retry'", err, 1, true)
    end)
  end)
end)
