-- Bugs found by the fuzz harnesses (fuzz/), each through the public API.
-- The inputs that found them are in fuzz/corpus/<target>/regression-*.
local server = require "spec.support.server"
local qstash = require "qstash"

describe("fuzz regressions", function()
  local srv, client

  setup(function()
    srv = server.start()
    client = qstash.new{ token = "tok-fuzz", base_url = srv.url, retry = { base_delay = 0.01 }, timeout = 2 }
  end)
  teardown(function()
    client:close()
    srv:stop()
  end)
  before_each(function() srv:reset() end)

  -- Calls fn, expects an argument error containing `text`, and that nothing was sent.
  local function rejected(text, fn, ...)
    local ok, err = pcall(fn, ...)
    assert.is_false(ok)
    assert.equal("string", type(err), "expected an argument error, got " .. tostring(err))
    assert.matches(text, err, 1, true)
    assert.same({}, srv:requests())
  end

  describe("a key with a NUL byte is not the key before it (options_fuzz, filters_fuzz)", function()
    it("is an unknown option, not a silently ignored 'retries'", function()
      rejected("unknown option 'retries\\0' (the key holds a NUL byte)", client.dlq_retry, client,
        "1725323658779-0", { ["retries\0"] = 3 })
    end)

    it("is named with its NUL byte and gets no suggestion of the key before it", function()
      local ok, err = pcall(client.dlq_retry, client, "1725323658779-0", { ["retries\0x"] = 3 })
      assert.is_false(ok)
      assert.matches("unknown option 'retries\\0x'", err, 1, true)
      assert.is_nil(err:find("did you mean", 1, true))
      assert.same({}, srv:requests())
    end)

    it("is an unknown filter, so { all = true } does not silently drop it", function()
      rejected("unknown filter 'url\\0x'", client.dlq_delete_many, client,
        { ["url\0x"] = "https://example.com", all = true })
    end)

    it("is an unknown key in nested option tables too", function()
      rejected("unknown flow_control key", client.dlq_retry, client, "1725323658779-0",
        { flow_control = { key = "k", rate = 1, ["period\0"] = "1h" } })
    end)
  end)

  it("rejects a forwarded header name with a NUL byte instead of cutting it short (options_fuzz)", function()
    rejected("is not a valid token", client.dlq_retry, client, "1725323658779-0",
      { headers = { ["X-A\0B"] = "v" } })
    rejected("is not a valid token", client.dlq_retry, client, "1725323658779-0",
      { callback_options = { headers = { ["period\0x"] = "v" } } })
  end)

  it("rejects headers['Content-Type'] with a NUL byte instead of sending it truncated (options_fuzz)", function()
    rejected("CR, LF or NUL", client.publish, client, "https://example.com", "x",
      { headers = { ["Content-Type"] = "text/plain\0; charset=evil" } })
  end)

  it("leaves no cjson.null and no integral float at any depth of a result (decode_fuzz)", function()
    local depth = 250
    srv:script{ { status = 200, headers = { ["Content-Type"] = "application/json" },
      body = '{"messageId":"msg_deep","extra":' .. ("["):rep(depth) .. 'null,2.0' .. ("]"):rep(depth) .. '}' } }
    local res = client:dlq_retry("1725323658779-0")
    assert.equal("msg_deep", res.messageId)
    assert.is_false(res.deduplicated)
    local t = res.extra
    for _ = 2, depth do
      assert.equal("table", type(t))
      t = t[1]
    end
    assert.equal("table", type(t))
    assert.is_nil(t[1])
    assert.equal(2, t[2])
    if math.type then assert.equal("integer", math.type(t[2])) end
    for _, v in pairs(t) do assert.not_equal("userdata", type(v)) end
  end)
  describe("one header named twice, in any case, is refused instead of one of them being picked (options_fuzz)", function()
    it("in publish headers: Content-Type and content-type", function()
      rejected("'Content-Type' and 'content-type' name the same header", client.publish, client,
        "https://example.com/x", "body", { headers = { ["Content-Type"] = "text/plain", ["content-type"] = "a/b" } })
    end)

    it("in forwarded headers of a DLQ retry", function()
      rejected("'X-Tenant' and 'x-tenant' name the same header", client.dlq_retry, client,
        "1725323658779-0", { headers = { ["X-Tenant"] = "a", ["x-tenant"] = "b" } })
    end)

    it("a name and its Upstash-Forward- form", function()
      rejected("'Upstash-Forward-X' and 'X' name the same header", client.dlq_retry, client,
        "1725323658779-0", { headers = { X = "a", ["Upstash-Forward-X"] = "b" } })
    end)

    it("in callback headers", function()
      rejected("name the same header", client.publish, client, "https://example.com/x", "b",
        { callback = "https://example.com/cb", callback_options = { headers = { A = "1", a = "2" } } })
    end)

    it("an option and a header that sends it again", function()
      rejected("set header 'Upstash-Retries' twice", client.dlq_retry, client,
        "1725323658779-0", { retries = 3, headers = { ["upstash-retries"] = "9" } })
      rejected("set header 'Upstash-Delay' twice", client.publish, client, "https://example.com/x", "b",
        { delay = "5s", headers = { ["Upstash-Delay"] = "1s" } })
    end)

    it("still sends distinct names, sorted, and an Upstash- name on its own as given", function()
      srv:script{ { status = 201, json = { messageId = "msg_1" } } }
      client:dlq_retry("1725323658779-0", { headers = { ["X-B"] = "2", ["X-A"] = "1", ["Upstash-Foo"] = "3" } })
      local req = srv:requests()[1]
      assert.same({ "1" }, server.header_values(req, "Upstash-Forward-X-A"))
      assert.same({ "2" }, server.header_values(req, "Upstash-Forward-X-B"))
      assert.same({ "3" }, server.header_values(req, "Upstash-Foo"))
    end)
  end)
end)
