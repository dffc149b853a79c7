-- qstash-dlq retry --follow and qstash-dlq logs: the new messages are
-- followed to their end (delivered, failed again with the new DLQ id, still
-- pending), on stdout, the progress line and the --report lines; logs prints
-- a message's history oldest first.

local H = require "spec.support.cli"

describe("qstash-dlq retry --follow and logs", function()
  local cx = H.fixture{ time_scale = 0.001 }
  local sink, tmp, h

  setup(function() sink, tmp, h = cx.sink, cx.tmp, cx.h end)

  local n = 0
  local function fresh(name)
    n = n + 1
    return ("%s/%s-%d.jsonl"):format(tmp, name, n)
  end

  local FAST = { "--follow", "--follow-interval", "0.05", "--follow-timeout", "20" }
  local function with(args, extra)
    local out = {}
    for _, v in ipairs(args) do out[#out + 1] = v end
    for _, v in ipairs(extra or FAST) do out[#out + 1] = v end
    return out
  end

  local function by_dlq(lines)
    local by, summary = {}, nil
    for _, l in ipairs(lines) do
      if l.type == "summary" then summary = l else by[l.dlqId] = l end
    end
    return by, summary
  end

  it("given ids: waits until each new message is delivered, and says so", function()
    local e = h:dead{ "/f/a", "/f/b" }
    local report = fresh("report")
    local status, out, err = h:run(with { "retry", e[1].dlqId, e[2].dlqId, "--report", report })
    assert.are.equal(0, status, err)
    for _, entry in ipairs(e) do
      assert.matches(entry.dlqId:gsub("%-", "%%-") .. " %-> msg_%w+  delivered\n", out)
    end
    assert.matches("2 delivered, 0 failed again, 0 cancelled, 0 still pending", err)
    -- delivered: the sink got both before the command ended
    assert.are.equal(2, #sink:received())
    local by, s = by_dlq(H.read_jsonl(report))
    for _, entry in ipairs(e) do
      assert.are.equal("DELIVERED", by[entry.dlqId].delivery)
      assert.is_nil(by[entry.dlqId].newDlqId)
    end
    assert.are.equal(2, s.delivered)
    assert.are.equal(0, s.failed_again)
    assert.are.equal(0, s.exit_status)
  end)

  it("a message that fails again shows its new DLQ id, in the report too, and exits 1", function()
    local e = h:dead{ "/f/again" }
    sink:set_status(500)
    local report = fresh("report")
    local status, out, err = h:run(with { "retry", e[1].dlqId, "--set-retries", "0", "--report", report })
    assert.are.equal(1, status, err)
    local mid, new_dlq = out:match("%-> (msg_%w+)  failed again: new DLQ id (%S+)\n")
    assert.truthy(new_dlq, out)
    assert.are_not.equal(e[1].dlqId, new_dlq)
    -- the new DLQ entry is that message's
    local entry = h:in_dlq(mid)
    assert.truthy(entry)
    assert.are.equal(new_dlq, entry.dlqId)
    local by, s = by_dlq(H.read_jsonl(report))
    assert.are.equal("FAILED", by[e[1].dlqId].delivery)
    assert.are.equal(new_dlq, by[e[1].dlqId].newDlqId)
    assert.are.equal(mid, by[e[1].dlqId].messageId)
    assert.are.equal(1, s.failed_again)
    assert.are.equal(1, s.retried)
    assert.are.equal(0, s.failed)
    assert.are.equal(1, s.exit_status)
  end)

  it("a snapshot (filters) is followed per batch, with counts on the progress line", function()
    local e = h:dead{ "/f/s1", "/f/s2", "/f/other" }
    local report = fresh("report")
    local status, out = h:run(with { "retry", "--url", sink.url .. "/f/s1", "--url", sink.url .. "/f/s2",
      "--report", report }, nil, true)
    assert.are.equal(0, status, out)
    assert.matches("delivered 2, failed again 0, pending 0", out)
    local by, s = by_dlq(H.read_jsonl(report))
    assert.are.equal("DELIVERED", by[e[1].dlqId].delivery)
    assert.are.equal("DELIVERED", by[e[2].dlqId].delivery)
    assert.is_nil(by[e[3].dlqId])
    assert.are.equal(2, s.delivered)
    -- the third entry is still there, untouched
    assert.truthy(h:in_dlq(e[3].messageId))
  end)

  it("a message not ended at --follow-timeout is still pending: exit 1", function()
    local e = h:dead{ "/f/late" }
    local report = fresh("report")
    local status, out = h:run(with({ "retry", "--url", sink.url .. "/f/late", "--set-delay", "1d",
      "--report", report }, { "--follow", "--follow-interval", "0.05", "--follow-timeout", "0.3" }))
    assert.are.equal(1, status)
    assert.matches("still pending after 0.3 s", out)
    local by, s = by_dlq(H.read_jsonl(report))
    assert.are.equal("PENDING", by[e[1].dlqId].delivery)
    assert.are.equal(1, s.pending)
    assert.are.equal(0, #sink:received())
  end)

  it("--dry-run with --follow follows nothing and sends only GETs", function()
    local e = h:dead{ "/f/dry" }
    local status, out = h:run(with { "retry", e[1].dlqId, "--dry-run" })
    assert.are.equal(0, status)
    assert.matches("would be retried", out)
    assert.truthy(h:in_dlq(e[1].messageId))
    assert.are.equal(0, #sink:received())
  end)

  it("--follow-timeout and --follow-interval without --follow, or not positive, are usage errors", function()
    local e = h:dead{ "/f/usage" }
    local status, _, err = h:run{ "retry", e[1].dlqId, "--follow-timeout", "5" }
    assert.are.equal(2, status)
    assert.matches("need %-%-follow", err)
    status = h:run{ "retry", e[1].dlqId, "--follow", "--follow-interval", "0" }
    assert.are.equal(2, status)
    assert.truthy(h:in_dlq(e[1].messageId))
  end)

  it("logs MESSAGE_ID prints the history oldest first", function()
    local e = h:dead{ "/f/history" }
    sink:set_status(500)
    local _, out = h:run(with { "retry", e[1].dlqId, "--set-retries", "0" })
    local mid = out:match("%-> (msg_%w+)")
    assert.truthy(mid, out)
    local status, table_out, err = h:run{ "logs", mid }
    assert.are.equal(0, status, err)
    local lines = H.lines(table_out)
    assert.matches("^TIME%s+STATE%s+STATUS%s+ERROR%s+NEXT DELIVERY$", lines[1])
    local states = {}
    for i = 2, #lines do
      local t, state = lines[i]:match("^(%S+)%s+(%S+)")
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", t)
      states[#states + 1] = state
    end
    assert.are.same({ "CREATED", "ACTIVE", "ERROR", "FAILED" }, states)
    assert.matches("FAILED%s+500%s+status 500", table_out)

    status, table_out = h:run{ "logs", mid, "--json" }
    assert.are.equal(0, status)
    local docs = H.decode_lines(table_out)
    assert.are.equal(4, #docs)
    assert.are.equal("CREATED", docs[1].state)
    assert.are.equal("FAILED", docs[4].state)
    assert.are.equal(mid, docs[4].messageId)
    assert.truthy(docs[1].time <= docs[4].time)
  end)

  it("logs of an unknown message says so and exits 1; logs without an id exits 2", function()
    local status, out, err = h:run{ "logs", "msg_nosuchmessage" }
    assert.are.equal(1, status)
    assert.are.equal("", out)
    assert.matches("no log entries", err)
    status, out, err = h:run{ "logs" }
    assert.are.equal("", out)
    assert.are.equal(2, status)
    assert.matches("missing argument", err)
    status = h:run{ "logs", "msg_a", "msg_b" }
    assert.are.equal(2, status)
  end)
end)
