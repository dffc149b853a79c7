-- qstash.cli.report: the outcome of each DLQ id of a retry or delete: counted
-- always, and with --report FILE appended to FILE as JSON Lines as results
-- come in, then a summary line:
--   {"type":"retried","dlqId":"...","messageId":"msg_...","deduplicated":false}
--   with retry --follow also "delivery":"DELIVERED" (FAILED, CANCELLED, PENDING
--   when it had not ended, UNKNOWN when it could not be followed) and, when
--   it failed again, "newDlqId":"..."
--   {"type":"deleted","dlqId":"..."}
--   {"type":"ambiguous","dlqId":"...","error":{"kind":"interrupted",...,"ambiguous":true}}: the
--   command was interrupted (Ctrl-C) while this id's request was in flight;
--   it may have taken effect
--   {"type":"failed","dlqId":"...","error":{"kind":"...","status":404,"message":"...","ambiguous":false}}
--   {"type":"summary","command":"retry","selected":3,"retried":2,"failed":1,"not_attempted":0,...}
-- pause and resume write a line per source instead (R:record, cli/pause.lua).
-- The file is appended to, never truncated: a second run after an
-- interruption adds its own lines and summary.

local jsonl = require "qstash.cli.jsonl"
local context = require "qstash.cli.context"
local C = require "qstash.cli.convert"

local M = {}

local R = {}
R.__index = R

-- path nil: counts only. Returns the report, or nil and a message.
function M.open(path, command, now_ms)
  local r = setmetatable({ command = command, pending = {}, counts = {}, seen = {}, now_ms = now_ms,
    started = now_ms() }, R)
  if path then
    local w, err = jsonl.open(path)
    if not w then return nil, err end
    r.file = w
  end
  return r
end

-- The summary's words for n ids of unknown outcome ("" when none).
function R.unknown_text(n)
  if n == 0 then return "" end
  return ("%d of unknown outcome (may have taken effect: see the DLQ), "):format(n)
end

function R:count(what)
  return self.counts[what] or 0
end

-- Whether id has a result line already.
function R:has(id)
  return self.seen[id] == true
end

local function add(self, line)
  self.counts[line.type] = self:count(line.type) + 1
  self.seen[line.dlqId] = true
  if self.file then self.pending[#self.pending + 1] = line end
end

-- Where a followed message got: DELIVERED, FAILED, CANCELLED, PENDING (not
-- ended when the follow stopped) or UNKNOWN (no message id, or the follow
-- could not run); and its count key.
local OUTCOMES = { DELIVERED = "delivered", FAILED = "failed_again", CANCELLED = "cancelled",
  PENDING = "pending", UNKNOWN = "unknown" }
M.OUTCOMES = { "delivered", "failed_again", "cancelled", "pending", "unknown" }

function M.outcome(res)
  local d = type(res) == "table" and res.delivery or nil
  if type(d) ~= "table" then return "UNKNOWN" end
  if d.done and OUTCOMES[d.state] then return d.state end
  return "PENDING"
end

-- follow: the command follows the new messages (res.delivery).
function R:retried(id, res, follow)
  local line = { type = "retried", dlqId = id, messageId = res and res.messageId,
    deduplicated = res ~= nil and res.deduplicated == true }
  if follow then
    local o = M.outcome(res)
    line.delivery = o
    if o == "FAILED" then line.newDlqId = res.delivery.dlqId end
    self.counts[OUTCOMES[o]] = self:count(OUTCOMES[o]) + 1
  end
  add(self, line)
end

function R:deleted(id)
  add(self, { type = "deleted", dlqId = id })
end

-- A line about something other than a DLQ id (pause and resume: a source),
-- counted by its type.
function R:record(line)
  self.counts[line.type] = self:count(line.type) + 1
  if self.file then self.pending[#self.pending + 1] = line end
end

-- An id whose request was cut short (Ctrl-C) after it was sent, or that
-- left the DLQ without a result: it may or may not have been acted on.
-- Never counted as failed.
function R:ambiguous(id, err)
  local e = context.describe(err)
  e.ambiguous = true
  add(self, { type = "ambiguous", dlqId = id, error = e })
end

-- Records each id of ids without a line yet as the outcome of stop, the error
-- that ended the command: ambiguous when stop is, none (not attempted) when
-- it was an interrupt before anything was sent, else failed.
function R:stopped(ids, stop)
  if type(stop) ~= "table" then return end
  for _, id in ipairs(ids) do
    if not self:has(id) then
      if stop.ambiguous == true and context.is_failure(stop) then
        self:ambiguous(id, stop)
      elseif stop.kind ~= "interrupted" then
        self:failed(id, stop)
      end
    end
  end
  self:flush()
end

-- ambiguous: also when an earlier request for this id may have acted.
function R:failed(id, err, ambiguous)
  local e = context.describe(err)
  if ambiguous then e.ambiguous = true end
  add(self, { type = "failed", dlqId = id, error = e })
end

-- Writes the lines so far. A file that could be opened but not written (a
-- full disk) does not stop the command half-way: the work goes on, the
-- first error is kept (self.lost) and the command's exit status is not 0
-- (summary).
function R:flush()
  if not self.file or #self.pending == 0 then return end
  local ok, err = self.file:write(self.pending)
  self.pending = {}
  if not ok then self.lost = self.lost or err end
end

-- Writes the summary line and closes the file. Returns the exit status:
-- fields.exit_status, made 1 when it was 0 and a line of the report was
-- lost; and the error that lost it, or nil.
function R:summary(fields)
  self:flush()
  if not self.file then return fields.exit_status end
  local line = { type = "summary", command = self.command, started = C.iso_utc(self.started),
    finished = C.iso_utc(self.now_ms()) }
  for k, v in pairs(fields) do line[k] = v end
  if self.lost and line.exit_status == context.EXIT_OK then line.exit_status = context.EXIT_FAIL end
  local ok, err = self.file:write({ line })
  self.file:close()
  if not ok then self.lost = self.lost or err end
  local status = fields.exit_status
  if self.lost and status == context.EXIT_OK then status = context.EXIT_FAIL end
  return status, self.lost
end

return M
