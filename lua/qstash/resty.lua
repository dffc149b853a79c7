--- qstash.resty: the QStash client for OpenResty handlers.
--
--   local qr = require "qstash.resty"
--   local res, err = qr.dlq_retry(id, { retries = 1 }, { token = "...", thread_pool = "qstash" })
--
-- The C module blocks while libcurl talks to QStash. Inside a request handler
-- (rewrite, access, content, or a ngx.timer callback) every call runs on an
-- nginx thread pool through ngx.run_worker_thread, so the worker's event loop
-- keeps serving other requests. Elsewhere (init_by_lua*, init_worker_by_lua*,
-- plain Lua, a CLI) the call is made directly. Every function returns `res`,
-- or `nil, err` for a runtime failure, like qstash.safe; `err` is the module's
-- error object in both cases. Argument errors are raised.
--
-- Only nil, booleans, numbers, strings and tables of these (without
-- metatables) can be passed: the worker thread runs its own Lua VM.
--
-- The receiving side: qr.verify_request(opts) checks the Upstash-Signature of
-- the current request (see the README, "OpenResty").

local _G = _G
local require = require
local type = type
local pairs = pairs
local ipairs = ipairs
local next = next
local select = select
local error = error
local pcall = pcall
local tostring = tostring
local setmetatable = setmetatable
local getmetatable = getmetatable
local rawget = rawget
local string_format = string.format
local table_concat = table.concat
local table_sort = table.sort
local unpack = table.unpack or unpack -- luacheck: ignore 143
local io_open = io.open
local debug = debug

local M = {}

local MODULE = "qstash.resty"
local DEFAULT_POOL = "qstash"
-- Most clients one Lua VM keeps; past it the cache is emptied and refilled.
local MAX_CLIENTS = 32
-- Deepest nesting of an argument table (ngx_lua copies recursively).
local MAX_DEPTH = 100

-- Phases where ngx.run_worker_thread may run (it must yield the caller).
local THREAD_PHASES = {
  rewrite = true, server_rewrite = true, access = true, content = true, timer = true,
}
-- Phases without a request, where blocking does not stall request handling.
local DIRECT_PHASES = { init = true, init_worker = true, exit_worker = true }

---------------------------------------------------------------- helpers

local function ngx_api()
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.get_phase) == "function" then return ngx end
  return nil
end

-- Canonical text of a config table: same content, same text, whatever the
-- insertion order (the key of the client cache).
local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end
  if ta == "boolean" then return (not a) and b end
  return a < b
end

local function serialize(v, out)
  local t = type(v)
  if t == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table_sort(keys, key_less)
    out[#out + 1] = "{"
    for _, k in ipairs(keys) do
      serialize(k, out)
      out[#out + 1] = "="
      serialize(v[k], out)
      out[#out + 1] = ";"
    end
    out[#out + 1] = "}"
  elseif t == "string" then
    out[#out + 1] = string_format("%q", v)
  elseif t == "number" then
    out[#out + 1] = string_format("n%.17g", v)
  else
    out[#out + 1] = tostring(v)
  end
  return out
end

local function config_key(config)
  if config == nil then return "" end
  return table_concat(serialize(config, {}))
end

local function plain_copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = plain_copy(x) end
  return t
end

-- lua-cjson's null (a NULL light userdata: the same value in every Lua VM
-- of the process), or false when lua-cjson is not there.
local json_null
local function is_json_null(v)
  if json_null == nil then
    local ok, cjson = pcall(require, "cjson")
    json_null = ok and type(cjson) == "table" and cjson.null or false
  end
  return json_null ~= false and v == json_null
end

-- Returns a description of the first value that cannot cross to a worker
-- thread, or nil. `path` names the value for the message.
local function not_plain(v, path, depth, open)
  local t = type(v)
  if t == "nil" or t == "boolean" or t == "number" or t == "string" then return nil end
  if t == "userdata" and is_json_null(v) then return nil end
  if t ~= "table" then return path .. " is a " .. t end
  if getmetatable(v) ~= nil then return path .. " is a table with a metatable" end
  if open[v] then return path .. " is a table that contains itself" end
  if depth >= MAX_DEPTH then return path .. " nests deeper than " .. MAX_DEPTH .. " tables" end
  open[v] = true
  for k, x in pairs(v) do
    local kt = type(k)
    if kt ~= "string" and kt ~= "number" and kt ~= "boolean" then
      open[v] = nil
      return path .. " has a " .. kt .. " key"
    end
    local name = kt == "string" and k:match("^[%a_][%w_]*$") and (path .. "." .. k)
      or (path .. "[" .. tostring(k) .. "]")
    local bad = not_plain(x, name, depth + 1, open)
    if bad then
      open[v] = nil
      return bad
    end
  end
  open[v] = nil
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

-- The module's error metatable, from the registry (set by require "qstash").
local error_mt
local function get_error_mt()
  if error_mt then return error_mt end
  require "qstash"
  local reg = type(debug) == "table" and type(debug.getregistry) == "function"
    and debug.getregistry() or nil
  local mt = type(reg) == "table" and reg["qstash.error"] or nil
  if type(mt) ~= "table" then
    -- without the debug library: take it from an error made locally
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

---------------------------------------------------------------- clients

-- One client per distinct config in this Lua VM (the handler's VM for direct
-- calls, each worker-thread VM for calls made on the thread pool).
local clients = {}
local nclients = 0

local function client_for(config)
  local key = config_key(config)
  local c = clients[key]
  if c then return c end
  local err
  c, err = require("qstash.safe").new(config)
  if not c then return nil, err end
  if nclients >= MAX_CLIENTS then
    for _, old in pairs(clients) do old:close() end
    clients, nclients = {}, 0
  end
  clients[key] = c
  nclients = nclients + 1
  return c
end

-- Calls client:fname(...) in this VM. Returns the tags used across the
-- thread boundary: "ok", res, error_ids | "err", err | "raise", message.
-- With `cross`, error objects become plain tables (the thread boundary keeps
-- no metatables; finish() gives them back).
local function run_here(cross, fname, config, n, ...)
  local args = { ... }
  local ok, res, err = pcall(function()
    local c, cerr = client_for(config)
    if not c then return nil, cerr end
    local r, e = c[fname](c, unpack(args, 1, n))
    return r, e
  end)
  local is_error = require("qstash.safe").is_error
  if not ok then
    -- a raised error object would be a runtime failure; anything else is a bug
    if is_error(res) then return "err", cross and plain_copy(res) or res end
    return "raise", strip_position(res)
  end
  if res == nil and err ~= nil then return "err", cross and plain_copy(err) or err end
  if not cross then return "ok", res end
  -- dlq_retry_each: results[id] holds a result or an error object
  local error_ids
  if type(res) == "table" and type(res.results) == "table" then
    for id, v in pairs(res.results) do
      if is_error(v) then
        error_ids = error_ids or {}
        error_ids[#error_ids + 1] = id
      end
    end
  end
  return "ok", plain_copy(res), error_ids
end

--- Runs in the worker thread's Lua VM (ngx.run_worker_thread target). Not
-- part of the public API.
function M._run(fname, config, n, ...)
  return run_here(true, fname, config, n, ...)
end

-- Turns the tagged outcome back into `res` / `nil, err`, or raises at
-- `level` (counted from finish).
local function finish(level, tag, a, b)
  if tag == "ok" then
    if b then
      for _, id in ipairs(b) do make_error(a.results[id]) end
    end
    return a
  elseif tag == "err" then
    return nil, make_error(a)
  end
  error(a, level + 1)
end

-- `config` without thread_pool (or nil), and the pool name.
local function split_config(config, fname, argn)
  if config == nil then return nil, DEFAULT_POOL end
  if type(config) ~= "table" then
    error(argerror(argn, fname, "config must be a table or nil, got " .. type(config)), 4)
  end
  local pool = config.thread_pool
  if pool == nil then return config, DEFAULT_POOL end
  if type(pool) ~= "string" or pool == "" then
    error(argerror(argn, fname, "'thread_pool' must be a non-empty string"), 4)
  end
  local c = {}
  for k, v in pairs(config) do
    if k ~= "thread_pool" then c[k] = v end
  end
  if next(c) == nil then c = nil end
  return c, pool
end

-- The arguments of each call that precede config.
local ARG_NAMES = {
  dlq_retry = { "id", "opts" },
  dlq_list = { "params" },
  dlq_get = { "id" },
  dlq_delete = { "id" },
  dlq_delete_many = { "ids_or_filter" },
  dlq_retry_many = { "ids_or_filter", "opts" },
  publish = { "destination", "body", "opts" },
  publish_json = { "destination", "value", "opts" },
  dlq_retry_each = { "ids", "opts", "batch" },
}

-- fname: the client method to call; its arguments, config last.
local function call(fname, ...)
  local names = ARG_NAMES[fname]
  local nargs = #names
  local config = select(nargs + 1, ...)
  local conf, pool = split_config(config, fname, nargs + 1)
  for i = 1, nargs + 1 do
    local bad = not_plain((select(i, ...)), names[i] or "config", 0, {})
    if bad then
      error(argerror(i, fname, MODULE .. ": " .. bad .. "; only nil, booleans, numbers, "
        .. "strings and tables of these can be passed (calls may run in a worker thread's Lua VM)"), 3)
    end
  end

  local ngx = ngx_api()
  local phase = ngx and ngx.get_phase()
  if not ngx or DIRECT_PHASES[phase] then
    -- finish=1, call=2, the API function=3, its caller=4
    local res, err = finish(3, run_here(false, fname, conf, nargs, ...))
    return res, err
  end
  if not THREAD_PHASES[phase] then
    error(MODULE .. ": " .. fname .. " cannot run in the " .. tostring(phase) .. " phase: "
      .. "ngx.run_worker_thread is not available there and a direct call would block the "
      .. "nginx worker; run it from ngx.timer.at(0, ...) or a rewrite/access/content handler", 3)
  end
  if type(ngx.run_worker_thread) ~= "function" then
    error(MODULE .. ": ngx.run_worker_thread is missing (it needs lua-nginx-module >= 0.10.21 "
      .. "on Linux and nginx built with --with-threads)", 3)
  end
  -- the arguments before config (config crosses as `conf`, without thread_pool)
  local args = { ... }
  local ok, tag, a, b = ngx.run_worker_thread(pool, MODULE, "_run", fname, conf, nargs,
    unpack(args, 1, nargs))
  if not ok then
    local hint = ""
    if type(tag) == "string" and tag:find("not found", 1, true) then
      hint = " (declare it in the main context of nginx.conf: thread_pool " .. pool .. " threads=4;)"
    end
    error(MODULE .. ": ngx.run_worker_thread on thread pool '" .. pool .. "' failed: "
      .. tostring(tag) .. hint, 3)
  end
  local res, err = finish(3, tag, a, b)
  return res, err
end

---------------------------------------------------------------- API

-- qr.dlq_retry(id, opts, config), qr.dlq_list(params, config), qr.dlq_get(id, config),
-- qr.dlq_delete(id, config), qr.dlq_delete_many(ids_or_filter, config),
-- qr.dlq_retry_many(ids_or_filter, opts, config), qr.publish(destination, body, opts, config),
-- qr.publish_json(destination, value, opts, config): the client method's arguments (ARG_NAMES),
-- then config; each returns res, or nil, err.
for fname in pairs(ARG_NAMES) do
  if fname ~= "dlq_retry_each" then
    M[fname] = function(...)
      -- not a tail call: the error levels in call() count this frame
      local res, err = call(fname, ...)
      return res, err
    end
  end
end

--- res, err = qr.dlq_retry_each(ids, opts, batch, config)
-- batch takes `concurrency` only: on_result / on_progress are functions,
-- which cannot reach the worker thread; read res.results instead.
function M.dlq_retry_each(ids, opts, batch, config)
  if type(batch) == "table" then
    for _, name in ipairs{ "on_result", "on_progress" } do
      if batch[name] ~= nil then
        error(argerror(3, "dlq_retry_each", MODULE .. ": batch option '" .. name
          .. "' is not supported (functions cannot reach the worker thread); read res.results instead"), 2)
      end
    end
  end
  local res, err = call("dlq_retry_each", ids, opts, batch, config)
  return res, err
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
