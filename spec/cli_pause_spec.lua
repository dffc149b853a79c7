-- qstash-dlq pause and resume: queues and flow-control keys (and schedules)
-- named as the filters name them; --dry-run sends nothing that changes state
-- (the emulator's request log says so), --report writes a line per source,
-- and a source already in that state or unknown exits 3, never silently 0.

local E = require "spec.support.emulator"
local H = require "spec.support.cli"
local cjson = require "cjson"

describe("qstash-dlq pause and resume", function()
  local cx = H.fixture{ time_scale = 0.001, quiet = false } -- a request log
  local emu, tmp, h

  setup(function() emu, tmp, h = cx.emu, cx.tmp, cx.h end)

  -- The API requests (method, path) the emulator logged after offset.
  local function requests_since(offset)
    E.sleep(0.2) -- the log line of the last request
    local out = {}
    for line in emu:log():sub(offset + 1):gmatch("[^\n]+") do
      local method, target = line:match('"(%u+) (/v2/%S*) HTTP/1%.1"')
      if method then out[#out + 1] = method .. " " .. target end
    end
    return out
  end

  local function queue(name, paused)
    local status, _, raw = emu:json("POST", "/v2/queues", { headers = { ["Content-Type"] = "application/json" },
      body = cjson.encode { queueName = name, parallelism = 1, paused = paused or false } })
    assert(status == 200, raw)
  end

  local function queue_paused(name)
    local status, doc, raw = emu:json("GET", "/v2/queues/" .. name)
    assert(status == 200, raw)
    return doc.paused == true
  end

  -- A flow-control key exists once a message used it.
  local function flow_key(key)
    h:dead({ "/fc" }, { ["Upstash-Flow-Control-Key"] = key, ["Upstash-Flow-Control-Value"] = "parallelism=1" })
  end

  local function key_paused(key)
    local status, doc, raw = emu:json("GET", "/v2/flowControl/" .. key)
    assert(status == 200, raw)
    return doc.isPaused == true
  end

  it("pauses and resumes queues and flow-control keys, one line each", function()
    queue("orders")
    queue("billing")
    flow_key("tenant-1")
    local status, out, err = h:run{ "pause", "--queue", "orders", "--flow-control-key", "tenant-1",
      "--queue", "billing" }
    assert.are.equal(0, status, err)
    assert.are.equal("paused queue orders\npaused queue billing\npaused flow-control key tenant-1\n", out)
    assert.matches("paused 3 of 3 sources: 0 unchanged, 0 failed", err, 1, true)
    assert.is_true(queue_paused("orders"))
    assert.is_true(queue_paused("billing"))
    assert.is_true(key_paused("tenant-1"))

    status, out, err = h:run{ "resume", "--queue", "orders", "--flow-control-key", "tenant-1" }
    assert.are.equal(0, status, err)
    assert.are.equal("resumed queue orders\nresumed flow-control key tenant-1\n", out)
    assert.is_false(queue_paused("orders"))
    assert.is_true(queue_paused("billing"))
    assert.is_false(key_paused("tenant-1"))
  end)

  it("pauses and resumes a schedule; an unknown schedule id exits 3", function()
    local code, _, raw = emu:json("POST", "/v2/schedules/https://example.com/yearly", { body = "x",
      headers = { ["Upstash-Cron"] = "0 0 1 1 *", ["Upstash-Schedule-Id"] = "yearly" } })
    assert(code == 200, raw)
    local function paused()
      local status, doc, r = emu:json("GET", "/v2/schedules/yearly")
      assert(status == 200, r)
      return doc.isPaused == true
    end
    local status, out, err = h:run{ "pause", "--schedule-id", "yearly" }
    assert.are.equal(0, status, err)
    assert.are.equal("paused schedule yearly\n", out)
    assert.is_true(paused())

    status, out, err = h:run{ "pause", "--schedule-id", "yearly", "--schedule-id", "scd_nosuch" }
    assert.are.equal(3, status)
    assert.are.equal("", out)
    assert.matches("schedule yearly is already paused", err, 1, true)
    assert.matches("schedule scd_nosuch does not exist", err, 1, true)

    status, out, err = h:run{ "resume", "--schedule-id", "yearly" }
    assert.are.equal(0, status, err)
    assert.are.equal("resumed schedule yearly\n", out)
    assert.is_false(paused())
  end)

  it("exits 3 for a source already paused, one not paused, or one that does not exist", function()
    queue("orders", true)
    queue("idle")
    local status, out, err = h:run{ "pause", "--queue", "orders" }
    assert.are.equal(3, status)
    assert.are.equal("", out)
    assert.matches("queue orders is already paused", err, 1, true)

    status, out, err = h:run{ "resume", "--queue", "idle" }
    assert.are.equal(3, status)
    assert.are.equal("", out)
    assert.matches("queue idle is not paused", err, 1, true)

    local offset = #emu:log()
    status, out, err = h:run{ "pause", "--queue", "nosuch", "--flow-control-key", "nokey", "--queue", "idle" }
    assert.are.equal(3, status)
    assert.are.equal("paused queue idle\n", out)
    assert.matches("queue nosuch does not exist", err, 1, true)
    assert.matches("flow-control key nokey does not exist", err, 1, true)
    assert.matches("paused 1 of 3 sources: 2 unchanged, 0 failed", err, 1, true)
    -- an unknown source is read, never paused (which might create it)
    for _, r in ipairs(requests_since(offset)) do
      assert.is_nil(r:find("nosuch/pause", 1, true), r)
      assert.is_nil(r:find("nokey/pause", 1, true), r)
    end
    local code = emu:json("GET", "/v2/queues/nosuch")
    assert.are.equal(404, code)
  end)

  it("rehearses with --dry-run: reads each state, sends nothing that changes it, writes no report", function()
    queue("orders")
    queue("held", true)
    flow_key("tenant-1")
    local report = tmp .. "/pause-dry.jsonl"
    local offset = #emu:log()
    local status, out, err = h:run{ "pause", "--queue", "orders", "--queue", "held", "--flow-control-key",
      "tenant-1", "--dry-run", "--report", report }
    assert.are.equal(3, status) -- as the real run would: "held" is already paused
    assert.are.equal("dry run: 2 sources would be paused; nothing was changed\n  queue orders\n" ..
      "  flow-control key tenant-1\nwould append results to " .. report .. "\n", out)
    assert.matches("queue held is already paused", err, 1, true)
    assert.are.same({ "GET /v2/queues/orders", "GET /v2/queues/held", "GET /v2/flowControl/tenant-1" },
      requests_since(offset))
    assert.is_false(queue_paused("orders"))
    assert.is_false(key_paused("tenant-1"))
    assert.is_nil(io.open(report), "a dry run wrote the report")

    status, out, err = h:run{ "resume", "--queue", "held", "--dry-run" }
    assert.are.equal(0, status, err)
    assert.are.equal("dry run: 1 source would be resumed; nothing was changed\n  queue held\n", out)
    assert.is_true(queue_paused("held"))
  end)

  it("appends a JSON line per source and a summary to --report", function()
    queue("orders")
    queue("held", true)
    local report = tmp .. "/pause.jsonl"
    os.remove(report)
    local status, _, err = h:run{ "pause", "--queue", "orders", "--queue", "held", "--queue", "gone",
      "--report", report }
    assert.are.equal(3, status, err)
    local lines = H.read_jsonl(report)
    assert.are.equal(4, #lines)
    assert.are.same({ type = "paused", kind = "queue", name = "orders" }, lines[3])
    local unchanged = { lines[1], lines[2] }
    table.sort(unchanged, function(x, y) return x.name < y.name end)
    assert.are.same({ type = "unchanged", kind = "queue", name = "gone", reason = "not_found" }, unchanged[1])
    assert.are.same({ type = "unchanged", kind = "queue", name = "held", reason = "already_paused" }, unchanged[2])
    local s = lines[4]
    assert.are.equal("summary", s.type)
    assert.are.equal("pause", s.command)
    assert.are.same({ 3, 1, 2, 0, 3 }, { s.selected, s.paused, s.unchanged, s.failed, s.exit_status })

    status, _, err = h:run{ "resume", "--queue", "orders", "--report", report }
    assert.are.equal(0, status, err)
    lines = H.read_jsonl(report)
    assert.are.equal(6, #lines) -- appended, never truncated
    assert.are.same({ type = "resumed", kind = "queue", name = "orders" }, lines[5])
    assert.are.same({ "summary", "resume", 1, 1, 0, 0 }, { lines[6].type, lines[6].command, lines[6].selected,
      lines[6].resumed, lines[6].unchanged, lines[6].exit_status })
  end)

  it("is a usage error (2) without a source, and for a name the module refuses, sending nothing", function()
    queue("orders")
    local offset = #emu:log()
    for _, args in ipairs {
      { "pause" }, { "resume", "--dry-run" }, { "pause", "--url", "https://example.com" },
      { "pause", "--queue", "orders", "--queue", "a/b" },
    } do
      local status, out, err = h:run(args)
      assert.are.equal(2, status, table.concat(args, " ") .. ": " .. err)
      assert.are.equal("", out)
    end
    local _, _, err = h:run{ "pause" }
    assert.matches("nothing to pause: give --schedule-id, --queue or --flow-control-key", err, 1, true)
    for _, r in ipairs(requests_since(offset)) do assert.matches("^GET ", r) end
    assert.is_false(queue_paused("orders"))
  end)

  it("names the new exit code in --help", function()
    local status, out = h:run{ "--help" }
    assert.are.equal(0, status)
    assert.matches("3 pause/resume left a source unchanged", out, 1, true)
  end)
end)
