-- A filter value that names nothing (only ',' and spaces, which QStash's
-- comma-separated reading turns into no filter: every message) raises an
-- argument error before anything is sent, in every call that takes filters.
local server = require "spec.support.server"
local qstash = require "qstash"

describe("filters made only of separators", function()
  local srv, client

  setup(function()
    srv = server.start()
    client = qstash.new{ token = "t", base_url = srv.url, retry = false, timeout = 2 }
  end)
  teardown(function()
    client:close()
    srv:stop()
  end)
  before_each(function() srv:reset() end)

  local NBSP, IDEO = "\194\160", "\227\128\128" -- U+00A0, U+3000
  local EMPTY = { ",", " ", ", ,", ",,,", " , ", NBSP, "," .. IDEO .. ",", NBSP .. " ," }

  -- Each call that takes filters, with the filter table.
  local calls = {
    { "dlq_list", function(f) return client:dlq_list(f) end },
    { "dlq_messages", function(f) for _ in client:dlq_messages(f) do end end },
    { "dlq_delete_many", function(f) return client:dlq_delete_many(f) end },
    { "dlq_retry_many", function(f) return client:dlq_retry_many(f, {}) end },
    { "logs", function(f) return client:logs(f) end },
    { "cancel_many", function(f) return client:cancel_many(f) end },
    { "prepare dlq_delete_many", function(f) return client:prepare("dlq_delete_many", f) end },
  }

  for _, c in ipairs(calls) do
    it(c[1] .. " refuses them as a value and as an array item, sending nothing", function()
      for _, v in ipairs(EMPTY) do
        for _, filter in ipairs{ { label = v }, { url = v }, { label = { "a", v } }, { url = { v } } } do
          local ok, err = pcall(c[2], filter)
          assert.is_false(ok, c[1] .. " took " .. string.format("%q", v))
          assert.is_false(qstash.is_error(err), tostring(err))
          assert.matches("only separators and spaces", tostring(err), 1, true)
        end
      end
      assert.are.same({}, srv:requests())
    end)
  end

  it("refuses them for every string filter of the DLQ, the logs and bulk cancel", function()
    local sets = {
      { function(f) return client:dlq_list(f) end,
        { "message_id", "url", "url_group", "schedule_id", "queue_name", "caller_ip", "label",
          "flow_control_key", "dlq_ids" } },
      { function(f) return client:logs(f) end,
        { "message_id", "message_ids", "url", "url_group", "schedule_id", "queue_name", "caller_ip", "label",
          "flow_control_key", "host", "path" } },
      { function(f) return client:cancel_many(f) end,
        { "url", "url_group", "schedule_id", "queue_name", "caller_ip", "label", "flow_control_key", "host",
          "path" } },
    }
    for _, set in ipairs(sets) do
      for _, key in ipairs(set[2]) do
        local ok, err = pcall(set[1], { [key] = key == "message_ids" and { " , " } or " , " })
        assert.is_false(ok, key)
        assert.matches("'" .. key .. "'", tostring(err), 1, true)
      end
    end
    assert.are.same({}, srv:requests())
  end)

  it("refuses a ',' in the one-value message_id filter (it would name several messages)", function()
    local ok, err = pcall(client.dlq_list, client, { message_id = "msg_a,msg_b" })
    assert.is_false(ok)
    assert.matches("one value", tostring(err), 1, true)
    assert.are.same({}, srv:requests())
  end)

  it("still sends values that name something, separators and all, percent-encoded", function()
    srv:script{ { status = 200, json = { messages = {} } } }
    client:dlq_list{ label = { " a ,", "b" } }
    local reqs = srv:requests()
    assert.are.equal(1, #reqs)
    assert.are.equal("/v2/dlq?label=%20a%20%2C&label=b", reqs[1].target)
  end)
end)
