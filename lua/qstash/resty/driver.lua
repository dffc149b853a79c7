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
-- blocks the nginx worker: a follow's "wait", "poll" between two looks at
-- the logs is an ngx.sleep like a backoff's. Also: dlq_retry_each over
-- `concurrency` light threads sharing the pools (with opts.follow: then one
-- follow_many of every new message), and dlq_messages / log_entries as
-- iterators over dlq_list / logs pages. `driver.mode` says where a call can
-- run at all.
--
-- dlq_retry_each and dlq_messages are not calls the core can prepare; their
-- argument checks and their one error made here (a repeated cursor) say
-- what the C module's own dlq_retry_each and dlq_messages say, word for
-- word (spec/resty_parity_spec.lua compares them).

local _G = _G
local type = type
local next = next
local ipairs = ipairs
local error = error
local pcall = pcall
local rawget = rawget
local tostring = tostring
local require = require
local setmetatable = setmetatable
local getmetatable = getmetatable
local math_floor = math.floor
local string_byte = string.byte
local string_find = string.find
local string_sub = string.sub
local debug = debug

local M = {}

local MODULE = "qstash.resty"

-- Phases with cosockets, ngx.sleep and light threads (lua-nginx-module's
-- contexts of ngx.socket.tcp, ngx.sleep and ngx.thread.spawn).
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

local function is_error(v)
  return type(v) == "table" and getmetatable(v) == get_error_mt()
end

local function argerror(n, fname, msg)
  return "bad argument #" .. n .. " to '" .. fname .. "' (" .. msg .. ")"
end

-- An argument error of prepare ("bad argument #n to 'f' (msg)") raised again
-- as one of `fname` at `level`; anything else raised as it is.
local function reraise(e, fname, level)
  if type(e) == "string" then
    local n, msg = e:match("^bad argument #(%d+) to '[^']*' %((.*)%)$")
    if n then error(argerror(n, fname, msg), level + 1) end
  end
  error(e, 0)
end

---------------------------------------------------------------- one call

-- qstash.resty.http's request, loaded on first use: plain Lua (no FFI, no
-- cosockets) loads qstash.resty for direct calls only.
local request
local function load_request()
  request = require("qstash.resty.http").request
  return request
end

-- ngx.sleep for `s` seconds: at least its 1 ms resolution (ngx.sleep(0)
-- only yields, and logs a warning on every call without OpenResty's
-- delayed-events patch).
local function sleep(ngx, s)
  if s < 0.001 then s = 0.001 end
  ngx.sleep(s)
end

-- Holds back a send of a batch while a 429 pause of the batch lasts.
local function hold(ngx, batch)
  while true do
    local left = batch.pause_until - ngx.now()
    if left <= 0 then return end
    sleep(ngx, left)
  end
end

local ANSWER = {}

-- The response headers the core is given: none for a 2xx answer, as the
-- C module's libcurl engine reads them only for the others (the core acts
-- on them only there: Retry-After and the rate-limit headers of a 429).
local function acted_on(status, headers)
  if status >= 200 and status <= 299 then return nil end
  return headers
end

-- Sends the request value `v` of `call` and hands back how it ended; returns
-- the next step's answer. `track` (dlq_messages' own error) counts the sends
-- and whether one may have been acted on without an answer, as the core does.
local function exchange(call, v, send, track)
  local ok, status, headers, body = send(v)
  if track then
    track.sends, track.url = track.sends + 1, v.url
    if (ok and status >= 500) or (not ok and status.sent and status.failure ~= "too_large") then
      track.unknown = true
    end
  end
  if not ok then return call:step(status) end -- the failure table
  -- one table for every answer: step reads it at once and keeps nothing
  local answer = ANSWER
  answer.status, answer.headers, answer.body = status, acted_on(status, headers), body
  local what, nv, why = call:step(answer)
  answer.headers, answer.body = nil, nil
  return what, nv, why
end

-- Drives `call` from the step answer (what, v, why) to its end; returns
-- res | nil, err. `batch`: dlq_retry_each's state (its 429 pause); `track`:
-- see exchange.
local function drive_loop(call, batch, track, what, v, why)
  local ngx = rawget(_G, "ngx")
  local send = request or load_request()
  while true do
    if what == "send" then
      if batch and batch.pause_until > 0 then hold(ngx, batch) end
      what, v, why = exchange(call, v, send, track)
    elseif what == "wait" then
      if batch and why == "rate_limited" then
        local till = ngx.now() + v
        if till > batch.pause_until then batch.pause_until = till end
      end
      sleep(ngx, v)
      what, v, why = call:step()
    elseif what == "done" then
      return v
    elseif what == "fail" then
      return nil, v
    else
      error(MODULE .. ": the call object answered " .. tostring(what), 0)
    end
  end
end

-- The same, with the usual call first: one send, then done, in straight-line
-- code (LuaJIT does not compile a call path that enters a loop it did not
-- start in, and would run every call interpreted).
local function drive(call, batch, track, what, v, why)
  if what == "send" and not batch and not track then
    what, v, why = exchange(call, v, request or load_request())
    if what == "done" then return v end
  end
  return drive_loop(call, batch, track, what, v, why)
end

--- res, err = driver.run(call): drives one prepared call object to its end.
function M.run(call)
  return drive(call, nil, nil, call:step())
end

--- res, err = driver.call(client, fname, level, ...): client:fname(...) over
-- cosockets. Argument errors raise at `level` (from prepare, before anything
-- is sent); runtime failures return nil, err.
function M.call(client, fname, level, ...)
  local ok, call = pcall(client.prepare, client, fname, ...)
  if not ok then reraise(call, fname, level + 1) end
  return drive(call, nil, nil, call:step())
end

---------------------------------------------------------------- dlq_retry_each

local EACH = "dlq_retry_each"
local EACH_KEYS = { "concurrency", "on_result", "on_progress" }
local EACH_KNOWN = { concurrency = true, on_result = true, on_progress = true }

-- Optimal string alignment distance (the C module's qs_closest).
local function osa_distance(a, b)
  local la, lb = #a, #b
  local prev2, prev = {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    local cur = { [0] = i }
    local ca = string_byte(a, i)
    for j = 1, lb do
      local cb = string_byte(b, j)
      local cost = ca == cb and 0 or 1
      local d = prev[j] + 1
      if cur[j - 1] + 1 < d then d = cur[j - 1] + 1 end
      if prev[j - 1] + cost < d then d = prev[j - 1] + cost end
      if i > 1 and j > 1 and ca == string_byte(b, j - 1) and string_byte(a, i - 1) == cb
         and prev2[j - 2] + 1 < d then
        d = prev2[j - 2] + 1
      end
      cur[j] = d
    end
    prev2, prev = prev, cur
  end
  return prev[lb]
end

local function closest(key)
  local best, best_d = nil, 1 / 0
  local limit = math_floor(#key / 3) + 1
  if limit < 2 then limit = 2 end
  for _, k in ipairs(EACH_KEYS) do
    local d = osa_distance(key, k)
    if d < best_d then best, best_d = k, d end
  end
  return best_d <= limit and best or nil
end

-- A key as the C module shows it: control bytes and quotes escaped, cut at 80.
local function printable(key)
  local s = string_sub(key, 1, 80):gsub("[%z\1-\31\127\\']", function(c)
    if c == "\\" or c == "'" then return "\\" .. c end
    return "\\" .. string_byte(c)
  end)
  return s
end

-- concurrency, on_result, on_progress of a batch table (raises at level).
local function batch_options(batch, level)
  if batch == nil then return 32 end
  level = level + 1
  if type(batch) ~= "table" then error(argerror(3, EACH, "options of the batch must be a table"), level) end
  for k in next, batch do
    if type(k) ~= "string" then
      error(argerror(3, EACH, "batch option keys must be strings, got a " .. type(k) .. " key"), level)
    end
    if not EACH_KNOWN[k] then
      local shown = printable(k)
      if string_find(k, "%z") then
        error(argerror(3, EACH, "unknown batch option '" .. shown .. "' (the key holds a NUL byte)"), level)
      end
      local hint = closest(k)
      if hint then
        error(argerror(3, EACH, "unknown batch option '" .. shown .. "'; did you mean '" .. hint .. "'?"), level)
      end
      error(argerror(3, EACH, "unknown batch option '" .. shown .. "'"), level)
    end
  end
  local concurrency = 32
  local c = batch.concurrency
  if c ~= nil then
    if type(c) ~= "number" or not (c >= 1 and c <= 1024) or c ~= math_floor(c) then
      error(argerror(3, EACH, "'concurrency' must be an integer from 1 to 1024"), level)
    end
    concurrency = c
  end
  local on_result, on_progress = batch.on_result, batch.on_progress
  if on_result ~= nil and type(on_result) ~= "function" then
    error(argerror(3, EACH, "'on_result' must be a function"), level)
  end
  if on_progress ~= nil and type(on_progress) ~= "function" then
    error(argerror(3, EACH, "'on_progress' must be a function"), level)
  end
  return concurrency, on_result, on_progress
end

-- The distinct ids of `ids` in order, each checked as the core checks a DLQ
-- id (raises at level, as the C module's dlq_retry_each does).
local function distinct_ids(client, ids, level)
  level = level + 1
  local n = #ids
  if n == 0 then error(argerror(1, EACH, "an empty list of ids"), level) end
  local count = 0
  for _ in next, ids do count = count + 1 end
  if count ~= n then error(argerror(1, EACH, "an array of ids must not have other keys"), level) end
  local list, seen = {}, {}
  for i = 1, n do
    local id = rawget(ids, i)
    if type(id) ~= "string" then error(argerror(1, EACH, "DLQ id #" .. i .. " is not a string"), level) end
    local ok, e = pcall(client.prepare, client, "dlq_get", id)
    if not ok then reraise(e, EACH, level) end
    if not seen[id] then
      seen[id] = true
      list[#list + 1] = id
    end
  end
  return list
end

-- opts without `follow`: what each light thread's retry is prepared with
-- (the batch follows the new messages together afterwards).
local function without_follow(opts)
  if type(opts) ~= "table" or rawget(opts, "follow") == nil then return opts end
  local c = {}
  for k, v in next, opts do
    if k ~= "follow" then c[k] = v end
  end
  return c
end

-- The follow options of dlq_retry_each's opts.follow (true: the defaults).
local function follow_options(follow)
  if type(follow) == "table" then return { timeout = follow.timeout, interval = follow.interval } end
  return nil
end

--- out, err = driver.each(client, ids, opts, batch, level)
-- -> { ok = n, failed = n, results = { [id] = res or err } }
-- Checks in the C module's order (the ids, the options, the batch) before
-- anything is sent; then `concurrency` light threads take the next id in
-- turn, each preparing its call when it starts it. A 429 pauses the sends of
-- the whole batch. An error raised by on_result / on_progress stops new
-- starts; the calls in flight end, then it is raised.
-- With opts.follow (true or { timeout, interval }), checked with the rest:
-- the threads retry without it, then one follow_many call follows every new
-- message (100 a logs request, as the C module's dlq_retry_each does); a
-- retried id's result gets `delivery` and its on_result / on_progress run
-- when the follow has ended (all at the end: the call's result comes whole),
-- in the order of the ids; failures to retry report at once. When a callback
-- raised first, the retried ids are counted without `delivery` or callbacks.
function M.each(client, ids, opts, batch, level)
  level = (level or 1) + 1
  if type(ids) ~= "table" then
    error(argerror(1, EACH, "expected an array of DLQ ids, got " .. type(ids)), level)
  end
  local list = distinct_ids(client, ids, level)
  local ok, first = pcall(client.prepare, client, "dlq_retry", list[1], opts)
  if not ok then reraise(first, EACH, level) end
  local concurrency, on_result, on_progress = batch_options(batch, level)
  local follow = type(opts) == "table" and rawget(opts, "follow") or nil
  if follow == false then follow = nil end
  if follow ~= nil then first = client:prepare("dlq_retry", list[1], without_follow(opts)) end
  local retried = follow ~= nil and {} or nil  -- ids retried, awaiting their follow

  -- the first call's first step: a call that fails before sending anything
  -- (no token) fails the whole batch, as the C module's does
  local what, v, why = first:step()
  if what == "fail" then return nil, v end

  local total = #list
  local results = {}
  local st = { next = 1, ok = 0, failed = 0, done = 0, pause_until = 0, stop = nil }

  local function report(fn, ...)
    if st.stop then return end
    local fine, e = pcall(fn, ...)
    if not fine then st.stop = { e } end
  end

  local function worker()
    while not st.stop do
      local i = st.next
      if i > total then return end
      st.next = i + 1
      local id = list[i]
      local res, err
      if i == 1 then
        res, err = drive(first, st, nil, what, v, why)
        first, v = nil, nil
      else
        -- opts was checked above; a callback may have changed it since
        local fine, call = pcall(client.prepare, client, "dlq_retry", id, without_follow(opts))
        if not fine then
          st.stop = { call }
          return
        end
        res, err = drive(call, st, nil, call:step())
      end
      if res ~= nil and retried then
        results[id] = res
        retried[#retried + 1] = id
      elseif res ~= nil then
        results[id] = res
        st.ok = st.ok + 1
      else
        results[id] = err
        st.failed = st.failed + 1
      end
      if not (res ~= nil and retried) then
        st.done = st.done + 1
        if on_result then report(on_result, id, res, err) end
        if on_progress then report(on_progress, st.done, total) end
      end
    end
  end

  local ngx = rawget(_G, "ngx")
  local threads = {}
  local nthreads = concurrency < total and concurrency or total
  for t = 1, nthreads - 1 do threads[t] = ngx.thread.spawn(worker) end
  local ok_main, main_err = pcall(worker) -- the entry thread is one of them
  for t = 1, #threads do
    local fine, e = ngx.thread.wait(threads[t])
    if not fine and ok_main then ok_main, main_err = false, e end
  end
  if not ok_main then error(main_err, 0) end
  if retried and #retried > 0 then
    -- the new messages, each once (a deduplicated retry may share one)
    local mids, seen = {}, {}
    for _, id in ipairs(retried) do
      local mid = results[id].messageId
      if type(mid) == "string" and not seen[mid] then
        seen[mid] = true
        mids[#mids + 1] = mid
      end
    end
    local followed, ferr
    if not st.stop and #mids > 0 then
      local call = client:prepare("follow_many", mids, follow_options(follow))
      followed, ferr = drive(call, nil, nil, call:step())
    end
    for _, id in ipairs(retried) do
      local res = results[id]
      st.ok, st.done = st.ok + 1, st.done + 1
      if not st.stop and (followed or ferr) then
        local mid = res.messageId
        -- a follow that failed: what is known is that the message did not end
        res.delivery = followed and followed[mid] or { messageId = mid, done = false, error = ferr }
        if on_result then report(on_result, id, res, nil) end
        if on_progress then report(on_progress, st.done, total) end
      end
    end
  end
  if st.stop then
    local e = st.stop[1]
    if type(e) == "string" then error("qstash: error in a callback: " .. e, 0) end
    error(e, 0)
  end
  return { ok = st.ok, failed = st.failed, results = results }
end

---------------------------------------------------------------- dlq_messages

local function copy(t)
  local c = {}
  if t then for k, v in next, t do c[k] = v end end
  return c
end

-- The C module's error for a cursor that came back a second time.
local REPEATED = "the cursor repeated an earlier one: stopping, since following it would loop for ever"

-- The target of a dlq_list (logs) request URL (what the core shows as
-- `path`): from the last "/v2/dlq" ("/v2/logs") on (a base URL may have a
-- path of its own; the query's values are percent-encoded), without the
-- token query.
local function list_target(url, prefix)
  local from, at = 1, nil
  while true do
    local s = string_find(url, prefix, from, true)
    if not s then break end
    at, from = s, s + 1
  end
  local target = at and string_sub(url, at) or url
  target = target:gsub("[?&]qstash_token=[^&]*$", "")
  return target
end

local function repeated_cursor(track, cursor, prefix)
  return setmetatable({ kind = "decode", method = "GET", path = list_target(track.url, prefix),
    attempts = track.sends, ambiguous = track.unknown, status = 200, message = REPEATED,
    cursor = cursor }, get_error_mt())
end

--- iterator = driver.messages(client, params, level)
-- Every message across dlq_list pages, each page asked with the cursor of
-- the previous one (the first with params.cursor, if given). Raises on
-- failure (a nil would silently end a loop); a failed page is asked again
-- by the next call. A cursor seen before ends the loop with a `decode`
-- error, after the messages of its page (it would loop for ever).
-- The pages of an iterator: the call prepared, the items' field, the path.
local PAGES = {
  dlq_messages = { call = "dlq_list", items = "messages", prefix = "/v2/dlq" },
  log_entries = { call = "logs", items = "logs", prefix = "/v2/logs" },
}

local function pages(fname, client, params, level)
  local kind = PAGES[fname]
  level = (level or 1) + 1
  local p = params
  if type(params) == "table" then p = copy(params) end
  -- the first page is prepared now: bad params raise here
  local ok, call = pcall(client.prepare, client, kind.call, p)
  if not ok then reraise(call, fname, level) end
  local seen = {}
  local cursor = type(p) == "table" and p.cursor or nil
  if cursor ~= nil then seen[cursor] = true end
  local page, idx, finished, failure = nil, 1, false, nil
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
        if failure then error(failure, 0) end
        return nil
      end
      if not call then
        local q = copy(p)
        q.cursor = cursor
        call = client:prepare(kind.call, q)
      end
      local track = { sends = 0, unknown = false }
      local res, err = drive(call, nil, track, call:step())
      call = nil
      if res == nil then error(err, 0) end
      page, idx = res[kind.items], 1
      local nextc = res.cursor
      if nextc == nil then
        finished = true
      elseif seen[nextc] then
        -- this page's messages still come; asking past them raises
        finished, failure = true, repeated_cursor(track, nextc, kind.prefix)
      else
        seen[nextc] = true
        cursor = nextc
      end
    end
  end
end

function M.messages(client, params, level)
  return pages("dlq_messages", client, params, level)
end

--- iterator = driver.log_entries(client, filter, level): the same over the
-- logs pages (GET /v2/logs), entries newest first.
function M.log_entries(client, params, level)
  return pages("log_entries", client, params, level)
end

M.is_error = is_error

return M
