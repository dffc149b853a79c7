-- publish and publish_json on the wire.
local server = require "spec.support.server"
local qstash = require "qstash"

describe("publish", function()
  local srv, client

  setup(function()
    srv = server.start()
    client = qstash.new{ token = "tok-pub", base_url = srv.url, retry = { base_delay = 0.01 }, timeout = 1 }
  end)
  teardown(function()
    client:close()
    srv:stop()
  end)
  before_each(function() srv:reset() end)

  it("POSTs the body to /v2/publish/<destination raw> with the options' headers", function()
    srv:script{ { status = 200, json = { messageId = "msg_p", url = "https://example.com/a?x=1" } } }
    local res = client:publish("https://example.com/a?x=1", "hello\0world", {
      content_type = "text/plain", retries = 2, headers = { ["X-Tenant"] = "t1" } })
    assert.same({ messageId = "msg_p", url = "https://example.com/a?x=1", deduplicated = false }, res)
    local req = srv:requests()[1]
    assert.equal("POST", req.method)
    assert.equal("/v2/publish/https://example.com/a?x=1", req.target)
    assert.equal("hello\0world", req.body)
    assert.equal("text/plain", req.h["content-type"])
    assert.equal("2", req.h["upstash-retries"])
    assert.equal("t1", req.h["upstash-forward-x-tenant"])
  end)

  it("sends no Content-Type without one, and headers['Content-Type'] means content_type", function()
    client:publish("https://example.com", "x")
    assert.is_nil(srv:requests()[1].h["content-type"])
    srv:reset()
    client:publish("https://example.com", "x", { headers = { ["Content-Type"] = "text/csv" } })
    local req = srv:requests()[1]
    assert.equal("text/csv", req.h["content-type"])
    assert.is_nil(req.h["upstash-forward-content-type"])
  end)

  it("sends no Expect header, for small bodies and for ones over 1 MiB alike", function()
    local big = ("0123456789abcdef"):rep(100 * 1024) -- 1.6 MiB: libcurl would add Expect: 100-continue
    for _, body in ipairs{ "x", ("y"):rep(1025), big, "z" } do
      srv:reset()
      assert.equal("msg_test", client:publish("https://example.com", body).messageId)
      local req = srv:requests()[1]
      assert.is_nil(req.h["expect"])
      assert.equal(#body, req.body_len)
      assert.equal(body, req.body)
    end
  end)

  it("publish_json encodes with lua-cjson and sends application/json", function()
    client:publish_json("https://example.com/hook", { a = 1 })
    local req = srv:requests()[1]
    assert.equal('{"a":1}', req.body)
    assert.equal("application/json", req.h["content-type"])
    assert.has_error(function() client:publish_json("https://e.com", { f = print }) end)
    assert.has_error(function() client:publish_json("https://e.com", {}, { content_type = "text/plain" }) end)
  end)

  it("returns the list for a URL group, as an array or as {messages = ...}", function()
    srv:script{
      { status = 200, json = { { messageId = "m1", url = "https://a" }, { messageId = "m2", url = "https://b" } } },
      { status = 200, json = { messages = { { messageId = "m3", url = "https://c" } } } },
    }
    local list = client:publish("my-group", "x")
    assert.equal("/v2/publish/my-group", srv:requests()[1].target)
    assert.equal(2, #list)
    assert.equal("m2", list[2].messageId)
    assert.is_false(list[1].deduplicated)
    list = client:publish("my-group", "x")
    assert.equal("m3", list[1].messageId)
  end)

  it("202 deduplicated counts as success", function()
    srv:script{ { status = 202, json = { messageId = "old", deduplicated = true } } }
    assert.is_true(client:publish("https://e.com", "x", { deduplication_id = "d" }).deduplicated)
  end)

  it("rejects bad destinations and sends nothing", function()
    local bad = { "", "ftp://x", "https://a b", "https://x/#f", "https://", "group name", "grp/x", "https://a\nb" }
    for _, d in ipairs(bad) do
      local ok, err = pcall(client.publish, client, d, "x")
      assert.is_false(ok, d)
      assert.matches("bad argument #1 to 'publish'", err, 1, true)
    end
    assert.has_error(function() client:publish("https://e.com", 5) end)
    assert.has_error(function() client:publish("https://e.com", "x", { content_type = "a\nb" }) end)
    assert.same({}, srv:requests())
  end)

  it("does not repeat a publish after an unknown outcome without a deduplication id", function()
    srv:script{ { fault = "hang" }, { status = 200, json = { messageId = "second" } } }
    -- a short timeout: the first attempt only needs an unknown outcome
    local c = qstash.new{ token = "tok-pub", base_url = srv.url, retry = { base_delay = 0.01 }, timeout = 0.2 }
    local ok, err = pcall(c.publish, c, "https://e.com", "x")
    c:close()
    assert.is_false(ok)
    assert.equal("timeout", err.kind)
    assert.is_true(err.ambiguous)
    assert.equal(1, err.attempts)
  end)

  it("repeats it when a deduplication id makes that safe", function()
    srv:script{ { fault = "hang" }, { status = 202, json = { messageId = "first", deduplicated = true } } }
    local c = qstash.new{ token = "tok-pub", base_url = srv.url, retry = { base_delay = 0.01 }, timeout = 0.5 }
    local res = c:publish("https://e.com", "x", { deduplication_id = "once" })
    c:close()
    assert.equal("first", res.messageId)
    local reqs = srv:requests()
    assert.equal(2, #reqs)
    assert.equal("once", reqs[2].h["upstash-deduplication-id"])
  end)
end)
