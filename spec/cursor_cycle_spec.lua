-- Cursor loops end when a cursor comes back. A server whose cursors cycle
-- (a -> b -> a) would otherwise make dlq_delete_many, dlq_retry_many and
-- dlq_messages loop for ever (with real bulk retries on every round): the
-- repeat ends the loop with a `decode` error saying so, carrying what was done.
--
-- After the three scripted pages the server answers 400 "cursor loop not
-- detected": a client that misses the repeat fails with bad_request after
-- a fourth request instead of hanging the suite.
local server = require "spec.support.server"
local qstash = require "qstash"
local qsafe = require "qstash.safe"

describe("a cursor that cycles", function()
  local srv

  setup(function() srv = server.start() end)
  teardown(function() srv:stop() end)
  before_each(function()
    srv:reset()
    srv:default{ status = 400, json = { error = "cursor loop not detected: a request after the repeat" } }
  end)

  local function new(variant)
    return (variant or qstash).new{ token = "t", base_url = srv.url, retry = { attempts = 2, base_delay = 0.01 } }
  end

  -- Three pages whose cursors go a -> b -> a, built by `page(n, cursor)`.
  local function cycle(page)
    srv:script{ page(1, "a"), page(2, "b"), page(3, "a") }
  end

  local function says_repeat(err)
    local m = tostring(err.message):lower()
    return m:find("cursor", 1, true) ~= nil and
      (m:find("repeat", 1, true) or m:find("again", 1, true) or m:find("twice", 1, true) or
       m:find("cycl", 1, true) or m:find("loop", 1, true) or m:find("seen", 1, true)) ~= nil
  end

  local function assert_stopped_at_repeat(err)
    assert.is_true(qstash.is_error(err), tostring(err))
    assert.equal("decode", err.kind, tostring(err))
    assert.is_true(says_repeat(err), "the message does not say the cursor repeated: " .. tostring(err.message))
    assert.equal(3, #srv:requests(), "requests sent")
  end

  it("dlq_delete_many with a filter stops with what was deleted #issue11", function()
    local deleted = { 5, 7, 11 }
    cycle(function(n, cursor) return { status = 200, json = { deleted = deleted[n], cursor = cursor } } end)
    local c = new()
    local ok, err = pcall(c.dlq_delete_many, c, { url = "https://example.com/a" })
    c:close()
    assert.is_false(ok)
    assert_stopped_at_repeat(err)
    -- all three pages were deleted by the server
    assert.equal(23, err.deleted)
  end)

  it("dlq_retry_many{all = true} stops with the responses so far #issue11", function()
    cycle(function(n, cursor)
      return { status = 200, json = { responses = { { messageId = "msg_" .. n } }, cursor = cursor } }
    end)
    local c = new()
    local ok, err = pcall(c.dlq_retry_many, c, { all = true })
    c:close()
    assert.is_false(ok)
    assert_stopped_at_repeat(err)
    assert.is_table(err.responses)
    local got = {}
    for i, r in ipairs(err.responses) do got[i] = r.messageId end
    assert.same({ "msg_1", "msg_2", "msg_3" }, got)
  end)

  for _, variant in ipairs{ { "qstash", qstash }, { "qstash.safe", qsafe } } do
    it("dlq_messages raises after the messages it got (" .. variant[1] .. ") #issue11", function()
      cycle(function(n, cursor)
        return { status = 200, json = { messages = { { dlqId = "d" .. n } }, cursor = cursor } }
      end)
      local c = new(variant[2])
      local seen = {}
      local ok, err = pcall(function()
        for msg in c:dlq_messages{} do seen[#seen + 1] = msg.dlqId end
      end)
      c:close()
      assert.is_false(ok, "the loop ended without an error")
      assert_stopped_at_repeat(err)
      assert.same({ "d1", "d2", "d3" }, seen)
    end)
  end
end)
