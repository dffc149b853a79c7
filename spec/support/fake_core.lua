--- A stand-in for the C core's caller-driven transport (`client:prepare`,
-- `call:step`), written to the contract of the core being built, so that
-- qstash.resty.driver can be driven in a real nginx before the core has it.
-- It decides like the core in outline only (retry network failures, 5xx and
-- 429 up to `attempts`, 429 waits from Retry-After, 404 -> not_found), and
-- checks the order of steps: out of turn raises.
local cjson = require "cjson"

local M = {}

local Client = {}
Client.__index = Client

--- client = fake.new{ base_url, token, attempts = 3, backoff = 0.01 }
function M.new(conf)
  return setmetatable({ base = conf.base_url, token = conf.token or "t",
                        attempts = conf.attempts or 3, backoff = conf.backoff or 0.01 }, Client)
end

local Call = {}
Call.__index = Call

function Client:prepare(fname, a, b)
  local method, path
  if fname == "dlq_retry" then
    if type(a) ~= "string" or a == "" then
      error("bad argument #1 to 'dlq_retry' (invalid DLQ id)", 2)
    end
    if b ~= nil and type(b) ~= "table" then
      error("bad argument #2 to 'dlq_retry' (opts must be a table or nil)", 2)
    end
    method, path = "POST", "/v2/dlq/retry/" .. a
  elseif fname == "dlq_list" then
    if a ~= nil and type(a) ~= "table" then error("bad argument #1 to 'dlq_list' (params)", 2) end
    method, path = "GET", "/v2/dlq"
    if a and a.cursor then path = path .. "?cursor=" .. a.cursor end
  else
    error("fake core: no " .. tostring(fname), 2)
  end
  return setmetatable({ c = self, method = method, path = path, tries = 0, turn = "start" }, Call)
end

local function header(headers, name)
  for k, v in pairs(headers or {}) do
    if k:lower() == name then return type(v) == "table" and v[#v] or v end
  end
end

function Call:fail(fields)
  self.turn = "over"
  fields.method, fields.path, fields.attempts = self.method, self.path, self.tries
  return "fail", require("qstash.resty.driver").make_error(fields)
end

function Call:retry(wait, why, fields)
  if self.tries >= self.c.attempts then return self:fail(fields) end
  self.turn = "wait"
  return "wait", wait, why
end

function Call:step(r)
  if self.turn == "start" or self.turn == "wait" then
    assert(r == nil, "fake core: step called with a response out of turn")
    self.tries = self.tries + 1
    self.turn = "sent"
    return "send", { method = self.method, url = self.c.base .. self.path,
      headers = { { "Authorization", "Bearer " .. self.c.token } }, body = "",
      timeout = 5, connect_timeout = 2, max_response_bytes = 65536 }
  end
  assert(self.turn == "sent", "fake core: step after the end")
  assert(type(r) == "table", "fake core: step without the response")
  if r.failure then
    return self:retry(self.c.backoff, "backoff", { kind = r.failure, message = r.message })
  end
  local s = r.status
  if s == 429 then
    return self:retry(tonumber(header(r.headers, "retry-after")) or self.c.backoff, "rate_limited",
      { kind = "rate_limited", status = 429 })
  elseif s >= 500 then
    return self:retry(self.c.backoff, "backoff", { kind = "server", status = s })
  elseif s == 404 then
    return self:fail{ kind = "not_found", status = 404, message = "message not found" }
  elseif s >= 200 and s < 300 then
    self.turn = "over"
    return "done", cjson.decode(r.body)
  end
  return self:fail{ kind = "http", status = s }
end

return M
