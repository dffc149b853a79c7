--- qstash.resty: the QStash client for OpenResty handlers.
--
--   local qr = require "qstash.resty"
--   local res, err = qr.dlq_retry(id, { retries = 1 }, { token = "..." })
--
-- In every phase with cosockets (rewrite, access and content handlers,
-- ngx.timer callbacks, the ssl_* handlers) a call runs the C core's
-- caller-driven transport over ngx.socket.tcp (qstash.resty.driver): the core
-- builds the exact request and decides retries, waits and results; the
-- request goes out on a keepalive cosocket and waits are ngx.sleep, so the
-- worker keeps serving other requests meanwhile, and no thread pool is
-- needed. In init_by_lua* and plain Lua (scripts, the CLI) the C module is
-- called directly; any other phase raises, pointing to ngx.timer.at(0, ...).
--
-- Every function returns `res`, or `nil, err` for a runtime failure, like
-- qstash.safe; `err` is the module's error object either way. Argument
-- errors raise a string at the caller's line, before anything is sent.
-- qr.dlq_messages and qr.log_entries return iterators that raise on failure.
--
-- The receiving side: qr.verify_request(opts) checks the Upstash-Signature of
-- the current request (see docs/openresty.md).

local driver = require "qstash.resty.driver"

local _G = _G
local require = require
local type = type
local next = next
local pairs = pairs
local error = error
local pcall = pcall
local tostring = tostring
local rawget = rawget
local getmetatable = getmetatable
local string_format = string.format
local table_concat = table.concat
local io_open = io.open

local M = {}

local MODULE = "qstash.resty"
-- Most clients kept (one per distinct config); past it the cache is emptied.
local MAX_CLIENTS = 32

---------------------------------------------------------------- helpers

local function ngx_api()
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.get_phase) == "function" then return ngx end
  return nil
end

local function argerror(n, fname, msg)
  return "bad argument #" .. n .. " to '" .. fname .. "' (" .. msg .. ")"
end

-- An error message without the position luaL_error gave it when the C
-- function was called from this file (the caller's own is added on raising).
local function strip_position(msg)
  msg = tostring(msg)
  local pos = msg:match("^(.-:%d+: )")
  if pos and pos:find("resty.lua:", 1, true) then msg = msg:sub(#pos + 1) end
  return msg
end

-- Raises what a direct call of the C module raised: an argument error at
-- `level` (the caller's line), anything else as it is.
local function raise_direct(e, level)
  if type(e) == "string" then
    e = strip_position(e)
    if e:find("^bad argument #") then error(e, level + 1) end
  end
  error(e, 0)
end

---------------------------------------------------------------- clients

-- The keys of qstash.new's config, in a fixed order: the cache key of a
-- config is made without sorting (this runs on every call).
local CONFIG_KEYS = {
  "token", "base_url", "dev", "timeout", "connect_timeout", "retry", "token_in_query",
  "user_agent", "ca_file", "proxy", "max_response_bytes", "call_timeout", "max_requests",
}
local RETRY_KEYS = { "attempts", "base_delay", "max_delay" }

local function scalar_text(v)
  local t = type(v)
  if t == "string" then return string_format("%q", v) end
  if t == "number" then return string_format("n%.17g", v) end
  if t == "nil" or t == "boolean" then return tostring(v) end
  return nil -- not a value a config can hold: no key, qstash.new says why
end

-- The text of a flat table over `keys`, or nil when it has other keys or
-- other values (then the config is not cached: qstash.new judges it).
local function flat_text(t, keys, nested)
  local out, n, found = {}, 0, 0
  for i = 1, #keys do
    local v = rawget(t, keys[i])
    if v ~= nil then
      found = found + 1
      local s
      if type(v) == "table" and nested and keys[i] == "retry" then
        s = flat_text(v, RETRY_KEYS, false)
        s = s and ("{" .. s .. "}")
      else
        s = scalar_text(v)
      end
      if not s then return nil end
      n = n + 1
      out[n] = keys[i] .. "=" .. s
    end
  end
  local all = 0
  for _ in next, t do all = all + 1 end
  if all ~= found then return nil end
  return table_concat(out, ";")
end

-- One client per distinct config in this Lua VM. The client only holds the
-- configuration for prepare (over cosockets), or makes direct calls.
local clients = {}
local nclients = 0

-- The number of keys of a table: OpenResty's table.nkeys (compiled by the
-- JIT, where a loop over next would keep the calls around it from being
-- compiled), or that loop.
local nkeys
do
  local ok, f = pcall(require, "table.nkeys")
  nkeys = ok and f or function(t)
    local n = 0
    for _ in next, t do n = n + 1 end
    return n
  end
end

-- A handler usually passes the same config table on every call: the last
-- client of each table, with what the table held then. A table changed in
-- place since (a value, a key more or less, the retry table's fields) is
-- looked up again. Written out key by key, without a loop, for the JIT.
local by_table = setmetatable({}, { __mode = "k" })

local function remember(config, client)
  local r = rawget(config, "retry")
  by_table[config] = {
    client = client, n = nkeys(config),
    token = rawget(config, "token"), base_url = rawget(config, "base_url"),
    dev = rawget(config, "dev"), timeout = rawget(config, "timeout"),
    connect_timeout = rawget(config, "connect_timeout"), retry = r,
    token_in_query = rawget(config, "token_in_query"), user_agent = rawget(config, "user_agent"),
    ca_file = rawget(config, "ca_file"), proxy = rawget(config, "proxy"),
    max_response_bytes = rawget(config, "max_response_bytes"),
    call_timeout = rawget(config, "call_timeout"), max_requests = rawget(config, "max_requests"),
    rn = type(r) == "table" and nkeys(r) or nil,
    attempts = type(r) == "table" and rawget(r, "attempts") or nil,
    base_delay = type(r) == "table" and rawget(r, "base_delay") or nil,
    max_delay = type(r) == "table" and rawget(r, "max_delay") or nil,
  }
end

local function unchanged(config, was)
  if nkeys(config) ~= was.n
     or rawget(config, "token") ~= was.token or rawget(config, "base_url") ~= was.base_url
     or rawget(config, "dev") ~= was.dev or rawget(config, "timeout") ~= was.timeout
     or rawget(config, "connect_timeout") ~= was.connect_timeout
     or rawget(config, "token_in_query") ~= was.token_in_query
     or rawget(config, "user_agent") ~= was.user_agent or rawget(config, "ca_file") ~= was.ca_file
     or rawget(config, "proxy") ~= was.proxy or rawget(config, "max_response_bytes") ~= was.max_response_bytes
     or rawget(config, "call_timeout") ~= was.call_timeout or rawget(config, "max_requests") ~= was.max_requests then
    return false
  end
  local r = rawget(config, "retry")
  if r ~= was.retry then return false end
  if type(r) ~= "table" then return true end
  return nkeys(r) == was.rn and rawget(r, "attempts") == was.attempts
    and rawget(r, "base_delay") == was.base_delay and rawget(r, "max_delay") == was.max_delay
end

-- The client for `config` (raises a config error as an argument error of
-- fname's argument #argn at level).
local function client_for(config, fname, argn, level)
  local key
  if config == nil then
    key = ""
  elseif type(config) ~= "table" then
    error(argerror(argn, fname, "config must be a table or nil, got " .. type(config)), level + 1)
  elseif getmetatable(config) == nil then
    local was = by_table[config]
    if was and unchanged(config, was) then return was.client end
    key = flat_text(config, CONFIG_KEYS, true)
  end
  local c = key and clients[key]
  if c then
    if key ~= "" then remember(config, c) end
    return c
  end
  local ok, made = pcall(require("qstash.safe").new, config)
  if not ok then
    local msg = strip_position(made)
    local inner = msg:match("^bad argument #1 to 'new' %((.*)%)$")
    error(inner and argerror(argn, fname, inner) or msg, level + 1)
  end
  if key then
    if nclients >= MAX_CLIENTS then clients, nclients = {}, 0 end
    clients[key] = made
    nclients = nclients + 1
    if key ~= "" then remember(config, made) end
  end
  return made
end

---------------------------------------------------------------- API

-- client:fname(a, b, c, d) in this phase's way; `argn` is config's position.
-- Levels: 1 = this function, 2 = the API function, 3 = its caller.
local function call(fname, argn, config, a, b, c, d)
  local mode = driver.mode(fname, 3)
  local client = client_for(config, fname, argn, 3)
  if mode == "cosocket" then
    local res, err = driver.call(client, fname, 3, a, b, c, d)
    return res, err
  end
  local ok, res, err = pcall(client[fname], client, a, b, c, d)
  if not ok then raise_direct(res, 3) end
  return res, err
end

-- The calls that are one request loop each: name, and how many arguments
-- come before `config` (its position, less one, for argument errors).
--   qr.dlq_retry(id, opts, config)           -> res, err   (opts.follow: res.delivery)
--   qr.dlq_list(params, config)              -> page, err
--   qr.dlq_get(id, config)                   -> msg, err
--   qr.dlq_delete(id, config)                -> true, err
--   qr.dlq_delete_many(ids_or_filter, config) -> { deleted = n }, err
--   qr.dlq_retry_many(ids_or_filter, opts, config) -> { responses = {...} }, err
--   qr.publish(destination, body, opts, config), qr.publish_json(destination, value, opts, config)
--   qr.batch(items, config), qr.batch_json(items, config) -> { slot per item }, err
--   qr.logs(filter, config)                  -> { logs = { entry, ... }, cursor = "..." or nil }, err
--   qr.message(id, config), qr.cancel(id, config), qr.cancel_many(ids_or_filter, config)
--   qr.follow(message_id, opts, config)      -> { messageId, state, done, dlqId, history }, err
--   qr.follow_many(message_ids, opts, config) -> { [messageId] = follow result }, err
--   qr.url_group_add_endpoints(name, endpoints, config), qr.url_group_remove_endpoints(name,
--     endpoints, config) -> true, err; qr.url_group_get(name, config) -> group, err;
--   qr.url_group_list(config) -> { group, ... }, err; qr.url_group_delete(name, config) -> true, err
--   qr.flow_control_get(key, config)         -> { flowControlKey, waitListSize, ... }, err
--   qr.flow_control_pause(key, config), qr.flow_control_resume(key, config),
--   qr.flow_control_reset_rate(key, config)  -> true, err
--   qr.flow_control_pin(key, settings, config), qr.flow_control_unpin(key, settings, config) -> true, err
--   qr.global_parallelism(config)            -> { parallelismMax, parallelismCount }, err
--   qr.enqueue(queue, destination, body, opts, config), qr.enqueue_json(queue, destination, value, opts, config)
--   qr.queue_upsert(name, settings, config)  -> true, err
--   qr.queue_get(name, config), qr.queue_list(config), qr.queue_delete(name, config),
--   qr.queue_pause(name, config), qr.queue_resume(name, config)
--   qr.signing_keys(config), qr.signing_keys_rotate(config) -> { current, next }, err
--     (a rotation is not sent again after an unknown outcome: err.ambiguous)
--   qr.schedule_create(destination, cron, body, opts, config),
--   qr.schedule_create_json(destination, cron, value, opts, config) -> { scheduleId }, err
--   qr.schedule_get(id, config), qr.schedule_list(config), qr.schedule_delete(id, config),
--   qr.schedule_pause(id, config), qr.schedule_resume(id, config)
-- A follow sleeps with ngx.sleep between two looks at the logs.
local CALLS = {
  { "dlq_retry", 2 }, { "dlq_list", 1 }, { "dlq_get", 1 }, { "dlq_delete", 1 },
  { "dlq_delete_many", 1 }, { "dlq_retry_many", 2 }, { "publish", 3 }, { "publish_json", 3 },
  { "logs", 1 }, { "message", 1 }, { "cancel", 1 }, { "cancel_many", 1 },
  { "follow", 2 }, { "follow_many", 2 },
  { "batch", 1 }, { "batch_json", 1 },
  { "url_group_add_endpoints", 2 }, { "url_group_remove_endpoints", 2 }, { "url_group_get", 1 },
  { "url_group_list", 0 }, { "url_group_delete", 1 },
  { "flow_control_get", 1 }, { "flow_control_pause", 1 }, { "flow_control_resume", 1 },
  { "flow_control_reset_rate", 1 }, { "flow_control_pin", 2 }, { "flow_control_unpin", 2 },
  { "global_parallelism", 0 },
  { "enqueue", 4 }, { "enqueue_json", 4 }, { "queue_upsert", 2 }, { "queue_get", 1 },
  { "queue_list", 0 }, { "queue_delete", 1 }, { "queue_pause", 1 }, { "queue_resume", 1 },
  { "signing_keys", 0 }, { "signing_keys_rotate", 0 },
  { "schedule_create", 4 }, { "schedule_create_json", 4 }, { "schedule_get", 1 }, { "schedule_list", 0 },
  { "schedule_delete", 1 }, { "schedule_pause", 1 }, { "schedule_resume", 1 },
}

for _, row in ipairs(CALLS) do
  local fname, n = row[1], row[2]
  M[fname] = function(a, b, c, d, e)
    local args = { a, b, c, d, e }
    local res, err = call(fname, n + 1, args[n + 1], n >= 1 and args[1] or nil, n >= 2 and args[2] or nil,
      n >= 3 and args[3] or nil, n >= 4 and args[4] or nil)
    return res, err
  end
end

--- out, err = qr.dlq_retry_each(ids, opts, batch, config)
-- -> { ok = n, failed = n, results = { [id] = res or err } }; batch:
-- { concurrency = 32, on_result = fn(id, res, err), on_progress = fn(done, total) }
function M.dlq_retry_each(ids, opts, batch, config)
  local mode = driver.mode("dlq_retry_each", 2)
  local client = client_for(config, "dlq_retry_each", 4, 2)
  if mode == "cosocket" then
    local res, err = driver.each(client, ids, opts, batch, 2)
    return res, err
  end
  local ok, res, err = pcall(client.dlq_retry_each, client, ids, opts, batch)
  if not ok then raise_direct(res, 2) end
  return res, err
end

-- The iterators over every item of every page (they raise on failure):
--   for msg in qr.dlq_messages(params, config) do ... end   (dlq_list pages)
--   for entry in qr.log_entries(filter, config) do ... end  (logs pages, newest first)
local ITERATORS = { { "dlq_messages", driver.messages }, { "log_entries", driver.log_entries } }

for _, row in ipairs(ITERATORS) do
  local fname, over_cosockets = row[1], row[2]
  M[fname] = function(params, config)
    local mode = driver.mode(fname, 2)
    local client = client_for(config, fname, 2, 2)
    if mode == "cosocket" then
      local iter = over_cosockets(client, params, 2)
      return iter
    end
    local ok, iter = pcall(client[fname], client, params)
    if not ok then raise_direct(iter, 2) end
    return iter
  end
end

---------------------------------------------------------------- receiving

local function need_ngx(fname)
  local ngx = ngx_api()
  if not ngx then error(MODULE .. "." .. fname .. " needs an OpenResty request handler", 3) end
  return ngx
end

--- body = qr.read_body(): the raw request body, whether nginx kept it in
-- memory or, past client_body_buffer_size, in a temp file ("" when none).
function M.read_body()
  local ngx = need_ngx("read_body")
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body then return body end
  local path = ngx.req.get_body_file()
  if not path then return "" end
  local f, err = io_open(path, "rb")
  if not f then error(MODULE .. ": cannot read the request body file: " .. tostring(err), 2) end
  body = f:read("*a")
  f:close()
  return body or ""
end

local VERIFY_KEYS = {
  url = true, current_signing_key = true, next_signing_key = true,
  clock_tolerance = true, dev = true, respond = true,
}

local os_getenv = os.getenv

-- Whether qstash.verify takes the emulator's public signing keys: `dev` when
-- given, else QSTASH_DEV (a value other than 1/true/0/false raises there).
local function dev_keys(opts)
  if opts.dev ~= nil then return opts.dev == true end
  local v = os_getenv("QSTASH_DEV")
  return v == "1" or v == "true"
end

-- Each worker has its own Lua VM, hence its own flag: one warning per worker.
local dev_warned = false
local DEV_WARNING = MODULE .. ": verify_request accepts signatures made with the local emulator's"
  .. " public signing keys (dev mode: dev = true or QSTASH_DEV); anyone can make those,"
  .. " never enable dev mode in production"

local function request_url(ngx)
  local var = ngx.var
  local scheme = var.scheme
  local host = var.http_host
  if not host or host == "" then
    host = var.host
    local port = var.server_port
    if port and not ((scheme == "http" and port == "80") or (scheme == "https" and port == "443")) then
      host = host .. ":" .. port
    end
  end
  return scheme .. "://" .. host .. var.request_uri
end

--- claims, err = qr.verify_request(opts)
-- Checks the Upstash-Signature header of the current request against its raw
-- body. opts: url (a string, or true for this request's URL), current_signing_key,
-- next_signing_key (default: the environment, which nginx passes only with `env`
-- directives; the Upstash-Region header selects a region's keys), clock_tolerance,
-- dev (the emulator's keys; default QSTASH_DEV), respond (default true: on
-- failure answer 401 and end the request with ngx.exit).
function M.verify_request(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error(argerror(1, "verify_request", "expected a table or nil, got " .. type(opts)), 2)
  end
  for k in pairs(opts) do
    if not VERIFY_KEYS[k] then
      error(argerror(1, "verify_request", "unknown option '" .. tostring(k) .. "'"), 2)
    end
  end
  local url = opts.url
  if url ~= nil and url ~= true and url ~= false and type(url) ~= "string" then
    error(argerror(1, "verify_request", "'url' must be a string or true"), 2)
  end
  local ngx = need_ngx("verify_request")

  local headers = ngx.req.get_headers(0)
  local sig = headers["upstash-signature"]
  local repeated = type(sig) == "table"
  if repeated or sig == "" then sig = nil end
  -- a repeated Upstash-Region names no region: the default keys apply
  local region = headers["upstash-region"]
  if type(region) ~= "string" then region = nil end
  if url == true then url = request_url(ngx) elseif url == false then url = nil end
  if not dev_warned and dev_keys(opts) then
    dev_warned = true
    ngx.log(ngx.WARN, DEV_WARNING)
  end
  -- without a signature, verify still checks the options and the keys (a
  -- receiver without keys is a bug whatever the request) and fails as missing
  local ok, claims, err = pcall(require("qstash.safe").verify, {
    signature = sig,
    body = sig and M.read_body() or "",
    url = url,
    region = region,
    current_signing_key = opts.current_signing_key,
    next_signing_key = opts.next_signing_key,
    clock_tolerance = opts.clock_tolerance,
    dev = opts.dev,
  })
  if not ok then
    if type(claims) == "table" then error(claims) end -- a config error: keeps its metatable
    local msg = strip_position(claims):gsub("^bad argument #1 to '[^']*'", "bad argument #1 to 'verify_request'")
    error(msg, 2)
  end
  if claims then return claims end
  if repeated then
    err.reason, err.message = "malformed", "more than one Upstash-Signature header"
  end
  if opts.respond ~= false then
    ngx.status = 401
    ngx.header["Content-Type"] = "text/plain"
    ngx.say("invalid Upstash-Signature (", err.reason or "malformed", ")")
    ngx.exit(401) -- does not return in rewrite, access and content handlers
  end
  return nil, err
end

return M
