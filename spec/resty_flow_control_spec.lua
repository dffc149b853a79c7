-- qstash.resty's flow-control rows (qr.flow_control_get, _pause, _resume,
-- _reset_rate, _pin, _unpin, qr.global_parallelism) from a content handler
-- over cosockets, against the emulator: the same live state the C module's
-- libcurl path reads, and bad input raising before anything is sent. Needs
-- LuaJIT and nginx (`make test LUA=luajit SPECS=spec/resty_flow_control_spec.lua`).

local E = require "spec.support.emulator"
local N = require "spec.support.nginx"
local cjson = require "cjson"

local skip = N.skip_reason()
if skip then
  describe("qstash.resty flow control under nginx", function() pending(skip) end)
  return
end

local qstash = require "qstash"

-- package.loaded.fc_h: the handlers, run by content_by_lua_block.
local HANDLERS = [==[
  local qr = require "qstash.resty"
  local cjson = require "cjson.safe"
  local unpack = table.unpack or unpack
  local H = {}
  local function conf() return package.loaded.fc_env end
  local function body()
    ngx.req.read_body()
    return cjson.decode(ngx.req.get_body_data() or "null")
  end
  -- { fn, n, args = { ["1"] = ..., ... } }: qr[fn](args 1..n, config), raising or not
  function H.call()
    local a = body()
    local args = {}
    for i = 1, a.n do args[i] = a.args[tostring(i)] end
    args[a.n + 1] = conf()
    local ok, res, err = pcall(qr[a.fn], unpack(args, 1, a.n + 1))
    ngx.say(cjson.encode{
      raised = not ok and tostring(res) or nil, ok = ok and res ~= nil, res = ok and res or nil,
      err = err and { kind = err.kind, status = err.status } or nil, phase = ngx.get_phase() })
  end
  package.loaded.fc_h = H
]==]

describe("qstash.resty flow control under nginx", function()
  local emu, sink, ng, client

  setup(function()
    emu = E.start{}
    sink = E.start_sink()
    client = qstash.new{ base_url = emu.url, token = emu.token, timeout = 5 }
    ng = N.start{
      http = ("init_by_lua_block { package.loaded.fc_env = { base_url = %q, token = %q, timeout = 5, "
        .. "retry = { base_delay = 0.01 } }\n%s }"):format(emu.url, emu.token, HANDLERS),
      server = "location = /call { content_by_lua_block { package.loaded.fc_h.call() } }",
    }
  end)

  teardown(function()
    if ng then ng:stop() end
    if client then client:close() end
    if sink then sink:stop() end
    if emu then emu:stop() end
  end)

  before_each(function()
    emu:reset()
    sink:clear()
  end)

  -- qr[fn](...) in a content handler: { ok, res, err, raised, phase }
  local function call(fn, ...)
    local n = select("#", ...)
    local args = { ["0"] = false }
    for i = 1, n do
      local v = select(i, ...)
      if v ~= nil then args[tostring(i)] = v end
    end
    local status, body = E.request(ng.url, "POST", "/call", {
      body = cjson.encode{ fn = fn, n = n, args = args }, headers = { ["content-type"] = "application/json" } })
    assert.equal(200, status, fn .. " -> " .. status .. " " .. body .. "\n" .. ng:error_log():sub(-3000))
    return cjson.decode(body)
  end

  local function ok(doc)
    assert.is_nil(doc.raised)
    assert.is_true(doc.ok, doc.err and doc.err.kind)
    assert.equal("content", doc.phase)
    return doc.res
  end

  it("reads and changes a key's live state, as the libcurl path sees it", function()
    sink:set_status(200, { delay = 1 })
    for _ = 1, 2 do
      client:publish(sink.url .. "/r", "x", { flow_control = { key = "rk", parallelism = 1, rate = 10, period = 60 } })
    end
    local info
    E.wait_for(function()
      info = ok(call("flow_control_get", "rk"))
      return info.parallelismCount == 1 and info.waitListSize == 1
    end, 5)
    assert.equal("rk", info.flowControlKey)
    assert.is_true(ok(call("global_parallelism")).parallelismCount >= 1)
    assert.is_true(ok(call("flow_control_pause", "rk")))
    assert.is_true(client:flow_control_get("rk").isPaused)
    assert.is_true(ok(call("flow_control_resume", "rk")))
    assert.is_true(ok(call("flow_control_pin", "rk", { parallelism = 2, rate = 4, period = 30 })))
    info = client:flow_control_get("rk")
    assert.same({ 2, 4, 30, true, true, false }, { info.parallelismMax, info.rateMax, info.ratePeriod,
      info.isPinnedParallelism, info.isPinnedRate, info.isPaused })
    assert.is_true(ok(call("flow_control_unpin", "rk", { rate = true })))
    assert.is_false(client:flow_control_get("rk").isPinnedRate)
    assert.is_true(ok(call("flow_control_reset_rate", "rk")))
    assert.same(client:flow_control_get("rk"), ok(call("flow_control_get", "rk")))
  end)

  it("an unknown key is not_found; bad input raises and sends nothing", function()
    local doc = call("flow_control_get", "nope")
    assert.is_false(doc.ok)
    assert.equal("not_found", doc.err.kind)
    local before = select(2, emu:json("GET", "/__dev/requests"))
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
    assert.same(before, select(2, emu:json("GET", "/__dev/requests")))
  end)
end)
