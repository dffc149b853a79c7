-- qstash.cli.kinds: the producers a DLQ entry can come from, as rows: the
-- entry's field naming it, the filter flag that selects it, the client
-- functions that read, pause and resume it, and its live state as shown by
-- `sources` (a table for people, an object for --json).
--
-- Read by cli/sources.lua (which sources feed the DLQ) and cli/pause.lua
-- (pause and resume). A URL group cannot be paused: it has no pause row.

local C = require "qstash.cli.convert"

local M = {}

local function yes(v) return v == true end

-- A count of a state object, or nil when the server left it out.
local function num(v) return type(v) == "number" and v or nil end

M.ROWS = {
  {
    kind = "schedule", id_key = "id", field = "scheduleId", flag = "--schedule-id", target = "schedule_id",
    get = "schedule_get", pause = "schedule_pause", resume = "schedule_resume",
    paused = function(s) return yes(s.isPaused) end,
    state = function(s)
      return { paused = yes(s.isPaused), nextScheduleTime = num(s.nextScheduleTime), cron = s.cron }
    end,
    show = function(st)
      local t = st.paused and "paused" or "active"
      if not st.paused and st.nextScheduleTime then t = t .. ", next run " .. C.iso_utc(st.nextScheduleTime) end
      return t
    end,
  },
  {
    kind = "queue", id_key = "name", field = "queueName", flag = "--queue", target = "queue_name",
    get = "queue_get", pause = "queue_pause", resume = "queue_resume",
    paused = function(q) return yes(q.paused) end,
    state = function(q) return { paused = yes(q.paused), lag = num(q.lag), parallelism = num(q.parallelism) } end,
    show = function(st)
      return ("%s, lag %s, parallelism %s"):format(st.paused and "paused" or "active", tostring(st.lag or 0),
        tostring(st.parallelism or "?"))
    end,
  },
  {
    kind = "url_group", id_key = "name", field = "topicName", flag = "--url-group",
    get = "url_group_get",
    state = function(g)
      return { endpoints = type(g.endpoints) == "table" and #g.endpoints or 0 }
    end,
    show = function(st)
      return ("%d endpoint%s"):format(st.endpoints, st.endpoints == 1 and "" or "s")
    end,
  },
  {
    kind = "flow_control_key", id_key = "name", field = "flowControlKey", flag = "--flow-control-key",
    target = "flow_control_key",
    get = "flow_control_get", pause = "flow_control_pause", resume = "flow_control_resume",
    paused = function(f) return yes(f.isPaused) end,
    state = function(f)
      return { paused = yes(f.isPaused), pinned = yes(f.isPinnedParallelism) or yes(f.isPinnedRate),
        parallelism = num(f.parallelismMax), rate = num(f.rateMax), period = num(f.ratePeriod),
        waiting = num(f.waitListSize) }
    end,
    show = function(st)
      local t = st.paused and "paused" or "active"
      if st.pinned then t = t .. ", pinned" end
      if st.parallelism and st.parallelism > 0 then t = t .. ", parallelism " .. st.parallelism end
      if st.rate and st.rate > 0 then t = t .. (", rate %d/%ds"):format(st.rate, st.period or 1) end
      if st.waiting and st.waiting > 0 then t = t .. ", " .. st.waiting .. " waiting" end
      return t
    end,
  },
}

M.BY_KIND = {}
for _, row in ipairs(M.ROWS) do M.BY_KIND[row.kind] = row end

-- How a kind reads in a table: "flow_control_key" -> "flow-control key".
function M.label(kind)
  if kind == "flow_control_key" then return "flow-control key" end
  return (kind:gsub("_", " "))
end

return M
