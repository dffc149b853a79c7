-- qstash.cli.context: what a command runs with: the client, the streams, the
-- progress line, failures and their exit codes, and 429 pauses.
--
-- Failures come in three shapes, told apart by type, never by message text:
--   * an error table of the module (qstash.is_error): a request failed, exit 1;
--   * a failure of the command line itself (Context.failure: a repeated cursor,
--     an unwritable report...): exit 1;
--   * a plain string raised by the module: an argument error, i.e. something on
--     the command line it refused before sending anything: exit 2.
-- One exception: the interpreter reports Ctrl-C (SIGINT) only as the error
-- "interrupted!" (lua.c), raised wherever Lua runs next, e.g. while a
-- response is decoded; that message is the only sign of it. A call that may
-- have changed state (ACTS) and ends with an error that is neither the
-- module's nor ours was cut short from outside (an interrupt, no memory):
-- its outcome is unknown, and its ids are ambiguous, never failed.

local M = {}

M.EXIT_OK, M.EXIT_FAIL, M.EXIT_USAGE = 0, 1, 2
M.EXIT_INTERRUPTED = 130 -- 128 + SIGINT, as a shell reports a process Ctrl-C ended

-- The calls that change state: everything they were given may have been acted on.
M.ACTS = { dlq_delete_many = true, dlq_retry_many = true, dlq_retry_each = true }
M.PROG = "qstash-dlq"

-- A 429 whose wait is longer than this is not waited out: the command stops
-- (a daily limit resets in hours) and says when to run it again.
M.MAX_PAUSE = 60
-- Consecutive 429s on one request before the command gives up.
M.MAX_PAUSES = 30

local Failure = {}
Failure.__index = Failure
Failure.__tostring = function(f) return M.PROG .. ": " .. f.kind .. ": " .. f.message end

-- A failure found by the command line itself; reported like a module error.
function M.failure(kind, message, extra)
  local f = setmetatable({ kind = kind, message = message, ambiguous = false }, Failure)
  for k, v in pairs(extra or {}) do f[k] = v end
  return f
end

local Ctx = {}
Ctx.__index = Ctx

local function default_sleep(seconds)
  os.execute(("sleep %.3f"):format(seconds))
end

-- env: stdout, stderr, is_tty, sleep (function(seconds)), now_ms (function).
function M.new(env)
  return setmetatable({
    stdout = env.stdout or io.stdout,
    stderr = env.stderr or io.stderr,
    is_tty = env.is_tty,
    sleep = env.sleep or default_sleep,
    now_ms = env.now_ms or function() return os.time() * 1000 end,
    state = nil,       -- the progress line: { verb, done, total, detail, note }
    shown = false,
    pauses = 0, paused = 0,
  }, Ctx)
end

---------------------------------------------------------------- streams

function Ctx:out(...)
  self:clear_progress()  -- stdout may be the same terminal
  self.stdout:write(...)
end

-- A line on stderr. Text from servers (error messages, ids) reaches the
-- terminal without control bytes but newlines and tabs.
function Ctx:err(...)
  self:clear_progress()
  local parts = { M.PROG, ": " }
  for i = 1, select("#", ...) do
    parts[#parts + 1] = (tostring((select(i, ...))):gsub("[%z\1-\8\11-\31\127]", "?"))
  end
  parts[#parts + 1] = "\n"
  self.stderr:write(table.concat(parts))
  self:draw()
end

function Ctx:summary(text)
  self:clear_progress()
  self.state = nil
  self.stderr:write(text, "\n")
end

function Ctx:tty()
  if self.is_tty == nil then
    local a, _, c = os.execute("test -t 2")
    if type(a) == "number" then self.is_tty = a == 0 else self.is_tty = a == true and (c == nil or c == 0) end
  end
  return self.is_tty
end

---------------------------------------------------------------- progress line

local WIDTH = 30

function Ctx:draw()
  local s = self.state
  if not s or not self:tty() then return end
  local line
  if s.total then
    local filled = s.total > 0 and math.floor(WIDTH * s.done / s.total) or WIDTH
    line = ("%s [%s%s] %d/%d"):format(s.verb, ("#"):rep(filled), ("."):rep(WIDTH - filled), s.done, s.total)
  else
    line = ("%s: %d message%s"):format(s.verb, s.done, s.done == 1 and "" or "s")
  end
  if s.detail then line = line .. "  " .. s.detail end
  if s.note then line = line .. "  " .. s.note end
  self.stderr:write("\r", line, "\27[K")
  self.shown = true
end

-- total nil: a count without a bar ("scanning: 300 messages"). detail: text
-- after the bar ("delivered 3, failed again 1, pending 0"), or nil.
function Ctx:progress(verb, done, total, detail)
  local s = self.state
  if s and s.verb == verb and s.done == done and s.total == total and s.detail == detail and not s.note then
    return
  end
  self.state = { verb = verb, done = done, total = total, detail = detail }
  self:draw()
end

function Ctx:clear_progress()
  if self.shown then
    self.stderr:write("\r\27[K")
    self.shown = false
  end
end

---------------------------------------------------------------- failures

function M.is_failure(v)
  return getmetatable(v) == Failure
end

local function is_interrupt(err)
  return type(err) == "string" and err:find("interrupted!$") ~= nil
end

-- err, raised by a call of `method` (nil: not a call), as the failure it is:
-- a Failure of kind "interrupted" (Ctrl-C) or "unknown" (anything else from
-- outside the module during a call that acts), ambiguous when the call
-- acts; any other err unchanged.
function M.classify(err, method)
  if M.is_failure(err) or (type(err) == "table" and err.kind ~= nil) then return err end
  local acts = method ~= nil and M.ACTS[method] == true
  if is_interrupt(err) then
    return M.failure("interrupted", "interrupted (Ctrl-C)" .. (acts and
      ": the requests in flight may have taken effect" or ""), { ambiguous = acts, exit = M.EXIT_INTERRUPTED })
  end
  if acts then
    return M.failure("unknown", tostring(err) .. ": the requests in flight may have taken effect",
      { ambiguous = true })
  end
  return err
end

-- The exit status for something a call raised.
function Ctx:exit_for(err)
  if M.is_failure(err) and err.exit then return err.exit end
  if is_interrupt(err) then return M.EXIT_INTERRUPTED end
  if type(err) == "string" then return M.EXIT_USAGE end
  return M.EXIT_FAIL
end

-- The (kind, status, message, ambiguous) of a failure, for reports.
function M.describe(err)
  if type(err) == "table" then
    return { kind = err.kind, status = err.status, message = err.message and tostring(err.message) or nil,
      ambiguous = err.ambiguous == true }
  end
  return { kind = "usage", message = tostring(err), ambiguous = false }
end

-- Reports err (prefixed with context, e.g. a DLQ id) and returns its exit status.
function Ctx:fail(err, context)
  self:err(context and (context .. ": ") or "", tostring(err))
  return self:exit_for(err)
end

---------------------------------------------------------------- calls and 429s

function Ctx:is_rate_limited(err)
  return self.qstash.is_error(err) and err.kind == "rate_limited"
end

-- After a 429: waits it out with a note on the progress line and returns true,
-- or returns false when the wait is unknown-long or too long (the caller fails).
-- A 429 is never ambiguous: the request did nothing and may be sent again.
-- The client sleeps through short waits itself (max_delay, see cli.lua).
function Ctx:pause(err, streak)
  if not self:is_rate_limited(err) or streak >= M.MAX_PAUSES then return false end
  local wait = tonumber(err.retry_after) or 1
  if wait > M.MAX_PAUSE then return false end
  if wait < 0.2 then wait = 0.2 end
  local scope = type(err.ratelimit) == "table" and err.ratelimit.scope
  local note = ("rate limited%s: waiting %g s"):format(scope and (" (" .. tostring(scope) .. " limit)") or "", wait)
  if self.state and self:tty() then
    self.state.note = note
    self:draw()
  else
    self:err(note)
  end
  self.sleep(wait)
  self.pauses, self.paused = self.pauses + 1, self.paused + wait
  if self.state then
    self.state.note = nil
    self:draw()
  end
  return true
end

-- fn made safe to call from the module's callbacks: an error it raises comes
-- through the module unchanged (a table), ending the command with exit 1.
-- An interrupt inside fn stops the call it runs in as one (ambiguous: the
-- callback runs while requests are in flight).
function M.guard(fn)
  return function(...)
    local ok, err = pcall(fn, ...)
    if ok then return end
    if M.is_failure(err) then error(err, 0) end
    if is_interrupt(err) then error(M.classify(err, "dlq_retry_each"), 0) end
    error(M.failure("internal", tostring(err), { fatal = true }), 0)
  end
end

-- client[method](client, ...) under pcall, waiting out 429s: ok, result or
-- err (classified: an interrupt comes back as a Failure, see classify).
function Ctx:call(method, ...)
  local client, streak = self.client, 0
  while true do
    local ok, res = pcall(client[method], client, ...)
    if not ok and M.is_failure(res) and res.fatal then error(res, 0) end -- from a callback of ours
    if not ok then res = M.classify(res, method) end
    if ok or not self:pause(res, streak) then return ok, res end
    streak = streak + 1
  end
end

return M
