-- qstash.cli.plan: which DLQ entries a command works on (ids, --file, --all,
-- filters), and the dry run that shows them without changing anything.

local scan = require "qstash.cli.scan"
local tabular = require "qstash.cli.tabular"
local flags = require "qstash.cli.flags"
local C = require "qstash.cli.convert"

local M = {}

M.SHOW = 10 -- entries a dry run lists

-- DLQ ids from a file (or stdin with "-"), one per line.
local function read_ids(path)
  local f, err
  if path == "-" then f = io.stdin else f, err = io.open(path, "r") end
  if not f then return nil, "cannot read --file: " .. tostring(err) end
  local ids = {}
  for line in f:lines() do
    line = C.trim(line)
    if line ~= "" and line:sub(1, 1) ~= "#" then ids[#ids + 1] = line end
  end
  if f ~= io.stdin then f:close() end
  return ids
end

-- Completes a.ids (arguments and --file, each id once) and a.filter; returns
-- a usage message when the selection is missing or contradicts itself.
-- needs_selection: state-changing commands never default to everything.
function M.check(a, verb, needs_selection)
  local ids, seen = {}, {}
  local function add(id)
    if not seen[id] then seen[id], ids[#ids + 1] = true, id end -- an id given twice is handled once
  end
  for _, id in ipairs(a.ids or {}) do add(id) end
  if a.file then
    local from_file, err = read_ids(a.file)
    if not from_file then return err end
    if #from_file == 0 then return "--file holds no DLQ ids" end
    for _, id in ipairs(from_file) do add(id) end
  end
  a.ids = ids
  local filter, any, why = flags.filter(a)
  if why then return why end
  a.filter, a.filtered = filter, any
  if #ids > 0 and (any or a.all) then
    return ("give either DLQ ids or --all/filters to %s, not both"):format(verb)
  end
  if a.all and any then
    return "--all and filter flags exclude each other: use one of them"
  end
  if needs_selection and #ids == 0 and not any and not a.all then
    return ("nothing to %s: give DLQ ids, --all, or filter flags"):format(verb)
  end
end

-- The entries to work on: for ids, {id = ...} each (nothing is read); else a
-- snapshot of the filter (or of everything for --all).
function M.entries(ctx, a)
  if #a.ids > 0 then
    local out = {}
    for i, id in ipairs(a.ids) do out[i] = { id = id } end
    return out
  end
  return scan.snapshot(ctx, a.filter, "scanning")
end

-- Fills in url and status of entries that have only ids (read-only), and
-- returns the ids not in the DLQ.
local function resolve(ctx, entries)
  local ids, missing = {}, {}
  for _, e in ipairs(entries) do
    if e.url == nil and e.status == nil then ids[#ids + 1] = e.id end
  end
  local info = {}
  for _, batch in ipairs(scan.batches(ids)) do
    local found, gone, err = scan.by_ids(ctx, batch)
    if not found then return nil, err end
    for id, m in pairs(found) do info[id] = scan.entry(m) end
    for _, id in ipairs(gone) do missing[#missing + 1] = id end
  end
  local present = {}
  for _, e in ipairs(entries) do
    local i = info[e.id]
    if i then present[#present + 1] = i
    elseif e.url ~= nil or e.status ~= nil then present[#present + 1] = e end
  end
  return present, missing
end

-- Shows what `verb` would touch; changes nothing. Returns the exit status:
-- 1 when some given ids are not in the DLQ (the real run would fail on them).
function M.dry_run(ctx, entries, verb, files)
  local present, missing = resolve(ctx, entries)
  if not present then return ctx:fail(missing) end
  ctx:clear_progress()
  ctx.state = nil
  local out = ctx.stdout
  out:write(("dry run: %d message%s would be %s; nothing was changed\n")
    :format(#present, #present == 1 and "" or "s", verb))
  if #present > 0 then
    local rows = {}
    for i = 1, math.min(M.SHOW, #present) do
      local e = present[i]
      rows[i] = { tabular.cell(e.id), tabular.cell(e.status), tabular.cell(e.url) }
    end
    tabular.write(out, { "DLQ ID", "STATUS", "URL" }, rows)
    if #present > M.SHOW then out:write(("... and %d more\n"):format(#present - M.SHOW)) end
  end
  for _, f in ipairs(files or {}) do
    if f[2] then out:write(("would append %s to %s\n"):format(f[1], f[2])) end
  end
  for _, id in ipairs(missing) do ctx:err(tabular.cell(id), ": not in the DLQ") end
  return #missing > 0 and 1 or 0
end

return M
