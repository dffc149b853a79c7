-- The official TypeScript SDK against our emulator, cross-checked with our
-- client: publish, dlq.listMessages, dlq.retry, dlq.delete.
local E = require "spec.support.emulator"
local sdk = require "spec.support.ts_sdk"
local cjson = require "cjson"
local qstash = require "qstash"

describe("the official TypeScript SDK against the emulator", function()
  local emu, sink, client

  local function ts(command, args)
    local cmd = ("cd %s && env -u QSTASH_URL -u QSTASH_TOKEN -u QSTASH_DEV node drive.mjs %s %s %s %s"):format(
      E.shell_quote(sdk.dir), emu.url, emu.token, command, E.shell_quote(cjson.encode(args or {})))
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    local ok, value = pcall(cjson.decode, out)
    assert(ok, "unexpected output from node: " .. out)
    return value
  end

  setup(function()
    sdk.install()
    emu = E.start{ time_scale = 0.001 }
    sink = E.start_sink()
    client = qstash.new{ base_url = emu.url, token = emu.token }
  end)
  teardown(function()
    client:close()
    sink:stop()
    emu:stop()
  end)

  it("sees the same DLQ as our client, and retries and deletes in it", function()
    sink:set_status(500)
    -- one message published by the SDK, one by us
    local pub = ts("publish", { url = sink.url .. "/ts", body = { from = "ts" }, retries = 0 })
    assert.is_nil(pub.error)
    assert.matches("^msg_", pub.messageId)
    local ours = client:publish_json(sink.url .. "/lua", { from = "lua" }, { retries = 0 })
    assert.is_truthy(E.wait_for(function() return #client:dlq_list().messages == 2 end, 10))

    -- the SDK lists both, with the fields our client reads
    local listed = ts("list")
    assert.is_nil(listed.error)
    assert.equal(2, #listed.messages)
    local by_message = {}
    for _, m in ipairs(listed.messages) do by_message[m.messageId] = m end
    local theirs_entry, ours_entry = by_message[pub.messageId], by_message[ours.messageId]
    assert.is_truthy(theirs_entry)
    assert.is_truthy(ours_entry)
    assert.equal(500, ours_entry.responseStatus)
    assert.equal(client:dlq_get(ours_entry.dlqId).dlqId, ours_entry.dlqId)

    -- the SDK retries ours (through the bulk form), our client sees it gone
    sink:set_status(200)
    local retried = ts("retry", { dlqId = ours_entry.dlqId })
    assert.is_nil(retried.error)
    local ok, err = pcall(client.dlq_get, client, ours_entry.dlqId)
    assert.is_false(ok)
    assert.equal("not_found", err.kind)
    assert.is_truthy(E.wait_for(function()
      for _, r in ipairs(sink:received()) do if r.target == "/lua" then return true end end
    end, 10))

    -- we retry the SDK's message with overrides; the SDK then deletes nothing left
    local res = client:dlq_retry(theirs_entry.dlqId, { headers = { ["X-By"] = "lua" } })
    assert.matches("^msg_", res.messageId)
    local deleted = ts("delete", { dlqId = theirs_entry.dlqId })
    assert.is_truthy(deleted.error) -- 404: already retried
    assert.same({}, client:dlq_list().messages)
  end)

  it("deletes what our client published", function()
    sink:set_status(500)
    local pub = client:publish(sink.url .. "/del", "x", { retries = 0 })
    local entry = E.wait_for(function() return client:dlq_list{ message_id = pub.messageId }.messages[1] end, 10)
    assert.is_truthy(entry)
    local deleted = ts("delete", { dlqId = entry.dlqId })
    assert.is_nil(deleted.error)
    assert.same({}, client:dlq_list().messages)
  end)
end)
