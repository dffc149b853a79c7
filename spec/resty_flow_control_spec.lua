-- qstash.resty's flow-control rows (qr.flow_control_get, _pause, _resume,
-- _reset_rate, _pin, _unpin, qr.global_parallelism) from a content handler
-- over cosockets, against the emulator: the same live state the C module's
-- libcurl path reads, and bad input raising before anything is sent. Needs
-- LuaJIT and nginx (`make test LUA=luajit SPECS=spec/resty_flow_control_spec.lua`).

local RC = require "spec.support.resty_calls"
local E = require "spec.support.emulator"

local skip = RC.skip_reason()
if skip then
  describe("qstash.resty flow control under nginx", function() pending(skip) end)
  return
end

describe("qstash.resty flow control under nginx", function()
  local env
  -- (QStash's own clock: a key's rate period is real seconds here)
  setup(function() env = RC.start{ time_scale = 1 } end)
  teardown(function() if env then env:stop() end end)
  before_each(function() env:reset() end)

  -- qr[fn](...) in a content handler: { ok, res, err, raised, phase }
  local function call(fn, ...)
    return env:call(fn, select("#", ...), ...)
  end

  local function ok(doc)
    assert.is_nil(doc.raised)
    assert.is_true(doc.ok, doc.err and doc.err.kind)
    assert.equal("content", doc.phase)
    return doc.res
  end

  it("reads and changes a key's live state, as the libcurl path sees it", function()
    env.sink:set_status(200, { delay = 1 })
    for _ = 1, 2 do
      env.client:publish(env.sink.url .. "/r", "x", { flow_control = { key = "rk", parallelism = 1, rate = 10, period = 60 } })
    end
    local info
    E.wait_for(function()
      info = ok(call("flow_control_get", "rk"))
      return info.parallelismCount == 1 and info.waitListSize == 1
    end, 5)
    assert.equal("rk", info.flowControlKey)
    assert.is_true(ok(call("global_parallelism")).parallelismCount >= 1)
    assert.is_true(ok(call("flow_control_pause", "rk")))
    assert.is_true(env.client:flow_control_get("rk").isPaused)
    assert.is_true(ok(call("flow_control_resume", "rk")))
    assert.is_true(ok(call("flow_control_pin", "rk", { parallelism = 2, rate = 4, period = 30 })))
    info = env.client:flow_control_get("rk")
    assert.same({ 2, 4, 30, true, true, false }, { info.parallelismMax, info.rateMax, info.ratePeriod,
      info.isPinnedParallelism, info.isPinnedRate, info.isPaused })
    assert.is_true(ok(call("flow_control_unpin", "rk", { rate = true })))
    assert.is_false(env.client:flow_control_get("rk").isPinnedRate)
    assert.is_true(ok(call("flow_control_reset_rate", "rk")))
    assert.same(env.client:flow_control_get("rk"), ok(call("flow_control_get", "rk")))
  end)

  it("an unknown key is not_found; bad input raises and sends nothing", function()
    local doc = call("flow_control_get", "nope")
    assert.is_false(doc.ok)
    assert.equal("not_found", doc.err.kind)
    local before = select(2, env.emu:json("GET", "/__dev/requests"))
    for _, row in ipairs{
      { "flow_control_pin", { "k", {} }, "a pin without a limit" },
      { "flow_control_pin", { "k", { parallelism = 1e9 } }, "'parallelism' must be an integer" },
      { "flow_control_unpin", { "k", { parallelism = false } }, "nothing to unpin" },
      { "flow_control_pause", { "" }, "must not be empty" },
    } do
      doc = call(row[1], (table.unpack or unpack)(row[2]))
      assert.is_string(doc.raised, row[1])
      assert.matches("bad argument", doc.raised, nil, true)
      assert.matches(row[3], doc.raised, nil, true)
    end
    assert.same(before, select(2, env.emu:json("GET", "/__dev/requests")))
  end)
end)
