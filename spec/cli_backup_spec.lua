-- qstash-dlq delete --backup: each message written whole and fsync'd before
-- the request that deletes it; only what was written is deleted; a process
-- killed mid-way has every deleted message in the file.

local E = require "spec.support.emulator"
local H = require "spec.support.cli"

describe("qstash-dlq delete --backup", function()
  local cx = H.fixture{ time_scale = 0.001 }
  local slow, sink, tmp, h, hs

  setup(function()
    sink, tmp, h = cx.sink, cx.tmp, cx.h
    -- 4 requests a second: a delete of 300 messages takes seconds, time to kill it
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

  local function by_id(list)
    local map = {}
    for _, m in ipairs(list) do map[m.dlqId] = m end
    return map
  end

  it("writes each message whole, then deletes it: filters and ids alike", function()
    local e = h:dead({ "/b/a", "/b/b", "/b/a", "/b/c" }, { ["Upstash-Label"] = "nightly" })
    local before = by_id(h:dlq())
    local backup, report = fresh("backup"), fresh("report")
    local status, out, err = h:run{ "delete", "--url", sink.url .. "/b/a", "--backup", backup, "--report", report }
    assert.are.equal(0, status, err)
    assert.are.equal("deleted " .. e[1].dlqId .. "\ndeleted " .. e[3].dlqId .. "\n", out)
    local saved = H.read_jsonl(backup)
    assert.are.same({ before[e[1].dlqId], before[e[3].dlqId] }, saved)
    assert.are.equal("body 1", saved[1].body)

    -- ids, appended to the same file; an id not in the DLQ is not written
    status, out, err = h:run{ "delete", e[4].dlqId, "1-404", "--backup", backup }
    assert.are.equal(1, status)
    assert.are.equal("deleted " .. e[4].dlqId .. "\n", out)
    assert.matches("1-404: not in the DLQ", err, 1, true)
    saved = H.read_jsonl(backup)
    assert.are.equal(3, #saved)
    assert.are.same(before[e[4].dlqId], saved[3])
    local left, count = h:dlq_ids()
    assert.are.equal(1, count)
    assert.is_true(left[e[2].dlqId])
    local p = io.popen("stat -c %a " .. E.shell_quote(backup))
    assert.are.equal("600", p:read("*l"))
    p:close()
  end)

  it("deletes nothing when the backup cannot be written", function()
    local e = h:dead{ "/b/full", "/b/full" }
    local status, out, err = h:run{ "delete", "--all", "--backup", "/dev/full" }
    assert.are.equal(1, status)
    assert.are.equal("", out)
    assert.matches("cannot write /dev/full", err, 1, true)
    local _, count = h:dlq_ids()
    assert.are.equal(2, count)

    status, out, err = h:run{ "delete", e[1].dlqId, "--backup", tmp .. "/no/such/dir/backup.jsonl" }
    assert.are.equal("", out)
    assert.are.equal(2, status)
    assert.matches("cannot open", err, 1, true)
    _, count = h:dlq_ids()
    assert.are.equal(2, count)
    assert.are.equal(2, (h:run{ "delete", "--all", "--backup", "-" }))
  end)

  it("leaves every deleted message in the file when killed mid-way #timing", function()
    local paths = {}
    for i = 1, 300 do paths[i] = "/b/kill" end
    hs:dead(paths, nil, true)
    local original = by_id(hs:dlq())
    local backup = fresh("killed")

    -- id -> message; a line cut by a kill is a message not deleted yet
    local function read_backup()
      local saved = {}
      for _, line in ipairs(H.lines(E.read_file(backup))) do
        local ok, m = pcall(require("cjson").decode, line)
        if ok then saved[m.dlqId] = m end
      end
      return saved
    end

    -- Kills a run once the backup holds at least `lines` lines, then checks:
    -- every message that left the DLQ is in the file, whole.
    local function kill_at(lines)
      local pid = hs:spawn{ "delete", "--all", "--backup", backup }
      local reached = E.wait_for(function()
        return #H.lines(E.read_file(backup) or "") >= lines or not E.alive(pid)
      end, 60, 0.005)
      assert.is_truthy(reached)
      assert.is_true(E.alive(pid), "the delete ended before it could be killed")
      assert.is_true(E.exec_ok("kill -KILL " .. pid))
      assert.is_truthy(E.wait_for(function() return not E.alive(pid) end, 10))

      local saved = read_backup()
      local left = hs:dlq_ids()
      local gone = 0
      for id, m in pairs(original) do
        if not left[id] then
          gone = gone + 1
          assert.is_truthy(saved[id], id .. " was deleted but is not in the backup")
          assert.are.same(m, saved[id])
        end
      end
      return gone, left
    end

    local gone, left = kill_at(100)
    local remaining = 0
    for _ in pairs(left) do remaining = remaining + 1 end
    assert.is_true(remaining > 0, "nothing was left to delete: not killed mid-way")
    local gone2 = kill_at(200)
    assert.is_true(gone2 >= gone)

    -- the same command again finishes the job, appending to the same file
    local status, _, err = hs:run{ "delete", "--all", "--backup", backup }
    assert.are.equal(0, status, err)
    local _, count = hs:dlq_ids()
    assert.are.equal(0, count)
    local saved = read_backup()
    for id, m in pairs(original) do assert.are.same(m, saved[id]) end
  end)
end)
