-- Attempt accounting: what the client reports matches what the server saw.
--
-- Under chaos the test server plays a QStash DLQ on an unreliable network
-- (spec/support/http_server.py, chaos mode): per request, at random but
-- reproducibly, it answers 201, fails before executing (503), or executes
-- and then drops the connection, truncates the answer or stalls past the
-- client's timeout; an id already executed answers 404. For every id, sync
-- and batch:
--   requests received <= attempts allowed
--   a failure's `attempts` == requests received
--   executed => success, or a failure with `ambiguous = true`
--   success => executed
local server = require "spec.support.server"
local socket = require "socket"
local qstash = require "qstash"

local ATTEMPTS = 3
local WEIGHTS = { ok = 55, fail = 15, drop = 10, short = 7, reset = 7, stall = 3 }

describe("attempt accounting", function()
  local srv

  setup(function() srv = server.start() end)
  teardown(function() srv:stop() end)
  before_each(function() srv:reset() end)

  local function new()
    return qstash.new{ token = "tok-chaos", base_url = srv.url, timeout = 0.1, connect_timeout = 2,
      retry = { attempts = ATTEMPTS, base_delay = 0.001, max_delay = 0.01 } }
  end

  -- The chaos log once the server has read every request still in a socket
  -- buffer (a client that gave up on an attempt may be ahead of it).
  local function settled_log()
    local function total(log)
      local n = 0
      for _, e in pairs(log) do n = n + e.received end
      return n
    end
    socket.sleep(0.3)
    local log = srv:chaos_log()
    for _ = 1, 20 do
      socket.sleep(0.3)
      local again = srv:chaos_log()
      if total(again) == total(log) then return again end
      log = again
    end
    return log
  end

  -- One line per id that breaks an invariant; `outcomes[id]` is the
  -- client's result (a table) or error (an error object).
  local function violations(outcomes, log)
    local out = {}
    for id, got in pairs(outcomes) do
      local entry = log[id]
      local received = entry and entry.received or 0
      local executed = entry and entry.executed or false
      local failed = qstash.is_error(got)
      local broken = {}
      if received > ATTEMPTS then broken[#broken + 1] = received .. " requests for " .. ATTEMPTS .. " attempts" end
      if failed and got.attempts ~= received then
        broken[#broken + 1] = "attempts = " .. tostring(got.attempts) .. " but " .. received .. " received"
      end
      if executed and failed and got.ambiguous ~= true then broken[#broken + 1] = "executed, failed, not ambiguous" end
      if not failed and not executed then broken[#broken + 1] = "success, never executed" end
      if #broken > 0 then
        out[#out + 1] = ("%s: %s (server: %s; client: %s)"):format(id, table.concat(broken, "; "),
          entry and table.concat(entry.outcomes, ",") or "never received", tostring(got))
      end
    end
    table.sort(out)
    return out
  end

  local function assert_none(list, n)
    assert.is_true(#list == 0, #list .. " of " .. n .. " ids break an invariant; the first ones:\n" ..
      table.concat(list, "\n", 1, math.min(#list, 8)))
  end

  it("sync dlq_retry, 600 ids under chaos #issue11 #timing", function()
    srv:chaos{ seed = "sync-11", weights = WEIGHTS, hold = 0.6 }
    local c = new()
    local outcomes = {}
    for i = 1, 600 do
      local id = "s-" .. i
      local ok, res = pcall(c.dlq_retry, c, id)
      outcomes[id] = res
      assert.is_true(ok or qstash.is_error(res), tostring(res))
    end
    c:close()
    assert_none(violations(outcomes, settled_log()), 600)
  end)

  it("dlq_retry_each, 2,000 ids under chaos #issue11 #timing", function()
    srv:chaos{ seed = "batch-11", weights = WEIGHTS, hold = 0.6 }
    local c = new()
    local ids = {}
    for i = 1, 2000 do ids[i] = "b-" .. i end
    local out = c:dlq_retry_each(ids, nil, { concurrency = 32 })
    c:close()
    assert.equal(2000, out.ok + out.failed)
    assert_none(violations(out.results, settled_log()), 2000)
  end)

  it("an async decode error reports its own attempts, not the last sync call's #issue11", function()
    local c = new()
    srv:script{ { status = 503 }, { status = 503 }, { status = 201, json = { messageId = "third" } } }
    assert.equal("third", c:dlq_retry("sync-first").messageId)
    assert.equal(3, #srv:requests())
    srv:reset()
    srv:script{ { status = 201, body = "{not json" } }
    local err
    c:dlq_retry_async("async-second", nil, function(_, e) err = e end)
    c:wait()
    c:close()
    assert.equal("decode", err.kind)
    assert.equal(1, #srv:requests())
    assert.equal(1, err.attempts)
  end)
end)
