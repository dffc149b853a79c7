-- Request targets: every request carries exactly the path and query the
-- client built, byte for byte, whichever handle sends it. (The engine hands
-- libcurl parsed URLs: a plain target replaces the path and query of the base
-- URL parsed once, any other is parsed whole; percent-encodings keep their
-- upper case.)
local server = require "spec.support.server"
local qstash = require "qstash"

describe("request targets", function()
  local srv

  setup(function() srv = server.start() end)
  teardown(function() srv:stop() end)
  before_each(function() srv:reset() end)

  local function targets()
    local t = {}
    for i, r in ipairs(srv:requests()) do t[i] = r.target end
    return t
  end

  it("alternate plain and encoded targets on the same handles without leftovers", function()
    local c = qstash.new{ token = "t", base_url = srv.url, retry = false }
    local retry, list = { status = 201, json = { messageId = "m" } }, { status = 200, json = { messages = {} } }
    srv:script{ retry, retry, retry, retry, retry, list, list, list, retry, retry }
    c:dlq_retry("1725323658779-0")                      -- plain
    c:dlq_retry("a/b?c#d")                              -- encoded
    c:publish("https://example.com/a%2Fb?x=%41", "b")   -- encoded, raw destination
    c:publish("https://example.com/hook?x=1", "b")      -- plain, with a query of its own
    c:dlq_retry("plain-after-encoded")
    c:dlq_list{ url = "https://example.com/a b" }        -- encoded query
    c:dlq_list()                                        -- no query at all
    c:dlq_list{ url_group = "t1" }                      -- plain query
    c:dlq_retry("ünï")
    c:dlq_retry("z")
    c:close()
    assert.same({
      "/v2/dlq/retry/1725323658779-0",
      "/v2/dlq/retry/a%2Fb%3Fc%23d",
      "/v2/publish/https://example.com/a%2Fb?x=%41",
      "/v2/publish/https://example.com/hook?x=1",
      "/v2/dlq/retry/plain-after-encoded",
      "/v2/dlq?url=https%3A%2F%2Fexample.com%2Fa%20b",
      "/v2/dlq",
      "/v2/dlq?topicName=t1",
      "/v2/dlq/retry/%C3%BCn%C3%AF",
      "/v2/dlq/retry/z",
    }, targets())
  end)

  it("keep a base URL's path prefix", function()
    local c = qstash.new{ token = "t", base_url = srv.url .. "/qstash-proxy/", retry = false }
    srv:default{ status = 201, json = { messageId = "m" } }
    c:dlq_retry("x1")
    c:dlq_retry("x 2")
    c:close()
    assert.same({ "/qstash-proxy/v2/dlq/retry/x1", "/qstash-proxy/v2/dlq/retry/x%202" }, targets())
  end)

  it("carry the token query, encoded, with token_in_query", function()
    local c = qstash.new{ token = "a+b/c", base_url = srv.url, retry = false, token_in_query = true }
    local p = qstash.new{ token = "plain", base_url = srv.url, retry = false, token_in_query = true }
    srv:script{ { status = 201, json = { messageId = "m" } }, { status = 201, json = { messageId = "m" } },
      { status = 200, json = { messages = {} } } }
    c:dlq_retry("x")
    p:dlq_retry("y")
    p:dlq_list{ url_group = "t" }
    c:close()
    p:close()
    assert.same({
      "/v2/dlq/retry/x?qstash_token=a%2Bb%2Fc",
      "/v2/dlq/retry/y?qstash_token=plain",
      "/v2/dlq?topicName=t&qstash_token=plain",
    }, targets())
  end)

  it("are exact for a batch on reused async handles", function()
    local c = qstash.new{ token = "t", base_url = srv.url, retry = false }
    srv:default{ status = 201, json = { messageId = "m" } }
    local ids = {}
    for i = 1, 40 do ids[#ids + 1] = (i % 3 == 0) and ("id/" .. i) or ("id-" .. i) end
    local res = c:dlq_retry_each(ids, nil, { concurrency = 4 })
    c:close()
    assert.equal(40, res.ok)
    local want, got = {}, {}
    for _, id in ipairs(ids) do want[#want + 1] = "/v2/dlq/retry/" .. id:gsub("/", "%%2F") end
    for _, t in ipairs(targets()) do got[#got + 1] = t end
    table.sort(want)
    table.sort(got)
    assert.same(want, got)
  end)
end)
