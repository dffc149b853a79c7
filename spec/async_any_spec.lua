-- client:async(name, ..., callback): any API function without blocking,
-- against the emulator: one request, pages, a follow (its interval a wait
-- in the drive calls, never a sleep); cancel, close inside a callback, an
-- error in a callback; the same result or error as the synchronous call.
local E = require "spec.support.emulator"
local socket = require "socket"
local qstash = require "qstash"
local qsafe = require "qstash.safe"

local FAST = { timeout = 5, interval = 0.02 }

describe("client:async against the emulator", function()
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

  -- drives until every callback ran (bounded: a hang fails, never waits out)
  local function settle(client)
    local deadline = socket.gettime() + 10
    while client:pending() > 0 and socket.gettime() < deadline do client:poll(0.5) end
    assert.equal(0, client:pending())
  end

  local function dlq_entry()
    sink:set_status(500)
    local id = c:publish(sink.url .. "/fail", "body", { retries = 0 }).messageId
    local f = c:follow(id, FAST)
    sink:set_status(200)
    assert.equal("FAILED", f.state)
    return f.dlqId, id
  end

  it("runs one request: publish, its callback from poll only, with the sync result's shape", function()
    local got
    local h = c:async("publish", sink.url .. "/ok", "hi", nil, function(res, err) got = { res, err } end)
    assert.matches("^qstash.request", tostring(h))
    assert.equal(1, c:pending())
    assert.is_nil(got)
    settle(c)
    assert.is_nil(got[2])
    assert.is_string(got[1].messageId)
    local sync = c:publish(sink.url .. "/ok", "hi")
    local keys, skeys = {}, {}
    for k in pairs(got[1]) do keys[#keys + 1] = k end
    for k in pairs(sync) do skeys[#skeys + 1] = k end
    table.sort(keys)
    table.sort(skeys)
    assert.same(skeys, keys)
  end)

  it("runs pages: dlq_list over several pages, as the sync call lists them", function()
    for _ = 1, 3 do dlq_entry() end
    local sync = c:dlq_list{ count = 1 }
    local got
    c:async("dlq_list", { count = 1 }, function(res, err) got = { res, err } end)
    settle(c)
    assert.is_nil(got[2])
    assert.equal(#sync.messages, #got[1].messages)
  end)

  it("runs a follow to its end, polling from the drive calls", function()
    local id = c:publish(sink.url .. "/ok", "hi").messageId
    local got, ran = nil, 0
    c:async("follow", id, FAST, function(res, err) got = { res, err } end)
    local deadline = socket.gettime() + 10
    while not got and socket.gettime() < deadline do ran = ran + c:poll(0.5) end
    assert.equal(1, ran)
    assert.is_nil(got[2])
    assert.equal("DELIVERED", got[1].state)
    assert.equal(id, got[1].messageId)
  end)

  it("runs an id list over several requests: dlq_delete_many of 150 ids, as the sync call", function()
    local ids = {}
    for i = 1, 150 do ids[i] = "1-" .. i end
    local sync = c:dlq_delete_many(ids)
    local got
    c:async("dlq_delete_many", ids, function(res, err) got = { res, err } end)
    settle(c)
    assert.is_nil(got[2])
    assert.same(sync, got[1])
  end)

  it("runs follow_many to the end of every message", function()
    local ids = {}
    for i = 1, 3 do ids[i] = c:publish(sink.url .. "/ok" .. i, "hi").messageId end
    local got
    c:async("follow_many", ids, FAST, function(res, err) got = { res, err } end)
    settle(c)
    assert.is_nil(got[2])
    for _, id in ipairs(ids) do assert.equal("DELIVERED", got[1][id].state) end
  end)

  it("runs dlq_retry with follow: the retry, then the new message's end", function()
    local dlq = dlq_entry()
    local got
    c:async("dlq_retry", dlq, { follow = FAST }, function(res, err) got = { res, err } end)
    settle(c)
    assert.is_nil(got[2])
    assert.equal("DELIVERED", got[1].delivery.state)
  end)

  it("gives the sync call's error object: a missing DLQ entry", function()
    local ok, serr = pcall(c.dlq_get, c, "no-such-id")
    assert.is_false(ok)
    local got
    c:async("dlq_get", "no-such-id", function(res, err) got = { res, err } end)
    settle(c)
    assert.is_nil(got[1])
    assert.is_true(qstash.is_error(got[2]))
    assert.equal(serr.kind, got[2].kind)
    assert.equal(serr.status, got[2].status)
    assert.equal(serr.path, got[2].path)
  end)

  it("raises argument errors at once, as prepare does", function()
    assert.has_error(function() c:async("no_such_fn", function() end) end)
    assert.has_error(function() c:async("dlq_get", "x") end)
    assert.has_error(function() c:async("dlq_get", 42, function() end) end)
    assert.equal(0, c:pending())
  end)

  it("cancel: the callback gets a cancelled error, even in the middle of a follow", function()
    local id = c:publish(sink.url .. "/later", "x", { delay = 86400 }).messageId
    local got
    local h = c:async("follow", id, FAST, function(res, err) got = { res, err } end)
    c:poll(0.05)
    assert.is_true(h:cancel())
    assert.is_false(h:cancel())
    assert.equal(1, c:poll(0))
    assert.is_nil(got[1])
    assert.equal("cancelled", got[2].kind)
    assert.equal(0, c:pending())
  end)

  it("close inside a callback cancels the rest without their callbacks", function()
    local ran = 0
    local id = c:publish(sink.url .. "/later", "x", { delay = 86400 }).messageId
    c:async("follow", id, FAST, function() ran = ran + 1 end)
    c:async("dlq_list", nil, function() ran = ran + 1; c:close() end)
    local deadline = socket.gettime() + 10
    while ran == 0 and socket.gettime() < deadline do c:poll(0.5) end
    assert.equal(1, ran)
    assert.has_error(function() c:pending() end)
    c = nil
  end)

  it("an error in a callback is raised by the drive call; the others still run", function()
    local ran = 0
    c:async("dlq_list", nil, function() ran = ran + 1; error("boom") end)
    c:async("dlq_list", nil, function() ran = ran + 1 end)
    local errs = {}
    local deadline = socket.gettime() + 10
    while ran < 2 and socket.gettime() < deadline do
      local ok, err = pcall(c.poll, c, 0.5)
      if not ok then errs[#errs + 1] = err end
    end
    assert.equal(2, ran)
    assert.equal(1, #errs)
    assert.matches("boom", tostring(errs[1]))
    assert.equal(0, c:pending())
  end)

  it("qstash.safe: the same (res, err) in the callback", function()
    local s = qsafe.new{ token = emu.token, base_url = emu.url }
    local got
    s:async("dlq_get", "missing", function(res, err) got = { res, err } end)
    settle(s)
    assert.is_nil(got[1])
    assert.equal(404, got[2].status)
    s:close()
  end)

  it("a client without a token: the error reaches the callback", function()
    local s = qstash.new{ base_url = emu.url }
    local got
    s:async("dlq_list", nil, function(res, err) got = { res, err } end)
    settle(s)
    assert.is_nil(got[1])
    assert.is_true(qstash.is_error(got[2]))
    s:close()
  end)
end)
