-- Following under servers that do what a reviewer would make them do: a
-- retry deduplicated into another's message, a DLQ lookup that ignores its
-- filter, more ids than one request holds with no time left, one page of
-- tens of thousands of entries out of order, and a final state stamped
-- before a later non-final one (QStash's nodes have their own clocks).
local E = require "spec.support.emulator"
local server = require "spec.support.server"
local child = require "spec.support.child"
local step_http = require "spec.support.step_http"
local qstash = require "qstash"

local FAST = { timeout = 5, interval = 0.02 }

local function states(res)
  local t = {}
  for i, e in ipairs(res.history) do t[i] = e.state end
  return table.concat(t, " ")
end

describe("follow faults against the emulator", function()
  local fx = E.fixture{ time_scale = 0.001 }
  local emu, sink, c

  teardown(function()
    if c then c:close() end
  end)

  before_each(function()
    emu, sink = fx.emu, fx.sink
    if c then c:close() end
    c = qstash.new{ token = emu.token, base_url = emu.url, retry = { attempts = 2, base_delay = 0.01 } }
  end)

  -- n DLQ entries of messages that failed (each to its own path)
  local function dlq_entries(n, tag)
    sink:set_status(500)
    local msgs, ids = {}, {}
    for i = 1, n do msgs[i] = c:publish(sink.url .. "/" .. tag .. i, "x", { retries = 0 }).messageId end
    local failed = c:follow_many(msgs, FAST)
    for i, m in ipairs(msgs) do
      assert.equal("FAILED", failed[m].state)
      ids[i] = failed[m].dlqId
    end
    sink:set_status(200)
    return ids
  end

  it("dlq_retry_each with follow: two ids deduplicated into one message are each reported once", function()
    local ids = dlq_entries(2, "dd")
    local seen, calls, progress = {}, 0, 0
    local out = c:dlq_retry_each(ids, { follow = FAST, deduplication_id = "dedup-follow-" .. ids[1] }, {
      concurrency = 1,
      on_result = function(id, res, err)
        calls = calls + 1
        seen[id] = (seen[id] or 0) + 1
        assert.is_nil(err)
        assert.equal("DELIVERED", res.delivery.state)
        assert.equal(res.messageId, res.delivery.messageId)
      end,
      on_progress = function(done, total)
        assert.equal(2, total)
        assert.equal(progress + 1, done)
        progress = done
      end,
    })
    local a, b = out.results[ids[1]], out.results[ids[2]]
    -- the emulator deduplicated the second retry into the first's message
    assert.equal(a.messageId, b.messageId)
    assert.is_true(b.deduplicated)
    assert.equal(2, out.ok)
    assert.equal(0, out.failed)
    assert.equal(2, calls)
    assert.equal(1, seen[ids[1]])
    assert.equal(1, seen[ids[2]])
    assert.equal(2, progress)
    assert.equal("DELIVERED", a.delivery.state)
    assert.equal(a.delivery, b.delivery)
  end)

  it("dlq_retry_each without follow: two ids deduplicated into one message are each reported once", function()
    local ids = dlq_entries(2, "dn")
    local seen = {}
    local out = c:dlq_retry_each(ids, { deduplication_id = "dedup-plain-" .. ids[1] }, {
      concurrency = 1,
      on_result = function(id) seen[id] = (seen[id] or 0) + 1 end,
    })
    assert.equal(2, out.ok)
    assert.equal(out.results[ids[1]].messageId, out.results[ids[2]].messageId)
    assert.equal(1, seen[ids[1]])
    assert.equal(1, seen[ids[2]])
  end)

  it("dlq_retry_each with follow: an on_result that spoils a history does not break the batch", function()
    local ids = dlq_entries(2, "sp")
    local trap = setmetatable({}, { __index = function() error("an entry's __index ran") end })
    local out = c:dlq_retry_each(ids, { follow = FAST }, {
      concurrency = 1,
      on_result = function(_, res)
        res.delivery.history[1] = trap
        res.delivery.history[2] = false
      end,
    })
    assert.equal(2, out.ok)
    assert.equal("DELIVERED", out.results[ids[2]].delivery.state)
  end)

  it("follow_many with the same id twice follows it once", function()
    local id = c:publish(sink.url .. "/twice", "x").messageId
    local res = c:follow_many({ id, id }, FAST)
    local keys = 0
    for _ in pairs(res) do keys = keys + 1 end
    assert.equal(1, keys)
    assert.equal("DELIVERED", res[id].state)
    assert.equal("CREATED ACTIVE DELIVERED", states(res[id]))
  end)

  it("follow_many with timeout 0 asks about every id once, past the first 100", function()
    local ids = {}
    for i = 1, 150 do ids[i] = c:publish(sink.url .. "/later" .. i, "x", { delay = 86400 }).messageId end
    local call = c:prepare("follow_many", ids, { timeout = 0 })
    local sends, what, v = 0, call:step()
    while what == "send" or what == "wait" do
      if what == "send" then
        sends = sends + 1
        local ok, status, headers, body = step_http.send(v)
        assert.is_true(ok)
        what, v = call:step{ status = status, headers = headers, body = body }
      else
        what, v = call:step()
      end
    end
    assert.equal("done", what)
    assert.equal(2, sends)
    for _, id in ipairs(ids) do
      assert.equal("CREATED", v[id].state, id)
      assert.is_false(v[id].done)
    end
  end)
end)

describe("follow faults against a scripted server", function()
  local srv

  setup(function() srv = server.start() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  local function client()
    return qstash.new{ token = "tok", base_url = srv.url, retry = { attempts = 2, base_delay = 0.01 } }
  end

  local function failed_then(messages)
    srv:script{
      { status = 200, json = { logs = { { time = 2, state = "FAILED", messageId = "msg_1" },
        { time = 1, state = "CREATED", messageId = "msg_1" } } } },
      { status = 200, json = { messages = messages } },
    }
    local c = client()
    local f = c:follow("msg_1", FAST)
    c:close()
    assert.equal("FAILED", f.state)
    assert.equal(2, #srv:requests())
    return f
  end

  it("a DLQ lookup answering another message's entry gives no dlqId", function()
    local f = failed_then{ { dlqId = "9-other", messageId = "msg_other" } }
    assert.is_nil(f.dlqId)
  end)

  it("a DLQ lookup takes the entry of the followed message wherever it is in the page", function()
    local f = failed_then{ { dlqId = "9-other", messageId = "msg_other" }, "junk",
      { dlqId = 7, messageId = "msg_1" }, { dlqId = "9-1", messageId = "msg_1" } }
    assert.equal("9-1", f.dlqId)
  end)

  it("a DLQ lookup entry without a messageId is not taken", function()
    local f = failed_then{ { dlqId = "9-x" } }
    assert.is_nil(f.dlqId)
  end)

  it("a log entry's dlqId is taken only for its own message", function()
    srv:script{
      { status = 200, json = { logs = {
        { time = 3, state = "FAILED", messageId = "msg_2", dlqId = "9-2" },
        { time = 2, state = "FAILED", messageId = "msg_1" },
        { time = 1, state = "ACTIVE", messageId = "msg_1", dlqId = "9-active" } } } },
      { status = 200, json = { messages = { { dlqId = "9-2", messageId = "msg_2" } } } },
    }
    local c = client()
    local res = c:follow_many({ "msg_1", "msg_2" }, FAST)
    c:close()
    assert.equal("FAILED", res.msg_1.state)
    assert.is_nil(res.msg_1.dlqId)
    assert.equal("9-2", res.msg_2.dlqId)
    local reqs = srv:requests()
    assert.equal(2, #reqs)
    assert.equal("/v2/dlq?messageId=msg_1", reqs[2].target)
  end)

  it("follow_many: one DLQ lookup per FAILED message without a dlqId, in order, each its own", function()
    local logs, script = {}, {}
    for i = 1, 3 do logs[i] = { time = 2, state = "FAILED", messageId = "msg_" .. i } end
    script[1] = { status = 200, json = { logs = logs } }
    for i = 1, 3 do
      -- in the order the ids were given
      script[#script + 1] = { status = 200, json = { messages = {
        { dlqId = "9-" .. i, messageId = "msg_" .. i }, { dlqId = "9-x", messageId = "msg_x" } } } }
    end
    srv:script(script)
    local c = client()
    local res = c:follow_many({ "msg_1", "msg_2", "msg_3" }, FAST)
    c:close()
    local reqs = srv:requests()
    assert.equal(4, #reqs)
    for i = 1, 3 do
      assert.equal("9-" .. i, res["msg_" .. i].dlqId)
      assert.equal("/v2/dlq?messageId=msg_" .. i, reqs[i + 1].target)
    end
  end)

  it("follow_many with timeout 0: a chunk whose pages go on still lets the next chunk be asked", function()
    local ids = {}
    for i = 1, 150 do ids[i] = "msg_" .. i end
    srv:script{
      { status = 200, json = { cursor = "more", logs = { { time = 1, state = "ACTIVE", messageId = "msg_1" } } } },
      { status = 200, json = { logs = { { time = 1, state = "RETRY", messageId = "msg_150" } } } },
    }
    local c = client()
    local res = c:follow_many(ids, { timeout = 0 })
    c:close()
    local reqs = srv:requests()
    assert.equal(2, #reqs)
    assert.truthy(reqs[1].target:find("messageIds=msg_100&", 1, true), reqs[1].target)
    assert.is_nil(reqs[1].target:find("msg_101", 1, true))
    assert.truthy(reqs[2].target:find("messageIds=msg_101&", 1, true), reqs[2].target)
    assert.truthy(reqs[2].target:find("messageIds=msg_150&", 1, true), reqs[2].target)
    assert.is_nil(reqs[2].target:find("cursor=", 1, true))
    assert.equal("ACTIVE", res.msg_1.state)
    assert.equal("RETRY", res.msg_150.state)
  end)

  it("a final state stamped before a later non-final one ends the follow", function()
    srv:script{
      { status = 200, json = { logs = {
        { time = 1700000000002, state = "ACTIVE", messageId = "msg_1" },
        { time = 1700000000001, state = "DELIVERED", messageId = "msg_1" },
        { time = 1700000000000, state = "CREATED", messageId = "msg_1" } } } },
    }
    local c = client()
    local f = c:follow("msg_1", { timeout = 1, interval = 0.01 })
    c:close()
    assert.equal("DELIVERED", f.state)
    assert.is_true(f.done)
    assert.equal("CREATED DELIVERED ACTIVE", states(f))
    assert.equal(1, #srv:requests())
  end)

  it("a final state seen in a later poll, stamped before the newest entry, ends the follow", function()
    srv:script{
      { status = 200, json = { logs = { { time = 3, state = "ACTIVE", messageId = "msg_1" },
        { time = 1, state = "CREATED", messageId = "msg_1" } } } },
      { status = 200, json = { logs = { { time = 2, state = "CANCELLED", messageId = "msg_1" } } } },
    }
    local c = client()
    local f = c:follow("msg_1", { timeout = 1, interval = 0.01 })
    c:close()
    assert.equal("CANCELLED", f.state)
    assert.is_true(f.done)
    assert.equal(2, #srv:requests())
  end)

  it("a later poll asks again from before the newest entry: an end logged late with an older stamp is read", function()
    local T = 1700000000000
    srv:script{
      { status = 200, json = { logs = { { time = T + 2000, state = "ACTIVE", messageId = "msg_1" },
        { time = T, state = "CREATED", messageId = "msg_1" } } } },
      -- the next poll: what its fromDate covers, the late DELIVERED among it
      { status = 200, json = { logs = { { time = T + 2000, state = "ACTIVE", messageId = "msg_1" },
        { time = T + 1000, state = "DELIVERED", messageId = "msg_1" } } } },
    }
    local c = client()
    local f = c:follow("msg_1", { timeout = 1, interval = 0.01 })
    c:close()
    local reqs = srv:requests()
    assert.equal(2, #reqs)
    local from = tonumber(reqs[2].target:match("fromDate=(%d+)"))
    -- a real server answers entries from fromDate on: DELIVERED@T+1s must be among them
    assert.is_true(from <= T + 1000, "fromDate " .. tostring(from))
    assert.equal("DELIVERED", f.state)
    assert.is_true(f.done)
    -- entries read twice are in the history once
    assert.equal("CREATED DELIVERED ACTIVE", states(f))
  end)

  it("of two final states, the one with the newest time is the message's", function()
    srv:script{
      { status = 200, json = { logs = {
        { time = 5, state = "ACTIVE", messageId = "msg_1" },
        { time = 4, state = "DELIVERED", messageId = "msg_1" },
        { time = 3, state = "FAILED", messageId = "msg_1" } } } },
      { status = 200, json = { logs = {
        { time = 5, state = "ACTIVE", messageId = "msg_2" },
        { time = 4, state = "FAILED", messageId = "msg_2", dlqId = "9-2" },
        { time = 3, state = "DELIVERED", messageId = "msg_2" } } } },
    }
    local c = client()
    local one = c:follow("msg_1", { timeout = 1, interval = 0.01 })
    local two = c:follow("msg_2", { timeout = 1, interval = 0.01 })
    c:close()
    assert.equal("DELIVERED", one.state)
    assert.is_nil(one.dlqId)
    assert.equal("FAILED", two.state)
    assert.equal("9-2", two.dlqId)
    assert.equal(2, #srv:requests())
  end)

  it("one page of 40,000 entries out of order: the history comes back sorted, stable, in time", function()
    -- oldest first (a page is newest first): merged in reverse, the worst
    -- order for a quadratic sort, which took over 15 s here; two states at
    -- each time keep the order they were merged in
    local logs, n = {}, 20000
    for k = 1, n do
      logs[#logs + 1] = { time = 1700000000000 + k, state = "ERROR", messageId = "msg_1" }
      logs[#logs + 1] = { time = 1700000000000 + k, state = "RETRY", messageId = "msg_1" }
    end
    srv:script{ { status = 200, json = { logs = logs } } }
    local out, ok = child.run(([[
      local qstash = require "qstash"
      local c = qstash.new{ token = "tok", base_url = %q }
      local f = c:follow("msg_1", { timeout = 0 })
      local h, bad = f.history, 0
      for i = 1, #h do
        local k = math.floor((i + 1) / 2)
        if h[i].time ~= 1700000000000 + k or h[i].state ~= (i %% 2 == 1 and "RETRY" or "ERROR") then
          bad = bad + 1
        end
      end
      print("entries " .. #h .. " misplaced " .. bad .. " done " .. tostring(f.done))
    ]]):format(srv.url), nil, { timeout = 10 })
    assert.is_true(ok, out)
    assert.equal("entries 40000 misplaced 0 done false", (out:gsub("%s+$", "")))
  end)
end)
