-- qstash.cli.scan: reading the DLQ: pages of a filter, snapshots, and whole
-- messages by id. Nothing here changes state.

local context = require "qstash.cli.context"
local match = require "qstash.cli.match"
local flags = require "qstash.cli.flags"
local tabular = require "qstash.cli.tabular"

local M = {}

local PAGE = 100

local function copy(t)
  local c = {}
  for k, v in pairs(t or {}) do c[k] = v end
  return c
end

-- Calls on_page(messages) for each page of dlq_list(params), following the
-- cursor (from params.cursor, if any); on_page may return false to stop.
-- Returns true, or nil and the error. A cursor the server gives twice would
-- loop for ever: it ends the scan as a `decode` failure instead.
function M.pages(ctx, params, on_page)
  local seen, cursor = {}, params.cursor
  while true do
    local p = copy(params)
    p.count, p.cursor = p.count or PAGE, cursor
    local ok, res = ctx:call("dlq_list", p)
    if not ok then return nil, res end
    if on_page(res.messages or {}, res.cursor) == false then return true end
    cursor = res.cursor
    if cursor == nil or cursor == "" then return true end
    if seen[cursor] then
      return nil, context.failure("decode", "the server repeated the cursor " .. tostring(cursor) ..
        ": paging stopped")
    end
    seen[cursor] = true
  end
end

-- The small facts of a DLQ entry that a plan and a dry run show.
local function entry(m)
  return { id = m.dlqId, url = m.url or m.topicName, status = m.responseStatus }
end
M.entry = entry

-- Every entry matching filter, taken before anything changes, so that a
-- message entering the DLQ meanwhile (a retried one failing again) is not
-- picked up, and no cursor is used across a change. An entry listed that
-- does not match the filter (a server or proxy that ignored it) fails the
-- whole snapshot: nothing is acted on when the list cannot be trusted.
-- The failure for the first of messages that does not match filter, or nil.
function M.stray(filter, messages)
  for _, m in ipairs(messages) do
    local key = match.mismatch(filter, m)
    if key then
      return context.failure("filter_ignored", ("the server listed DLQ entry %s, which does not match %s: " ..
        "it ignored the filter, and nothing of its listing is used")
        :format(tabular.cell(m.dlqId), flags.filter_flag(key)))
    end
  end
end

function M.snapshot(ctx, filter, verb)
  local entries, seen, stray = {}, {}, nil
  ctx:progress(verb or "scanning", 0)
  local ok, err = M.pages(ctx, filter, function(messages)
    stray = M.stray(filter, messages)
    if stray then return false end
    for _, m in ipairs(messages) do
      if m.dlqId ~= nil and not seen[m.dlqId] then -- an id on two pages is handled once
        seen[m.dlqId] = true
        entries[#entries + 1] = entry(m)
      end
    end
    ctx:progress(verb or "scanning", #entries)
  end)
  if not ok then return nil, err end
  if stray then return nil, stray end
  return entries
end

-- The whole messages of up to 100 ids: a map id -> message, and the ids not in
-- the DLQ. One dlq_list with dlq_ids; an id it does not return is confirmed
-- with dlq_get, so a server that ignored dlq_ids costs time, never a wrong
-- answer (a message is only ever taken for the id it carries).
function M.by_ids(ctx, ids)
  local want, found, missing = {}, {}, {}
  for _, id in ipairs(ids) do want[id] = true end
  local ok, res = ctx:call("dlq_list", { dlq_ids = ids, count = PAGE })
  if not ok then return nil, nil, res end
  for _, m in ipairs(res.messages or {}) do
    if m.dlqId ~= nil and want[m.dlqId] then found[m.dlqId] = m end
  end
  for _, id in ipairs(ids) do
    if not found[id] then
      local got, msg = ctx:call("dlq_get", id)
      if got then
        found[id] = msg
      elseif type(msg) == "table" and msg.kind == "not_found" then
        missing[#missing + 1] = id
      else
        return nil, nil, msg
      end
    end
  end
  return found, missing
end

-- ids in groups of at most 100 (the API's bulk limit).
function M.batches(ids)
  local out = {}
  for i = 1, #ids, PAGE do
    local b = {}
    for j = i, math.min(i + PAGE - 1, #ids) do b[#b + 1] = ids[j] end
    out[#out + 1] = b
  end
  return out
end

return M
