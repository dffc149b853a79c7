-- qstash.cli.logs: one message's history, oldest first, from its log
-- entries (client:log_entries, which gives them newest first).

local context = require "qstash.cli.context"
local json = require "qstash.cli.json"
local tabular = require "qstash.cli.tabular"
local C = require "qstash.cli.convert"

local M = {}

local EXIT_OK, EXIT_FAIL = context.EXIT_OK, context.EXIT_FAIL

local COLUMNS = { "TIME", "STATE", "STATUS", "ERROR", "NEXT DELIVERY" }

local function row_of(e)
  return { C.iso_utc_ms(tonumber(e.time)), tabular.cell(e.state), tabular.cell(e.responseStatus),
    tabular.cell(e.error), C.iso_utc_ms(tonumber(e.nextDeliveryTime)) }
end

-- Every entry of the message, newest first; 429s waited out as elsewhere. A
-- failed page is asked again by the next call of the iterator.
local function entries(ctx, id)
  local ok, iter = ctx:call("log_entries", { message_id = id })
  if not ok then return nil, iter end
  local all, streak = {}, 0
  while true do
    local got, e = pcall(iter)
    if got then
      if e == nil then return all end
      all[#all + 1], streak = e, 0
    elseif ctx:pause(e, streak) then
      streak = streak + 1
    else
      return nil, e
    end
  end
end

function M.run(ctx, a)
  local id = a.message_id
  local all, err = entries(ctx, id)
  if not all then return ctx:fail(err, tabular.cell(id)) end
  if #all == 0 then
    ctx:err(tabular.cell(id), ": no log entries")
    return EXIT_FAIL
  end
  local rows = {}
  for i = #all, 1, -1 do
    local e = all[i]
    if a.json then ctx:out(json.encode(e), "\n") else rows[#rows + 1] = row_of(e) end
  end
  if not a.json then tabular.write(ctx.stdout, COLUMNS, rows) end
  return EXIT_OK
end

return M
