-- qstash-dlq --report: one JSON line per DLQ id with the new message id or the
-- error, written as results come in, and a summary line; an interrupted
-- filtered retry carries on when run again; a 429 pause shows on the
-- progress line.

local E = require "spec.support.emulator"
local H = require "spec.support.cli"

describe("qstash-dlq --report", function()
  local cx = H.fixture{ time_scale = 0.001 }
  local emu, slow, sink, tmp, h, hs

  setup(function()
    emu, sink, tmp, h = cx.emu, cx.sink, cx.tmp, cx.h
    slow = E.start{ time_scale = 0.001, burst_limit = 4 }
    hs = H.new(slow, sink, tmp)
  end)

  teardown(function()
    if slow then slow:stop() end
  end)

  before_each(function() slow:reset() end)

  local n = 0
  local function fresh(name)
    n = n + 1
    return ("%s/%s-%d.jsonl"):format(tmp, name, n)
  end

  it("says which new message each retried id became, then sums up", function()
    local e = h:dead{ "/rep/a", "/rep/b", "/rep/a" }
    local report = fresh("report")
    local status, _, err = h:run{ "retry", "--url", sink.url .. "/rep/a", "--set-delay", "1d", "--report", report }
    assert.are.equal(0, status, err)
    local lines = H.read_jsonl(report)
    assert.are.equal(3, #lines)
    for i, entry in ipairs { e[1], e[3] } do
      local l = lines[i]
      assert.are.equal("retried", l.type)
      assert.are.equal(entry.dlqId, l.dlqId)
      assert.is_false(l.deduplicated)
      -- the new message carries this entry's body: the pairing is right
      local code, m, raw = emu:json("GET", "/v2/messages/" .. l.messageId)
      assert.are.equal(200, code, raw)
      assert.are.equal(entry.body, m.body)
    end
    local s = lines[3]
    assert.are.equal("summary", s.type)
    assert.are.equal("retry", s.command)
    assert.are.equal(2, s.selected)
    assert.are.equal(2, s.retried)
    assert.are.equal(0, s.failed)
    assert.are.equal(0, s.not_attempted)
    assert.are.equal(0, s.exit_status)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", s.started)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", s.finished)
  end)

  it("records each error with kind, status, message and ambiguous, and appends", function()
    local e = h:dead{ "/rep/e1", "/rep/e2" }
    local report = fresh("report")
    local status = h:run{ "retry", e[1].dlqId, "1-404", "--report", report }
    assert.are.equal(1, status)
    status = h:run{ "delete", e[2].dlqId, "2-404", "--report", report }
    assert.are.equal(1, status)
    local lines = H.read_jsonl(report)
    assert.are.equal(6, #lines)
    local by = {}
    for _, l in ipairs(lines) do by[(l.dlqId or "summary") .. "/" .. l.type] = l end
    assert.matches("^msg_", by[e[1].dlqId .. "/retried"].messageId)
    assert.are.same({ kind = "not_found", status = 404, message = "message not found in dlq", ambiguous = false },
      by["1-404/failed"].error)
    assert.are.equal(e[2].dlqId, by[e[2].dlqId .. "/deleted"].dlqId)
    assert.are.same({ kind = "not_found", status = 404, message = "not in the DLQ", ambiguous = false },
      by["2-404/failed"].error)
    assert.are.equal("retry", lines[3].command)
    assert.are.same({ 1, 1, 1 }, { lines[3].retried, lines[3].failed, lines[3].exit_status })
    assert.are.equal("delete", lines[6].command)
    assert.are.same({ 1, 1, 1 }, { lines[6].deleted, lines[6].failed, lines[6].exit_status })
  end)

  it("records the failure that stopped a filtered retry for each id it concerned", function()
    local paths = {}
    for i = 1, 150 do paths[i] = "/rep/stop" end
    h:dead(paths, nil, true)
    local report = fresh("report")
    -- the module sends any expression; the server refuses this one (400): the
    -- first batch fails and the command stops
    local status, out, err = h:run{ "retry", "--all", "--set-retry-delay", "1000 *", "--report", report }
    assert.are.equal(1, status)
    assert.are.equal("", out)
    assert.matches("qstash: bad_request (400)", err, 1, true)
    assert.matches("retried 0 of 150 messages: 100 failed, 50 not attempted", err, 1, true)
    local lines = H.read_jsonl(report)
    assert.are.equal(101, #lines)
    for i = 1, 100 do
      assert.are.equal("failed", lines[i].type)
      assert.are.equal("bad_request", lines[i].error.kind)
      assert.are.equal(400, lines[i].error.status)
      assert.is_false(lines[i].error.ambiguous)
      assert.is_string(lines[i].error.message)
    end
    assert.are.same({ 150, 0, 100, 50, 1 }, { lines[101].selected, lines[101].retried, lines[101].failed,
      lines[101].not_attempted, lines[101].exit_status })
    local _, left = h:dlq_ids()
    assert.are.equal(150, left)

    -- a scan that fails still ends the report with a summary
    status = h:run({ "retry", "--all", "--report", report, "--http-timeout", "1" },
      { QSTASH_URL = "http://127.0.0.1:1" })
    assert.are.equal(1, status)
    lines = H.read_jsonl(report)
    assert.are.equal(102, #lines)
    assert.are.equal("summary", lines[102].type)
    assert.are.equal("network", lines[102].error.kind)
    assert.are.equal(1, lines[102].exit_status)
  end)

  it("writes results as they come in; the same filtered retry carries on after a kill #timing", function()
    local paths = {}
    for i = 1, 300 do paths[i] = "/rep/kill" end
    hs.prefix = "killed "
    hs:dead(paths, { ["Upstash-Label"] = "incident" }, true)
    hs.prefix = nil
    local report = fresh("report")
    local args = { "retry", "--label", "incident", "--report", report }
    local pid = hs:spawn(args)
    assert.is_truthy(E.wait_for(function()
      return #H.lines(E.read_file(report) or "") >= 100 or not E.alive(pid)
    end, 60, 0.005))
    assert.is_true(E.alive(pid), "the retry ended before it could be killed")
    assert.is_true(E.exec_ok("kill -KILL " .. pid))
    assert.is_truthy(E.wait_for(function() return not E.alive(pid) end, 10))
    local _, left = hs:dlq_ids()
    assert.is_true(left > 0 and left < 300, "not killed mid-way: " .. left .. " left")

    local status, _, err = hs:run(args)
    assert.are.equal(0, status, err)
    local lines = H.read_jsonl(report)
    local summary = lines[#lines]
    assert.are.equal("summary", summary.type)
    assert.are.equal(0, summary.exit_status)
    assert.are.equal(summary.selected, summary.retried)
    assert.is_true(summary.selected <= left)
    -- every message was retried exactly once: each body delivered once
    local bodies = E.wait_for(function()
      local seen, count = {}, 0
      for _, r in ipairs(sink:received()) do
        if r.target == "/rep/kill" then
          seen[r.body] = (seen[r.body] or 0) + 1
          count = count + 1
        end
      end
      if count >= 300 then return seen end
    end, 30)
    assert.is_truthy(bodies, "not every message was delivered")
    for i = 1, 300 do assert.are.equal(1, bodies["killed " .. i], "killed " .. i) end
    local _, after = hs:dlq_ids()
    assert.are.equal(0, after)
  end)

  it("shows a 429 pause on the progress line #timing", function()
    -- one request a second: of any three requests sent less than half a
    -- second apart, one waits most of a second (longer than the client
    -- sleeps through itself), which the command shows
    local strict = E.start{ time_scale = 0.001, burst_limit = 1 }
    local ok, err = pcall(function()
      local hh = H.new(strict, sink, tmp)
      local paths = {}
      for i = 1, 150 do paths[i] = "/rep/429" end
      hh:dead(paths, nil, true)
      local report = fresh("report")
      local status, out = hh:run({ "retry", "--all", "--set-delay", "1d", "--report", report }, nil, true)
      assert.are.equal(0, status, out)
      local verb = out:match("\r(%a+)[^\r\n]*  rate limited %(burst limit%): waiting %d+ s\27%[K")
      assert.is_truthy(verb == "scanning" or verb == "retrying", out)
      assert.matches("retried 150 messages", out, 1, true)
      local lines = H.read_jsonl(report)
      assert.is_true(lines[#lines].rate_limit_pauses >= 1)
    end)
    strict:stop()
    assert(ok, err)
  end)
end)
