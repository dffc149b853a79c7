-- The hooks for a host's event loop, without an adapter (docs/api.md,
-- "Event loops"): what io_changes reports of a keep-alive socket between
-- two requests and of its close, that a request made in a callback is on
-- its way when the drive call that ran the callback returns, and that the
-- client's own tables of callbacks keep small keys however many requests
-- came and went (what a loop making a request per callback costs).
local server = require "spec.support.server"
local qstash = require "qstash"

describe("event loop hooks", function()
  local srv
  setup(function() srv = server.start() end)
  teardown(function() srv:stop() end)
  before_each(function() srv:reset() end)

  local function new()
    return qstash.new{ token = "tok-hooks", base_url = srv.url, retry = { attempts = 1 } }
  end

  -- drives with poll until `done()` (each poll returns once a callback ran)
  local function drive_until(c, done, polls)
    for _ = 1, polls or 50 do
      if done() then return end
      c:poll(0.2)
    end
    assert(done(), "the requests did not end")
  end

  it("an idle keep-alive socket is reported with no events and not fresh; its close, fresh", function()
    local c = new()
    c:on_io(function() end)
    srv:script{
      { status = 201, json = { messageId = "a" } },
      { status = 201, json = { messageId = "b" }, keep_alive = false },
    }
    local got = {}
    local function cb(res, err) got[#got + 1] = res and res.messageId or tostring(err) end
    c:async("dlq_retry", "a", nil, cb)
    drive_until(c, function() return #got == 1 end)
    local ch = c:io_changes()
    assert.equal(1, #ch)
    assert.same({ "", false }, { ch[1].events, ch[1].fresh }) -- libcurl keeps it for the next request
    local fd = ch[1].fd
    c:async("dlq_retry", "b", nil, cb)
    drive_until(c, function() return #got == 2 end)
    assert.same({ "a", "b" }, got)
    local reqs = srv:requests()
    assert.equal(reqs[1].conn, reqs[2].conn) -- the same connection answered both
    ch = c:io_changes()
    assert.equal(1, #ch)
    -- the server closed it after its answer: libcurl closed the socket
    assert.same({ fd, "", true }, { ch[1].fd, ch[1].events, ch[1].fresh })
    assert.same({}, c:io_changes()) -- reported once
    c:close()
  end)

  it("a request made in a callback is on its way when the drive that ran the callback returns", function()
    local c = new()
    srv:default{ status = 201, json = { messageId = "m" } }
    local first, second = false, false
    c:async("dlq_retry", "one", nil, function(res, err)
      first = assert(res, err)
      c:async("dlq_retry", "two", nil, function(r) second = r end)
    end)
    drive_until(c, function() return first end)
    -- no drive call since: the second request went out in the drive above
    srv:wait_requests(2, 5)
    drive_until(c, function() return second end)
    assert.equal("m", second.messageId)
    c:close()
  end)

  it("the callback tables reuse their keys: many requests one after another, keys no higher than in flight", function()
    local c = new()
    srv:default{ status = 201, json = { messageId = "m" } }
    local done, started, handles = 0, 0, {}
    local function start()
      started = started + 1
      handles[#handles + 1] = c:async("dlq_retry", "s" .. started, nil, function(res, err)
        assert(res, err)
        done = done + 1
        if started < 200 then start() end
      end)
    end
    for _ = 1, 4 do start() end
    local getuv = debug.getuservalue or debug.getfenv -- luacheck: ignore 143
    local max_key = 0
    drive_until(c, function()
      for _, name in ipairs{ "cbs", "calls", "ends" } do
        for k in pairs(getuv(c).cbs and getuv(c)[name] or {}) do
          if k > max_key then max_key = k end
        end
      end
      return done == 200
    end, 2000)
    assert.is_true(max_key <= 4 + 1, "a key of " .. max_key .. " with 4 in flight")
    -- the handles keep numbers of their own: a delivered one cancels nothing
    assert.is_false(handles[1]:cancel())
    local last
    c:async("dlq_retry", "after", nil, function(res) last = res end)
    assert.is_false(handles[2]:cancel())
    drive_until(c, function() return last ~= nil end)
    assert.equal("m", last.messageId)
    c:close()
  end)
end)
