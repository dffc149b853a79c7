-- qstash.loop.cqueues: a call that yields to its cqueues controller until
-- it ends, then returns its result or raises its error, like the
-- synchronous call. The client's sockets and timer are polled by the
-- controller (cqueues.poll), and the client drives itself through its
-- loop hooks (client:io_ready, client:io_timer): nothing blocks the
-- controller.
local cqueues = require "cqueues"
local condition = require "cqueues.condition"

local M = {}
local unpack = table.unpack or unpack -- luacheck: ignore 143

-- client -> its watches, shared by the coroutines that call through it;
-- holds no reference to the client (its hook gets it as an argument)
local states = setmetatable({}, { __mode = "k" })

local function state_of(client)
  local st = states[client]
  if st then return st end
  st = { watch = {}, cond = condition.new(), closed = false }
  states[client] = st
  client:on_io(function(_, what)
    if what == "closed" then
      for fd in pairs(st.watch) do cqueues.cancel(fd) end
      st.watch, st.closed = {}, true
    end
    -- a new request, a cancel or a close: the waiting coroutines look again
    st.cond:signal()
  end)
  return st
end

-- Applies what changed in the fds to watch since the last look.
local function refresh(st, client)
  for _, ch in ipairs(client:io_changes()) do
    if st.watch[ch.fd] and (ch.fresh or ch.events == "") then
      -- the controller forgets the fd: it may be another socket now
      cqueues.cancel(ch.fd)
      st.watch[ch.fd] = nil
    end
    if ch.events ~= "" then st.watch[ch.fd] = { pollfd = ch.fd, events = ch.events } end
  end
end

--- call(client, name, ...) -> result; raises the call's error. Inside a
-- coroutine of a cqueues controller (cq:wrap). `name` and the arguments are
-- those of client:async (any API function prepare takes).
function M.call(client, name, ...)
  local st = state_of(client)
  local n = select("#", ...)
  local args = { ... }
  local done, res, err = false, nil, nil
  args[n + 1] = function(r, e) done, res, err = true, r, e end
  client:async(name, unpack(args, 1, n + 1))
  while not done do
    if st.closed then error("qstash: the client was closed before the call ended", 2) end
    refresh(st, client)
    local objs = { st.cond }
    for _, w in pairs(st.watch) do objs[#objs + 1] = w end
    local t = client:io_timeout()
    local ready
    if t then
      objs[#objs + 1] = t
      ready = { cqueues.poll(unpack(objs)) }
    else
      ready = { cqueues.poll(unpack(objs)) }
    end
    local drove = false
    for _, r in ipairs(ready) do
      if type(r) == "table" and r.pollfd and not st.closed then
        client:io_ready(r.pollfd, r.events)
        drove = true
      end
    end
    if not drove and not st.closed and not done then client:io_timer() end
    -- what this coroutine drove may have ended another's call
    st.cond:signal()
  end
  if err ~= nil then error(err, 0) end
  return res
end

return M
