-- qstash-dlq retry of several DLQ ids that QStash deduplicates into one new
-- message (--set-dedup-id): every id is counted as retried, with or without
-- --follow, and each is reported once with the shared message.

local H = require "spec.support.cli"

describe("qstash-dlq retry with a shared new message", function()
  local cx = H.fixture{ time_scale = 0.001 }

  local n = 0
  local function fresh()
    n = n + 1
    return ("%s/dedup-%d.jsonl"):format(cx.tmp, n)
  end

  local function by_dlq(lines)
    local by, summary, count = {}, nil, 0
    for _, l in ipairs(lines) do
      if l.type == "summary" then summary = l else by[l.dlqId], count = l, count + 1 end
    end
    return by, summary, count
  end

  local function check(args, follow)
    local h = cx.h
    local e = h:dead{ "/d/1", "/d/2" }
    local report = fresh()
    local full = { "retry", e[1].dlqId, e[2].dlqId, "--set-dedup-id", "same-" .. n, "--report", report }
    for _, v in ipairs(args) do full[#full + 1] = v end
    local status, out, err = h:run(full)
    assert.are.equal(0, status, out .. err)
    assert.matches("retried 2 messages", err, 1, true)
    if follow then assert.matches("2 delivered, 0 failed again, 0 cancelled, 0 still pending", err, 1, true) end
    local lines = H.lines(out)
    assert.are.equal(2, #lines, out)
    local by, s, count = by_dlq(H.read_jsonl(report))
    assert.are.equal(2, count)
    local mid = by[e[1].dlqId].messageId
    assert.is_string(mid)
    assert.are.equal(mid, by[e[2].dlqId].messageId) -- one message for both
    for _, entry in ipairs(e) do
      assert.are.equal("retried", by[entry.dlqId].type)
      if follow then assert.are.equal("DELIVERED", by[entry.dlqId].delivery) end
    end
    assert.are.equal(2, s.retried)
    assert.are.equal(0, s.not_attempted)
    assert.are.equal(0, s.failed)
    if follow then assert.are.equal(2, s.delivered) end
    local left = h:dlq_ids()
    for _, entry in ipairs(e) do assert.is_nil(left[entry.dlqId]) end
  end

  it("given ids with --follow: retried 2 of 2, both delivered, exit 0", function()
    check({ "--follow", "--follow-interval", "0.05", "--follow-timeout", "20" }, true)
  end)

  it("given ids without --follow: retried 2 of 2, exit 0", function()
    check({}, false)
  end)
end)
