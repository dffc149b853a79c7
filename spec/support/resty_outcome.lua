--- Runs one API call described as data and turns what happened into plain,
-- JSON-able data, the same way on both sides of the OpenResty parity spec:
-- inside nginx through qstash.resty (cosockets), and in the spec process
-- through the C module's own libcurl path.
--
--   local O = require "spec.support.resty_outcome"
--   local doc = { fname = "dlq_retry", n = 2, args = { "1-0", { retries = 1 } },
--                 batch = { concurrency = 1, record = true, raise_after = 2 } }
--   local out = O.run(function(fname, ...) return client[fname](client, ...) end, doc)
--   --> { res = ... } | { err = {...} } | { raised = "..." } | { raised_error = {...} },
--   --  plus msgs (dlq_messages) and log (dlq_retry_each's callbacks)
--
-- `args` holds cjson.null where an argument is nil (a JSON array has no
-- holes); dlq_retry_each's batch callbacks are made here from `batch`.
local cjson = require "cjson"

local unpack = table.unpack or unpack -- luacheck: ignore 143

local M = {}

-- The arguments of each function before config.
M.NARGS = {
  dlq_retry = 2, dlq_list = 1, dlq_get = 1, dlq_delete = 1, dlq_delete_many = 1,
  dlq_retry_many = 2, publish = 3, publish_json = 3, dlq_retry_each = 3, dlq_messages = 1,
  batch = 1, batch_json = 1,
}

local function is_error(v)
  return require("qstash").is_error(v)
end

-- An error object as data: its fields, whether it has the module's
-- metatable, and its text.
local function plain_err(e)
  local t = { is_error = is_error(e), str = tostring(e) }
  for k, v in pairs(e) do t[k] = v end
  return t
end
M.plain_err = plain_err

-- A raised string without the position Lua put in front of it.
local function unpositioned(msg)
  return (tostring(msg):gsub("^[^\n]-:%d+: ", "", 1))
end

local function result_data(fname, res)
  if fname == "dlq_retry_each" and type(res) == "table" and type(res.results) == "table" then
    local results = {}
    for id, r in pairs(res.results) do
      results[id] = is_error(r) and { error = plain_err(r) } or { result = r }
    end
    return { ok = res.ok, failed = res.failed, results = results }
  end
  return res
end

local function batch_of(doc, log)
  local spec = doc.batch
  local b = {}
  for k, v in pairs(spec) do
    if k ~= "record" and k ~= "raise_after" then b[k] = v end
  end
  if spec.record then
    local results = 0
    b.on_result = function(id, res, err)
      log[#log + 1] = { "result", id, res ~= nil and "ok" or err.kind }
      results = results + 1
      if spec.raise_after and results >= spec.raise_after then error("boom", 0) end
    end
    b.on_progress = function(done, total) log[#log + 1] = { "progress", done, total } end
  end
  return b
end

--- out = O.run(call, doc): call(fname, args...) runs the function.
function M.run(call, doc)
  local args = {}
  for i = 1, doc.n do
    local v = doc.args[i]
    if v == cjson.null then v = nil end
    args[i] = v
  end
  local out = {}
  local log = {}
  if doc.fname == "dlq_retry_each" and doc.batch ~= nil and doc.batch ~= cjson.null then
    args[3] = batch_of(doc, log)
    out.log = log
  end
  if doc.fname == "dlq_messages" then
    out.msgs = {}
    local ok, e = pcall(function()
      for msg in call("dlq_messages", unpack(args, 1, doc.n)) do out.msgs[#out.msgs + 1] = msg end
    end)
    if not ok then
      if type(e) == "table" then out.raised_error = plain_err(e) else out.raised = unpositioned(e) end
    end
    return out
  end
  local ok, res, err = pcall(call, doc.fname, unpack(args, 1, doc.n))
  if not ok then
    if type(res) == "table" then out.raised_error = plain_err(res) else out.raised = unpositioned(res) end
  elseif res == nil then
    out.err = plain_err(err)
  else
    out.res = result_data(doc.fname, res)
  end
  return out
end

-- Kinds whose message is the transport's own text (libcurl's error buffer,
-- or the cosocket client's), which differs between the two paths.
local TRANSPORT_KINDS = { timeout = true, network = true }

local function comparable_err(e)
  if type(e) ~= "table" then return e end
  local c = {}
  for k, v in pairs(e) do c[k] = v end
  c.curl_code = nil
  if TRANSPORT_KINDS[c.kind] then
    c.message, c.str = nil, nil
  end
  return c
end

--- The outcome with what may differ between transports taken out: the
-- message of a timeout or network failure, and curl_code. Round-tripped
-- through JSON, so both sides compare as the same kinds of values.
function M.comparable(out)
  out = cjson.decode(cjson.encode(out))
  if out.err then out.err = comparable_err(out.err) end
  if out.raised_error then out.raised_error = comparable_err(out.raised_error) end
  if type(out.res) == "table" and type(out.res.results) == "table" then
    for _, r in pairs(out.res.results) do
      if r.error then r.error = comparable_err(r.error) end
    end
  end
  return out
end

return M
