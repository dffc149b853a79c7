-- qstash.cli.retry: deliver DLQ messages again.
--
-- Given ids go out concurrently (dlq_retry_each), each with its own result.
-- --all and filters take a snapshot of the matching ids first and retry them
-- 100 per request (dlq_retry_many), whose answer lists the new message ids in
-- the order of the ids sent. A batch answered 404 (some ids left the DLQ
-- meanwhile) is retried id by id; any other failure stops the command, and
-- running it again carries on: retried entries have left the DLQ.

local context = require "qstash.cli.context"
local plan = require "qstash.cli.plan"
local scan = require "qstash.cli.scan"
local tabular = require "qstash.cli.tabular"

local M = {}

local EXIT_OK, EXIT_FAIL = context.EXIT_OK, context.EXIT_FAIL

-- Checks the options as dlq_retry would, sending nothing: client:prepare
-- reads and checks every argument, and a call that is never stepped sends
-- nothing. Returns true, or nil and the module's argument error.
function M.validate(client, opts)
  local ok, err = pcall(client.prepare, client, "dlq_retry", "0-0", opts)
  if not ok then return nil, err end
  return true
end

local function show(ctx, id, res)
  ctx:out(tabular.cell(id), " -> ", res and tabular.cell(res.messageId) or "?",
    res and res.deduplicated and " (deduplicated)" or "", "\n")
end

-- Retries ids concurrently; ids answered 429 wait out the pause and go again.
-- offset, total: for the progress bar. ambiguous: an earlier bulk request
-- for these ids may have acted. Returns nil, or the error that stopped it.
local function each(ctx, a, report, ids, offset, total, ambiguous)
  local pending, streak = ids, 0
  while #pending > 0 do
    local limited, last = {}, nil
    local ok, res = ctx:call("dlq_retry_each", pending, a.opts, {
      concurrency = a.concurrency or 16,
      on_result = context.guard(function(id, r, err)
        if r then
          report:retried(id, r)
          show(ctx, id, r)
        elseif ctx:is_rate_limited(err) then
          limited[#limited + 1], last = id, err
        else
          report:failed(id, err, ambiguous)
          ctx:fail(err, tabular.cell(id))
        end
        report:flush()
      end),
      on_progress = context.guard(function()
        ctx:progress("retrying", offset + report:count("retried") + report:count("failed"), total)
      end),
    })
    if not ok then return res end
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

-- One batch of a snapshot. Returns nil to go on, or the error that stops.
local function batch(ctx, a, report, ids, offset, total)
  local ok, res = ctx:call("dlq_retry_many", ids, a.opts)
  if ok then
    local responses = res.responses or {}
    if #responses == #ids then
      for i, id in ipairs(ids) do
        report:retried(id, responses[i])
        show(ctx, id, responses[i])
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
        report:retried(id, nil)
        show(ctx, id, nil)
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
  ctx:progress("retrying", 0, total)
  local stop
  if #a.ids > 0 then
    stop = each(ctx, a, report, ids, 0, total, false)
  else
    for _, b in ipairs(scan.batches(ids)) do
      stop = batch(ctx, a, report, b, report:count("retried") + report:count("failed"), total)
      if stop then
        if type(stop) ~= "string" then
          for _, id in ipairs(b) do
            if not report:has(id) then report:failed(id, stop) end
          end
          report:flush()
        end
        break
      end
      ctx:progress("retrying", report:count("retried") + report:count("failed"), total)
    end
  end
  local retried, failed = report:count("retried"), report:count("failed")
  local not_attempted = total - retried - failed
  local status = EXIT_OK
  if stop then status = ctx:fail(stop) elseif failed > 0 or not_attempted > 0 then status = EXIT_FAIL end
  report:summary { selected = total, retried = retried, failed = failed, not_attempted = not_attempted,
    rate_limit_pauses = ctx.pauses, exit_status = status }
  if status == EXIT_OK then
    ctx:summary(("retried %d message%s"):format(retried, retried == 1 and "" or "s"))
  else
    ctx:summary(("retried %d of %d message%s: %d failed, %d not attempted")
      :format(retried, total, total == 1 and "" or "s", failed, not_attempted))
  end
  return status
end

return M
