-- qstash.loop.cqueues: a call that yields to its cqueues controller until
-- it ends, then returns its result or raises its error, like the
-- synchronous call. One driver coroutine per client (started by the first
-- call, ended when nothing is in flight) polls the client's one descriptor
-- (client:io_fd; where the system has none, each of its sockets) and its
-- timer through the controller and drives the client through its loop hooks
-- (client:io_poll); the calling coroutines sleep on a
-- condition of their own until their callback ran. Nothing blocks the
-- controller, and nothing wakes a coroutine but its own end (no coroutine
-- wakes the others: no polling in turns).
local cqueues = require "cqueues"
local condition = require "cqueues.condition"
local socket = require "cqueues.socket"

local M = {}
local unpack = table.unpack or unpack -- luacheck: ignore 143
-- (looked up once: call() runs once per request)
local select, running, cq_running, poll = select, coroutine.running, cqueues.running, cqueues.poll

-- client -> its state, shared by the coroutines that call through it;
-- holds no reference to the client (its hook gets it as an argument)
local states = setmetatable({}, { __mode = "k" })

-- Stops polling the socket of a watch: the controller forgets the
-- duplicate first, then it closes.
local function unwatch(w)
  cqueues.cancel(w.pollfd)
  w.dup:close()
end

-- Applies what changed in the fds to watch since the last look. The
-- controller polls a duplicate of each socket (cqueues.socket.dup), closed
-- by this module once libcurl closed the socket (`fresh`: the number may be
-- a new socket now): libcurl may close its socket at any time (a cancel, a
-- dropped connection), and the controller must forget a descriptor before
-- it closes. A socket libcurl keeps idle (a keep-alive connection between
-- two requests) keeps its duplicate, unpolled, for the next request on it.
-- The poll set is made anew only after a change.
local function refresh(st, client)
  local chg = client:io_changes()
  for i = 1, #chg do
    local ch = chg[i]
    local w = st.watch[ch.fd]
    if w and ch.fresh then
      unwatch(w)
      st.watch[ch.fd], w = nil, nil
    end
    if ch.events ~= "" then
      if not w then
        local dup = socket.dup(ch.fd)
        w = { fd = ch.fd, dup = dup, pollfd = dup:pollfd() }
        st.watch[ch.fd] = w
      end
      w.events = ch.events
    elseif w then
      w.events = ""
    end
  end
  if #chg > 0 or not st.objs then
    local objs = { st.wake }
    for _, w in pairs(st.watch) do
      if w.events ~= "" then objs[#objs + 1] = w end
    end
    st.objs, st.nobjs = objs, #objs
  end
end

-- The client's one descriptor (client:io_fd), for the controller to poll
-- instead of each socket: a forked child's client has one of its own.
local function io_of(st, client)
  local fd = client:io_fd()
  if st.io and st.io.pollfd ~= fd then cqueues.cancel(st.io.pollfd) end
  if not st.io or st.io.pollfd ~= fd then st.io = { pollfd = fd, events = "r" } end
end

-- coroutine -> its waiter: the condition it sleeps on until its call
-- ended, and the callback that ends the wait, made once per coroutine (a
-- coroutine waits on one call at a time) rather than once per call; while
-- it waits, `st` is the state of the client it waits on (a close wakes it).
local waiter_of = setmetatable({}, { __mode = "k" })

local function state_of(client, opts)
  local st = states[client]
  if st then return st end
  -- watch: fd -> the pollable the controller polls; wake: the driver's
  -- condition (a new request, a cancel, a close); async: client.async
  -- (looked up once, not per call)
  st = { watch = {}, wake = condition.new(), async = client.async, closed = false, driving = false }
  states[client] = st
  client:on_io(function(c, what)
    if what == "closed" then
      -- the controller forgets the descriptors before they close
      if st.io then cqueues.cancel(st.io.pollfd) end
      for _, w in pairs(st.watch) do unwatch(w) end
      st.watch, st.objs, st.closed = {}, nil, true
      -- every caller still waiting on this client wakes, and raises
      for _, w in pairs(waiter_of) do
        if w.st == st then w.ended:signal() end
      end
    elseif st.io then
      return st.wake:signal()
    else
      -- a cancel may have closed a polled socket: the controller forgets
      -- it now, before its next turn touches the fd
      refresh(st, c)
    end
    st.wake:signal()
  end)
  if not (opts and opts.each_socket) and client:io_fd() then io_of(st, client) end
  return st
end

-- The driver of a client with its one descriptor: polls it and the
-- client's timer, and drives the client once a turn (client:io_poll).
local function drive_io(st, client)
  local ok, err = true, nil
  -- (the client's methods looked up once per driver, not per turn)
  local pending, io_timeout, io_poll = client.pending, client.io_timeout, client.io_poll
  io_of(st, client)
  while ok and not st.closed and pending(client) > 0 do
    local t = io_timeout(client)
    if t then poll(st.wake, st.io, t) else poll(st.wake, st.io) end
    if st.closed then break end
    ok, err = pcall(io_poll, client)
  end
  return ok, err
end

-- The driver: while something is in flight, waits in the controller for a
-- socket, the client's timer or a wake-up, and hands back what happened.
-- What a drive call raises (a callback of a request not made through
-- call()) goes to the controller (cq:step/cq:loop) once a new driver took
-- over the requests still in flight.
-- The driver of a client watched socket by socket.
local function drive_each(st, client)
  local ok, err = true, nil
  while ok and not st.closed and client:pending() > 0 do
    refresh(st, client)
    local objs, n = st.objs, st.nobjs
    local t = client:io_timeout()
    objs[n + 1] = t -- (nil: no timeout)
    local ready = { cqueues.poll(unpack(objs, 1, t and n + 1 or n)) }
    local woken, any = false, false
    for _, r in ipairs(ready) do
      if r == st.wake then
        woken = true
      elseif type(r) == "table" and r.pollfd then
        any = true
      end
    end
    if st.closed then break end
    -- a socket is ready, or the timeout passed: one drive in which the
    -- client polls all its sockets (a turn of the controller reports some
    -- of those ready, not always all of them; and at the timeout, answers
    -- may be in that no turn reported yet)
    if any or not woken then ok, err = pcall(client.io_poll, client) end
  end
  -- a socket closed in the last drive: its duplicate goes now, not at the
  -- next call (it would keep the connection open meanwhile)
  if ok and not st.closed then ok, err = pcall(refresh, st, client) end
  return ok, err
end

local function drive(st, client)
  -- no pcall around the polls: Lua 5.1 cannot yield across one
  local ok, err = (st.io and drive_io or drive_each)(st, client)
  st.driving = false
  if not ok then
    -- the other requests go on in a new driver; the error goes to the controller
    if not st.closed and client:pending() > 0 then
      st.driving = true
      cqueues.running():wrap(drive, st, client)
    end
    error(err, 0)
  end
end

local function start_driver(st, client)
  st.driving = true
  cqueues.running():wrap(drive, st, client)
end

local signal = condition.new().signal -- (no method lookup per call)

local function new_waiter()
  local ended = condition.new()
  local w = { ended = ended, done = false }
  w.cb = function(r, e)
    w.done, w.res, w.err = true, r, e
    signal(ended)
  end
  return w
end

--- attach(client [, { each_socket = bool }]) -> client: optional (call
-- attaches a client on its first use). each_socket: the controller polls
-- each socket of the client even where the client has its one descriptor
-- (client:io_fd), as on systems without one.
function M.attach(client, opts)
  state_of(client, opts)
  return client
end

--- call(client, name, ...) -> result; raises the call's error. Inside a
-- coroutine of a cqueues controller (cq:wrap). `name` and the arguments are
-- those of client:async (any API function prepare takes).
function M.call(client, name, a, b, c, ...)
  local st = states[client] or state_of(client)
  local co = running()
  -- (a coroutine has its waiter once it was found to run in a controller)
  local w = waiter_of[co]
  if not w then
    if not (co and cq_running()) then
      error("qstash.loop.cqueues: call() runs inside a coroutine of a cqueues controller", 2)
    end
    w = new_waiter()
    waiter_of[co] = w
  end
  -- (a call that raised before its end left nothing behind: the only such
  -- end is the client's close, after which no callback of it runs)
  w.done = false
  local cb, async = w.cb, st.async
  -- the callback after the arguments; up to three of them without a table
  -- (those left out go as nil, which every API function reads as absent)
  if (...) == nil then
    async(client, name, a, b, c, cb)
  else
    local n = 3 + select("#", ...)
    local args = { a, b, c, ... }
    args[n + 1] = cb
    async(client, name, unpack(args, 1, n + 1))
  end
  if not (st.driving or st.closed) then start_driver(st, client) end
  w.st = st
  while not w.done do
    if st.closed then
      w.st = nil
      error("qstash: the client was closed before the call ended", 2)
    end
    poll(w.ended)
  end
  w.st = nil
  local res, err = w.res, w.err
  w.res, w.err = nil, nil -- (the waiter keeps no result alive)
  if err ~= nil then error(err, 0) end
  return res
end

--- watched(client) -> fds the driver polls (the client's one descriptor,
-- or its sockets), whether a driver runs (and so
-- the client's timer is polled). For specs and diagnostics.
function M.watched(client)
  local st = states[client]
  if not st then return 0, false end
  local n = 0
  if st.driving then
    if st.io then n = 1 end
    for _, w in pairs(st.watch) do
      if w.events ~= "" then n = n + 1 end
    end
  end
  if st.closed then return 0, false end
  return n, st.driving
end

return M
