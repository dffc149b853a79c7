-- Queues against the emulator (tools/qstash-dev), through the client:
-- FIFO order, at most `parallelism` deliveries in flight, pause and resume,
-- `lag`, and `queueName` on log and DLQ entries.
local E = require "spec.support.emulator"
local qstash = require "qstash"

-- The sink's arrival order of the bodies received on `path`.
local function bodies(sink, path)
  local out = {}
  for _, r in ipairs(sink:received()) do
    if r.target == path then out[#out + 1] = r.body end
  end
  return out
end

-- The sink's arrival times of the requests on `path` (a late delivery of an
-- earlier test may reach the sink too).
local function arrivals(sink, path)
  local out = {}
  for _, r in ipairs(sink:received()) do
    if r.target == path then out[#out + 1] = r.t end
  end
  return out
end

local function wait_count(sink, path, n, timeout)
  return E.wait_for(function()
    local got = bodies(sink, path)
    if #got >= n then return got end
  end, timeout or 5, 0.02)
end

describe("queues in the emulator", function()
  local fx = E.fixture{ time_scale = 0.001 }
  local emu, sink, c

  setup(function()
    emu, sink = fx.emu, fx.sink
    c = qstash.new{ token = emu.token, base_url = emu.url }
  end)
  teardown(function() if c then c:close() end end)

  it("upsert, get, list, delete; enqueue creates a missing queue with parallelism 1", function()
    assert.same({}, c:queue_list())
    assert.is_true(c:queue_upsert("b-queue", { parallelism = 3 }))
    c:enqueue("a-queue", sink.url .. "/x", "1")
    local list = c:queue_list()
    assert.equal(2, #list)
    assert.equal("a-queue", list[1].name)
    assert.equal(1, list[1].parallelism)
    assert.is_false(list[1].paused)
    assert.equal("b-queue", list[2].name)
    assert.equal(3, list[2].parallelism)
    local q = c:queue_get("b-queue")
    assert.equal(0, q.lag)
    assert.is_number(q.createdAt)
    assert.is_number(q.updatedAt)
    -- an upsert changes the parallelism in place and keeps `paused` when not given
    assert.is_true(c:queue_upsert("b-queue", { parallelism = 2, paused = true }))
    assert.is_true(c:queue_upsert("b-queue", { parallelism = 4 }))
    q = c:queue_get("b-queue")
    assert.equal(4, q.parallelism)
    assert.is_true(q.paused)
    assert.is_true(c:queue_delete("b-queue"))
    assert.is_true(c:queue_delete("b-queue")) -- deleting an absent queue is no error
    local ok, err = pcall(c.queue_get, c, "b-queue")
    assert.is_false(ok)
    assert.equal("not_found", err.kind)
    ok, err = pcall(c.queue_pause, c, "b-queue")
    assert.is_false(ok)
    assert.equal("not_found", err.kind)
  end)

  it("delivers a queue's messages first in first out, one at a time with parallelism 1", function()
    sink:set_status(200, { delay = 0.05 })
    c:queue_upsert("fifo", { parallelism = 1 })
    for i = 1, 6 do c:enqueue("fifo", sink.url .. "/fifo", tostring(i)) end
    local got = wait_count(sink, "/fifo", 6)
    assert.same({ "1", "2", "3", "4", "5", "6" }, got)
    -- one at a time: each arrived after the previous one was answered
    local t = arrivals(sink, "/fifo")
    for i = 2, #t do assert.is_true(t[i] - t[i - 1] >= 0.045, "arrivals " .. (t[i] - t[i - 1]) .. " s apart") end
  end)

  it("has at most `parallelism` deliveries in flight, and waits through retries", function()
    -- each request held 0.5 s: with parallelism 2, the third waits for a free place
    sink:set_status(200, { delay = 0.5 })
    c:queue_upsert("par", { parallelism = 2 })
    for i = 1, 4 do c:enqueue("par", sink.url .. "/par", tostring(i)) end
    local got = wait_count(sink, "/par", 2)
    table.sort(got) -- two in flight at once: either may arrive first
    assert.same({ "1", "2" }, got)
    -- two out, two waiting (the first two are held 0.5 s)
    assert.equal(2, c:queue_get("par").lag)
    got = wait_count(sink, "/par", 4)
    assert.equal(4, #got)
    local t = arrivals(sink, "/par")
    table.sort(t)
    assert.is_true(t[3] - t[1] >= 0.45, "the third started before one of the first two ended")
  end)

  it("a message being retried keeps its place: the next one waits for its end", function()
    sink:set_status(200, { statuses = { 500, 500 } })
    c:queue_upsert("retry", { parallelism = 1 })
    c:enqueue("retry", sink.url .. "/retry", "first", { retries = 3 })
    c:enqueue("retry", sink.url .. "/retry", "second")
    assert.same({ "first", "first", "first", "second" }, wait_count(sink, "/retry", 4))
  end)

  it("pause: the attempt under way finishes, nothing new starts, lag counts what waits; resume continues", function()
    sink:set_status(200, { delay = 0.3 })
    c:queue_upsert("p", { parallelism = 1 })
    local first = c:enqueue("p", sink.url .. "/p", "1").messageId
    c:enqueue("p", sink.url .. "/p", "2")
    c:enqueue("p", sink.url .. "/p", "3")
    wait_count(sink, "/p", 1)
    assert.is_true(c:queue_pause("p"))
    assert.is_true(c:queue_pause("p")) -- pausing twice is harmless
    -- the first, in flight when paused, is delivered
    local done = E.wait_for(function()
      for _, d in ipairs(emu:deliveries("messageId=" .. first)) do
        if d.status == 200 then return true end
      end
    end, 5, 0.02)
    assert.is_true(done)
    local q = c:queue_get("p")
    assert.is_true(q.paused)
    assert.equal(2, q.lag)
    E.sleep(0.4) -- longer than a delivery: nothing new started while paused
    assert.same({ "1" }, bodies(sink, "/p"))
    assert.is_true(c:queue_resume("p"))
    assert.same({ "1", "2", "3" }, wait_count(sink, "/p", 3))
    assert.is_false(c:queue_get("p").paused)
  end)

  it("a queue created paused holds its messages until resumed; the upsert's paused=false resumes it", function()
    c:queue_upsert("held", { paused = true })
    for i = 1, 3 do c:enqueue_json("held", sink.url .. "/held", { n = i }) end
    assert.equal(3, c:queue_get("held").lag)
    c:queue_upsert("held", { paused = false })
    assert.same({ '{"n":1}', '{"n":2}', '{"n":3}' }, wait_count(sink, "/held", 3))
    assert.equal(0, E.wait_for(function()
      local lag = c:queue_get("held").lag
      if lag == 0 then return lag end
    end, 5))
  end)

  it("log entries and DLQ entries carry queueName", function()
    sink:set_status(500)
    local id = c:enqueue("dead", sink.url .. "/dead", "x", { retries = 0 }).messageId
    local entry = E.wait_for(function()
      local page = c:dlq_list{ queue_name = "dead" }
      if #page.messages > 0 then return page.messages[1] end
    end, 5, 0.02)
    assert.is_table(entry)
    assert.equal(id, entry.messageId)
    assert.equal("dead", entry.queueName)
    local logs = c:logs{ message_id = id }
    assert.is_true(#logs.logs > 0)
    for _, e in ipairs(logs.logs) do assert.equal("dead", e.queueName) end
    -- its place is free again: the next message of the queue goes out
    sink:set_status(200)
    c:enqueue("dead", sink.url .. "/dead", "y")
    assert.same({ "x", "y" }, wait_count(sink, "/dead", 2))
  end)

  it("cancelling a queued message frees its place; deleting a queue cancels what it holds", function()
    c:queue_upsert("c", { paused = true })
    local a = c:enqueue("c", sink.url .. "/c", "a").messageId
    c:enqueue("c", sink.url .. "/c", "b")
    c:cancel(a)
    assert.equal(1, c:queue_get("c").lag)
    c:queue_resume("c")
    assert.same({ "b" }, wait_count(sink, "/c", 1))
    c:queue_upsert("gone", { paused = true })
    local g = c:enqueue("gone", sink.url .. "/gone", "g").messageId
    c:queue_delete("gone")
    local ok, err = pcall(c.message, c, g)
    assert.is_false(ok)
    assert.equal("not_found", err.kind)
  end)

  it("the emulator refuses what QStash refuses (raw requests)", function()
    local function post(body)
      return (emu:request("POST", "/v2/queues", { body = body, headers = { ["content-type"] = "application/json" } }))
    end
    assert.equal(400, post('{"queueName":"a/b","parallelism":1}'))
    assert.equal(400, post('{"queueName":"q","parallelism":0}'))
    assert.equal(400, post('{"queueName":"q","parallelism":true}'))
    assert.equal(400, post('{"queueName":"q","parallelism":1,"paused":"no"}'))
    assert.equal(400, post('{"queueName":"q"}'))
    assert.equal(412, post('{"queueName":"q","parallelism":1000000000}'))
    assert.equal(400, (emu:request("GET", "/v2/queues/a%20b")))
    assert.equal(400, (emu:request("POST", "/v2/enqueue/a%20b/" .. sink.url, { body = "x" })))
    assert.same({}, c:queue_list())
  end)
end)
