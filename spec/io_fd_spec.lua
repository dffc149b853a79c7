-- The client's one descriptor for a host loop (client:io_fd, docs/api.md,
-- "Event loops"), without an adapter: a loop of socket.select over it, then
-- io_poll or io_timer. It is readable while a socket of the client is
-- ready and not otherwise (an idle client's loop waits); an idle
-- keep-alive socket the server closes leaves the set at the next drive
-- instead of keeping the descriptor readable (a spinning loop); closing the
-- client or turning its hook off closes the descriptor.
local socket = require "socket"
local server = require "spec.support.server"
local qstash = require "qstash"
local fds = require "spec.support.fds"

-- the epoll sets this process has open
local function epoll_sets() return fds.count("eventpoll") end

-- whether the descriptor is readable now, or within `wait` seconds
local function readable(fd, wait)
  return #socket.select({ { getfd = function() return fd end } }, nil, wait or 0) > 0
end

-- a host loop over the descriptor until done(): select, then io_poll when
-- it is readable, io_timer when the client's timeout passed
local function loop(c, done)
  local fd = c:io_fd()
  local limit = socket.gettime() + 10
  while not done() do
    assert(socket.gettime() < limit, "the requests did not end")
    local t = c:io_timeout() or 1
    if readable(fd, math.min(t, 1)) then c:io_poll() else c:io_timer() end
  end
end

describe("client:io_fd", function()
  local srv
  setup(function() srv = server.start() end)
  teardown(function() srv:stop() end)
  before_each(function() srv:reset() end)

  local function new(url)
    local c = qstash.new{ token = "tok-iofd", base_url = url or srv.url, retry = { attempts = 1 } }
    c:on_io(function() end)
    return c
  end

  it("needs the hook, keeps its number, and leaves io_changes empty", function()
    local c = qstash.new{ token = "tok-iofd", base_url = srv.url }
    assert.has_error(function() c:io_fd() end, "qstash: io_fd needs a hook first (client:on_io)")
    c:on_io(function() end)
    local fd = c:io_fd()
    assert.is_true(math.type == nil or math.type(fd) == "integer")
    assert.equal(fd, c:io_fd())
    local got
    c:async("dlq_retry", "a", nil, function(res, err) got = { res, err } end)
    loop(c, function() return got end)
    assert.equal("msg_test", got[1].messageId)
    assert.same({}, c:io_changes())
    assert.equal(0, c:_stats().loop_waits)
    c:close()
    assert.has_error(function() c:io_fd() end, "qstash: the client is closed")
  end)

  it("is readable while a socket is ready and not while the client is idle", function()
    local c = new()
    srv:script{ { status = 201, json = { messageId = "late" }, delay = 0.3 } }
    local fd = c:io_fd()
    assert.is_false(readable(fd)) -- nothing in flight
    local got
    c:async("dlq_retry", "a", nil, function(res, err) got = { res, err } end)
    -- sent, then the answer is awaited: nothing to read for a while
    local sent = socket.gettime() + 5
    while #srv:requests() == 0 and socket.gettime() < sent do
      if readable(fd, 0.01) then c:io_poll() else c:io_timer() end
    end
    assert.equal(1, #srv:requests())
    if readable(fd) then c:io_poll() end -- (the last of the request's own events)
    assert.is_false(readable(fd, 0.05))
    loop(c, function() return got end)
    assert.equal("late", got[1].messageId)
    -- the keep-alive socket stays in the set, idle: not readable
    assert.is_false(readable(fd, 0.05))
    assert.equal(0, c:_stats().loop_waits)
    c:close()
  end)

  it("an idle keep-alive socket the server closes leaves the set at the next drive", function()
    -- a server of its own that answers one request and keeps the connection
    -- until told to close it (the suite's server closes only when answering)
    local lsn = assert(socket.bind("127.0.0.1", 0))
    lsn:settimeout(0)
    local _, port = lsn:getsockname()
    local c = new("http://127.0.0.1:" .. port)
    local fd = c:io_fd()
    local got, conn, req = nil, nil, ""
    c:async("dlq_retry", "a", nil, function(res, err) got = { res, err } end)
    local limit = socket.gettime() + 10
    while not got do
      assert(socket.gettime() < limit, "no answer")
      if readable(fd, 0.01) then c:io_poll() else c:io_timer() end
      conn = conn or lsn:accept()
      if conn and not req:find("\r\n\r\n", 1, true) then
        conn:settimeout(0)
        local data, _, part = conn:receive(4096)
        req = req .. (data or part or "")
        if req:find("\r\n\r\n", 1, true) then
          local body = '{"messageId":"ka"}'
          assert(conn:send("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: " ..
                           #body .. "\r\n\r\n" .. body))
        end
      end
    end
    assert.equal("ka", got[1].messageId)
    assert.is_false(readable(fd, 0.05)) -- idle, kept for the next request
    conn:close()
    assert.is_true(readable(fd, 2)) -- the close is news on the idle socket
    assert.equal(0, c:io_poll())
    assert.is_false(readable(fd, 0.05)) -- and out of the set: no spinning loop
    c:close()
    lsn:close()
  end)

  it("is close-on-exec (a program the host starts does not inherit it)", function()
    local c = new()
    local fd = c:io_fd()
    assert.is_true(fds.cloexec(fd))
    c:close()
  end)

  it("goes with the client's close and with the hook (on_io(nil))", function()
    local before = epoll_sets()
    local c = new()
    c:io_fd()
    assert.equal(before + 1, epoll_sets())
    c:close()
    assert.equal(before, epoll_sets())
    c = new()
    local fd = c:io_fd()
    assert.equal(before + 1, epoll_sets())
    c:on_io(nil)
    assert.equal(before, epoll_sets())
    -- without the set the client is driven as before: poll waits on its own
    local got
    c:async("dlq_retry", "b", nil, function(res, err) got = { res, err } end)
    c:wait()
    assert.equal("msg_test", got[1].messageId)
    -- a new hook, a new set (a number of its own, or the same one again)
    c:on_io(function() end)
    assert.is_true(c:io_fd() >= 0 and fd >= 0)
    assert.equal(before + 1, epoll_sets())
    c:close()
    assert.equal(before, epoll_sets())
  end)
end)
