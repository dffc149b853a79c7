-- qstash.loop.luv: a client's sockets and timer in a luv loop (uv's default
-- loop, or a host's: Neovim's vim.uv). The loop watches the client's one
-- descriptor (client:io_fd, readable while a socket is ready) and drives
-- the client with client:io_poll; where the system has none, it watches
-- each socket the client reports (client:io_changes) and hands back those
-- ready (client:io_ready). The timer is client:io_timeout's, and fires
-- client:io_timer. Nothing blocks, and no handle stays active while
-- nothing is in flight, so uv.run() returns then.
local M = {}
local unpack = table.unpack or unpack -- luacheck: ignore 143

local attached = {} -- client -> its state (a strong reference: detach or close drops it)

local function close_handle(h)
  if not h:is_closing() then h:close() end
end

-- Drops every watch and the timer: after this, the client holds no handle
-- of the loop.
local function teardown(st)
  for fd, p in pairs(st.polls) do
    close_handle(p.handle)
    st.polls[fd] = nil
  end
  if st.timer then
    close_handle(st.timer)
    close_handle(st.turn_end)
    st.timer, st.turn_end = nil, nil
  end
  if st.io then
    close_handle(st.io)
    st.io = nil
  end
  attached[st.client] = nil
end

local sync

-- Runs a drive call of the client, then looks again at what to watch, even
-- when a callback raised (its error goes to on_error afterwards).
local function drive(st, fn, ...)
  local ok, err = pcall(fn, st.client, ...)
  if attached[st.client] == st then sync(st) end
  if not ok then st.on_error(err) end
end

-- Turns one watch on or off as `want` says.
local function apply(p, want)
  if want ~= p.active then
    if want == "" then p.handle:stop() else p.handle:start(want, p.cb) end
    p.active = want
  end
end

local function poll_handle(st, fd)
  local p = { events = "", active = "" }
  p.handle = st.uv.new_socket_poll(fd)
  p.cb = function(err, events)
    -- libuv stops a watch whose socket has an error (luv prints it as
    -- EBADF): libcurl learns the error from the socket, the watch starts
    -- again if libcurl still wants it
    if err then p.active = "" end
    -- a watch kept on while libcurl needs nothing of its socket (see sync)
    -- goes off when it fires: the client has nothing to do with it
    if p.events == "" then return apply(p, "") end
    -- kept for the end of the loop's turn: one drive takes in every
    -- socket ready in it
    local n = st.nready
    st.ready[n + 1], st.ready[n + 2] = fd, err and "e" or events or ""
    st.nready = n + 2
  end
  st.polls[fd] = p
  return p
end

-- The timer re-armed (or stopped) for what the client needs next.
local function arm(st, busy)
  local t = busy and st.client:io_timeout() or nil
  st.timer:stop()
  -- rather late than early: a timer that fires early only re-arms. From the
  -- clock of now: the loop's is that of its last turn, long past when the
  -- loop has not run for a while (attach, a call made before uv.run)
  if t then
    st.uv.update_time()
    st.timer:start(math.ceil(t * 1000), 0, st.on_timer)
  end
end

-- The client's one descriptor, watched while something is in flight. A
-- forked child's client has a descriptor of its own: the watch follows.
local function sync_io(st)
  local client = st.client
  local busy = client:pending() > 0
  local fd = client:io_fd()
  if fd ~= st.fd then
    close_handle(st.io)
    st.fd, st.io, st.busy = fd, st.uv.new_poll(fd), false
  end
  if busy ~= st.busy then
    if busy then st.io:start("r", st.on_io) else st.io:stop() end
    st.busy = busy
  end
  arm(st, busy)
end

-- Applies what changed: watches made, changed or dropped; each watch on
-- only while something is in flight; the timer re-armed (or stopped). Only
-- the watches that changed are touched, all of them only when the client
-- turns busy or idle: no walk over every socket per event. A socket libcurl
-- keeps idle (a keep-alive connection between two requests) keeps its watch
-- as it was, so the next request on it costs the loop nothing; its watch
-- goes with its socket (`fresh`: the fd was closed, the number may be a new
-- socket now), when it fires, or when the client turns idle.
sync = function(st)
  local client = st.client
  local busy = client:pending() > 0
  if st.io then return sync_io(st) end
  for _, ch in ipairs(client:io_changes()) do
    local p = st.polls[ch.fd]
    if p and ch.fresh then
      close_handle(p.handle)
      st.polls[ch.fd], p = nil, nil
    end
    if ch.events ~= "" then
      p = p or poll_handle(st, ch.fd)
      p.events = ch.events
      if busy == st.busy then apply(p, busy and p.events or "") end
    elseif p then
      p.events = ""
    end
  end
  if busy ~= st.busy then
    for _, p in pairs(st.polls) do apply(p, busy and p.events or "") end
    if busy then
      st.turn_end:start(st.on_turn_end)
    else
      st.turn_end:stop()
      st.nready = 0 -- (sockets noted in this turn: nothing is in flight now)
    end
    st.busy = busy
  end
  arm(st, busy)
end

--- attach(client [, { uv = luv module, on_error = fn(err), each_socket = bool }]) -> client
-- on_error gets what a callback raised (default: raised again, from the
-- loop's callback). each_socket: a watch per socket even where the client
-- has its one descriptor (client:io_fd), as on systems without one.
function M.attach(client, opts)
  opts = opts or {}
  if attached[client] then return client end
  local uv = opts.uv or require "luv"
  -- turn_end: a check handle, run once a turn after the loop's sockets:
  -- it hands the client every socket found ready in the turn (unreferenced,
  -- it never keeps the loop running by itself)
  local st = { client = client, uv = uv, polls = {}, timer = uv.new_timer(), turn_end = uv.new_check(),
               busy = false, ready = {}, nready = 0 }
  st.on_turn_end = function()
    local n = st.nready
    if n == 0 then return end
    st.nready = 0
    -- (io_ready takes up to 256 sockets a call)
    for i = 1, n, 512 do
      if attached[client] ~= st then return end
      drive(st, client.io_ready, unpack(st.ready, i, math.min(n, i + 511)))
    end
  end
  st.turn_end:unref()
  st.on_error = opts.on_error or function(err) error(err, 0) end
  st.on_timer = function() drive(st, client.io_timer) end
  attached[client] = st
  client:on_io(function(_, what)
    if attached[client] ~= st then return end
    if what == "closed" then teardown(st) else sync(st) end
  end)
  local fd = not opts.each_socket and client:io_fd()
  if fd then
    st.fd, st.io = fd, uv.new_poll(fd)
    st.on_io = function(err)
      -- libuv stops a watch that failed: the next look starts it again
      if err then st.busy = nil end
      drive(st, client.io_poll)
    end
  end
  sync(st)
  return client
end

--- detach(client): the client leaves the loop (its requests stay pending:
-- poll or wait drive them then).
function M.detach(client)
  local st = attached[client]
  if not st then return end
  teardown(st)
  client:on_io(nil)
end

--- watched(client) -> fds watched now (active: the client's one descriptor,
-- or its sockets), whether the timer is armed.
-- For specs and diagnostics.
function M.watched(client)
  local st = attached[client]
  local n = 0
  if not st then return 0, false end
  if st.io and st.io:is_active() then n = 1 end
  for _, p in pairs(st.polls) do
    if p.active ~= "" then n = n + 1 end
  end
  return n, st.timer:is_active()
end

return M
