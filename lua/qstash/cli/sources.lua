-- qstash.cli.sources: `qstash-dlq sources [FILTERS] [--json]`: which
-- schedules, queues, URL groups and flow-control keys the (filtered) DLQ's
-- entries came from, how many entries each, the newest, and each source's
-- live state, read once per source.
--
-- Bounds: the scan reads pages (one dlq_list call each, each under the
-- client's call_timeout and max_requests) for at most MAX_PAGES pages and
-- DEADLINE seconds; the lookups are one request per source. A scan ended by
-- either bound prints what it counted and exits 1, saying which ended it.

local context = require "qstash.cli.context"
local scan = require "qstash.cli.scan"
local kinds = require "qstash.cli.kinds"
local json = require "qstash.cli.json"
local tabular = require "qstash.cli.tabular"
local C = require "qstash.cli.convert"

local M = {}

M.PAGE = 100        -- entries a page (the API's largest)
M.MAX_PAGES = 1000  -- 100,000 entries
M.DEADLINE = 300    -- seconds, the client's default call_timeout

local EXIT_OK, EXIT_FAIL = context.EXIT_OK, context.EXIT_FAIL

-- Counts the entries of messages into found (kind -> id -> {count, newest}).
local function tally(found, messages)
  local with = 0
  for _, m in ipairs(messages) do
    local any = false
    for _, row in ipairs(kinds.ROWS) do
      local id = m[row.field]
      if type(id) == "string" and id ~= "" then
        any = true
        local by = found[row.kind]
        local s = by[id]
        if not s then
          s = { kind = row.kind, id = id, count = 0 }
          by[id] = s
        end
        s.count = s.count + 1
        local created = tonumber(m.createdAt)
        if created and (s.newest == nil or created > s.newest) then s.newest = created end
      end
    end
    if any then with = with + 1 end
  end
  return with
end

-- Reads the DLQ (filtered): the sources found, entries scanned, entries with
-- a source, and the failure that ended the scan early (nil when it ended).
local function collect(ctx, filter)
  local found = {}
  for _, row in ipairs(kinds.ROWS) do found[row.kind] = {} end
  local scanned, with, pages, stop = 0, 0, 0, nil
  local started = ctx.now_ms()
  ctx:progress("scanning", 0)
  local params = { count = M.PAGE }
  for k, v in pairs(filter) do params[k] = v end
  local ok, err = scan.pages(ctx, params, function(messages, cursor)
    stop = scan.stray(filter, messages)
    if stop then return false end
    pages = pages + 1
    scanned = scanned + #messages
    with = with + tally(found, messages)
    ctx:progress("scanning", scanned)
    if cursor == nil or cursor == "" then return true end -- the last page
    if pages >= M.MAX_PAGES then
      stop = context.failure("limit", ("the scan stopped at its cap of %d pages (%d entries): the counts are " ..
        "of those only"):format(M.MAX_PAGES, scanned), { limit = "requests" })
      return false
    end
    if ctx.now_ms() - started >= M.DEADLINE * 1000 then
      stop = context.failure("limit", ("the scan stopped at its deadline of %d s after %d entries: the " ..
        "counts are of those only"):format(M.DEADLINE, scanned), { limit = "deadline" })
      return false
    end
  end)
  if not ok then stop = err end
  local list = {}
  for _, row in ipairs(kinds.ROWS) do
    local these = {}
    for _, s in pairs(found[row.kind]) do these[#these + 1] = s end
    table.sort(these, function(x, y)
      if x.count ~= y.count then return x.count > y.count end
      return x.id < y.id
    end)
    for _, s in ipairs(these) do list[#list + 1] = s end
  end
  return list, scanned, with, stop
end

-- Reads one source's live state (one request): s.state, s.gone or s.error.
local function look_up(ctx, s)
  local row = kinds.BY_KIND[s.kind]
  if type(ctx.client[row.get]) ~= "function" then
    s.error = { kind = "unsupported", message = "this qstash module has no " .. row.get, ambiguous = false }
    return
  end
  local ok, res = ctx:call(row.get, s.id)
  if ok then
    s.state = row.state(res)
  elseif type(res) == "table" and res.kind == "not_found" then
    s.gone = true
  elseif context.is_failure(res) and res.exit then
    error(res, 0) -- interrupted (Ctrl-C): the command ends with its exit status
  else
    s.error = context.describe(res)
  end
end

local function as_json(s)
  local row = kinds.BY_KIND[s.kind]
  local state = s.state
  if s.gone then state = { gone = true } elseif s.error then state = { error = s.error } end
  return json.encode { kind = s.kind, [row.id_key] = s.id, count = s.count, newest = s.newest, state = state }
end

local function state_text(s)
  if s.gone then return "gone (no longer exists)" end
  if s.error then return "unknown: " .. tostring(s.error.message or s.error.kind) end
  return kinds.BY_KIND[s.kind].show(s.state)
end

function M.run(ctx, a)
  local list, scanned, with, stop = collect(ctx, a.filter)
  ctx:clear_progress()
  ctx.state = nil
  local status = EXIT_OK
  if stop then
    if not (context.is_failure(stop) and stop.kind == "limit") and #list == 0 then return ctx:fail(stop) end
    status = ctx:fail(stop)
  end
  for _, s in ipairs(list) do
    look_up(ctx, s)
    if s.error then status = EXIT_FAIL end
  end
  if a.json then
    local items = {}
    for i, s in ipairs(list) do items[i] = as_json(s) end
    ctx:out("[", table.concat(items, ","), "]\n")
    return status
  end
  if #list == 0 then
    ctx:out(("no sources: none of the %d DLQ entr%s scanned came from a schedule, queue, URL group or " ..
      "flow-control key\n"):format(scanned, scanned == 1 and "y" or "ies"))
    return status
  end
  ctx:out(("%d of the %d DLQ entr%s scanned came from %d source%s\n"):format(with, scanned,
    scanned == 1 and "y" or "ies", #list, #list == 1 and "" or "s"))
  local rows = {}
  for i, s in ipairs(list) do
    rows[i] = { kinds.label(s.kind), tabular.cell(s.id), tostring(s.count),
      s.newest and C.iso_utc(s.newest) or "", tabular.cell(state_text(s)) }
  end
  tabular.write(ctx.stdout, { "KIND", "SOURCE", "ENTRIES", "NEWEST", "STATE" }, rows, { [3] = true })
  return status
end

return M
