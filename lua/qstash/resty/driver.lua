--- qstash.resty.driver: runs the core's call objects over cosockets.
--
-- The C core decides everything (request bytes, retries, backoff, 429 waits,
-- results and errors); this module only moves bytes and sleeps:
--
--   local call = client:prepare("dlq_retry", id, opts)  -- bad arguments raise
--   local res, err = driver.run(call)                    -- send / wait / done / fail
--
-- Sends go through qstash.resty.http (ngx.socket.tcp, keepalive pools),
-- waits through ngx.sleep, which yields to the event loop: nothing here
-- blocks the nginx worker. Also: dlq_retry_each over `concurrency` light
-- threads sharing the pools, and dlq_messages as an iterator over dlq_list
-- pages. `driver.mode` says where a call can run at all.

local http = require "qstash.resty.http"

local _G = _G
local type = type
local error = error
local pcall = pcall
local pairs = pairs
local rawget = rawget
local tostring = tostring
local tonumber = tonumber
local require = require
local setmetatable = setmetatable
local getmetatable = getmetatable
local math_floor = math.floor
local debug = debug

local M = {}

local MODULE = "qstash.resty"

-- Phases with cosockets, ngx.sleep and light threads.
local COSOCKET_PHASES = {
  rewrite = true, server_rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}
-- Phases where a direct (blocking) call of the C module is right: the master
-- before the workers exist.
local DIRECT_PHASES = { init = true }

local function ngx_api()
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.get_phase) == "function" then return ngx end
  return nil
end

--- mode = driver.mode(fname, level): "cosocket" (a request handler or a
-- timer), "direct" (plain Lua, init_by_lua*); raises at `level` in any other
-- phase, pointing to ngx.timer.at.
function M.mode(fname, level)
  local ngx = ngx_api()
  if not ngx then return "direct" end
  local phase = ngx.get_phase()
  if COSOCKET_PHASES[phase] then return "cosocket" end
  if DIRECT_PHASES[phase] then return "direct" end
  error(MODULE .. ": " .. fname .. " cannot run in the " .. tostring(phase) .. " phase: nginx has "
    .. "no cosockets there and a direct call would block the worker; run it from "
    .. "ngx.timer.at(0, function() ... end)", (level or 1) + 1)
end

---------------------------------------------------------------- errors

-- The module's error metatable (registered by require "qstash").
local error_mt
local function get_error_mt()
  if error_mt then return error_mt end
  require "qstash"
  local reg = type(debug) == "table" and type(debug.getregistry) == "function"
    and debug.getregistry() or nil
  local mt = type(reg) == "table" and reg["qstash.error"] or nil
  if type(mt) ~= "table" then
    local _, err = require("qstash.safe").verify{
      signature = "x", body = "", current_signing_key = "x" }
    mt = getmetatable(err)
  end
  error_mt = mt
  return mt
end

local function make_error(fields)
  return setmetatable(fields, get_error_mt())
end

local function is_error(v)
  return type(v) == "table" and getmetatable(v) == get_error_mt()
end

---------------------------------------------------------------- one call

-- Holds back a send of a batch while a 429 pause of the batch lasts.
local function hold(batch)
  local ngx = rawget(_G, "ngx")
  while true do
    local left = batch.pause_until - ngx.now()
    if left <= 0 then return end
    ngx.sleep(left)
  end
end

--- res, err = driver.run(call, batch): drives one call object to its end.
-- `batch` (optional, dlq_retry_each's state): a 429 wait of any call pauses
-- every send of the batch until it is over.
function M.run(call, batch)
  local ngx = rawget(_G, "ngx")
  local request = http.request
  local what, v, why = call:step()
  while true do
    if what == "send" then
      if batch and batch.pause_until > 0 then hold(batch) end
      local ok, status, headers, body = request(v)
      if ok then
        what, v, why = call:step{ status = status, headers = headers, body = body }
      else
        what, v, why = call:step(status) -- the failure table
      end
    elseif what == "wait" then
      if batch and why == "rate_limited" then
        local till = ngx.now() + v
        if till > batch.pause_until then batch.pause_until = till end
      end
      ngx.sleep(v)
      what, v, why = call:step()
    elseif what == "done" then
      return v
    elseif what == "fail" then
      return nil, v
    else
      error(MODULE .. ": the call object answered " .. tostring(what), 2)
    end
  end
end

-- "bad argument #n to 'f' (msg)" -> n, msg (an error of prepare), or nil
local function split_argerror(msg)
  if type(msg) ~= "string" then return nil end
  local n, inner = msg:match("bad argument #(%d+) to '[^']*' %((.*)%)$")
  return tonumber(n), inner
end

local function argerror(n, fname, msg)
  return "bad argument #" .. n .. " to '" .. fname .. "' (" .. msg .. ")"
end

--- res, err = driver.call(client, fname, ...): client:fname(...) over cosockets.
-- Argument errors raise (from prepare, before anything is sent); runtime
-- failures return nil, err.
function M.call(client, fname, ...)
  local ok, call = pcall(client.prepare, client, fname, ...)
  if not ok then
    if is_error(call) then return nil, call end
    error(call, 0)
  end
  return M.run(call)
end

---------------------------------------------------------------- dlq_retry_each

local EACH_KEYS = { concurrency = true, on_result = true, on_progress = true }

-- concurrency, on_result, on_progress of a batch table (raises at level).
local function batch_options(batch, level)
  local concurrency, on_result, on_progress = 32, nil, nil
  if batch == nil then return concurrency end
  if type(batch) ~= "table" then
    error(argerror(3, "dlq_retry_each", "options of the batch must be a table"), level + 1)
  end
  for k in pairs(batch) do
    if not EACH_KEYS[k] then
      error(argerror(3, "dlq_retry_each", "unknown batch option '" .. tostring(k) .. "'"), level + 1)
    end
  end
  local c = batch.concurrency
  if c ~= nil then
    if type(c) ~= "number" or c ~= math_floor(c) or c < 1 or c > 1024 then
      error(argerror(3, "dlq_retry_each", "'concurrency' must be an integer from 1 to 1024"), level + 1)
    end
    concurrency = c
  end
  on_result, on_progress = batch.on_result, batch.on_progress
  if on_result ~= nil and type(on_result) ~= "function" then
    error(argerror(3, "dlq_retry_each", "'on_result' must be a function"), level + 1)
  end
  if on_progress ~= nil and type(on_progress) ~= "function" then
    error(argerror(3, "dlq_retry_each", "'on_progress' must be a function"), level + 1)
  end
  return concurrency, on_result, on_progress
end

--- out, err = driver.each(client, ids, opts, batch, level)
-- -> { ok = n, failed = n, results = { [id] = res or err } }
-- Every distinct id is prepared (so checked) before anything is sent; then
-- `concurrency` light threads take the next id in turn. A 429 pauses the
-- sends of the whole batch. An error raised by on_result / on_progress stops
-- new starts; the calls in flight end, then it is raised.
function M.each(client, ids, opts, batch, level)
  level = (level or 1) + 1
  local concurrency, on_result, on_progress = batch_options(batch, level)
  if type(ids) ~= "table" then
    error(argerror(1, "dlq_retry_each", "expected an array of DLQ ids, got " .. type(ids)), level)
  end
  local n = #ids
  if n == 0 then error(argerror(1, "dlq_retry_each", "an empty list of ids"), level) end

  local list, calls, seen = {}, {}, {}
  for i = 1, n do
    local id = ids[i]
    if type(id) ~= "string" then
      error(argerror(1, "dlq_retry_each", "DLQ id #" .. i .. " is not a string"), level)
    end
    if not seen[id] then
      seen[id] = true
      local ok, call = pcall(client.prepare, client, "dlq_retry", id, opts)
      if not ok then
        if is_error(call) then return nil, call end
        local argn, inner = split_argerror(call)
        if argn == 1 then error(argerror(1, "dlq_retry_each", "DLQ id #" .. i .. ": " .. inner), level) end
        if argn then error(argerror(argn, "dlq_retry_each", inner), level) end
        error(call, 0)
      end
      list[#list + 1] = id
      calls[#calls + 1] = call
    end
  end

  local total = #list
  local results = {}
  local st = { next = 1, ok = 0, failed = 0, done = 0, pause_until = 0, cb_error = nil }

  local function report(fn, ...)
    if st.cb_error then return end
    local ok, e = pcall(fn, ...)
    if not ok then st.cb_error = { e } end
  end

  local function worker()
    while not st.cb_error do
      local i = st.next
      if i > total then return end
      st.next = i + 1
      local call = calls[i]
      calls[i] = false -- let the call object go once it ran
      local res, err = M.run(call, st)
      local id = list[i]
      if res ~= nil then
        results[id] = res
        st.ok = st.ok + 1
      else
        results[id] = err
        st.failed = st.failed + 1
      end
      st.done = st.done + 1
      if on_result then report(on_result, id, res, err) end
      if on_progress then report(on_progress, st.done, total) end
    end
  end

  local ngx = rawget(_G, "ngx")
  local threads = {}
  local nthreads = concurrency < total and concurrency or total
  for t = 1, nthreads - 1 do threads[t] = ngx.thread.spawn(worker) end
  local ok_main, main_err = pcall(worker) -- the entry thread is one of them
  for t = 1, #threads do
    local ok, e = ngx.thread.wait(threads[t])
    if not ok and ok_main then ok_main, main_err = false, e end
  end
  if not ok_main then error(main_err, 0) end
  if st.cb_error then
    local e = st.cb_error[1]
    if type(e) == "string" then error("qstash: error in a callback: " .. e, 0) end
    error(e, 0)
  end
  return { ok = st.ok, failed = st.failed, results = results }
end

---------------------------------------------------------------- dlq_messages

local function copy(t)
  local c = {}
  if t then for k, v in pairs(t) do c[k] = v end end
  return c
end

--- iterator = driver.messages(client, params, level)
-- Every message across dlq_list pages, each page asked with the cursor of
-- the previous one. Raises on failure (a nil would silently end a loop), and
-- with a `decode` error, after that page's messages, when a cursor comes back
-- that was seen before (it would loop for ever).
function M.messages(client, params, level)
  level = (level or 1) + 1
  if params ~= nil and type(params) ~= "table" then
    error(argerror(1, "dlq_messages", "expected a table or nil, got " .. type(params)), level)
  end
  local p = copy(params)
  -- the first page is prepared now: bad params raise here
  local ok, call = pcall(client.prepare, client, "dlq_list", p)
  if not ok then
    if is_error(call) then error(call, 0) end
    local argn, inner = split_argerror(call)
    if argn then error(argerror(argn, "dlq_messages", inner), level) end
    error(call, 0)
  end
  local seen = {}
  if p.cursor ~= nil then seen[p.cursor] = true end
  local page, idx, finished = nil, 1, false
  return function()
    while true do
      if page then
        local msg = page[idx]
        if msg ~= nil then
          idx = idx + 1
          return msg
        end
      end
      if finished then
        if finished ~= true then
          local e = finished
          finished = true
          error(e, 0)
        end
        return nil
      end
      local res, err = M.run(call)
      call = nil
      if res == nil then error(err, 0) end
      page, idx = res.messages or {}, 1
      local cursor = res.cursor
      if cursor == nil or cursor == "" then
        finished = true
      elseif seen[cursor] then
        -- this page's messages still come; asking for the next one ends it
        finished = make_error{ kind = "decode", method = "GET", path = "/v2/dlq",
          message = "the cursor " .. tostring(cursor) .. " repeated: the pages would never end" }
      else
        seen[cursor] = true
        params = copy(params)
        params.cursor = cursor
        call = client:prepare("dlq_list", params)
      end
    end
  end
end

M.is_error = is_error
M.make_error = make_error

return M
