-- The emulator's schedules run: on their cron in the schedule clock (a cron
-- minute is 60 ms at --time-scale 0.001), each run a message with the
-- schedule's id (delivery header, logs, DLQ), through the schedule's queue,
-- skipped while paused; an overwrite replaces the whole definition; and
-- without croniter the emulator still starts and names the package.
local E = require "spec.support.emulator"
local qstash = require "qstash"
local cjson = require "cjson"

local MINUTE = 60000
-- hang guards only: at this time scale a run comes every 60 ms
local GUARD = 20

describe("the emulator's schedules", function()
  local fx = E.fixture{ time_scale = 0.001 }
  local client

  before_each(function()
    client = client or qstash.new{ token = fx.emu.token, base_url = fx.emu.url, timeout = 5 }
  end)
  teardown(function() if client then client:close() end end)

  -- The requests the sink received on `path`.
  local function received(path)
    local out = {}
    for _, r in ipairs(fx.sink:received()) do
      if r.target == path then out[#out + 1] = r end
    end
    return out
  end

  local function wait_received(path, n)
    local got = E.wait_for(function()
      local r = received(path)
      if #r >= n then return r end
    end, GUARD, 0.02)
    assert(got, ("%s: fewer than %d requests"):format(path, n))
    return got
  end

  local function logs(filter)
    return client:logs(filter).logs
  end

  it("runs on its cron: each run a message delivered with Upstash-Schedule-Id, logged with scheduleId", function()
    local id = client:schedule_create(fx.sink.url .. "/run", "* * * * *", "tick",
      { schedule_id = "every-minute", headers = { ["X-Kind"] = "cron" } }).scheduleId
    local got = wait_received("/run", 3)
    for i = 1, 3 do
      assert.equal("tick", got[i].body)
      assert.equal(id, fx.sink:header(got[i], "Upstash-Schedule-Id"))
      assert.equal("cron", fx.sink:header(got[i], "X-Kind"))
    end
    local entries = logs{ schedule_id = id, state = "DELIVERED" }
    assert.is_true(#entries >= 3)
    for _, e in ipairs(entries) do assert.equal(id, e.scheduleId) end
    local s = E.wait_for(function()
      local v = client:schedule_get(id)
      for _, state in pairs(v.lastScheduleStates or {}) do
        if state == "SUCCESS" then return v end
      end
    end, GUARD, 0.02)
    assert(s, "the last run never reached SUCCESS")
    assert.equal(0, s.lastScheduleTime % MINUTE)
    assert.is_true(s.nextScheduleTime > s.lastScheduleTime)
    assert.equal(0, s.nextScheduleTime % MINUTE)
  end)

  it("places runs in the CRON_TZ zone: 30 past in Asia/Kolkata (UTC+5:30) is on the UTC hour", function()
    local z = client:schedule_get(client:schedule_create(fx.sink.url, "CRON_TZ=Asia/Kolkata 30 * * * *").scheduleId)
    assert.equal(0, z.nextScheduleTime % (60 * MINUTE))
    local u = client:schedule_get(client:schedule_create(fx.sink.url, "30 * * * *").scheduleId)
    assert.equal(30 * MINUTE, u.nextScheduleTime % (60 * MINUTE))
  end)

  it("a failed run goes to the DLQ with scheduleId; its state reads FAIL", function()
    fx.sink:set_status(500)
    local id = client:schedule_create(fx.sink.url .. "/fail", "* * * * *", "x", { retries = 0 }).scheduleId
    local dlq = E.wait_for(function()
      local page = client:dlq_list{ schedule_id = id }
      if #page.messages >= 1 then return page.messages end
    end, GUARD, 0.02)
    assert(dlq, "no DLQ entry")
    assert.equal(id, dlq[1].scheduleId)
    local m = client:dlq_get(dlq[1].dlqId)
    assert.equal(id, m.scheduleId)
    local failed = logs{ schedule_id = id, state = "FAILED" }
    assert.is_true(#failed >= 1)
    assert.equal(id, failed[1].scheduleId)
    assert(E.wait_for(function()
      for _, state in pairs(client:schedule_get(id).lastScheduleStates or {}) do
        if state == "FAIL" then return true end
      end
    end, GUARD, 0.02), "no FAIL state")
  end)

  it("skips runs while paused (nextScheduleTime goes on) and runs again after resume", function()
    local id = client:schedule_create(fx.sink.url .. "/p", "* * * * *", "p").scheduleId
    wait_received("/p", 1)
    client:schedule_pause(id)
    local paused = client:schedule_get(id)
    assert.is_true(paused.isPaused)
    -- three runs' times pass without a run
    local later = E.wait_for(function()
      local v = client:schedule_get(id)
      if v.nextScheduleTime >= paused.nextScheduleTime + 3 * MINUTE then return v end
    end, GUARD, 0.02)
    assert(later, "the schedule clock did not advance")
    assert.equal(paused.lastScheduleTime, later.lastScheduleTime)
    local before = #received("/p")
    -- what was made before the pause may still arrive; nothing after it
    local made = #logs{ schedule_id = id, state = "CREATED" }
    assert.is_true(before <= made)
    client:schedule_resume(id)
    assert(E.wait_for(function()
      return client:schedule_get(id).lastScheduleTime > later.lastScheduleTime
    end, GUARD, 0.02), "no run after resume")
    wait_received("/p", made + 1)
  end)

  it("publishes each run through the schedule's queue", function()
    assert.is_true(client:queue_upsert("sq", { parallelism = 1, paused = true }))
    local id = client:schedule_create(fx.sink.url .. "/q", "* * * * *", "queued", { queue = "sq" }).scheduleId
    assert.equal("sq", client:schedule_get(id).queueName)
    assert(E.wait_for(function() return client:queue_get("sq").lag >= 2 end, GUARD, 0.02), "no lag")
    assert.equal(0, #received("/q"))
    local created = logs{ schedule_id = id, state = "CREATED" }
    assert.equal("sq", created[1].queueName)
    client:queue_resume("sq")
    local got = wait_received("/q", 2)
    assert.equal(id, fx.sink:header(got[1], "Upstash-Schedule-Id"))
  end)

  it("runs to every endpoint of a URL group, one message each", function()
    client:url_group_add_endpoints("sg", { { url = fx.sink.url .. "/g1" }, { url = fx.sink.url .. "/g2" } })
    local id = client:schedule_create("sg", "* * * * *", "fan").scheduleId
    wait_received("/g1", 1)
    wait_received("/g2", 1)
    local n = 0
    for _ in pairs(E.wait_for(function() return client:schedule_get(id).lastScheduleStates end, GUARD, 0.02)) do
      n = n + 1
    end
    assert.equal(2, n)
  end)

  it("an overwrite by schedule_id replaces the whole definition", function()
    client:schedule_create(fx.sink.url .. "/old", "* * * * *", "one", { schedule_id = "u", retries = 7,
      headers = { ["X-Old"] = "1" } })
    wait_received("/old", 1)
    local created = client:schedule_get("u").createdAt
    client:schedule_create(fx.sink.url .. "/new", "*/2 * * * *", nil, { schedule_id = "u" })
    local s = client:schedule_get("u")
    assert.equal(fx.sink.url .. "/new", s.destination)
    assert.equal("*/2 * * * *", s.cron)
    assert.is_nil(s.body)
    assert.equal(3, s.retries)
    assert.same({}, s.header)
    assert.equal(created, s.createdAt)
    assert.equal(1, #client:schedule_list())
    local got = wait_received("/new", 1)
    assert.equal("", got[1].body)
    assert.is_nil(fx.sink:header(got[1], "X-Old"))
  end)

  it("a deleted schedule runs no more; what it made is still delivered", function()
    local id = client:schedule_create(fx.sink.url .. "/d", "* * * * *", "d").scheduleId
    wait_received("/d", 1)
    client:schedule_delete(id)
    local made = #logs{ schedule_id = id, state = "CREATED" }
    -- every message made is delivered, and no run follows: the schedule is gone
    wait_received("/d", made)
    assert.same({}, client:schedule_list())
  end)
end)

describe("the emulator without croniter", function()
  local emu, dir

  setup(function()
    -- a launcher that hides croniter from the emulator's python
    dir = E.tmpdir()
    E.write_file(dir .. "/launch.py", table.concat({
      "import runpy, sys",
      "sys.modules['croniter'] = None",
      ("sys.argv[0] = %q"):format(E.root .. "/tools/qstash-dev"),
      ("runpy.run_path(%q, run_name='__main__')"):format(E.root .. "/tools/qstash-dev"),
    }, "\n") .. "\n")
    emu = E.start{ launcher = dir .. "/launch.py" }
  end)
  teardown(function()
    if emu then emu:stop() end
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("starts, serves the rest, and answers schedule creation with a 501 naming the package", function()
    local status, doc = emu:json("POST", "/v2/schedules/https://example.com", { headers = { ["Upstash-Cron"] = "* * * * *" } })
    assert.equal(501, status)
    assert.truthy(doc.error:find("python3-croniter", 1, true), doc.error)
    status = emu:json("POST", "/v2/publish/https://example.com", { headers = { ["Upstash-Delay"] = "1d" } })
    assert.equal(200, status)
    status, doc = emu:json("GET", "/v2/schedules")
    assert.equal(200, status)
    assert.same({}, doc)
    assert.is_string(cjson.encode(doc))
  end)
end)
