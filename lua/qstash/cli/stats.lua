-- qstash.cli.stats: counts of DLQ messages by destination URL, last response
-- status, label and age band, kept while the pages stream past (one pass, no
-- message kept).

local tabular = require "qstash.cli.tabular"
local C = require "qstash.cli.convert"

local M = {}

local HOUR, DAY = 3600 * 1000, 24 * 3600 * 1000

-- Age bands, youngest first: label, upper bound (exclusive) in milliseconds.
M.BANDS = {
  { "< 1h", HOUR }, { "1h-6h", 6 * HOUR }, { "6h-1d", DAY }, { "1d-3d", 3 * DAY },
  { "3d-7d", 7 * DAY }, { ">= 7d", math.huge },
}

function M.band(age_ms)
  if type(age_ms) ~= "number" then return "unknown" end
  for _, b in ipairs(M.BANDS) do
    if age_ms < b[2] then return b[1] end
  end
end

-- The groups, in the order they are shown: name, JSON key, value of a message.
local GROUPS = {
  { "URL", "url", function(m) return { m.url or m.topicName or "(none)" } end },
  { "STATUS", "status", function(m) return { m.responseStatus ~= nil and tostring(m.responseStatus) or "(none)" } end },
  { "LABEL", "label", function(m)
      -- a message with several labels counts under each
      if type(m.labels) == "table" and #m.labels > 0 then return m.labels end
      if type(m.label) == "string" and m.label ~= "" then return { m.label } end
      return { "(none)" }
    end },
  { "AGE", "age", nil },
}

local S = {}
S.__index = S

function M.new(now_ms)
  local s = setmetatable({ now = now_ms, total = 0, counts = {} }, S)
  for _, g in ipairs(GROUPS) do s.counts[g[2]] = {} end
  return s
end

function S:add(m)
  self.total = self.total + 1
  local created = tonumber(m.createdAt)
  if created then
    if not self.oldest or created < self.oldest then self.oldest = created end
    if not self.newest or created > self.newest then self.newest = created end
  end
  for _, g in ipairs(GROUPS) do
    local values
    if g[2] == "age" then
      values = { M.band(created and (self.now - created)) }
    else
      values = g[3](m)
    end
    local c = self.counts[g[2]]
    for _, v in ipairs(values) do
      v = tostring(v)
      c[v] = (c[v] or 0) + 1
    end
  end
end

local BAND_ORDER = {}
for i, b in ipairs(M.BANDS) do BAND_ORDER[b[1]] = i end
BAND_ORDER.unknown = #M.BANDS + 1

-- {value, count} rows: the largest count first (ages in band order).
function S:rows(key)
  local rows = {}
  for v, n in pairs(self.counts[key]) do rows[#rows + 1] = { value = v, count = n } end
  table.sort(rows, function(x, y)
    if key == "age" then return BAND_ORDER[x.value] < BAND_ORDER[y.value] end
    if x.count ~= y.count then return x.count > y.count end
    return x.value < y.value
  end)
  return rows
end

-- {total, oldest, newest, url = {[value] = count}, status = ..., label = ..., age = ...}:
-- objects, so that an empty DLQ still gives the same shape.
function S:to_json()
  local doc = { total = self.total, oldest = self.oldest, newest = self.newest }
  for _, g in ipairs(GROUPS) do doc[g[2]] = self.counts[g[2]] end
  return doc
end

function S:write(out)
  out:write(("%d message%s"):format(self.total, self.total == 1 and "" or "s"))
  if self.oldest then
    out:write((", created %s to %s"):format(C.iso_utc(self.oldest), C.iso_utc(self.newest)))
  end
  out:write("\n")
  for _, g in ipairs(GROUPS) do
    local rows = {}
    for i, r in ipairs(self:rows(g[2])) do
      rows[i] = { tabular.cell(r.value), tostring(r.count),
        ("%.1f%%"):format(self.total > 0 and r.count * 100 / self.total or 0) }
    end
    if #rows > 0 then
      out:write("\n")
      tabular.write(out, { g[1], "COUNT", "SHARE" }, rows, { [2] = true, [3] = true })
    end
  end
end

return M
