-- qstash.loop.cqueues: calls that yield to a cqueues controller until they
-- end, then return the result or raise the error of the synchronous call;
-- retries, pages and follows; several coroutines on one client; the engine
-- never waits while the controller drives it.
local has_cq, cqueues = pcall(require, "cqueues")
local E = require "spec.support.emulator"
local server = require "spec.support.server"
local fds = require "spec.support.fds"
local qstash = require "qstash"

if not has_cq then
  describe("qstash.loop.cqueues", function()
    pending("needs cqueues (Debian lua-cqueues: tools/ensure-deps installs it)")
  end)
  return
end

local QC = require "qstash.loop.cqueues"
local FAST = { timeout = 5, interval = 0.02 }
local unpack = table.unpack or unpack -- luacheck: ignore 143

-- runs fn in a controller's coroutine, bounded (a hang fails the spec):
-- true and its results, or false and what it raised (cq:step reports it;
-- no pcall around a yield: Lua 5.1 cannot yield across one)
local function run(fn)
  local cq = cqueues.new()
  local out = {}
  cq:wrap(function() out = { true, fn() } end)
  local deadline = cqueues.monotime() + 30
  while not cq:empty() and cqueues.monotime() < deadline do
    local ok, err = cq:step(0.5)
    if not ok then return false, err end
  end
  assert.is_true(cq:empty(), "the controller did not finish")
  return unpack(out)
end

-- Every spec of the adapter runs twice: the controller polling the
-- client's one descriptor (client:io_fd, the default on Linux), and polling
-- each socket (the default where the system has none).
local MODES = { { name = "one descriptor" }, { name = "each socket", each_socket = true } }
-- Under valgrind, the default mode only: the C the other one reaches
-- (io_changes, io_ready) is io_hooks_spec's there, and the rest is Lua.
if os.getenv("QSTASH_SPEC_VALGRIND") then MODES = { MODES[1] } end

for _, mode in ipairs(MODES) do
  describe("qstash.loop.cqueues, " .. mode.name, function()
    local srv
    setup(function() srv = server.start() end)
    teardown(function() srv:stop() end)
    before_each(function() srv:reset() end)

    local function new(retry)
      return QC.attach(qstash.new{ token = "tok-cq", base_url = srv.url,
                                   retry = retry or { attempts = 3, base_delay = 0.05, max_delay = 0.1 } },
                       { each_socket = mode.each_socket })
    end

    it("returns the result after a retry, yielding meanwhile", function()
      local c = new()
      srv:script{
        { status = 500, json = { error = "try again" } },
        { status = 201, json = { messageId = "m1" } },
      }
      local ok, res = run(function() return QC.call(c, "dlq_retry", "d1") end)
      assert.is_true(ok, tostring(res))
      assert.equal("m1", res.messageId)
      local reqs = srv:requests()
      assert.equal(2, #reqs)
      -- the connection stayed open for the retry
      assert.equal(reqs[1].conn, reqs[2].conn)
      ok, res = run(function() return QC.call(c, "dlq_retry", "d2") end)
      assert.is_true(ok, tostring(res))
      assert.equal(reqs[1].conn, srv:requests()[3].conn)
      assert.equal(0, c:_stats().loop_waits)
      c:close()
    end)

    it("an idle keep-alive socket keeps its duplicate between calls; its close drops it", function()
      local csocket = require "cqueues.socket"
      local real_dup, dups = csocket.dup, 0
      csocket.dup = function(...)
        dups = dups + 1
        return real_dup(...)
      end
      local c = new()
      srv:script{
        { status = 201, json = { messageId = "m" } },
        { status = 201, json = { messageId = "m" } },
        { status = 201, json = { messageId = "m" } },
        { status = 201, json = { messageId = "closing" }, keep_alive = false },
        { status = 201, json = { messageId = "m" } },
      }
      local ok, ids = run(function()
        local got = {}
        for i = 1, 5 do got[i] = QC.call(c, "dlq_retry", "k" .. i).messageId end
        return got
      end)
      csocket.dup = real_dup
      assert.is_true(ok, tostring(ids))
      assert.same({ "m", "m", "m", "closing", "m" }, ids)
      local reqs = srv:requests()
      assert.equal(reqs[1].conn, reqs[4].conn)
      assert.are_not.equal(reqs[4].conn, reqs[5].conn)
      -- one duplicate per socket, not one per call; none with the one descriptor
      assert.equal(mode.each_socket and 2 or 0, dups)
      assert.same({ 0, false }, { QC.watched(c) })
      c:close()
    end)

    it("a socket closed in the last drive takes its duplicate with it: no descriptor left open", function()
      -- the sockets this process has open
      local function sockets() return fds.count("socket:") end
      local c = new()
      srv:script{
        { status = 201, json = { messageId = "kept" } },
        { status = 201, json = { messageId = "closing" }, keep_alive = false },
      }
      local ok, res = run(function() return QC.call(c, "dlq_retry", "first") end)
      assert.is_true(ok, tostring(res))
      -- the connection is open: libcurl's socket (and the controller's duplicate)
      local before = sockets()
      ok, res = run(function() return QC.call(c, "dlq_retry", "last") end)
      assert.is_true(ok, tostring(res))
      assert.equal("closing", res.messageId)
      -- libcurl closed its socket after the answer: the duplicate went too
      assert.equal(before - (mode.each_socket and 2 or 1), sockets())
      c:close()
    end)

    it("raises the error of the synchronous call", function()
      local c = new()
      srv:default{ status = 404, json = { error = "dlq message not found" } }
      local _, serr = pcall(c.dlq_retry, c, "gone")
      local ok, err = run(function() return QC.call(c, "dlq_retry", "gone") end)
      assert.is_false(ok)
      assert.is_true(qstash.is_error(err), tostring(err))
      assert.equal(serr.kind, err.kind)
      assert.equal(serr.status, err.status)
      c:close()
    end)

    it("runs several coroutines on one client together", function()
      local c = new()
      srv:default{ status = 201, json = { messageId = "m" }, delay = 0.2 }
      local cq = cqueues.new()
      local got = 0
      for i = 1, 6 do
        cq:wrap(function()
          if QC.call(c, "dlq_retry", "p" .. i).messageId == "m" then got = got + 1 end
        end)
      end
      local t0 = cqueues.monotime()
      assert(cq:loop(30))
      assert.equal(6, got)
      -- together, not one after another (6 x 0.2 s)
      assert.is_true(cqueues.monotime() - t0 < 1.1)
      assert.equal(0, c:_stats().loop_waits)
      assert.same({ 0, false }, { QC.watched(c) })
      c:close()
    end)

    it("a close from another coroutine ends the call with an error", function()
      local c = new()
      srv:default{ status = 201, json = { messageId = "m" }, delay = 0.5 }
      local ok, err = run(function()
        cqueues.running():wrap(function()
          cqueues.sleep(0.1)
          c:close()
        end)
        return QC.call(c, "dlq_retry", "slow")
      end)
      assert.is_false(ok)
      assert.matches("closed", tostring(err))
      assert.same({ 0, false }, { QC.watched(c) })
    end)

    -- (Lua 5.1 cannot yield across a pcall: there a call that raised ends
    -- its coroutine, which never calls again)
    local it_pcall = (_VERSION ~= "Lua 5.1" or rawget(_G, "jit")) and it or pending
    it_pcall("a coroutine whose call ended with the close calls again on another client: its own result", function()
      local c1, c2 = new(), new()
      srv:default{ status = 201, json = { messageId = "late" }, delay = 0.3 }
      local ok, res = run(function()
        cqueues.running():wrap(function()
          cqueues.sleep(0.05)
          c1:close()
        end)
        local first_ok, first = pcall(QC.call, c1, "dlq_retry", "one")
        assert(not first_ok and tostring(first):find("closed", 1, true), tostring(first))
        -- the same coroutine (its waiter made once) waits for its new call
        srv:script{ { status = 201, json = { messageId = "second" } } }
        return QC.call(c2, "dlq_retry", "two")
      end)
      assert.is_true(ok, tostring(res))
      assert.equal("second", res.messageId)
      c2:close()
    end)

    it("outside a controller's coroutine: raises, and sends nothing", function()
      local c = new()
      assert.has_error(function() QC.call(c, "dlq_retry", "main") end,
                       "qstash.loop.cqueues: call() runs inside a coroutine of a cqueues controller")
      local co = coroutine.create(function() return QC.call(c, "dlq_retry", "plain") end)
      local ok, err = coroutine.resume(co)
      assert.is_false(ok)
      assert.matches("inside a coroutine of a cqueues controller", err)
      assert.equal(0, c:pending())
      assert.equal(0, #srv:requests())
      c:close()
    end)

    it("a 429's wait is the controller's timeout, never a wait of the engine", function()
      local c = new{ attempts = 3, base_delay = 0.05, max_delay = 1 }
      srv:script{
        { status = 429, headers = { ["Retry-After"] = "0.2" } },
        { status = 201, json = { messageId = "after-429" } },
      }
      local ok, res = run(function() return QC.call(c, "dlq_retry", "r1") end)
      assert.is_true(ok, tostring(res))
      assert.equal("after-429", res.messageId)
      assert.equal(2, #srv:requests())
      assert.equal(0, c:_stats().loop_waits)
      assert.same({ 0, false }, { QC.watched(c) })
      c:close()
    end)

    it("a cancelled handle ends; the driver ends with the last call and watches nothing", function()
      local c = new()
      -- whichever request arrives first is the slow one
      srv:script{ { status = 201, json = { messageId = "m" }, delay = 0.5 } }
      srv:default{ status = 201, json = { messageId = "m" }, delay = 0.1 }
      local got
      local h = c:async("dlq_retry", "slow", nil, function(res, err) got = { res, err } end)
      local ok, res = run(function()
        cqueues.running():wrap(function()
          cqueues.sleep(0.05)
          assert.is_true(select(2, QC.watched(c)))
          assert.is_true(h:cancel())
        end)
        return QC.call(c, "dlq_retry", "fast")
      end)
      assert.is_true(ok, tostring(res))
      assert.equal("m", res.messageId)
      assert.equal("cancelled", got[2].kind)
      assert.equal(0, c:pending())
      assert.same({ 0, false }, { QC.watched(c) })
      assert.equal(0, c:_stats().loop_waits)
      c:close()
    end)

    it("an error in a callback goes to the controller; the other calls still end", function()
      local c = new()
      srv:default{ status = 201, json = { messageId = "m" }, delay = 0.05 }
      c:async("dlq_retry", "boom", nil, function() error("boom") end)
      local cq = cqueues.new()
      local got
      cq:wrap(function() got = QC.call(c, "dlq_retry", "other") end)
      local errs = {}
      local deadline = cqueues.monotime() + 30
      while not cq:empty() and cqueues.monotime() < deadline do
        local ok, err = cq:step(0.5)
        if not ok then errs[#errs + 1] = err end
      end
      assert.is_true(cq:empty())
      assert.equal(1, #errs)
      assert.matches("boom", tostring(errs[1]))
      assert.equal("m", got.messageId)
      assert.equal(0, c:pending())
      assert.same({ 0, false }, { QC.watched(c) })
      c:close()
    end)

    it("many calls at once wake only their own coroutine: the driver turns per event, not per caller", function()
      local c = new()
      srv:default{ status = 201, json = { messageId = "m" }, delay = 0.2 }
      local cq = cqueues.new()
      local got, resumes = 0, 0
      for i = 1, 32 do
        cq:wrap(function()
          if QC.call(c, "dlq_retry", "w" .. i).messageId == "m" then got = got + 1 end
        end)
      end
      -- a controller stepped by hand: count its turns while all 32 wait 0.2 s
      local deadline = cqueues.monotime() + 30
      while not cq:empty() and cqueues.monotime() < deadline do
        assert(cq:step(0.5))
        resumes = resumes + 1
      end
      assert.equal(32, got)
      -- a controller whose waiting coroutines wake each other turns thousands of times
      assert.is_true(resumes < 400, "the controller turned " .. resumes .. " times")
      assert.equal(0, c:_stats().loop_waits)
      c:close()
    end)
  end)
end

describe("qstash.loop.cqueues against the emulator", function()
  local fx = E.fixture{ time_scale = 0.001 }

  it("publishes, follows to the DLQ, retries and follows again", function()
    local emu, sink = fx.emu, fx.sink
    local c = qstash.new{ token = emu.token, base_url = emu.url, retry = { attempts = 2, base_delay = 0.01 } }
    sink:set_status(500)
    local ok, res = run(function()
      local id = QC.call(c, "publish", sink.url .. "/f", "body", { retries = 0 }).messageId
      local f = QC.call(c, "follow", id, FAST)
      assert.equal("FAILED", f.state)
      sink:set_status(200)
      local list = QC.call(c, "dlq_list")
      assert.is_true(#list.messages >= 1)
      return QC.call(c, "dlq_retry", f.dlqId, { follow = FAST })
    end)
    assert.is_true(ok, tostring(res))
    assert.equal("DELIVERED", res.delivery.state)
    assert.equal(0, c:_stats().loop_waits)
    c:close()
  end)
end)
