-- qstash.cli.convert: turns command-line strings into values.
--
-- Each converter returns the value, or nil and a message; argparse turns the
-- message into a usage error (exit 2) before anything is sent.

local M = {}

local toint = math.tointeger or function(x) return x end

M.PAGE = 100 -- the API's largest page, and its bulk limit

function M.trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

function M.uint(flag)
  return function(s)
    if s:match("^%d+$") and #s <= 15 then return toint(tonumber(s)) end
    return nil, ("%s must be a non-negative integer, got '%s'"):format(flag, s)
  end
end

-- Durations: pure digits are whole seconds (an integer); anything else goes to
-- the module as given, which validates it ("10s", "1h30m").
function M.duration(flag)
  return function(s)
    if s:match("^%d+$") and #s <= 15 then return toint(tonumber(s)) end
    if s == "" then return nil, flag .. " must not be empty" end
    return s
  end
end

function M.seconds(flag)
  return function(s)
    local n = tonumber(s)
    if n and n > 0 and n < math.huge and s:match("^[%d.]+$") then return n end
    return nil, ("%s must be a positive number of seconds, got '%s'"):format(flag, s)
  end
end

function M.count(s)
  local n = s:match("^%d+$") and tonumber(s)
  if n and n >= 1 and n <= M.PAGE then return toint(n) end
  return nil, ("--count must be an integer from 1 to %d, got '%s'"):format(M.PAGE, s)
end

function M.concurrency(s)
  local n = s:match("^%d+$") and tonumber(s)
  if n and n >= 1 and n <= 1024 then return toint(n) end
  return nil, ("--concurrency must be an integer from 1 to 1024, got '%s'"):format(s)
end

function M.status(s)
  local n = s:match("^%d%d%d$") and tonumber(s)
  if n and n >= 100 then return toint(n) end
  return nil, ("--status must be an HTTP status code, got '%s'"):format(s)
end

function M.header(flag)
  return function(s)
    local name, value = s:match("^([^:]*):(.*)$")
    if name == nil or M.trim(name) == "" then
      return nil, ("%s must look like 'Name: value', got '%s'"):format(flag, s)
    end
    return { M.trim(name), M.trim(value) }
  end
end

-- A message id for `logs`: it goes out as one query value (percent-encoded),
-- which QStash reads as a comma-separated list of trimmed ids; refused when
-- it could name no message, several, or another one than given.
function M.message_id(what)
  return function(s)
    if #s == 0 or #s > 512 then return nil, ("%s must be 1 to 512 bytes, got %d"):format(what, #s) end
    if s:find("[%z\1-\31\127]") then return nil, what .. " must not contain control bytes" end
    if s:find(",", 1, true) then return nil, what .. " must be one id, without ','" end
    if s:find("^%s") or s:find("%s$") then return nil, what .. " must not start or end with spaces" end
    return s
  end
end

-- A path for a file the command writes; "-" (stdout) only where allowed.
function M.path(flag, stdout_ok)
  return function(s)
    if s == "" then return nil, flag .. " needs a file name" end
    if s == "-" and not stdout_ok then
      return nil, flag .. " needs a file: stdout cannot be made durable or read back"
    end
    return s
  end
end

---------------------------------------------------------------- times

-- Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function days_in_month(y, m)
  if m == 2 then
    local leap = (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0
    return leap and 29 or 28
  end
  return (m == 4 or m == 6 or m == 9 or m == 11) and 30 or 31
end

-- "2026-01-31", "2026-01-31T12:00", "2026-01-31T12:00:00.250Z",
-- "2026-01-31 12:00:00+02:00": unix milliseconds (no zone means UTC).
function M.iso_to_ms(s)
  local y, mo, d, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then return nil end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  local h, mi, sec, ms, off = 0, 0, 0, 0, 0
  if rest ~= "" then
    local hh, mm, tail = rest:match("^[Tt ](%d%d):(%d%d)(.*)$")
    if not hh then return nil end
    h, mi, rest = tonumber(hh), tonumber(mm), tail
    local ss, tail2 = rest:match("^:(%d%d)(.*)$")
    if ss then
      sec, rest = tonumber(ss), tail2
      local frac, tail3 = rest:match("^[.,](%d+)(.*)$")
      if frac then
        ms, rest = tonumber((frac .. "00"):sub(1, 3)), tail3
      end
    end
    if rest == "Z" or rest == "z" or rest == "" then
      off = 0
    else
      local sign, oh, om = rest:match("^([+-])(%d%d):?(%d%d)$")
      if not sign then return nil end
      off = tonumber(oh) * 60 + tonumber(om)
      if sign == "-" then off = -off end
      if tonumber(oh) > 23 or tonumber(om) > 59 then return nil end
    end
  end
  if mo < 1 or mo > 12 or d < 1 or d > days_in_month(y, mo) or h > 23 or mi > 59 or sec > 59 then
    return nil
  end
  local secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off * 60
  return toint(secs * 1000 + ms)
end

function M.time(flag)
  return function(s)
    if s:match("^%d+$") then
      local n = #s <= 15 and tonumber(s)
      if n and (n == 0 or n >= 1e11) then return toint(n) end
      return nil, ("%s takes unix milliseconds (13 digits) or an ISO-8601 date/time, got '%s'" ..
        " (seconds?)"):format(flag, s)
    end
    local ms = M.iso_to_ms(s)
    if ms then return ms end
    return nil, ("%s must be unix milliseconds or an ISO-8601 date/time such as " ..
      "2026-01-31T12:00:00Z, got '%s'"):format(flag, s)
  end
end

function M.iso_utc(ms)
  if type(ms) ~= "number" then return "" end
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(ms / 1000))
end

-- The same with milliseconds: 2026-11-29T06:54:01.250Z.
function M.iso_utc_ms(ms)
  if type(ms) ~= "number" then return "" end
  local s = math.floor(ms / 1000)
  return os.date("!%Y-%m-%dT%H:%M:%S", s) .. (".%03dZ"):format(math.floor(ms - s * 1000))
end

return M
