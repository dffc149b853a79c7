-- qstash.cli.retry: deliver DLQ messages again.
--
-- Given ids go out concurrently (dlq_retry_each), each with its own result.
-- --all and filters take a snapshot of the matching ids first and retry them
-- 100 per request (dlq_retry_many), whose answer lists the new message ids in
-- the order of the ids sent. A batch answered 404 (some ids left the DLQ
-- meanwhile) is retried id by id; any other failure stops the command, and
-- running it again carries on: retried entries have left the DLQ.
--
-- --follow waits for each new message to end: given ids through
-- dlq_retry_each's own follow (each id's result comes when its message
-- ends), a snapshot's batches through one follow_many per batch of 100 after
-- its dlq_retry_many. Each id then says delivered, failed again (with the new
-- DLQ id), cancelled or still pending; the command exits 1 unless every
-- followed message was delivered (the operator asked whether it got there).

local context = require "qstash.cli.context"
local plan = require "qstash.cli.plan"
local scan = require "qstash.cli.scan"
local report_mod = require "qstash.cli.report"
local tabular = require "qstash.cli.tabular"

local M = {}

local EXIT_OK, EXIT_FAIL = context.EXIT_OK, context.EXIT_FAIL

local unreported

-- Checks the options as dlq_retry would, sending nothing: client:prepare
-- reads and checks every argument, and a call that is never stepped sends
-- nothing. Returns true, or nil and the module's argument error.
function M.validate(client, opts, follow)
  if follow then
    local o = { follow = follow }
    for k, v in pairs(opts) do o[k] = v end
    opts = o
  end
  local ok, err = pcall(client.prepare, client, "dlq_retry", "0-0", opts)
  if not ok then return nil, err end
  return true
end

-- What a followed message came to, in words.
local function delivery_text(a, res)
  local o = report_mod.outcome(res)
  if o == "DELIVERED" then return "delivered" end
  if o == "CANCELLED" then return "cancelled" end
  if o == "FAILED" then return "failed again: new DLQ id " .. tabular.cell(res.delivery.dlqId) end
  if o == "PENDING" then
    local d = res.delivery
    if d.error ~= nil then return "still pending: following failed: " .. tabular.cell(d.error) end
    return ("still pending after %g s%s"):format(a.follow_opts.timeout,
      d.state and (" (" .. tabular.cell(d.state) .. ")") or "")
  end
  return "not followed"
end

local function show(ctx, a, id, res)
  ctx:out(tabular.cell(id), " -> ", res and tabular.cell(res.messageId) or "?",
    res and res.deduplicated and " (deduplicated)" or "",
    a.follow_opts and ("  " .. delivery_text(a, res)) or "", "\n")
end

local function record(ctx, a, report, id, res)
  report:retried(id, res, a.follow_opts ~= nil)
  show(ctx, a, id, res)
end

-- The progress line's counts of followed messages.
local function follow_detail(a, report)
  if not a.follow_opts then return nil end
  return ("delivered %d, failed again %d, pending %d"):format(report:count("delivered"),
    report:count("failed_again"), report:count("pending") + report:count("unknown"))
end

local function progress(ctx, a, report, done, total)
  ctx:progress("retrying", done, total, follow_detail(a, report))
end

-- After a dlq_retry_each over ids: an id it gave no result for (and not
-- answered 429) is looked up. Still in the DLQ: it was not retried and stays
-- not attempted. Gone: it was acted on without a word (several ids retried
-- into one deduplicated message, say), so its outcome is unknown: reported
-- as ambiguous, never as not attempted (a rerun would fail on it). Returns
-- nil, or the error of the lookup.
unreported = function(ctx, report, ids, limited)
  local skip, missing = {}, {}
  for _, id in ipairs(limited) do skip[id] = true end
  for _, id in ipairs(ids) do
    if not skip[id] and not report:has(id) then missing[#missing + 1] = id end
  end
  for _, batch in ipairs(scan.batches(missing)) do
    local found, _, err = scan.by_ids(ctx, batch)
    if not found then return err end
    for _, id in ipairs(batch) do
      if not found[id] then
        report:ambiguous(id, context.failure("unreported", "no result was reported for this id, and it has " ..
          "left the DLQ: it was retried (or deleted) all the same", { ambiguous = true }))
        ctx:err(tabular.cell(id), ": left the DLQ, but no result was reported for it")
      end
    end
  end
  report:flush()
end

-- Retries ids concurrently; ids answered 429 wait out the pause and go again.
-- offset, total: for the progress bar. ambiguous: an earlier bulk request
-- for these ids may have acted. Returns nil, or the error that stopped it.
local function each(ctx, a, report, ids, offset, total, ambiguous)
  local pending, streak = ids, 0
  local opts = a.opts
  if a.follow_opts then
    opts = {}
    for k, v in pairs(a.opts) do opts[k] = v end
    opts.follow = a.follow_opts
  end
  while #pending > 0 do
    local limited, last = {}, nil
    local ok, res = ctx:call("dlq_retry_each", pending, opts, {
      concurrency = a.concurrency or 16,
      on_result = context.guard(function(id, r, err)
        if r then
          record(ctx, a, report, id, r)
        elseif ctx:is_rate_limited(err) then
          limited[#limited + 1], last = id, err
        else
          report:failed(id, err, ambiguous)
          ctx:fail(err, tabular.cell(id))
        end
        report:flush()
      end),
      on_progress = context.guard(function()
        progress(ctx, a, report, offset + report:count("retried") + report:count("failed"), total)
      end),
    })
    if not ok then return res end
    local lost = unreported(ctx, report, pending, limited)
    if lost then return lost end
    pending = limited
    if #pending > 0 then
      if not ctx:pause(last, streak) then
        for _, id in ipairs(pending) do report:failed(id, last) end
        report:flush()
        ctx:fail(last)
        return nil
      end
      streak = streak + 1
    end
  end
end

-- With --follow: follows the new messages of a batch's responses together
-- and sets each response's delivery. A follow that fails leaves them not
-- done, with the error (as dlq_retry_each does).
local function follow_batch(ctx, a, responses)
  if not a.follow_opts then return end
  local mids = {}
  for _, r in ipairs(responses) do
    if type(r) == "table" and r.messageId then mids[#mids + 1] = r.messageId end
  end
  if #mids == 0 then return end
  ctx:progress("following", #mids)
  local ok, res = ctx:call("follow_many", mids, a.follow_opts)
  if not ok then ctx:fail(res, "following the new messages") end
  for _, r in ipairs(responses) do
    if type(r) == "table" and r.messageId then
      r.delivery = ok and res[r.messageId] or { messageId = r.messageId, done = false, error = res }
    end
  end
end

-- One batch of a snapshot. Returns nil to go on, or the error that stops.
local function batch(ctx, a, report, ids, offset, total)
  local ok, res = ctx:call("dlq_retry_many", ids, a.opts)
  if ok then
    local responses = res.responses or {}
    if #responses == #ids then
      follow_batch(ctx, a, responses)
      for i, id in ipairs(ids) do
        record(ctx, a, report, id, responses[i])
      end
      report:flush()
      return nil
    end
    -- more or fewer answers than ids: which id got which message is unknown;
    -- the ids still in the DLQ were not retried and go one by one
    local found, _, err = scan.by_ids(ctx, ids)
    if not found then return err end
    local left = {}
    for _, id in ipairs(ids) do
      if found[id] then left[#left + 1] = id else
        record(ctx, a, report, id, nil)
      end
    end
    report:flush()
    return each(ctx, a, report, left, offset, total, false)
  end
  if type(res) == "table" and res.kind == "not_found" then
    -- some ids left the DLQ meanwhile (or an earlier attempt of this request
    -- acted: then res.ambiguous): each id on its own
    return each(ctx, a, report, ids, offset, total, res.ambiguous == true)
  end
  return res
end

function M.run(ctx, a)
  local entries, err = plan.entries(ctx, a)
  if not entries then
    local status = ctx:fail(err)
    if not a.dry_run then
      a.report_writer:summary { selected = 0, retried = 0, failed = 0, not_attempted = 0,
        error = context.describe(err), exit_status = status }
    end
    return status
  end
  if a.dry_run then
    return plan.dry_run(ctx, entries, "retried", { { "results", a.report } })
  end
  local report = a.report_writer
  local total = #entries
  local ids = {}
  for i, e in ipairs(entries) do ids[i] = e.id end
  progress(ctx, a, report, 0, total)
  local stop
  if #a.ids > 0 then
    stop = each(ctx, a, report, ids, 0, total, false)
    -- cut short (Ctrl-C) while retrying: the ids without a result were in flight
    if context.is_failure(stop) and stop.ambiguous then report:stopped(ids, stop) end
  else
    for _, b in ipairs(scan.batches(ids)) do
      stop = batch(ctx, a, report, b, report:count("retried") + report:count("failed"), total)
      if stop then
        report:stopped(b, stop)
        break
      end
      progress(ctx, a, report, report:count("retried") + report:count("failed"), total)
    end
  end
  local retried, failed, unknown = report:count("retried"), report:count("failed"), report:count("ambiguous")
  local not_attempted = total - retried - failed - unknown
  local status = EXIT_OK
  if stop then status = ctx:fail(stop) elseif failed + unknown + not_attempted > 0 then status = EXIT_FAIL end
  local delivered = report:count("delivered")
  if a.follow_opts and status == EXIT_OK and delivered < retried then status = EXIT_FAIL end
  local fields = { selected = total, retried = retried, failed = failed, ambiguous = unknown,
    not_attempted = not_attempted, rate_limit_pauses = ctx.pauses, exit_status = status }
  if a.follow_opts then
    for _, k in ipairs(report_mod.OUTCOMES) do fields[k] = report:count(k) end
  end
  local lost
  status, lost = report:summary(fields)
  if lost then ctx:err("the --report file is incomplete: ", lost) end
  local text
  if failed + unknown + not_attempted == 0 and not stop then
    text = ("retried %d message%s"):format(retried, retried == 1 and "" or "s")
  else
    text = ("retried %d of %d message%s: %d failed, %s%d not attempted")
      :format(retried, total, total == 1 and "" or "s", failed, report.unknown_text(unknown), not_attempted)
  end
  if a.follow_opts then
    text = text .. ("; %d delivered, %d failed again, %d cancelled, %d still pending"):format(delivered,
      report:count("failed_again"), report:count("cancelled"), report:count("pending") + report:count("unknown"))
  end
  ctx:summary(text)
  return status
end

return M
