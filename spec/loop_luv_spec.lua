-- qstash.loop.luv: a client's sockets and timer in uv's default loop.
-- Retries and follows run through it; uv.run() returns once nothing is in
-- flight; closing the client, cancelling a handle or an error in a callback
-- leaves no fd watched and no timer armed; an idle attached client makes
-- the loop wait, not spin; the engine never waits while the loop drives it.
local has_luv, uv = pcall(require, "luv")
local E = require "spec.support.emulator"
local server = require "spec.support.server"
local qstash = require "qstash"

if not has_luv then
  describe("qstash.loop.luv", function()
    pending("needs luv (Debian lua-luv: tools/ensure-deps installs it)")
  end)
  return
end

local QL = require "qstash.loop.luv"
local FAST = { timeout = 5, interval = 0.02 }

-- closes the client, and lets the loop free the handles the close released
-- (luv frees a closed handle on the loop's next turn)
local function close(c)
  c:close()
  uv.run("nowait")
end

-- runs uv's loop with a guard timer that stops it after `limit` seconds (a
-- hang fails the spec instead of hanging it); whether the guard fired, and
-- then what the attached clients still had. The guard counts from now: uv's
-- clock is the time of the loop's last turn, which may be long past (a spec
-- before this one ran the loop, then other work), and a guard armed from it
-- fires on the loop's first turn.
local function run(limit)
  local fired = false
  local guard = uv.new_timer()
  uv.update_time()
  guard:start(math.floor((limit or 10) * 1000), 0, function()
    fired = {}
    uv.walk(function(h)
      if h:is_active() and h ~= guard then fired[#fired + 1] = tostring(h) end
    end)
    fired = "the guard fired; active: " .. table.concat(fired, ", ")
    uv.stop()
  end)
  uv.unref(guard) -- the guard alone does not keep the loop running
  uv.run()
  guard:close()
  uv.run("nowait") -- lets the closed handles go
  return fired
end

-- Every spec of the adapter runs twice: the loop watching the client's one
-- descriptor (client:io_fd, the default on Linux), and the loop watching
-- each socket (the default where the system has none).
local MODES = { { name = "one descriptor" }, { name = "each socket", each_socket = true } }
-- Under valgrind, the default mode only: the C the other one reaches
-- (io_changes, io_ready) is io_hooks_spec's there, and the rest is Lua.
if os.getenv("QSTASH_SPEC_VALGRIND") then MODES = { MODES[1] } end

for _, mode in ipairs(MODES) do
  local function attach(c, opts)
    opts = opts or {}
    opts.each_socket = mode.each_socket
    return QL.attach(c, opts)
  end

  describe("qstash.loop.luv, " .. mode.name, function()
    local srv
    setup(function() srv = server.start() end)
    teardown(function() srv:stop() end)
    before_each(function() srv:reset() end)

    local function new(cfg)
      cfg = cfg or {}
      cfg.token = "tok-luv"
      cfg.base_url = srv.url
      cfg.retry = cfg.retry or { attempts = 3, base_delay = 0.05, max_delay = 0.1 }
      return qstash.new(cfg)
    end

    it("run()'s guard counts from now, also after the loop sat unused (its clock stands still then)", function()
      uv.sleep(250) -- the loop's clock is now a quarter second behind
      local work = uv.new_timer()
      work:start(0, 0, function() work:close() end)
      assert.is_false(run(0.2))
    end)

    it("retries through the loop; uv.run() returns when nothing is in flight", function()
      local c = attach(new())
      srv:script{
        { status = 500, json = { error = "try again" } },
        { status = 201, json = { messageId = "m1" } },
      }
      local got
      c:async("dlq_retry", "d1", nil, function(res, err) got = { res, err } end)
      assert.is_false(run(30))
      assert.is_nil(got[2])
      assert.equal("m1", got[1].messageId)
      assert.equal(2, #srv:requests())
      assert.same({ 0, false }, { QL.watched(c) })
      assert.equal(0, c:_stats().loop_waits)
      close(c)
    end)

    it("an idle keep-alive socket keeps its watch between requests; its close drops it", function()
      -- the adapter's poll handles, through a uv module that counts them
      local polls, io_polls = 0, 0
      local counting = setmetatable({
        new_socket_poll = function(fd)
          polls = polls + 1
          return uv.new_socket_poll(fd)
        end,
        new_poll = function(fd)
          io_polls = io_polls + 1
          return uv.new_poll(fd)
        end,
      }, { __index = uv })
      local c = attach(new(), { uv = counting })
      srv:default{ status = 201, json = { messageId = "m" } }
      -- five requests one after another (each a loop turn after the last
      -- one's callback: the adapter sees the socket go idle in between), then
      -- one whose answer closes the connection, then one more
      srv:script{
        { status = 201, json = { messageId = "m" } },
        { status = 201, json = { messageId = "m" } },
        { status = 201, json = { messageId = "m" } },
        { status = 201, json = { messageId = "m" } },
        { status = 201, json = { messageId = "m" } },
        { status = 201, json = { messageId = "closing" }, keep_alive = false },
      }
      local ids, n = {}, 0
      local function next_retry()
        n = n + 1
        c:async("dlq_retry", "k" .. n, nil, function(res, err)
          assert(res, err)
          ids[#ids + 1] = res.messageId
          if n < 7 then
            local later = uv.new_timer()
            later:start(1, 0, function()
              later:close()
              next_retry()
            end)
          end
        end)
      end
      next_retry()
      assert.is_false(run(30))
      assert.same({ "m", "m", "m", "m", "m", "closing", "m" }, ids)
      local conns = {}
      for _, r in ipairs(srv:requests()) do conns[r.conn] = true end
      local nconn = 0
      for _ in pairs(conns) do nconn = nconn + 1 end
      assert.equal(2, nconn) -- one keep-alive connection, then a new one
      if mode.each_socket then
        -- one poll handle per socket, not one per request
        assert.same({ 2, 0 }, { polls, io_polls })
      else
        -- one poll handle for the client, whatever its sockets
        assert.same({ 0, 1 }, { polls, io_polls })
      end
      assert.same({ 0, false }, { QL.watched(c) })
      assert.equal(0, c:_stats().loop_waits)
      close(c)
    end)

    it("a refused connection through the loop: a network error each, nothing left watched", function()
      local port = require("spec.support.ports").closed()
      local c = attach(qstash.new{ token = "tok-luv", base_url = "http://127.0.0.1:" .. port,
                                      retry = { attempts = 2, base_delay = 0.01, max_delay = 0.02 } })
      local errs = {}
      for i = 1, 3 do
        c:async("dlq_retry", "r" .. i, nil, function(res, err)
          assert.is_nil(res)
          errs[#errs + 1] = err.kind
        end)
      end
      assert.is_false(run(30))
      assert.same({ "network", "network", "network" }, errs)
      assert.same({ 0, false }, { QL.watched(c) })
      assert.equal(0, c:_stats().loop_waits)
      close(c)
    end)

    it("dlq_retry_async and many at once, all from the loop", function()
      local c = attach(new())
      srv:default{ status = 201, json = { messageId = "m" }, delay = 0.05 }
      local n = 0
      for i = 1, 8 do c:dlq_retry_async("x" .. i, nil, function(res) if res then n = n + 1 end end) end
      for i = 1, 8 do c:async("dlq_retry", "y" .. i, nil, function(res) if res then n = n + 1 end end) end
      assert.is_false(run(30))
      assert.equal(16, n)
      assert.equal(0, c:pending())
      assert.equal(0, c:_stats().loop_waits)
      close(c)
    end)

    it("an idle attached client makes the loop wait, not spin, also during a retry's backoff", function()
      local c = attach(new{ retry = { attempts = 2, base_delay = 0.3, max_delay = 0.3 } })
      srv:script{
        { status = 503, json = { error = "later" } },
        { status = 201, json = { messageId = "m2" } },
      }
      local turns = 0
      local check = uv.new_check()
      check:start(function() turns = turns + 1 end)
      uv.unref(check)
      local got
      c:async("dlq_retry", "d2", nil, function(res, err) got = { res, err } end)
      assert.is_false(run(30))
      -- a spinning loop turns thousands of times in the backoff; a waiting one a few
      assert.is_true(turns < 60, "the loop turned " .. turns .. " times")
      assert.equal("m2", got[1].messageId)
      -- idle now: nothing active, the loop returns at once
      turns = 0
      local idle = uv.new_timer()
      idle:start(200, 0, function() end)
      uv.run()
      idle:close()
      assert.is_true(turns < 10, "the idle loop turned " .. turns .. " times")
      check:close()
      uv.run("nowait")
      assert.equal(0, c:_stats().loop_waits)
      close(c)
    end)

    it("a 429's wait is a timer of the loop: the loop waits, the engine never does", function()
      local c = attach(new{ retry = { attempts = 3, base_delay = 0.05, max_delay = 1 } })
      srv:script{
        { status = 429, headers = { ["Retry-After"] = "0.3" } },
        { status = 201, json = { messageId = "after-429" } },
      }
      local turns = 0
      local check = uv.new_check()
      check:start(function() turns = turns + 1 end)
      uv.unref(check)
      local got
      c:async("dlq_retry", "r1", nil, function(res, err) got = { res, err } end)
      assert.is_false(run(30))
      check:close()
      uv.run("nowait")
      assert.is_nil(got[2])
      assert.equal("after-429", got[1].messageId)
      assert.equal(2, #srv:requests())
      assert.is_true(turns < 60, "the loop turned " .. turns .. " times")
      assert.equal(0, c:_stats().loop_waits)
      assert.same({ 0, false }, { QL.watched(c) })
      close(c)
    end)

    it("arms its timer from the clock of now, not from the loop's last turn", function()
      -- the adapter's timer, through a uv module that keeps what it made
      local timers = {}
      local fake = setmetatable({
        new_timer = function()
          local t = uv.new_timer()
          timers[#timers + 1] = t
          return t
        end,
      }, { __index = uv })
      local c = new{ retry = { attempts = 2, base_delay = 0.05, max_delay = 1 } }
      srv:script{
        { status = 429, headers = { ["Retry-After"] = "0.3" } },
        { status = 201, json = { messageId = "m4" } },
      }
      local got
      c:async("dlq_retry", "d4", nil, function(res, err) got = { res, err } end)
      -- driven by poll until the retry waits out the 429's 0.3 s (while the
      -- answer is awaited the next timer is the attempt's timeout, seconds away)
      local deadline = uv.hrtime() + 5e9
      local function backoff()
        local t = c:io_timeout()
        return t and t > 0.1 and t <= 0.3
      end
      repeat c:poll(0.01) until backoff() or uv.hrtime() > deadline
      assert.is_true(backoff())
      uv.sleep(50) -- the loop's clock is now 50 ms or more behind
      local now = uv.hrtime() / 1e6 -- then the wait left: due no earlier than now + want
      local want = c:io_timeout() * 1000
      attach(c, { uv = fake })
      assert.equal(1, #timers)
      local due = uv.now() + timers[1]:get_due_in()
      assert.is_true(due >= now + want - 10, ("due in %.0f ms of %.0f"):format(due - now, want))
      assert.is_false(run(30))
      assert.equal("m4", got[1].messageId)
      close(c)
    end)

    it("cancel leaves no fd watched and no timer armed", function()
      local c = attach(new())
      srv:script{ { status = 201, json = { messageId = "slow" }, delay = 2 } }
      local got
      local h = c:async("dlq_retry", "d3", nil, function(res, err) got = { res, err } end)
      local t = uv.new_timer()
      t:start(100, 0, function()
        local fds = QL.watched(c)
        assert.is_true(fds > 0)
        assert.is_true(h:cancel())
      end)
      assert.is_false(run(30))
      t:close()
      assert.equal("cancelled", got[2].kind)
      assert.same({ 0, false }, { QL.watched(c) })
      close(c)
    end)

    it("close inside a callback: no fd watched, no timer, uv.run() returns", function()
      local c = attach(new())
      srv:default{ status = 201, json = { messageId = "m" } }
      srv:script{ { status = 201, json = { messageId = "first" } } }
      local ran = 0
      c:async("dlq_retry", "a", nil, function() ran = ran + 1; c:close() end)
      c:async("dlq_retry", "b", { retries = 1 }, function() ran = ran + 1 end)
      assert.is_false(run(30))
      assert.is_true(ran >= 1 and ran <= 2)
      assert.same({ 0, false }, { QL.watched(c) })
    end)

    it("an error in a callback goes to on_error, and leaves nothing watched", function()
      local errs = {}
      local c = attach(new(), { on_error = function(e) errs[#errs + 1] = e end })
      srv:default{ status = 201, json = { messageId = "m" } }
      c:async("dlq_retry", "e1", nil, function() error("boom") end)
      assert.is_false(run(30))
      assert.equal(1, #errs)
      assert.matches("boom", tostring(errs[1]))
      assert.same({ 0, false }, { QL.watched(c) })
      close(c)
    end)

    it("detach: the client's requests go back to poll", function()
      local c = attach(new())
      srv:default{ status = 201, json = { messageId = "m" } }
      local got
      c:async("dlq_retry", "z", nil, function(res) got = res end)
      QL.detach(c)
      assert.is_false(run(5)) -- nothing of the client in the loop: returns at once
      assert.is_nil(got)
      c:wait()
      assert.equal("m", got.messageId)
      close(c)
    end)
  end)
end

describe("qstash.loop.luv against the emulator", function()
  local fx = E.fixture{ time_scale = 0.001 }

  it("retries a DLQ entry and follows it to its end, on the loop", function()
    local emu, sink = fx.emu, fx.sink
    local c = qstash.new{ token = emu.token, base_url = emu.url, retry = { attempts = 2, base_delay = 0.01 } }
    QL.attach(c)
    sink:set_status(500)
    local failed
    c:async("publish", sink.url .. "/f", "body", { retries = 0 }, function(res, err)
      assert.is_nil(err)
      c:async("follow", res.messageId, FAST, function(f) failed = f end)
    end)
    assert.is_false(run(30))
    assert.equal("FAILED", failed.state)
    sink:set_status(200)
    local retried
    c:async("dlq_retry", failed.dlqId, { follow = FAST }, function(res, err) retried = { res, err } end)
    assert.is_false(run(30))
    assert.is_nil(retried[2])
    assert.equal("DELIVERED", retried[1].delivery.state)
    assert.same({ 0, false }, { QL.watched(c) })
    assert.equal(0, c:_stats().loop_waits)
    close(c)
  end)
end)
