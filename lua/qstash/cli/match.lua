-- qstash.cli.match: the filter flags checked on the command line's side.
--
-- QStash reads a filter value as a comma-separated list and trims each item:
-- a value made only of ',' and spaces reads as no filter at all, i.e. every
-- message. Such a value is a usage error (names_nothing). And a server (or a
-- proxy) that ignores a filter answers with the whole DLQ: every entry of a
-- snapshot is checked against the filter it was listed with (mismatch), and
-- one that does not match stops the command before anything is changed.

local M = {}

-- The Unicode spaces (beyond ASCII) a server trims like ' ', in UTF-8.
local SPACES = { "\194\133", "\194\160", "\225\154\128", "\226\128\168", "\226\128\169", "\226\128\175",
  "\226\129\159", "\227\128\128" }
for c = 0x80, 0x8a do SPACES[#SPACES + 1] = "\226\128" .. string.char(c) end -- U+2000..U+200A

local function strip_spaces(s)
  for _, sp in ipairs(SPACES) do s = s:gsub(sp, " ") end
  return s
end

local function trim(s)
  return (strip_spaces(s):gsub("^%s+", ""):gsub("%s+$", ""))
end

-- Whether a filter value names nothing (only ',' and spaces).
function M.names_nothing(v)
  return type(v) == "string" and trim((v:gsub(",", " "))) == ""
end

-- The items of a filter value as QStash reads them: a string or an array of
-- strings, each split at ',' and trimmed; a set.
local function items(v)
  local set = {}
  for _, s in ipairs(type(v) == "table" and v or { v }) do
    for item in tostring(s):gmatch("[^,]+") do
      item = trim(item)
      if item ~= "" then set[item] = true end
    end
  end
  return set
end

-- The values of an entry's field(s), as strings.
local function values_of(m, fields)
  local out = {}
  for _, f in ipairs(fields) do
    local v = m[f]
    if type(v) == "table" then
      for _, x in ipairs(v) do out[#out + 1] = tostring(x) end
    elseif v ~= nil then
      out[#out + 1] = tostring(v)
    end
  end
  return out
end

-- One row per filter key: the entry fields that must hold one of its values
-- (an entry without the field does not match), or a date bound on createdAt.
local ROWS = {
  { key = "message_id", fields = { "messageId" } },
  { key = "url", fields = { "url" } },
  { key = "url_group", fields = { "topicName" } },
  { key = "schedule_id", fields = { "scheduleId" } },
  { key = "queue_name", fields = { "queueName" } },
  { key = "caller_ip", fields = { "callerIP", "callerIp" } },
  { key = "label", fields = { "label", "labels" } },
  { key = "flow_control_key", fields = { "flowControlKey" } },
  { key = "response_status", fields = { "responseStatus" } },
  { key = "from_date", bound = function(created, v) return created >= v end },
  { key = "to_date", bound = function(created, v) return created <= v end },
}

-- nil when the DLQ entry m matches filter (the keys of flags.filter), else
-- the key of the first filter it does not match.
function M.mismatch(filter, m)
  for _, row in ipairs(ROWS) do
    local want = filter[row.key]
    if want ~= nil then
      if row.bound then
        local created = tonumber(m.createdAt)
        if not created or not row.bound(created, tonumber(want)) then return row.key end
      else
        local set, hit = items(want), false
        for _, v in ipairs(values_of(m, row.fields)) do
          if set[v] then hit = true end
        end
        if not hit then return row.key end
      end
    end
  end
  return nil
end

-- Every filter key has a row (checked by the specs).
M.KEYS = {}
for _, row in ipairs(ROWS) do M.KEYS[row.key] = true end

return M
