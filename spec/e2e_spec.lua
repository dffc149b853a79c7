-- End to end through the client against the local emulator: a message
-- fails into the DLQ, is found, retried with overrides and delivered.
local E = require "spec.support.emulator"
local qstash = require "qstash"

describe("client + emulator", function()
  local fx = E.fixture{ time_scale = 0.001 }
  local emu, sink, client

  setup(function()
    emu, sink = fx.emu, fx.sink
    client = qstash.new{ base_url = emu.url, token = emu.token, retry = { base_delay = 0.01 }, timeout = 5 }
  end)
  teardown(function() if client then client:close() end end)

  -- Publishes to a failing destination with retries = 0 and waits for the DLQ entry.
  local function fail_into_dlq(path, body, opts)
    sink:set_status(500, { body = "destination down" })
    opts = opts or {}
    opts.retries = 0
    local res = client:publish(sink.url .. path, body, opts)
    local entry = E.wait_for(function()
      return (client:dlq_messages{ message_id = res.messageId })()
    end, 10)
    assert.is_truthy(entry, "message did not reach the DLQ")
    return entry, res
  end

  it("publish -> DLQ -> dlq_retry with overrides -> delivered with them", function()
    local entry, published = fail_into_dlq("/orders", '{"order":1}', {
      content_type = "application/json", headers = { ["X-Tenant"] = "t1" }, label = "orders" })
    assert.equal(published.messageId, entry.messageId)
    assert.equal(500, entry.responseStatus)
    assert.equal("destination down", entry.responseBody)
    assert.equal(sink.url .. "/orders", entry.url)
    assert.matches("^%d+%-%d+$", entry.dlqId)

    local got = client:dlq_get(entry.dlqId)
    assert.equal('{"order":1}', got.body)

    sink:clear()
    sink:set_status(200)
    local res = client:dlq_retry(entry.dlqId, { retries = 1, headers = { ["X-Replayed"] = "yes" } })
    assert.matches("^msg_", res.messageId)
    assert.not_equal(published.messageId, res.messageId)
    assert.is_false(res.deduplicated)

    local delivered = E.wait_for(function() return sink:received()[1] end, 10)
    assert.is_truthy(delivered)
    assert.equal('{"order":1}', delivered.body)
    assert.equal("yes", sink:header(delivered, "X-Replayed"))
    assert.equal("t1", sink:header(delivered, "X-Tenant"))
    assert.equal(res.messageId, sink:header(delivered, "Upstash-Message-Id"))

    -- the entry is consumed exactly once
    local ok, err = pcall(client.dlq_get, client, entry.dlqId)
    assert.is_false(ok)
    assert.equal("not_found", err.kind)
    ok, err = pcall(client.dlq_retry, client, entry.dlqId)
    assert.is_false(ok)
    assert.equal("not_found", err.kind)
  end)

  it("a retry that fails again carries the overridden retry count", function()
    local entry = fail_into_dlq("/again", "x")
    sink:set_status(503)
    local res = client:dlq_retry(entry.dlqId, { retries = 2, retry_delay = "10" })
    local again = E.wait_for(function()
      return (client:dlq_messages{ message_id = res.messageId })()
    end, 10)
    assert.is_truthy(again)
    assert.equal(2, again.maxRetries)
    assert.equal(503, again.responseStatus)
    assert.equal(3, #emu:deliveries("messageId=" .. res.messageId))
  end)

  it("lists with filters and pages, bulk-retries and bulk-deletes", function()
    local ids = {}
    for i = 1, 5 do ids[i] = fail_into_dlq("/bulk/" .. i, "b" .. i, { label = i <= 3 and "three" or "two" }).dlqId end
    local page = client:dlq_list{ count = 2 }
    assert.equal(2, #page.messages)
    assert.is_string(page.cursor)
    local n = 0
    for _ in client:dlq_messages{ count = 2 } do n = n + 1 end
    assert.equal(5, n)
    assert.equal(3, #client:dlq_list{ label = "three" }.messages)

    sink:set_status(200)
    local res = client:dlq_retry_many({ ids[1], ids[2] }, { headers = { ["X-Bulk"] = "1" } })
    assert.equal(2, #res.responses)
    assert.same({ deleted = 1 }, client:dlq_delete_many{ label = "three" })
    assert.is_true(client:dlq_delete(ids[4]))
    res = client:dlq_retry_many({ all = true })
    assert.equal(1, #res.responses)
    assert.same({}, client:dlq_list().messages)
  end)

  it("signs deliveries so that qstash.verify accepts them", function()
    local entry = fail_into_dlq("/signed", "payload")
    sink:clear()
    sink:set_status(200)
    client:dlq_retry(entry.dlqId)
    local delivered = E.wait_for(function() return sink:received()[1] end, 10)
    local claims = qstash.verify{
      signature = sink:header(delivered, "Upstash-Signature"),
      body = delivered.body,
      url = sink.url .. "/signed",
      current_signing_key = E.CURRENT_SIGNING_KEY,
      next_signing_key = E.NEXT_SIGNING_KEY,
    }
    assert.equal("Upstash", claims.iss)
    assert.equal(sink.url .. "/signed", claims.sub)
    local ok, err = pcall(qstash.verify, {
      signature = sink:header(delivered, "Upstash-Signature"), body = "tampered",
      current_signing_key = E.CURRENT_SIGNING_KEY })
    assert.is_false(ok)
    assert.equal("body_mismatch", err.reason)
  end)

  it("waits out the burst limit's 429 by its reset header #timing", function()
    local limited = E.start{ time_scale = 0.001, burst_limit = 2 }
    local c = qstash.new{ base_url = limited.url, token = limited.token,
      retry = { attempts = 5, base_delay = 0.01, max_delay = 2 } }
    local t0 = E.now()
    for _ = 1, 6 do assert.same({}, c:dlq_list().messages) end
    -- six calls at two a second: the client must have waited for the window
    assert.is_true(E.now() - t0 >= 1, "no 429 was waited out")
    c:close()
    limited:stop()
  end)

  it("rejects a wrong token with unauthorized", function()
    local c = qstash.new{ base_url = emu.url, token = "wrong-token-value" }
    local ok, err = pcall(c.dlq_list, c)
    c:close()
    assert.is_false(ok)
    assert.equal("unauthorized", err.kind)
  end)

  it("dev = true with QSTASH_DEV_PORT targets the emulator", function()
    local child = require "spec.support.child"
    local out, ok = child.run([[
      local q = require "qstash"
      local c = q.new{ dev = true }
      print("KEYS", #c:dlq_list().messages)
    ]], { QSTASH_DEV_PORT = tostring(emu.port) })
    assert.is_true(ok, out)
    assert.matches("KEYS\t0", out)
  end)
end)
