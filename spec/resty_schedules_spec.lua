-- qstash.resty's schedule calls (schedule_create, schedule_create_json,
-- schedule_get, schedule_list, schedule_delete, schedule_pause,
-- schedule_resume) from content handlers over cosockets, against the
-- emulator: what the C module's libcurl path returns, the runs reach the
-- destination, and a slow answer does not block the worker. Needs LuaJIT
-- and nginx (`make test LUA=luajit SPECS=spec/resty_schedules_spec.lua`).

local RC = require "spec.support.resty_calls"
local E = require "spec.support.emulator"
local cjson = require "cjson"

local skip = RC.skip_reason()
if skip then
  describe("qstash.resty schedules under nginx", function() pending(skip) end)
  return
end

describe("qstash.resty schedules under nginx", function()
  local env
  setup(function() env = RC.start() end)
  teardown(function() if env then env:stop() end end)
  before_each(function() env:reset() end)

  it("runs every schedule call from a handler, with the C module's results", function()
    local c = env:call("schedule_create", 4, env.sink.url .. "/a", "* * * * *", "one", { schedule_id = "rs", retries = 0 })
    assert.equal("content", c.phase)
    assert.same({ scheduleId = "rs" }, c.res)
    c = env:call("schedule_create_json", 4, env.sink.url .. "/b", "CRON_TZ=Asia/Tokyo 0 0 1 1 *", { n = 2 }, nil)
    assert.is_string(c.res.scheduleId)
    local other = c.res.scheduleId
    local got = env:call("schedule_get", 1, other).res
    assert.equal('{"n":2}', got.body)
    assert.equal("CRON_TZ=Asia/Tokyo 0 0 1 1 *", got.cron)
    -- the runs of "rs" (every minute: 60 ms at this time scale) reach the sink
    local body = E.wait_for(function()
      local r = env.sink:received()
      if #r >= 1 then return r[1].body end
    end, 5, 0.02)
    assert.equal("one", body)
    assert.is_true(env:call("schedule_pause", 1, "rs").res)
    assert.is_true(env:call("schedule_get", 1, "rs").res.isPaused)
    assert.is_true(env:call("schedule_resume", 1, "rs").res)
    assert.is_true(env:call("schedule_delete", 1, "rs").res)
    local list = env:call("schedule_list", 0).res
    assert.equal(1, #list)
    assert.equal(other, list[1].scheduleId)
    -- the same object as the C module's libcurl path makes of it (read
    -- together: the schedule does not run again for a year)
    assert.same(cjson.decode(cjson.encode(env.client:schedule_get(other))), env:call("schedule_get", 1, other).res)
    c = env:call("schedule_get", 1, "rs")
    assert.is_false(c.ok)
    assert.equal("not_found", c.err.kind)
  end)

  it("raises an argument error for a bad cron or id before sending anything", function()
    local c = env:call("schedule_create", 4, env.sink.url, "*/0 * * * *", "x", nil)
    assert.matches("bad argument #2 to 'schedule_create' (field 1 (minute): the step 0", c.raised, 1, true)
    c = env:call("schedule_get", 1, "a/b")
    assert.matches("bad argument #1 to 'schedule_get' (schedule id may hold only", c.raised, 1, true)
    c = env:call("schedule_create", 4, env.sink.url, "* * * * *", "x", { not_before = 1 })
    assert.matches("option 'not_before' does not apply to schedules", c.raised, 1, true)
    assert.same({}, env.client:schedule_list())
  end)

  it("does not block the worker while an answer is slow", function()
    local doc = env:slow_call("schedule_get", 1, "slow", { scheduleId = "slow", cron = "* * * * *",
      destination = "https://example.com" })
    assert.equal("slow", doc.res.scheduleId)
  end)
end)
