-- qstash.cli.delete: remove DLQ messages without delivering them.
--
-- Per batch of up to 100 ids: read the messages whole (read-only), append
-- them to the --backup file and fsync it, and only then delete exactly the
-- ids that were read and written. A process killed at any point has written
-- every message it deleted. An id not in the DLQ fails with not_found.

local context = require "qstash.cli.context"
local plan = require "qstash.cli.plan"
local scan = require "qstash.cli.scan"
local tabular = require "qstash.cli.tabular"

local M = {}

local EXIT_OK, EXIT_FAIL = context.EXIT_OK, context.EXIT_FAIL

local NOT_IN_DLQ = "not in the DLQ"

local function deleted(ctx, report, id)
  report:deleted(id)
  ctx:out("deleted ", tabular.cell(id), "\n")
end

-- One batch. Returns nil to go on, or the error that stops the command.
local function batch(ctx, a, report, ids)
  local found, missing, err = scan.by_ids(ctx, ids)
  if not found then return err end
  for _, id in ipairs(missing) do
    report:failed(id, context.failure("not_found", NOT_IN_DLQ, { status = 404 }))
    ctx:err(tabular.cell(id), ": ", NOT_IN_DLQ)
  end
  local present, messages = {}, {}
  for _, id in ipairs(ids) do
    if found[id] then present[#present + 1], messages[#messages + 1] = id, found[id] end
  end
  report:flush()
  if #present == 0 then return nil end
  if a.backup_writer then
    local ok, werr = a.backup_writer:write(messages)
    if ok then ok, werr = a.backup_writer:sync() end
    if not ok then error(context.failure("io", werr, { fatal = true }), 0) end
  end
  local ok, res = ctx:call("dlq_delete_many", present)
  if not ok then return res end
  if tonumber(res.deleted) == #present then
    for _, id in ipairs(present) do deleted(ctx, report, id) end
  else
    -- fewer deleted than sent (some left the DLQ meanwhile): look again
    local still, _, lerr = scan.by_ids(ctx, present)
    if not still then return lerr end
    for _, id in ipairs(present) do
      if still[id] then
        report:failed(id, context.failure("http", "the server did not delete it"))
        ctx:err(tabular.cell(id), ": the server did not delete it")
      else
        deleted(ctx, report, id)
      end
    end
  end
  report:flush()
  return nil
end

function M.run(ctx, a)
  local entries, err = plan.entries(ctx, a)
  if not entries then
    local status = ctx:fail(err)
    if not a.dry_run then
      a.report_writer:summary { selected = 0, deleted = 0, failed = 0, not_attempted = 0,
        error = context.describe(err), exit_status = status }
    end
    return status
  end
  if a.dry_run then
    return plan.dry_run(ctx, entries, "deleted", { { "the messages", a.backup }, { "results", a.report } })
  end
  local report = a.report_writer
  local total = #entries
  local ids = {}
  for i, e in ipairs(entries) do ids[i] = e.id end
  ctx:progress("deleting", 0, total)
  local stop
  for _, b in ipairs(scan.batches(ids)) do
    stop = batch(ctx, a, report, b)
    if stop then
      report:stopped(b, stop)
      break
    end
    ctx:progress("deleting", report:count("deleted") + report:count("failed"), total)
  end
  if a.backup_writer then a.backup_writer:close() end
  local done, failed, unknown = report:count("deleted"), report:count("failed"), report:count("ambiguous")
  local not_attempted = total - done - failed - unknown
  local status = EXIT_OK
  if stop then status = ctx:fail(stop) elseif failed > 0 then status = EXIT_FAIL end
  local lost
  status, lost = report:summary { selected = total, deleted = done, failed = failed, ambiguous = unknown,
    not_attempted = not_attempted, backup = a.backup, rate_limit_pauses = ctx.pauses, exit_status = status }
  if lost then ctx:err("the --report file is incomplete: ", lost) end
  if not stop and failed + unknown == 0 then
    ctx:summary(("deleted %d message%s"):format(done, done == 1 and "" or "s"))
  else
    ctx:summary(("deleted %d of %d message%s: %d failed, %s%d not attempted")
      :format(done, total, total == 1 and "" or "s", failed, report.unknown_text(unknown), not_attempted))
  end
  return status
end

return M
