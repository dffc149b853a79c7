-- schedule_create, schedule_create_json and the schedule_* functions: the
-- requests they send and the results they make of the answers (a scripted
-- server), what they do against the emulator, and what they refuse before
-- sending (the emulator's request log stays empty).
local E = require "spec.support.emulator"
local server = require "spec.support.server"
local step_http = require "spec.support.step_http"
local qstash = require "qstash"
local safe = require "qstash.safe"

local unpack = table.unpack or unpack -- luacheck: ignore 143

local SCHEDULE = { scheduleId = "scd_1", cron = "*/5 * * * *", destination = "https://example.com/a",
  method = "POST", createdAt = 1, isPaused = true, retries = 3, callerIp = "1.2.3.4", callerIP = "1.2.3.4" }

describe("schedules on the wire", function()
  local srv, client

  setup(function()
    srv = server.start()
    client = qstash.new{ token = "tok-s", base_url = srv.url, retry = { base_delay = 0.01 }, timeout = 1 }
  end)
  teardown(function()
    client:close()
    srv:stop()
  end)
  before_each(function() srv:reset() end)

  it("schedule_create POSTs /v2/schedules/<destination raw> with Upstash-Cron and publish's options", function()
    srv:script{ { status = 200, json = { scheduleId = "scd_x" } } }
    local res = client:schedule_create("https://example.com/a?x=1", "CRON_TZ=America/New_York 0 4 * * *",
      "hello\0world", { content_type = "text/plain", retries = 2, delay = 10, method = "put",
        headers = { ["X-Tenant"] = "t1" }, schedule_id = "nightly.1", queue = "q-1",
        callback = "https://example.com/cb", label = { "a", "b" },
        flow_control = { key = "k", parallelism = 2 }, redact = { body = true } })
    assert.same({ scheduleId = "scd_x" }, res)
    local req = srv:requests()[1]
    assert.equal("POST", req.method)
    assert.equal("/v2/schedules/https://example.com/a?x=1", req.target)
    assert.equal("hello\0world", req.body)
    assert.equal("CRON_TZ=America/New_York 0 4 * * *", req.h["upstash-cron"])
    assert.equal("text/plain", req.h["content-type"])
    assert.equal("2", req.h["upstash-retries"])
    assert.equal("10s", req.h["upstash-delay"])
    assert.equal("PUT", req.h["upstash-method"])
    assert.equal("t1", req.h["upstash-forward-x-tenant"])
    assert.equal("nightly.1", req.h["upstash-schedule-id"])
    assert.equal("q-1", req.h["upstash-queue-name"])
    assert.equal("https://example.com/cb", req.h["upstash-callback"])
    assert.equal("a,b", req.h["upstash-label"])
    assert.equal("k", req.h["upstash-flow-control-key"])
    assert.equal("parallelism=2", req.h["upstash-flow-control-value"])
    assert.equal("body", req.h["upstash-redact-fields"])
    assert.is_nil(req.h["upstash-not-before"])
  end)

  it("schedule_create_json encodes the value and sends application/json; a URL group destination", function()
    srv:script{ { status = 200, json = { scheduleId = "scd_j" } } }
    assert.same({ scheduleId = "scd_j" }, client:schedule_create_json("my-group", "* * * * *", { n = 1 }))
    local req = srv:requests()[1]
    assert.equal("/v2/schedules/my-group", req.target)
    assert.equal('{"n":1}', req.body)
    assert.equal("application/json", req.h["content-type"])
    assert.equal("* * * * *", req.h["upstash-cron"])
  end)

  it("sends no body and no Content-Type when none is given", function()
    srv:script{ { status = 200, json = { scheduleId = "scd_n" } } }
    client:schedule_create("https://example.com", "1 1 1 1 1")
    local req = srv:requests()[1]
    assert.equal("", req.body)
    assert.is_nil(req.h["content-type"])
  end)

  it("a create is repeated after an unknown outcome only with a schedule_id (an overwrite)", function()
    local c = qstash.new{ token = "t", base_url = srv.url, timeout = 1, retry = { attempts = 4, base_delay = 0.01 } }
    srv:script{ { fault = "close", ["repeat"] = 8 } }
    local ok, err = pcall(c.schedule_create, c, "https://example.com", "* * * * *", "b")
    assert.is_false(ok)
    assert.is_true(err.ambiguous)
    assert.equal(1, #srv:requests())
    srv:reset()
    srv:script{ { fault = "close" }, { status = 200, json = { scheduleId = "s1" } } }
    assert.equal("s1", c:schedule_create("https://example.com", "* * * * *", "b", { schedule_id = "s1" }).scheduleId)
    assert.equal(2, #srv:requests())
    c:close()
  end)

  it("schedule_get, schedule_list: QStash's objects; isPaused and both caller IP spellings filled in", function()
    srv:script{ { status = 200, json = SCHEDULE },
      { status = 200, json = { SCHEDULE, { scheduleId = "b", cron = "* * * * *", destination = "g",
        callerIP = "::1" } } }, { status = 200, body = "[]" } }
    assert.same(SCHEDULE, client:schedule_get("scd_1"))
    assert.same({ SCHEDULE, { scheduleId = "b", cron = "* * * * *", destination = "g", isPaused = false,
      callerIP = "::1", callerIp = "::1" } }, client:schedule_list())
    assert.same({}, client:schedule_list())
    local reqs = srv:requests()
    assert.equal("GET /v2/schedules/scd_1", reqs[1].method .. " " .. reqs[1].target)
    assert.equal("GET /v2/schedules", reqs[2].method .. " " .. reqs[2].target)
  end)

  it("schedule_delete, schedule_pause, schedule_resume: true, whatever the body; PATCH as the SDKs send", function()
    srv:script{ { status = 200, body = "" }, { status = 200, body = "OK" }, { status = 200, json = {} } }
    assert.is_true(client:schedule_delete("scd_1"))
    assert.is_true(client:schedule_pause("scd_1"))
    assert.is_true(client:schedule_resume("scd_1"))
    local got = {}
    for _, r in ipairs(srv:requests()) do got[#got + 1] = r.method .. " " .. r.target end
    assert.same({ "DELETE /v2/schedules/scd_1", "PATCH /v2/schedules/scd_1/pause",
      "PATCH /v2/schedules/scd_1/resume" }, got)
  end)

  it("a malformed answer is a decode error, a 404 not_found", function()
    srv:script{ { status = 200, json = { scheduleId = 5 } }, { status = 200, json = { SCHEDULE, 3 } },
      { status = 200, json = { id = "x" } }, { status = 404, json = { error = "schedule not found" } } }
    for _, call in ipairs{
      function() return client:schedule_get("a") end,
      function() return client:schedule_list() end,
      function() return client:schedule_create("https://e.com", "* * * * *") end,
    } do
      local ok, err = pcall(call)
      assert.is_false(ok)
      assert.equal("decode", err.kind)
    end
    local ok, err = pcall(client.schedule_pause, client, "a")
    assert.is_false(ok)
    assert.equal("not_found", err.kind)
  end)

  it("get, delete, pause and resume are repeated after an unknown outcome", function()
    local c = qstash.new{ token = "t", base_url = srv.url, timeout = 1, retry = { attempts = 4, base_delay = 0.01 } }
    for _, f in ipairs{ "schedule_pause", "schedule_resume", "schedule_delete" } do
      srv:reset()
      srv:script{ { fault = "close" }, { status = 200, body = "" } }
      assert.is_true(c[f](c, "s"), f)
      assert.equal(2, #srv:requests(), f)
    end
    srv:reset()
    srv:script{ { fault = "close" }, { status = 200, json = SCHEDULE } }
    assert.same(SCHEDULE, c:schedule_get("scd_1"))
    c:close()
  end)

  it("runs through qstash.safe (nil, err), prepare/step and the module functions", function()
    srv:script{ { status = 404, json = { error = "schedule not found" } }, { status = 200, json = SCHEDULE },
      { status = 200, json = { scheduleId = "p" } } }
    local sc = safe.new{ token = "t", base_url = srv.url, retry = false }
    local res, err = sc:schedule_get("nope")
    assert.is_nil(res)
    assert.equal("not_found", err.kind)
    sc:close()
    assert.same(SCHEDULE, step_http.run(client:prepare("schedule_get", "scd_1")))
    local got = step_http.run(client:prepare("schedule_create", "https://example.com", "0 0 * * *", "b",
      { retries = 1 }))
    assert.equal("p", got.scheduleId)
    local req = srv:requests()[3]
    assert.equal("/v2/schedules/https://example.com", req.target)
    assert.equal("0 0 * * *", req.h["upstash-cron"])
    for _, f in ipairs{ "schedule_create", "schedule_create_json", "schedule_get", "schedule_list",
      "schedule_delete", "schedule_pause", "schedule_resume" } do
      assert.equal("function", type(qstash[f]), f)
      assert.equal("function", type(safe[f]), f)
    end
  end)
end)

describe("schedules against the emulator", function()
  local fx = E.fixture()
  local client

  before_each(function()
    client = client or qstash.new{ token = fx.emu.token, base_url = fx.emu.url, timeout = 5 }
  end)
  teardown(function() if client then client:close() end end)

  -- API requests the emulator served, by "METHOD route"
  local function served()
    local status, doc = fx.emu:json("GET", "/__dev/requests")
    assert.equal(200, status)
    return doc
  end

  it("creates, reads, lists, pauses, resumes, overwrites and deletes", function()
    local url = fx.sink.url .. "/s"
    local id = client:schedule_create(url, "*/10 * * * * ", '{"a":1}', {
      content_type = "application/json", retries = 5, delay = "10s", method = "GET",
      headers = { ["test-header"] = "v" }, queue = "sq", callback = "https://example.com/cb" }).scheduleId
    assert.truthy(id:match("^scd_"))
    local s = client:schedule_get(id)
    assert.equal("*/10 * * * *", s.cron)
    assert.equal(url, s.destination)
    assert.equal("GET", s.method)
    assert.equal('{"a":1}', s.body)
    assert.equal(5, s.retries)
    assert.equal(10, s.delay)
    assert.equal("sq", s.queueName)
    assert.equal("https://example.com/cb", s.callback)
    assert.same({ ["Content-Type"] = { "application/json" }, ["Test-Header"] = { "v" } }, s.header)
    assert.is_false(s.isPaused)
    assert.is_number(s.createdAt)
    assert.is_number(s.nextScheduleTime)
    assert.is_true(client:schedule_pause(id))
    assert.is_true(client:schedule_get(id).isPaused)
    assert.is_true(client:schedule_resume(id))
    assert.is_false(client:schedule_get(id).isPaused)
    -- an overwrite by id replaces the whole definition
    assert.same({ scheduleId = "mine" }, client:schedule_create(url, "1 1 1 1 1", "x", { schedule_id = "mine" }))
    assert.same({ scheduleId = "mine" }, client:schedule_create_json("grp", "CRON_TZ=Europe/Paris 0 9 * * 1-5",
      { k = true }, { schedule_id = "mine" }))
    local list = client:schedule_list()
    assert.equal(2, #list)
    local mine = list[1].scheduleId == "mine" and list[1] or list[2]
    assert.equal("grp", mine.destination)
    assert.equal("CRON_TZ=Europe/Paris 0 9 * * 1-5", mine.cron)
    assert.equal('{"k":true}', mine.body)
    assert.is_true(client:schedule_delete(id))
    local none, err = safe.new{ token = fx.emu.token, base_url = fx.emu.url }:schedule_get(id)
    assert.is_nil(none)
    assert.equal("not_found", err.kind)
    assert.equal(1, #client:schedule_list())
  end)

  it("runs through client:async: each call's callback from poll, with the synchronous call's result", function()
    local got = {}
    local function settle()
      local deadline = E.now() + 10
      while client:pending() > 0 and E.now() < deadline do client:poll(0.5) end
      assert.equal(0, client:pending())
    end
    client:async("schedule_create", fx.sink.url, "1 1 1 1 1", "a", { schedule_id = "as" },
      function(res, err) got.create = { res, err } end)
    settle()
    assert.same({ scheduleId = "as" }, got.create[1])
    client:async("schedule_pause", "as", function(res, err) got.pause = { res, err } end)
    settle()
    assert.is_true(got.pause[1])
    client:async("schedule_get", "as", function(res, err) got.get = { res, err } end)
    client:async("schedule_list", function(res, err) got.list = { res, err } end)
    settle()
    assert.same(client:schedule_get("as"), got.get[1])
    assert.is_true(got.get[1].isPaused)
    assert.equal(1, #got.list[1])
    client:async("schedule_get", "gone", function(res, err) got.missing = { res, err } end)
    settle()
    assert.is_nil(got.missing[1])
    assert.equal("not_found", got.missing[2].kind)
  end)

  it("accepts POST for pause and resume too (QStash's OpenAPI), and answers 400 for a bad cron", function()
    client:schedule_create(fx.sink.url, "1 1 1 1 1", nil, { schedule_id = "p" })
    assert.equal(200, (fx.emu:request("POST", "/v2/schedules/p/pause")))
    assert.is_true(client:schedule_get("p").isPaused)
    assert.equal(200, (fx.emu:request("POST", "/v2/schedules/p/resume")))
    assert.is_false(client:schedule_get("p").isPaused)
    for _, cron in ipairs{ "* * * * * *", "*/0 * * * *", "60 * * * *", "CRON_TZ=Nowhere/Else * * * * *",
      "* * * JAN *", "" } do
      local status, doc = fx.emu:json("POST", "/v2/schedules/" .. fx.sink.url, { headers = { ["Upstash-Cron"] = cron } })
      assert.equal(400, status, cron)
      assert.is_string(doc.error)
    end
    local status = fx.emu:json("POST", "/v2/schedules/" .. fx.sink.url)
    assert.equal(400, status)
    assert.equal(1, #client:schedule_list())
  end)

  local bad = {
    { "schedule_create", { "https://e.com", "* * * * * *" }, "#2 to 'schedule_create' (a cron expression has 5 fields" },
    { "schedule_create", { "https://e.com", "*/0 * * * *" }, "the step 0 is outside 1-59" },
    { "schedule_create", { "https://e.com", "60 * * * *" }, "field 1 (minute): 60 is outside 0-59" },
    { "schedule_create", { "https://e.com", "* 24 * * *" }, "field 2 (hour): 24 is outside 0-23" },
    { "schedule_create", { "https://e.com", "* * 0 * *" }, "field 3 (day of month): 0 is outside 1-31" },
    { "schedule_create", { "https://e.com", "* * * 13 *" }, "field 4 (month): 13 is outside 1-12" },
    { "schedule_create", { "https://e.com", "* * * * 8" }, "field 5 (day of week): 8 is outside 0-7" },
    { "schedule_create", { "https://e.com", "5-1 * * * *" }, "the range 5-1 ends before it starts" },
    { "schedule_create", { "https://e.com", "* * * JAN *" }, "field 4 (month): 'JAN' is not" },
    { "schedule_create", { "https://e.com", "1,,2 * * * *" }, "field 1 (minute)" },
    { "schedule_create", { "https://e.com", "* * * *" }, "has 5 fields" },
    { "schedule_create", { "https://e.com", "" }, "has 5 fields" },
    { "schedule_create", { "https://e.com", "@daily" }, "field 1 (minute)" },
    { "schedule_create", { "https://e.com", "* * * * *\n" }, "control bytes" },
    { "schedule_create", { "https://e.com", 5 }, "cron must be a string, got number" },
    { "schedule_create", { "https://e.com", ("1,"):rep(300) .. "1 * * * *" }, "cron is longer than 512 bytes" },
    { "schedule_create", { "https://e.com", "99999999999999999999 * * * *" }, "field 1 (minute): '99999999999999999999'" },
    { "schedule_create", { "https://e.com", "*/4294967297 * * * *" }, "field 1 (minute)" },
    { "schedule_create", { "https://e.com", "CRON_TZ=" .. ("A"):rep(200) .. " * * * * *" }, "IANA time zone name of 1 to 128" },
    { "schedule_create", { "https://e.com", "CRON_TZ=Europe//Paris * * * * *" }, "not an IANA time zone name" },
    { "schedule_create", { "https://e.com", "CRON_TZ=Europe/Paris\0 * * * * *" }, "control bytes" },
    { "schedule_create", { "https://e.com", "CRON_TZ=Mars/Olympus_Mons * * * * *" }, "unknown time zone" },
    { "schedule_create", { "https://e.com", "CRON_TZ=../etc/passwd * * * * *" }, "not an IANA time zone name" },
    { "schedule_create", { "https://e.com", "CRON_TZ=/etc/localtime * * * * *" }, "not an IANA time zone name" },
    { "schedule_create", { "https://e.com", "CRON_TZ= * * * * *" }, "IANA time zone name of 1 to" },
    { "schedule_create", { "ftp://e.com", "* * * * *" }, "#1 to 'schedule_create' (destination must be" },
    { "schedule_create", { "a/b", "* * * * *" }, "#1 to 'schedule_create' (destination must be" },
    { "schedule_create", { "https://e.com", "* * * * *", 5 }, "#3 to 'schedule_create' (body must be a string" },
    { "schedule_create", { "https://e.com", "* * * * *", "b", { schedule_id = "a/b" } },
      "#4 to 'schedule_create' (option 'schedule_id' may hold only" },
    { "schedule_create", { "https://e.com", "* * * * *", "b", { queue = ".." } }, "option 'queue' must not be '.' or '..'" },
    { "schedule_create", { "https://e.com", "* * * * *", "b", { not_before = 1700000000 } },
      "option 'not_before' does not apply to schedules" },
    { "schedule_create", { "https://e.com", "* * * * *", "b", { deduplication_id = "d" } },
      "option 'deduplication_id' does not apply to schedules" },
    { "schedule_create", { "https://e.com", "* * * * *", "b", { content_based_deduplication = true } },
      "option 'content_based_deduplication' does not apply" },
    { "schedule_create", { "https://e.com", "* * * * *", "b", { headers = { ["Upstash-Not-Before"] = "1" } } },
      "does not apply to schedules" },
    { "schedule_create", { "https://e.com", "* * * * *", "b", { headers = { ["upstash-cron"] = "1 * * * *" } } },
      "the cron is schedule_create's second argument" },
    { "schedule_create", { "https://e.com", "* * * * *", "b", { schedule_idd = "x" } }, "schedule_id" },
    { "schedule_create", { "https://e.com", "* * * * *", "b", { follow = true } }, "applies to dlq_retry only" },
    { "schedule_create_json", { "https://e.com", "* * * * *", { f = print } }, "#3 to 'schedule_create_json' (cannot encode" },
    { "schedule_create_json", { "https://e.com", "* * * * *", {}, { content_type = "text/plain" } },
      "schedule_create_json always sends Content-Type: application/json" },
    { "schedule_get", { "a/b" }, "#1 to 'schedule_get' (schedule id may hold only" },
    { "schedule_get", { "" }, "schedule id must not be empty" },
    { "schedule_get", { ".." }, "schedule id must not be '.' or '..'" },
    { "schedule_get", { ("s"):rep(257) }, "longer than 256 bytes" },
    { "schedule_delete", { "a%2Fb" }, "schedule id may hold only" },
    { "schedule_pause", { 7 }, "schedule id must be a string, got number" },
    { "schedule_resume", { nil }, "schedule id must be a string, got nil" },
  }
  for _, case in ipairs(bad) do
    local fname, args, want = case[1], case[2], case[3]
    it("bad input raises and sends nothing: " .. fname .. ": " .. want, function()
      local ok, err = pcall(client[fname], client, unpack(args, 1, 4))
      assert.is_false(ok)
      assert.is_string(err)
      assert.truthy(err:find(want, 1, true), err)
      -- qstash.safe and the module function raise argument errors too
      local sc = safe.new{ token = fx.emu.token, base_url = fx.emu.url }
      assert.has_error(function() sc[fname](sc, unpack(args, 1, 4)) end)
      sc:close()
      assert.same({}, served())
    end)
  end

  it("publish and enqueue refuse the schedule options", function()
    for _, opt in ipairs{ "schedule_id", "queue" } do
      local ok, err = pcall(client.publish, client, "https://e.com", "b", { [opt] = "x" })
      assert.is_false(ok)
      assert.truthy(err:find("option '" .. opt .. "' applies to schedule_create and schedule_create_json only",
        1, true), err)
    end
    local ok, err = pcall(client.enqueue, client, "q", "https://e.com", "b", { queue = "q" })
    assert.is_false(ok)
    assert.truthy(err:find("enqueue takes the queue as its first argument", 1, true), err)
    assert.same({}, served())
  end)
end)
