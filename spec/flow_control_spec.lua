-- The flow-control API (flow_control_get, _pause, _resume, _reset_rate,
-- _pin, _unpin, global_parallelism): on the wire against the recording
-- server (paths, queries, defaults, bad input sending nothing), and against
-- the emulator, whose keys honour parallelism and rate per period.
local qstash = require "qstash"
local qsafe = require "qstash.safe"
local server = require "spec.support.server"
local E = require "spec.support.emulator"
local step_http = require "spec.support.step_http"

describe("flow control on the wire", function()
  local srv, client

  setup(function()
    srv = server.start()
    client = qstash.new{ token = "tok-fc", base_url = srv.url, timeout = 2,
                         retry = { attempts = 2, base_delay = 0.01 } }
  end)
  teardown(function()
    client:close()
    srv:stop()
  end)
  before_each(function() srv:reset() end)

  it("sends each action to /v2/flowControl/{key}/..., the key one encoded segment", function()
    local rows = {
      { "flow_control_pause", {}, "POST", "/pause" },
      { "flow_control_resume", {}, "POST", "/resume" },
      { "flow_control_reset_rate", {}, "POST", "/resetRate" },
      { "flow_control_pin", { { parallelism = 3, rate = 20, period = 120 } }, "POST",
        "/pin?parallelism=3&rate=20&period=120" },
      { "flow_control_pin", { { rate = 5.0 } }, "POST", "/pin?rate=5" },
      { "flow_control_pin", { { rate = 5, period = "1h30m" } }, "POST", "/pin?rate=5&period=5400" },
      { "flow_control_pin", { { parallelism = 1, period = "7d" } }, "POST", "/pin?parallelism=1&period=604800" },
      { "flow_control_unpin", { { parallelism = true, rate = true } }, "POST",
        "/unpin?parallelism=true&rate=true" },
      { "flow_control_unpin", { { parallelism = false, rate = true } }, "POST", "/unpin?rate=true" },
    }
    for _, row in ipairs(rows) do
      srv:reset()
      srv:script{ { status = 200, body = "" } }
      local res = client[row[1]](client, "tenant/a b?#%", table.unpack(row[2]))
      assert.is_true(res, row[1])
      local req = srv:requests()[1]
      assert.equal(row[3], req.method, row[1])
      assert.equal("/v2/flowControl/tenant%2Fa%20b%3F%23%25" .. row[4], req.target, row[1])
    end
  end)

  it("flow_control_get reads the key, the fields QStash leaves out (or null) as 0 and false", function()
    srv:script{ { status = 200,
      body = '{"flowControlKey":"k1","parallelismMax":3,"isPaused":true,"rateCount":null,"isPinnedRate":null}' } }
    local info = client:flow_control_get("k1")
    assert.equal("GET", srv:requests()[1].method)
    assert.equal("/v2/flowControl/k1", srv:requests()[1].target)
    assert.same({
      flowControlKey = "k1", waitListSize = 0, parallelismMax = 3, parallelismCount = 0,
      rateMax = 0, rateCount = 0, ratePeriod = 0, ratePeriodStart = 0,
      isPaused = true, isPinnedParallelism = false, isPinnedRate = false,
    }, info)
  end)

  it("global_parallelism reads /v2/globalParallelism, a count left out as 0", function()
    srv:script{ { status = 200, json = { parallelismMax = 100 } } }
    assert.same({ parallelismMax = 100, parallelismCount = 0 }, client:global_parallelism())
    assert.equal("/v2/globalParallelism", srv:requests()[1].target)
  end)

  it("an answer that is not a JSON object is a decode error, not a result", function()
    for _, row in ipairs{ { "flow_control_get", "k" }, { "global_parallelism" } } do
      local bodies = { "[1,2]", "\"x\"", "not json", "" }
      if row[1] == "flow_control_get" then bodies[#bodies + 1] = '{"waitListSize":1}' end
      for _, body in ipairs(bodies) do
        srv:reset()
        srv:script{ { status = 200, body = body } }
        local ok, err = pcall(client[row[1]], client, row[2])
        assert.is_false(ok, row[1] .. " " .. body)
        assert.equal("decode", err.kind, row[1] .. " " .. body)
      end
    end
  end)

  it("an unknown key is not_found; qstash.safe returns it", function()
    srv:script{ { status = 404, json = { error = "flow control key not found" } },
                { status = 404, json = { error = "flow control key not found" } } }
    local ok, err = pcall(client.flow_control_get, client, "nope")
    assert.is_false(ok)
    assert.equal("not_found", err.kind)
    local sc = qsafe.new{ token = "tok-fc", base_url = srv.url, retry = false }
    local res, serr = sc:flow_control_pause("nope")
    assert.is_nil(res)
    assert.equal("not_found", serr.kind)
    sc:close()
  end)

  it("every function is repeated after an unknown outcome (they set a state)", function()
    for _, row in ipairs{
      { "flow_control_get", { "k" } }, { "flow_control_pause", { "k" } },
      { "flow_control_resume", { "k" } }, { "flow_control_reset_rate", { "k" } },
      { "flow_control_pin", { "k", { parallelism = 1 } } },
      { "flow_control_unpin", { "k", { rate = true } } }, { "global_parallelism", {} },
    } do
      srv:reset()
      srv:script{ { status = 503, json = { error = "busy" } },
        { status = 200, json = { flowControlKey = "k", parallelismMax = 1 } } }
      assert.truthy(client[row[1]](client, table.unpack(row[2])), row[1])
      assert.equal(2, #srv:requests(), row[1])
    end
  end)

  it("runs through prepare/step like over libcurl", function()
    srv:script{ { status = 200, body = "" } }
    local res = step_http.run(client:prepare("flow_control_pin", "k", { parallelism = 2 }))
    assert.is_true(res)
    assert.equal("/v2/flowControl/k/pin?parallelism=2", srv:requests()[1].target)
  end)

  it("raises on bad input and sends nothing", function()
    local bad = {
      { "flow_control_get", { "" }, "flow%-control key must not be empty" },
      { "flow_control_get", { 42 }, "flow%-control key must be a string" },
      { "flow_control_pause", { nil }, "flow%-control key must be a string" },
      { "flow_control_resume", { "a\nb" }, "control bytes" },
      { "flow_control_reset_rate", { ".." }, "must not be '.' or '..'" },
      { "flow_control_pin", { "k", {} }, "a pin without a limit" },
      { "flow_control_pin", { "k", { period = 60 } }, "a pin without a limit" },
      { "flow_control_pin", { "k" }, "settings must be a table" },
      { "flow_control_pin", { "k", { parallelism = 0 } }, "'parallelism' must be an integer from 1" },
      { "flow_control_pin", { "k", { parallelism = 1e9 } }, "'parallelism' must be an integer from 1" },
      { "flow_control_pin", { "k", { rate = 1.5 } }, "'rate' must be an integer from 1" },
      { "flow_control_pin", { "k", { rate = 0 / 0 } }, "'rate' must be an integer from 1" },
      { "flow_control_pin", { "k", { rate = "10" } }, "'rate' must be an integer from 1" },
      { "flow_control_pin", { "k", { rate = 1, period = 0 } }, "'period' must be an integer from 1" },
      { "flow_control_pin", { "k", { rate = 1, period = 604801 } }, "'period' must be an integer from 1" },
      { "flow_control_pin", { "k", { paralelism = 2 } }, "parallelism" },
      { "flow_control_pin", { "k", { rate = 1, period = "8d" } }, "'period' must be whole seconds or a duration" },
      { "flow_control_pin", { "k", { rate = 1, period = "1x" } }, "'period' must be whole seconds or a duration" },
      { "flow_control_pin", { "k", { rate = 1, period = "m" } }, "'period' must be whole seconds or a duration" },
      { "flow_control_pin", { "k", { rate = 1, period = "10" } }, "'period' must be whole seconds or a duration" },
      { "flow_control_pin", { "k", { rate = 1, period = "" } }, "'period' must be whole seconds or a duration" },
      { "flow_control_pin", { "k", { rate = 1, period = "0s" } }, "'period' must be whole seconds or a duration" },
      { "flow_control_pin", { "k", { rate = 1, period = ("9"):rep(400) .. "s" } }, "'period' must be whole" },
      { "flow_control_unpin", { "k", {} }, "nothing to unpin" },
      { "flow_control_unpin", { "k", { parallelism = false } }, "nothing to unpin" },
      { "flow_control_unpin", { "k", { rate = "yes" } }, "'rate' must be a boolean" },
      { "flow_control_unpin", { "k", { period = true } }, "period" },
    }
    for _, row in ipairs(bad) do
      local ok, err = pcall(client[row[1]], client, table.unpack(row[2], 1, 2))
      assert.is_false(ok, row[1])
      assert.is_string(err, row[1])
      assert.matches("bad argument", err, nil, false, row[1])
      assert.matches(row[3], err, nil, false, row[1])
      -- the module-level function and qstash.safe raise the same
      assert.has_error(function() qsafe[row[1]](table.unpack(row[2], 1, 2)) end)
    end
    assert.equal(0, #srv:requests())
  end)
end)

describe("flow control against the emulator", function()
  -- a period of 10 s lasts 1 s here
  local fx = E.fixture{ time_scale = 0.1 }
  local client

  before_each(function()
    client = client or qstash.new{ token = fx.emu.token, base_url = fx.emu.url, timeout = 5 }
  end)
  teardown(function() if client then client:close() end end)

  local function publish(key, fc, extra)
    local opts = { flow_control = { key = key } }
    for k, v in pairs(fc) do opts.flow_control[k] = v end
    for k, v in pairs(extra or {}) do opts[k] = v end
    return client:publish(fx.sink.url .. "/fc", "x", opts)
  end

  local function until_info(key, pred)
    local info
    E.wait_for(function()
      info = client:flow_control_get(key)
      return pred(info)
    end, 5)
    return info
  end

  it("keeps at most `parallelism` deliveries of a key in flight, the rest waitlisted", function()
    fx.sink:set_status(200, { delay = 0.4 })
    for _ = 1, 3 do publish("par", { parallelism = 1 }) end
    local info = until_info("par", function(i) return i.waitListSize == 2 end)
    assert.equal(1, info.parallelismMax)
    assert.equal(1, info.parallelismCount)
    assert.is_true(client:global_parallelism().parallelismCount >= 1)
    E.wait_for(function() return #fx.sink:received() == 3 end, 5)
    local got = fx.sink:received()
    -- one at a time: each arrived after the one before was answered
    for i = 2, 3 do assert.is_true(got[i].t - got[i - 1].t >= 0.35, "overlap at " .. i) end
    info = until_info("par", function(i) return i.parallelismCount == 0 end)
    assert.equal(0, info.waitListSize)
  end)

  it("dispatches at most `rate` per period; the rest wait for the next period", function()
    for _ = 1, 3 do publish("rate", { rate = 2, period = 10 }) end
    local info = until_info("rate", function(i) return i.waitListSize == 1 end)
    assert.equal(2, info.rateMax)
    assert.equal(2, info.rateCount)
    assert.equal(10, info.ratePeriod)
    assert.is_true(math.abs(info.ratePeriodStart - os.time()) <= 5)
    E.wait_for(function() return #fx.sink:received() == 3 end, 5)
    local got = fx.sink:received()
    assert.is_true(got[3].t - got[1].t >= 0.8, "the third went out in the first period")
  end)

  -- CPU seconds the emulator used so far (utime + stime of /proc/<pid>/stat, at 100 Hz)
  local function emu_cpu()
    local f = assert(io.open("/proc/" .. fx.emu.pid .. "/stat"))
    local stat = f:read("*a")
    f:close()
    local fields = {}
    for w in stat:match("%)%s+(.*)"):gmatch("%S+") do fields[#fields + 1] = w end
    return (tonumber(fields[12]) + tonumber(fields[13])) / 100
  end

  it("waits without spinning when a period ends while the parallelism still holds the waitlist", function()
    fx.sink:set_status(200, { delay = 1.5 })
    -- the period (0.1 s here) ends long before the first delivery does
    for _ = 1, 2 do publish("spin", { parallelism = 1, rate = 1, period = 1 }) end
    until_info("spin", function(i) return i.parallelismCount == 1 and i.waitListSize == 1 end)
    local cpu = emu_cpu()
    E.wait_for(function() return #fx.sink:received() == 2 end, 5)
    assert.is_true(emu_cpu() - cpu < 0.25, "the emulator's timer spun while the waitlist waited")
  end)

  it("pause waitlists new deliveries, resume lets them go", function()
    publish("pz", { parallelism = 5 })
    E.wait_for(function() return #fx.sink:received() == 1 end, 5)
    assert.is_true(client:flow_control_pause("pz"))
    publish("pz", { parallelism = 5 })
    local info = until_info("pz", function(i) return i.waitListSize == 1 end)
    assert.is_true(info.isPaused)
    assert.equal(1, #fx.sink:received())
    assert.is_true(client:flow_control_resume("pz"))
    E.wait_for(function() return #fx.sink:received() == 2 end, 5)
    assert.is_false(client:flow_control_get("pz").isPaused)
  end)

  it("pin fixes the configuration against later messages; unpin frees each part", function()
    publish("pin", { parallelism = 5, rate = 10, period = "1m" })
    until_info("pin", function(i) return i.rateCount == 1 end)
    assert.is_true(client:flow_control_pin("pin", { parallelism = 3, rate = 20, period = 120 }))
    local info = client:flow_control_get("pin")
    -- pinning starts the rate period again
    assert.same({ 3, 20, 120, true, true, 0 }, { info.parallelismMax, info.rateMax, info.ratePeriod,
      info.isPinnedParallelism, info.isPinnedRate, info.rateCount })
    publish("pin", { parallelism = 7, rate = 9 })
    info = client:flow_control_get("pin")
    assert.same({ 3, 20, 120 }, { info.parallelismMax, info.rateMax, info.ratePeriod })
    assert.is_true(client:flow_control_unpin("pin", { parallelism = true }))
    info = client:flow_control_get("pin")
    assert.is_false(info.isPinnedParallelism)
    assert.is_true(info.isPinnedRate)
    assert.equal(3, info.parallelismMax) -- the pinned value stays until a message says otherwise
    publish("pin", { parallelism = 7, rate = 9 })
    info = client:flow_control_get("pin")
    assert.equal(7, info.parallelismMax)
    assert.equal(20, info.rateMax)
  end)

  it("reset_rate clears the count of the period", function()
    for _ = 1, 2 do publish("rr", { rate = 1, period = 600 }) end
    until_info("rr", function(i) return i.rateCount == 1 and i.waitListSize == 1 end)
    assert.is_true(client:flow_control_reset_rate("rr"))
    -- the reset let the waiting one go, which counts in the new period
    E.wait_for(function() return #fx.sink:received() == 2 end, 5)
    assert.equal(1, client:flow_control_get("rr").rateCount)
    client:flow_control_pause("rr")
    assert.is_true(client:flow_control_reset_rate("rr"))
    assert.equal(0, client:flow_control_get("rr").rateCount)
  end)

  it("an unknown key is not_found; global_parallelism reads the account's", function()
    local ok, err = pcall(client.flow_control_get, client, "never-used")
    assert.is_false(ok)
    assert.equal("not_found", err.kind)
    local g = client:global_parallelism()
    assert.equal(100, g.parallelismMax)
    assert.equal(0, g.parallelismCount)
  end)

  it("log and DLQ entries carry flowControlKey; the logs filter by it", function()
    fx.sink:set_status(500)
    local mid = publish("dl", { parallelism = 1 }, { retries = 0 }).messageId
    local entry
    E.wait_for(function()
      entry = client:dlq_list().messages[1]
      return entry ~= nil
    end, 5)
    assert.equal(mid, entry.messageId)
    assert.equal("dl", entry.flowControlKey)
    local logs = client:logs{ flow_control_key = "dl" }.logs
    assert.is_true(#logs >= 3)
    for _, e in ipairs(logs) do assert.equal("dl", e.flowControlKey) end
    assert.equal(0, #client:logs{ flow_control_key = "other" }.logs)
  end)
end)
