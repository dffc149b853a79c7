-- http_version = "1.1" | "2" | "auto" (docs/api.md, qstash.new, and docs/benchmarks.md):
-- over HTTPS to a real nginx that offers HTTP/2 (ALPN), what each kind of
-- call negotiates and how many connections it uses. Every answer names the
-- HTTP version it came over (`protocol`) and its connection (`messageId` is
-- msg_<nginx's connection serial>).
local plain_nginx = require "spec.support.plain_nginx"
local qstash = require "qstash"
local qsafe = require "qstash.safe"

local why = plain_nginx.unavailable()
if why then
  describe("http_version", function() pending(why) end)
  return
end

describe("http_version", function()
  local ngx

  setup(function() ngx = plain_nginx.start() end)
  teardown(function() if ngx then ngx:stop() end end)

  local function client(version, url)
    return qstash.new{ token = "tok-version", base_url = url or ngx.https_url, ca_file = ngx.ca_file,
                       http_version = version, retry = false }
  end

  local function ids(n, prefix)
    local t = {}
    for i = 1, n do t[i] = (prefix or "id-") .. i end
    return t
  end

  -- The versions a batch's answers came over ({["HTTP/2.0"] = n, ...}) and
  -- how many connections carried them.
  local function batch(c, n, concurrency)
    local out = c:dlq_retry_each(ids(n), nil, { concurrency = concurrency })
    assert.equal(n, out.ok)
    local versions, conns, nconns = {}, {}, 0
    for _, res in pairs(out.results) do
      versions[res.protocol] = (versions[res.protocol] or 0) + 1
      if not conns[res.messageId] then
        conns[res.messageId] = true
        nconns = nconns + 1
      end
    end
    return versions, nconns
  end

  -- One async request, polled to its end.
  local function async_one(c)
    local got
    c:dlq_retry_async("async-1", nil, function(res, err) got = res or err end)
    c:wait()
    return got
  end

  describe("auto (the default)", function()
    it("sends one call at a time over HTTP/1.1, on one keep-alive connection", function()
      local c = client(nil)
      local a, b = c:dlq_retry("one"), c:dlq_retry("two")
      assert.equal("HTTP/1.1", a.protocol)
      assert.equal("HTTP/1.1", b.protocol)
      assert.equal(a.messageId, b.messageId)
      c:close()
    end)

    it("sends concurrent work over HTTP/2, all of a batch on one connection", function()
      local c = client("auto")
      local versions, nconns = batch(c, 60, 16)
      assert.same({ ["HTTP/2.0"] = 60 }, versions)
      assert.equal(1, nconns)
      assert.equal("HTTP/2.0", async_one(c).protocol)
      c:close()
    end)

    it("keeps both after mixing them on one client: a batch after calls still shares one HTTP/2 connection", function()
      -- libcurl keeps one "can multiplex" state per host and connection
      -- cache, and an HTTP/1.1 answer sets it to no: without a cache per
      -- HTTP version, this batch spread over 16 connections, some of them
      -- HTTP/1.1.
      local c = client(nil)
      assert.equal("HTTP/1.1", c:dlq_retry("before").protocol)
      local versions, nconns = batch(c, 60, 16)
      assert.same({ ["HTTP/2.0"] = 60 }, versions)
      assert.equal(1, nconns)
      local after = c:dlq_retry("after")
      assert.equal("HTTP/1.1", after.protocol)
      versions, nconns = batch(c, 60, 16)
      assert.same({ ["HTTP/2.0"] = 60 }, versions)
      assert.equal(1, nconns)
      c:close()
    end)
  end)

  it('"1.1" sends concurrent work over HTTP/1.1 too, a connection per request in flight', function()
    -- the batch first, on a new client: with a warm connection in the cache,
    -- a fast server can answer the whole batch on it while the other
    -- transfers' TLS handshakes are still under way (a race, not a rule)
    local c = client("1.1")
    local versions, nconns = batch(c, 60, 8)
    assert.same({ ["HTTP/1.1"] = 60 }, versions)
    assert.is_true(nconns > 1 and nconns <= 8, "connections: " .. nconns)
    assert.equal("HTTP/1.1", c:dlq_retry("one").protocol)
    assert.equal("HTTP/1.1", async_one(c).protocol)
    c:close()
  end)

  it('"2" sends one call at a time over HTTP/2 too, sharing the batches\' connection', function()
    local c = client("2")
    local a = c:dlq_retry("one")
    assert.equal("HTTP/2.0", a.protocol)
    local versions, nconns = batch(c, 60, 16)
    assert.same({ ["HTTP/2.0"] = 60 }, versions)
    assert.equal(1, nconns)
    local b = c:dlq_retry("two")
    assert.equal("HTTP/2.0", b.protocol)
    assert.equal(a.messageId, b.messageId)
    c:close()
  end)

  it("never speaks cleartext HTTP/2: over http:// every setting is HTTP/1.1", function()
    for _, v in ipairs({ "auto", "1.1", "2" }) do
      local c = client(v, ngx.http_url)
      assert.equal("HTTP/1.1", c:dlq_retry("one").protocol)
      local versions = batch(c, 20, 4)
      assert.same({ ["HTTP/1.1"] = 20 }, versions)
      c:close()
    end
  end)

  it("rejects any other value as an argument error, in qstash.safe too", function()
    for _, bad in ipairs({ "3", "1.0", "h2", "2.0", "AUTO", "", 2, 1.1, true, {} }) do
      for _, mod in ipairs({ qstash, qsafe }) do
        local ok, err = pcall(mod.new, { token = "t", base_url = ngx.https_url, http_version = bad })
        assert.is_false(ok)
        assert.equal([[bad argument #1 to 'new' ('http_version' must be "1.1", "2" or "auto")]], err)
      end
    end
  end)
end)
