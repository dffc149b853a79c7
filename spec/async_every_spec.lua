-- Every API function without blocking: the list of functions is the
-- module's own (every method client:prepare takes), so a function added
-- later fails here until it has a row of arguments. Each runs against the
-- emulator four ways: the synchronous call, client:async driven by poll,
-- client:async in uv's loop (qstash.loop.luv) and qstash.loop.cqueues.call
-- in a cqueues controller; each gives the synchronous call's result (the
-- same value, or the same shape where QStash makes new ids and times) or
-- its error (the same kind, status, path and message). The loops never
-- make the engine wait, and leave nothing watched.
local E = require "spec.support.emulator"
local socket = require "socket"
local qstash = require "qstash"

local has_luv, uv = pcall(require, "luv")
local has_cq, cqueues = pcall(require, "cqueues")
local QL = has_luv and require "qstash.loop.luv"
local QC = has_cq and require "qstash.loop.cqueues"
local unpack = table.unpack or unpack -- luacheck: ignore 143

local FAST = { timeout = 5, interval = 0.02 }

-- The API functions client:prepare (and so client:async) takes: every
-- method but those prepare refuses by name.
local function api_names()
  local c = qstash.new{ token = "t", base_url = "http://127.0.0.1:9" }
  local names = {}
  for name, fn in pairs(getmetatable(c).__index) do
    if type(fn) == "function" and name:sub(1, 1) ~= "_" then
      local ok, err = pcall(c.prepare, c, name)
      if ok or not tostring(err):find("cannot be prepared", 1, true) then names[#names + 1] = name end
    end
  end
  c:close()
  table.sort(names)
  return names
end

-- The arguments of each function, given the emulator's state `st`
-- (st.sink: the sink's URL, st.msg: a delivered message's id, st.dlq: a DLQ
-- entry's id). `shape`: compare results by keys and types only (new ids,
-- times, counters that move). Names and ids that do not exist give a clean
-- error where QStash has nothing to act on.
local ROWS = {
  batch = { shape = true, args = function(st) return { { { destination = st.sink .. "/b", body = "x" } } } end },
  batch_json = { shape = true, args = function(st) return { { { destination = st.sink .. "/b", body = { a = 1 } } } } end },
  cancel = { args = function() return { "msg_no_such" } end },
  cancel_many = { args = function() return { { "msg_no_such_1", "msg_no_such_2" } } end },
  dlq_delete = { args = function() return { "1-no-such" } end },
  dlq_delete_many = { args = function() return { { "1-no-such", "2-no-such" } } end },
  dlq_get = { shape = true, args = function(st) return { st.dlq } end },
  dlq_list = { shape = true, args = function() return { { count = 1 } } end },
  dlq_retry = { args = function() return { "1-no-such" } end },
  dlq_retry_many = { args = function() return { { "1-no-such" } } end },
  enqueue = { shape = true, args = function(st) return { "q-every", st.sink .. "/q", "x" } end },
  enqueue_json = { shape = true, args = function(st) return { "q-every", st.sink .. "/q", { a = 1 } } end },
  flow_control_get = { args = function() return { "no-such-key" } end },
  flow_control_pause = { args = function() return { "no-such-key" } end },
  flow_control_pin = { args = function() return { "no-such-key", { parallelism = 2 } } end },
  flow_control_reset_rate = { args = function() return { "no-such-key" } end },
  flow_control_resume = { args = function() return { "no-such-key" } end },
  flow_control_unpin = { args = function() return { "no-such-key", { parallelism = true } } end },
  follow = { shape = true, args = function(st) return { st.msg, FAST } end },
  follow_many = { shape = true, args = function(st) return { { st.msg }, FAST } end },
  global_parallelism = { shape = true, args = function() return {} end },
  logs = { shape = true, args = function(st) return { { message_id = st.msg } } end },
  message = { args = function() return { "msg_no_such" } end },
  publish = { shape = true, args = function(st) return { st.sink .. "/p", "x" } end },
  publish_json = { shape = true, args = function(st) return { st.sink .. "/p", { a = 1 } } end },
  queue_delete = { args = function() return { "q-no-such" } end },
  queue_get = { args = function() return { "q-no-such" } end },
  queue_list = { shape = true, args = function() return {} end },
  queue_pause = { args = function() return { "q-no-such" } end },
  queue_resume = { args = function() return { "q-no-such" } end },
  queue_upsert = { args = function() return { "q-every", { parallelism = 1 } } end },
  schedule_create = { args = function(st) return { st.sink .. "/s", "0 0 1 1 *", "x", { schedule_id = "s-every" } } end },
  schedule_create_json = { args = function(st)
    return { st.sink .. "/s", "0 0 1 1 *", { a = 1 }, { schedule_id = "s-every" } }
  end },
  schedule_delete = { args = function() return { "s-no-such" } end },
  schedule_get = { args = function() return { "s-no-such" } end },
  schedule_list = { shape = true, args = function() return {} end },
  schedule_pause = { args = function() return { "s-no-such" } end },
  schedule_resume = { args = function() return { "s-no-such" } end },
  signing_keys = { args = function() return {} end },
  -- each rotation makes new keys: the same shape, never the same value
  signing_keys_rotate = { shape = true, args = function() return {} end },
  url_group_add_endpoints = { args = function(st) return { "g-every", { { url = st.sink .. "/g" } } } end },
  url_group_delete = { args = function() return { "g-no-such" } end },
  url_group_get = { args = function() return { "g-no-such" } end },
  url_group_list = { shape = true, args = function() return {} end },
  url_group_remove_endpoints = { args = function() return { "g-no-such", { { url = "https://example.com/x" } } } end },
}

-- What a result is made of: its keys and the types of its values, down to
-- the leaves (an array's elements by their shapes, in order).
local function shape(v)
  if type(v) ~= "table" then return type(v) end
  local out = {}
  for k, x in pairs(v) do out[k] = shape(x) end
  return out
end

-- What must be equal between two errors of the same call.
local function error_fields(err)
  if not qstash.is_error(err) then return { raised = tostring(err) } end
  return { kind = err.kind, status = err.status, path = err.path, message = err.message,
           ambiguous = err.ambiguous }
end

local function outcome(row, ok, v)
  if not ok then return { error = error_fields(v) } end
  return { result = row.shape and shape(v) or v }
end

-- drives a client until nothing is pending (bounded: a hang fails, never waits out)
local function settle(c)
  local deadline = socket.gettime() + 20
  while c:pending() > 0 and socket.gettime() < deadline do c:poll(0.5) end
  assert.equal(0, c:pending())
end

local function via_poll(c, name, args)
  local got
  args[#args + 1] = function(res, err) got = { res, err } end
  c:async(name, unpack(args))
  settle(c)
  assert.is_table(got, "the callback did not run")
  if got[2] ~= nil then return false, got[2] end
  return true, got[1]
end

local function via_luv(c, name, args)
  local got
  QL.attach(c)
  args[#args + 1] = function(res, err) got = { res, err } end
  c:async(name, unpack(args))
  local guard = uv.new_timer()
  local fired = false
  uv.update_time() -- from now, not from the loop's last turn (long past, maybe)
  guard:start(20000, 0, function() fired = true; uv.stop() end)
  uv.unref(guard)
  uv.run()
  guard:close()
  uv.run("nowait")
  assert.is_false(fired, "uv.run() did not return")
  assert.same({ 0, false }, { QL.watched(c) })
  QL.detach(c)
  uv.run("nowait") -- luv frees the closed handles on the loop's next turn
  assert.is_table(got, "the callback did not run")
  if got[2] ~= nil then return false, got[2] end
  return true, got[1]
end

-- no pcall around the yielding call: Lua 5.1 cannot yield across one; the
-- error comes back from cq:step
local function via_cqueues(c, name, args)
  local cq = cqueues.new()
  local out
  cq:wrap(function() out = { true, QC.call(c, name, unpack(args)) } end)
  local deadline = cqueues.monotime() + 20
  while not cq:empty() and cqueues.monotime() < deadline do
    local ok, err = cq:step(0.5)
    if not ok then out = { false, err } break end
  end
  assert.is_table(out, "the controller did not finish")
  return out[1], out[2]
end

describe("every API function without blocking", function()
  local names = api_names()

  it("has a row of arguments for every function prepare takes", function()
    local missing = {}
    for _, name in ipairs(names) do
      if not ROWS[name] then missing[#missing + 1] = name end
    end
    assert.same({}, missing)
    assert.is_true(#names >= 30, "found only " .. #names .. " functions")
  end)

  local fx = E.fixture{ time_scale = 0.001 }
  local st

  before_each(function()
    local emu, sink = fx.emu, fx.sink
    local c = qstash.new{ token = emu.token, base_url = emu.url }
    sink:set_status(500)
    local failed = c:follow(c:publish(sink.url .. "/f", "x", { retries = 0 }).messageId, FAST)
    sink:set_status(200)
    local msg = c:publish(sink.url .. "/ok", "x").messageId
    assert.equal("DELIVERED", c:follow(msg, FAST).state)
    c:close()
    st = { sink = sink.url, msg = msg, dlq = failed.dlqId }
  end)

  for _, name in ipairs(names) do
    local row = ROWS[name]
    if row then
      it(name .. ": the synchronous call's outcome through async, luv and cqueues", function()
        local emu = fx.emu
        local function client()
          return qstash.new{ token = emu.token, base_url = emu.url, retry = { attempts = 2, base_delay = 0.01 } }
        end
        local c = client()
        local want = outcome(row, pcall(c[name], c, unpack(row.args(st))))
        c:close()

        c = client()
        assert.same(want, outcome(row, via_poll(c, name, row.args(st))), "client:async and poll")
        c:close()

        if has_luv then
          c = client()
          assert.same(want, outcome(row, via_luv(c, name, row.args(st))), "qstash.loop.luv")
          assert.equal(0, c:_stats().loop_waits)
          c:close()
        end

        if has_cq then
          c = client()
          assert.same(want, outcome(row, via_cqueues(c, name, row.args(st))), "qstash.loop.cqueues")
          assert.equal(0, c:_stats().loop_waits)
          c:close()
        end
      end)
    end
  end

  if not has_luv then pending("qstash.loop.luv: needs luv (Debian lua-luv)") end
  if not has_cq then pending("qstash.loop.cqueues: needs cqueues (Debian lua-cqueues)") end
end)

-- dlq_retry_each is no plan (prepare refuses it) but runs through async and
-- both adapters too: the retries as async calls, then the follow of the
-- retried messages as one follow_many.
describe("dlq_retry_each without blocking", function()
  local fx = E.fixture{ time_scale = 0.001 }

  local function client()
    return qstash.new{ token = fx.emu.token, base_url = fx.emu.url, retry = { attempts = 2, base_delay = 0.01 } }
  end

  -- DLQ entries of messages that failed (the sink answers 500, then 200 again)
  local function dlq_entries(n)
    local c, ids = client(), {}
    fx.sink:set_status(500)
    for i = 1, n do
      ids[i] = c:follow(c:publish(fx.sink.url .. "/f" .. i, "x", { retries = 0 }).messageId, FAST).dlqId
    end
    fx.sink:set_status(200)
    c:close()
    return ids
  end

  local ways = { { "poll", via_poll } }
  if has_luv then ways[#ways + 1] = { "luv", via_luv } end
  if has_cq then ways[#ways + 1] = { "cqueues", via_cqueues } end

  it("gives the synchronous call's result: ids that are not in the DLQ, duplicates once", function()
    local ids = { "1-no-such", "2-no-such", "1-no-such", "3-no-such" }
    local c = client()
    local want = outcome({}, pcall(c.dlq_retry_each, c, ids, nil, { concurrency = 2 }))
    c:close()
    assert.equal(3, want.result.failed)
    for _, way in ipairs(ways) do
      c = client()
      assert.same(want, outcome({}, way[2](c, "dlq_retry_each", { ids, nil, { concurrency = 2 } })), way[1])
      assert.equal(0, c:_stats().loop_waits)
      c:close()
    end
  end)

  it("retries and follows: every id retried, its message delivered, on_result once per id", function()
    local c = client()
    local sok, sres = pcall(c.dlq_retry_each, c, dlq_entries(3), { follow = FAST })
    c:close()
    assert.is_true(sok)
    assert.equal(3, sres.ok)
    -- the ids differ from run to run: the counts, and each id's result by shape
    local function summary(ok, out)
      local one
      for _, r in pairs(out.results) do one = shape(r) end
      return { ok = ok, n = out.ok, failed = out.failed, each = one }
    end
    local want = summary(sok, sres)
    for _, way in ipairs(ways) do
      local ids, seen, progress = dlq_entries(3), {}, 0
      c = client()
      local ok, out = way[2](c, "dlq_retry_each", { ids, { follow = FAST }, {
        concurrency = 2,
        on_result = function(id, res) seen[id] = res.delivery.state end,
        on_progress = function(done) progress = done end,
      } })
      assert.same(want, summary(ok, out), way[1])
      for _, id in ipairs(ids) do
        assert.equal("DELIVERED", out.results[id].delivery.state, way[1])
        assert.equal("DELIVERED", seen[id], way[1])
      end
      assert.equal(3, progress)
      assert.equal(0, c:_stats().loop_waits)
      c:close()
    end
  end)

  it("an error raised by on_result ends the batch with that error, as the synchronous call raises it", function()
    local ids = { "1-no-such", "2-no-such", "3-no-such", "4-no-such" }
    local function stop() error("stop here", 0) end
    local c = client()
    local ok, serr = pcall(c.dlq_retry_each, c, ids, nil, { concurrency = 1, on_result = stop })
    c:close()
    assert.is_false(ok)
    for _, way in ipairs(ways) do
      c = client()
      local aok, err = way[2](c, "dlq_retry_each", { ids, nil, { concurrency = 1, on_result = stop } })
      assert.is_false(aok, way[1])
      assert.equal(tostring(serr), tostring(err), way[1])
      assert.equal(0, c:pending())
      c:close()
    end
  end)

  it("cancel: the requests in flight and the ids not started end cancelled; the callback gets them", function()
    local c = client()
    local ids = {}
    for i = 1, 6 do ids[i] = i .. "-no-such" end
    local got
    local h = c:async("dlq_retry_each", ids, nil, { concurrency = 2 }, function(res, err) got = { res, err } end)
    assert.matches("^qstash.batch", tostring(h))
    assert.is_true(h:cancel())
    assert.is_false(h:cancel())
    settle(c)
    assert.is_nil(got[2])
    assert.equal(6, got[1].failed)
    for _, id in ipairs(ids) do assert.equal("cancelled", got[1].results[id].kind) end
    c:close()
  end)

  it("checks its arguments at once, as dlq_retry_each does", function()
    local c = client()
    assert.has_error(function() c:async("dlq_retry_each", {}, function() end) end)
    assert.has_error(function() c:async("dlq_retry_each", { "a", 5 }, function() end) end)
    assert.has_error(function() c:async("dlq_retry_each", { "a" }, nil, { concurrency = 0 }, function() end) end)
    assert.has_error(function() c:async("dlq_retry_each", { "a" }) end)
    assert.equal(0, c:pending())
    c:close()
  end)
end)
