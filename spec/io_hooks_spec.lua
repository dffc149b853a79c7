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

  -- an fd for socket.select (it asks any object for getfd)
  local function selectable(fd)
    return { fd = fd, getfd = function() return fd end, dirty = function() return false end }
  end

  -- two requests on two connections, both answered and not read yet: a
  -- host loop (socket.select) hands the client its writable sockets only,
  -- until both requests are out and libcurl waits to read both answers
  local function two_answered(c)
    local socket = require "socket"
    c:on_io(function() end)
    srv:default{ status = 201, json = { messageId = "m" } }
    local got = {}
    for i = 1, 2 do
      c:async("dlq_retry", "t" .. i, nil, function(res, err) got[#got + 1] = res or err end)
    end
    local want = {}
    c:io_timer() -- starts them
    for _ = 1, 500 do
      for _, ch in ipairs(c:io_changes()) do want[ch.fd] = ch.events ~= "" and ch.events or nil end
      local reading, writing = {}, {}
      for fd, ev in pairs(want) do
        if ev == "r" then reading[#reading + 1] = fd else writing[#writing + 1] = selectable(fd) end
      end
      if #reading == 2 and #srv:requests() == 2 then
        table.sort(reading)
        return got, reading
      end
      if #writing > 0 then
        local _, writable = socket.select(nil, writing, 0.01)
        for _, w in ipairs(writable) do c:io_ready(w.fd, "w") end
      else
        c:io_timer()
        socket.sleep(0.005)
      end
    end
    error("the two requests did not go out")
  end

  it("io_ready drives with the sockets handed over only; all of a turn in one call", function()
    local c = new()
    local got, fds = two_answered(c)
    -- io_timer polls no socket: the answers wait
    assert.equal(0, c:io_timer())
    assert.equal(0, #got)
    -- one socket handed over: its answer only
    local ran = 0
    for _ = 1, 200 do
      ran = ran + c:io_ready(fds[1], "r")
      if ran > 0 then break end
      require("socket").sleep(0.005) -- the answer on its way
    end
    assert.equal(1, ran)
    assert.equal(1, #got)
    -- both in one call: the other one too (the first is idle now)
    for _ = 1, 200 do
      ran = ran + c:io_ready(fds[1], "r", fds[2], "r")
      if ran > 1 then break end
      require("socket").sleep(0.005)
    end
    assert.equal(2, ran)
    assert.equal(2, #got)
    c:close()
  end)

  it("io_poll: the client looks which of its sockets are ready", function()
    local c = new()
    local got = two_answered(c)
    for _ = 1, 100 do
      if #got == 2 then break end
      c:io_poll()
      if #got < 2 then require("socket").sleep(0.01) end
    end
    assert.equal(2, #got)
    assert.equal("m", got[1].messageId)
    c:close()
  end)

  it("io_ready checks every pair before it drives: a bad one raises and nothing ran", function()
    local c = new()
    local got, fds = two_answered(c)
    srv:wait_requests(2)
    for _, args in ipairs{
      { fds[1] },                      -- no events
      { fds[1], "r", fds[2] },         -- the second without events
      { fds[1], "r", -1, "r" },        -- not a descriptor
      { fds[1], "r", fds[2], 5 },      -- events not a string
      { "3", "r" },                    -- the fd a string
    } do
      local ok, err = pcall(c.io_ready, c, (table.unpack or unpack)(args)) -- luacheck: ignore 143
      assert.is_false(ok)
      assert.matches("io_ready", tostring(err))
    end
    local many = {}
    for i = 1, 257 do many[2 * i - 1], many[2 * i] = fds[1], "r" end
    assert.has_error(function() c:io_ready((table.unpack or unpack)(many)) end) -- luacheck: ignore 143
    assert.equal(0, #got) -- nothing was driven
    c:close()
  end)

  it("the loop's drives raise inside a callback; the other callbacks still run and the client still works", function()
    local c = new()
    c:on_io(function() end)
    srv:default{ status = 201, json = { messageId = "m" } }
    local errs, ran = {}, 0
    for i = 1, 3 do
      c:async("dlq_retry", "cb" .. i, nil, function()
        ran = ran + 1
        for _, name in ipairs{ "io_ready", "io_timer", "io_poll" } do
          local ok, err = pcall(c[name], c, 3, "r")
          if not ok then errs[#errs + 1] = tostring(err) end
        end
      end)
    end
    drive_until(c, function() return ran == 3 end)
    assert.equal(9, #errs)
    for _, e in ipairs(errs) do assert.matches("inside a callback", e) end
    local last
    c:async("dlq_retry", "after", nil, function(res) last = res end)
    drive_until(c, function() return last ~= nil end)
    assert.equal("m", last.messageId)
    c:close()
  end)
  it("the hook hears of the first new request between two drives; a cancel, a new hook and a drive, of the next", function()
    local c = new()
    srv:default{ status = 201, json = { messageId = "m" } }
    local told = 0
    c:on_io(function(_, what) if what == "changed" then told = told + 1 end end)
    local ended = 0
    local function cb() ended = ended + 1 end
    -- a new request waits for the loop's next drive: io_timeout says now,
    -- and a second one before that drive changes nothing the loop watches
    c:async("dlq_retry", "n1", nil, cb)
    assert.equal(1, told)
    assert.equal(0, c:io_timeout())
    c:dlq_retry_async("n2", nil, cb)
    c:async("publish", "https://example.com/h", "x", nil, cb)
    assert.equal(1, told)
    assert.equal(0, c:io_timeout())
    -- a cancel may drop a socket and changes the timer: always told
    local h = c:async("dlq_retry", "n3", nil, cb)
    assert.equal(1, told)
    assert.is_true(h:cancel())
    assert.equal(2, told)
    -- a hook set anew hears of the next new request
    c:on_io(function(_, what) if what == "changed" then told = told + 10 end end)
    c:async("dlq_retry", "n4", nil, cb)
    assert.equal(12, told)
    c:async("dlq_retry", "n5", nil, cb)
    assert.equal(12, told)
    -- a drive: the next new request is told again
    c:io_timer()
    c:async("dlq_retry", "n6", nil, cb)
    assert.equal(22, told)
    drive_until(c, function() return ended == 7 end)
    assert.equal(6, #srv:requests()) -- n1, n2, n4, n5, n6 and the publish: the cancelled n3 never went
    c:close()
  end)
end)
