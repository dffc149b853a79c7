-- The hooks for a host's event loop, without an adapter (docs/api.md,
-- "Event loops"): what io_changes reports of a keep-alive socket between
-- two requests and of its close, and that a request made in a callback is
-- on its way when the drive call that ran the callback returns.
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
  local function drive_until(c, done)
    for _ = 1, 50 do
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
end)
