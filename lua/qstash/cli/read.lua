-- qstash.cli.read: the commands that only read the DLQ: list, get, stats,
-- export. Each is run(ctx, args) -> exit status.

local context = require "qstash.cli.context"
local scan = require "qstash.cli.scan"
local stats = require "qstash.cli.stats"
local json = require "qstash.cli.json"
local tabular = require "qstash.cli.tabular"
local C = require "qstash.cli.convert"

local M = {}

local EXIT_OK, EXIT_FAIL = context.EXIT_OK, context.EXIT_FAIL

local COLUMNS = { "DLQ ID", "MESSAGE ID", "STATUS", "URL", "CREATED" }

local function row_of(m)
  return { tabular.cell(m.dlqId), tabular.cell(m.messageId), tabular.cell(m.responseStatus),
    tabular.cell(m.url or m.topicName), C.iso_utc(m.createdAt) }
end

function M.list(ctx, a)
  local params = {}
  for k, v in pairs(a.filter) do params[k] = v end
  params.count, params.cursor = a.count, a.cursor
  local rows, next_cursor = {}, nil
  local function take(messages)
    for _, m in ipairs(messages) do
      if a.json then ctx:out(json.encode(m), "\n") else rows[#rows + 1] = row_of(m) end
    end
  end
  local ok, err
  if a.all_pages then
    ok, err = scan.pages(ctx, params, function(messages) take(messages) end)
  else
    local res
    ok, res = ctx:call("dlq_list", params)
    if ok then
      take(res.messages or {})
      next_cursor = res.cursor
    else
      err = res
    end
  end
  if not a.json and (ok or #rows > 0) then tabular.write(ctx.stdout, COLUMNS, rows) end
  if not ok then return ctx:fail(err) end
  if next_cursor ~= nil and next_cursor ~= "" then
    ctx.stderr:write("next cursor: ", tostring(next_cursor), "\n")
  end
  return EXIT_OK
end

function M.get(ctx, a)
  local status = EXIT_OK
  for _, id in ipairs(a.ids) do
    local ok, res = ctx:call("dlq_get", id)
    if ok then
      ctx:out(json.pretty(res), "\n")
    else
      local code = ctx:fail(res, tabular.cell(id))
      if code ~= EXIT_FAIL then return code end
      status = EXIT_FAIL
    end
  end
  return status
end

function M.stats(ctx, a)
  local s = stats.new(ctx.now_ms())
  local ok, err = scan.pages(ctx, a.filter, function(messages)
    for _, m in ipairs(messages) do s:add(m) end
    ctx:progress("counting", s.total)
  end)
  ctx:clear_progress()
  ctx.state = nil
  if not ok then return ctx:fail(err) end
  if a.json then
    ctx:out(json.encode(s:to_json()), "\n")
  else
    s:write(ctx.stdout)
  end
  return EXIT_OK
end

-- Whole messages, as the API returns them, one JSON line each.
function M.export(ctx, a, out)
  local written, status = 0, EXIT_OK
  local function put(messages)
    local ok, err = out:write(messages)
    if not ok then error(context.failure("io", err, { fatal = true }), 0) end
    written = written + #messages
    ctx:progress("exporting", written)
  end
  if #a.ids > 0 then
    for _, batch in ipairs(scan.batches(a.ids)) do
      local found, missing, err = scan.by_ids(ctx, batch)
      if not found then
        ctx:fail(err)
        status = EXIT_FAIL
        break
      end
      local messages = {}
      for _, id in ipairs(batch) do messages[#messages + 1] = found[id] end
      put(messages)
      for _, id in ipairs(missing) do
        ctx:err(tabular.cell(id), ": not in the DLQ")
        status = EXIT_FAIL
      end
    end
  else
    -- a page holding an entry outside the filter (a server that ignored it)
    -- is not written, and ends the export
    local ok, err = scan.pages(ctx, a.filter, function(messages)
      local stray = scan.stray(a.filter, messages)
      if stray then
        ctx:fail(stray)
        status = EXIT_FAIL
        return false
      end
      put(messages)
    end)
    if not ok then
      ctx:fail(err)
      status = EXIT_FAIL
    end
  end
  local synced, serr = out:sync()
  out:close()
  if not synced then
    ctx:err(serr)
    status = EXIT_FAIL
  end
  ctx:summary(("exported %d message%s%s"):format(written, written == 1 and "" or "s",
    out.stdout and "" or (" to " .. out.path)))
  return status
end

return M
