-- qstash.cli: the operators' command line for a QStash dead-letter queue.
--
--   local cli = require "qstash.cli"
--   os.exit(cli.main(arg), true)
--
-- main(argv, env) parses argv (an array of strings), runs one command and
-- returns the exit status: 0 success, 1 a request failed, 2 usage error.
-- env (optional) replaces the process' surroundings, for tests and embedding:
--   env.stdout, env.stderr   objects with :write() (default io.stdout/io.stderr)
--   env.is_tty               boolean: is stderr a terminal (default: `test -t 2`)
--   env.qstash               the client module (default: require "qstash")
--
-- The interpreter's own streams are never closed and os.exit is never called
-- here: bin/qstash-dlq does that.

local argparse = require "argparse"
local cjson = require "cjson"

local PROG = "qstash-dlq"
local EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
local PAGE = 100                     -- the API's largest page, and its bulk limit

local json = cjson.new()             -- private instance: never touch the shared settings

local unpack = table.unpack or unpack -- luacheck: ignore
local toint = math.tointeger or function(x) return x end

local M = { _NAME = PROG, EXIT_OK = EXIT_OK, EXIT_FAIL = EXIT_FAIL, EXIT_USAGE = EXIT_USAGE }

---------------------------------------------------------------- helpers

-- cjson (2.1.0) writes "/" as "\/": valid but noisy for URLs.  Outside a string a
-- "/" cannot occur and inside one cjson always escapes it, so every "\/" in the
-- output is such an escape and can be turned back safely.
local function encode(v)
  return (json.encode(v):gsub("\\/", "/"))
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

local function plural(n, word)
  return ("%d %s%s"):format(n, word, n == 1 and "" or "s")
end

-- One value stays a string, several become an array (the module takes both).
local function one_or_many(list)
  if list == nil or #list == 0 then return nil end
  if #list == 1 then return list[1] end
  return list
end

---------------------------------------------------------------- converters
-- argparse converters return the value, or nil and a message (-> usage error).

local function conv_uint(what)
  return function(s)
    if s:match("^%d+$") and #s <= 15 then return toint(tonumber(s)) end
    return nil, ("%s must be a non-negative integer, got '%s'"):format(what, s)
  end
end

-- Durations: pure digits are whole seconds (an integer); anything else goes to
-- the module as given, which validates it ("10s", "1h30m").
local function conv_duration(what)
  return function(s)
    if s:match("^%d+$") and #s <= 15 then return toint(tonumber(s)) end
    if s == "" then return nil, what .. " must not be empty" end
    return s
  end
end

local function conv_seconds(s)
  local n = tonumber(s)
  if n and n > 0 and n < math.huge and s:match("^[%d.]+$") then return n end
  return nil, ("timeout must be a positive number of seconds, got '%s'"):format(s)
end

local function conv_count(s)
  local n = s:match("^%d+$") and tonumber(s)
  if n and n >= 1 and n <= PAGE then return toint(n) end
  return nil, ("count must be an integer from 1 to %d, got '%s'"):format(PAGE, s)
end

local function conv_concurrency(s)
  local n = tonumber(s)
  if not n or n ~= math.floor(n) or n < 1 or n > 1024 then
    return nil, "--concurrency must be an integer from 1 to 1024"
  end
  return math.floor(n)
end

local function conv_status(s)
  local n = s:match("^%d%d%d$") and tonumber(s)
  if n and n >= 100 then return toint(n) end
  return nil, ("status must be an HTTP status code, got '%s'"):format(s)
end

local function conv_header(s)
  local name, value = s:match("^([^:]*):(.*)$")
  if name == nil or trim(name) == "" then
    return nil, ("header must look like 'Name: value', got '%s'"):format(s)
  end
  return { trim(name), trim(value) }
end

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
local function iso_to_ms(s)
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
M.iso_to_ms = iso_to_ms

local function conv_time(what)
  return function(s)
    if s:match("^%d+$") then
      local n = #s <= 15 and tonumber(s)
      if n and (n == 0 or n >= 1e11) then return toint(n) end
      return nil, ("%s takes unix milliseconds (13 digits) or an ISO-8601 date/time, got '%s'" ..
        " (seconds?)"):format(what, s)
    end
    local ms = iso_to_ms(s)
    if ms then return ms end
    return nil, ("%s must be unix milliseconds or an ISO-8601 date/time such as " ..
      "2026-01-31T12:00:00Z, got '%s'"):format(what, s)
  end
end

---------------------------------------------------------------- argument parser

-- The filters shared by list, retry and delete: flag, params key, metavar, converter.
-- All but --message-id, --from and --to may be repeated (QStash ORs the values of one filter).
local FILTERS = {
  { "--message-id", "message_id", "<id>", nil, true },
  { "--url", "url", "<url>" },
  { "--url-group", "url_group", "<name>" },
  { "--schedule-id", "schedule_id", "<id>" },
  { "--queue", "queue_name", "<name>" },
  { "--from", "from_date", "<time>", conv_time("--from"), true },
  { "--to", "to_date", "<time>", conv_time("--to"), true },
  { "--status", "response_status", "<code>", conv_status },
  { "--caller-ip", "caller_ip", "<ip>" },
  { "--label", "label", "<label>" },
  { "--flow-control-key", "flow_control_key", "<key>" },
}

local FILTER_HELP = {
  message_id = "Only the message with this message id.",
  url = "Only messages sent to this destination URL.",
  url_group = "Only messages published to this URL group (topic).",
  schedule_id = "Only messages created by this schedule.",
  queue_name = "Only messages of this queue.",
  from_date = "Only messages created at or after this time (unix ms or ISO-8601, UTC unless an offset is given).",
  to_date = "Only messages created at or before this time (unix ms or ISO-8601).",
  response_status = "Only messages whose last delivery got this HTTP status.",
  caller_ip = "Only messages published from this IP address.",
  label = "Only messages with this label.",
  flow_control_key = "Only messages with this flow-control key.",
}

local function add_filters(cmd, label_flag)
  for _, f in ipairs(FILTERS) do
    local flag, key, metavar, convert, single = f[1], f[2], f[3], f[4], f[5]
    if key == "label" then flag = label_flag end
    local opt = cmd:option(flag, FILTER_HELP[key] .. (single and "" or " Repeatable."))
      :argname(metavar):target("f_" .. key)
    if convert then opt:convert(convert) end
    if not single then opt:count("*") end
  end
end

local function filter_from(args)
  local filter, any = {}, false
  for _, f in ipairs(FILTERS) do
    local key, single = f[2], f[5]
    local v = args["f_" .. key]
    if single then
      if v ~= nil then filter[key], any = v, true end
    else
      v = one_or_many(v)
      if v ~= nil then filter[key], any = v, true end
    end
  end
  return filter, any
end

local function add_help(cmd, state)
  cmd:add_help {
    action = function()
      state.help = cmd:get_help()
      error("help requested", 0)
    end,
  }
end

local RETRY_EPILOG = [[
Every option overrides the stored message's setting for this retry; an option
left out keeps the stored value. Durations are whole seconds (10) or QStash
durations (10s, 1m, 2h30m).

Without IDs, --all retries every message and filter flags retry the matching
ones (--filter-label filters by label; --label sets the retried message's label).
Nothing is retried without IDs, --all or a filter.]]

local function build_parser(state)
  local parser = argparse(PROG)
    :description "Inspect, retry and delete the messages of a QStash dead-letter queue (DLQ)."
    :epilog [[
Configuration comes from QSTASH_TOKEN and QSTASH_URL (or QSTASH_REGION with
<REGION>_QSTASH_URL/_TOKEN); QSTASH_DEV=1 or --dev targets the local emulator
on port QSTASH_DEV_PORT (default 8080).

Exit status: 0 success, 1 a request failed, 2 usage error.
Run 'qstash-dlq <command> --help' for the options of a command.]]
  add_help(parser, state)
  parser:command_target "command"
  parser:flag("--dev", "Target the local QStash emulator (QSTASH_DEV_PORT, default 8080).")
  parser:option("--url --base-url", "QStash API base URL (default: QSTASH_URL or https://qstash.upstash.io)." ..
    " Give --url before the command: after it --url is a filter; --base-url works anywhere.")
    :argname "<url>" :target "base_url"
  parser:option("--timeout --http-timeout", "Limit for one HTTP attempt, in seconds (default 30)." ..
    " Give --timeout before the command: for retry it is the message's delivery timeout;" ..
    " --http-timeout works anywhere.")
    :argname "<seconds>" :target "http_timeout" :convert(conv_seconds)

  -- list
  local list = parser:command("list ls", "List the messages in the DLQ.")
  add_help(list, state)
  add_filters(list, "--label --filter-label")
  list:flag("--json", "Print one JSON object per message and line.")
  list:option("--count", "Messages per page (1-100).") :argname "<n>" :convert(conv_count)
  list:option("--cursor", "Continue from this cursor (printed on stderr by a previous list).")
    :argname "<cursor>"
  list:flag("--all-pages", "Follow the cursor through every page.") :target "all_pages"

  -- get
  local get = parser:command("get show", "Print DLQ messages as JSON.")
  add_help(get, state)
  get:argument("dlq-id", "DLQ ids.") :args "+" :target "ids"

  -- retry
  local retry = parser:command("retry", "Deliver DLQ messages again (removes them from the DLQ).")
    :epilog(RETRY_EPILOG)
  add_help(retry, state)
  retry:argument("dlq-id", "DLQ ids to retry.") :args "*" :target "ids"
  retry:flag("--all", "Retry every message in the DLQ.")
  retry:option("--file", "Read DLQ ids from this file, one per line ('-' for stdin; blank lines and # comments skipped).")
    :argname "<path>"
  retry:option("--concurrency", "Retries of given ids in flight at once (1-1024, default 16).")
    :argname "<n>" :convert(conv_concurrency)
  add_filters(retry, "--filter-label")
  retry:option("--retries", "Delivery retries (Upstash-Retries).") :argname "<n>" :convert(conv_uint("--retries"))
  retry:option("--delay", "Delay before delivery (Upstash-Delay).") :argname "<duration>"
    :convert(conv_duration("--delay"))
  retry:option("--retry-delay", "Delay between retries, a math expression such as '1000 * pow(2, retried)'" ..
    " (Upstash-Retry-Delay).") :argname "<expr>" :target "retry_delay"
  retry:option("--not-before", "Deliver not before this unix time in seconds (Upstash-Not-Before).")
    :argname "<unix>" :target "not_before" :convert(conv_uint("--not-before"))
  retry:option("--timeout", "Delivery timeout (Upstash-Timeout).") :argname "<duration>"
    :target "msg_timeout" :convert(conv_duration("--timeout"))
  retry:option("--method", "HTTP method of the delivery: GET, POST, PUT, PATCH or DELETE (Upstash-Method).")
    :argname "<method>"
  retry:option("--callback", "Callback URL (Upstash-Callback).") :argname "<url>"
  retry:option("--failure-callback", "Failure callback URL (Upstash-Failure-Callback).") :argname "<url>"
    :target "failure_callback"
  for _, prefix in ipairs { "callback", "failure-callback" } do
    local t = prefix:gsub("%-", "_")
    local what = prefix == "callback" and "callback" or "failure callback"
    retry:option("--" .. prefix .. "-method", "HTTP method of the " .. what .. ".") :argname "<method>"
      :target(t .. "_method")
    retry:option("--" .. prefix .. "-timeout", "Timeout of the " .. what .. ".") :argname "<duration>"
      :target(t .. "_timeout") :convert(conv_duration("--" .. prefix .. "-timeout"))
    retry:option("--" .. prefix .. "-retries", "Retries of the " .. what .. ".") :argname "<n>"
      :target(t .. "_retries") :convert(conv_uint("--" .. prefix .. "-retries"))
    retry:option("--" .. prefix .. "-retry-delay", "Retry delay expression of the " .. what .. ".")
      :argname "<expr>" :target(t .. "_retry_delay")
    retry:option("--" .. prefix .. "-header", "Header forwarded with the " .. what .. ". Repeatable.")
      :argname "<'Name: value'>" :target(t .. "_header") :count "*" :convert(conv_header)
  end
  retry:option("--dedup-id", "Deduplication id (Upstash-Deduplication-Id).") :argname "<id>" :target "dedup_id"
  retry:flag("--content-dedup", "Content-based deduplication (Upstash-Content-Based-Deduplication: true).")
    :target "content_dedup"
  retry:flag("--no-content-dedup", "Turn content-based deduplication off (sends false).")
    :target "no_content_dedup"
  retry:option("--label", "Label of the retried message (Upstash-Label). Repeatable.") :argname "<label>"
    :target "label" :count "*"
  retry:option("--header", "Header forwarded to the destination (Upstash-Forward-<Name>). Repeatable.")
    :argname "<'Name: value'>" :target "header" :count "*" :convert(conv_header)
  retry:option("--flow-key", "Flow-control key (Upstash-Flow-Control-Key).") :argname "<key>" :target "flow_key"
  retry:option("--flow-parallelism", "Flow control: deliveries in flight at once.") :argname "<n>"
    :target "flow_parallelism" :convert(conv_uint("--flow-parallelism"))
  retry:option("--flow-rate", "Flow control: deliveries per period.") :argname "<n>" :target "flow_rate"
    :convert(conv_uint("--flow-rate"))
  retry:option("--flow-period", "Flow control: the rate's period.") :argname "<duration>"
    :target "flow_period" :convert(conv_duration("--flow-period"))
  retry:flag("--redact-body", "Redact the body in logs and the console (Upstash-Redact-Fields).")
    :target "redact_body"
  retry:option("--redact-header", "Redact this header. Repeatable.") :argname "<name>"
    :target "redact_header" :count "*"
  retry:flag("--redact-all-headers", "Redact every header.") :target "redact_all_headers"

  -- delete
  local delete = parser:command("delete rm", "Remove messages from the DLQ without delivering them.")
    :epilog "Nothing is deleted without IDs, --all or a filter."
  add_help(delete, state)
  delete:argument("dlq-id", "DLQ ids to delete.") :args "*" :target "ids"
  delete:flag("--all", "Delete every message in the DLQ.")
  add_filters(delete, "--label --filter-label")

  return parser
end

---------------------------------------------------------------- options for a retry

local function header_map(list)
  if list == nil or #list == 0 then return nil end
  local map = {}
  for _, nv in ipairs(list) do
    local name, value = nv[1], nv[2]
    if map[name] == nil then
      map[name] = value
    else
      map[name] = map[name] .. ", " .. value  -- repeated header: one comma-joined field
    end
  end
  return map
end

local function callback_options(a, t)
  local o = {
    method = a[t .. "_method"],
    timeout = a[t .. "_timeout"],
    retries = a[t .. "_retries"],
    retry_delay = a[t .. "_retry_delay"],
    headers = header_map(a[t .. "_header"]),
  }
  if next(o) == nil then return nil end
  return o
end

local function retry_opts(a)
  local o = {
    retries = a.retries,
    delay = a.delay,
    retry_delay = a.retry_delay,
    not_before = a.not_before,
    timeout = a.msg_timeout,
    method = a.method,
    callback = a.callback,
    failure_callback = a.failure_callback,
    callback_options = callback_options(a, "callback"),
    failure_callback_options = callback_options(a, "failure_callback"),
    deduplication_id = a.dedup_id,
    label = one_or_many(a.label),
    headers = header_map(a.header),
  }
  if a.content_dedup and a.no_content_dedup then
    return nil, "--content-dedup and --no-content-dedup exclude each other"
  elseif a.content_dedup then
    o.content_based_deduplication = true
  elseif a.no_content_dedup then
    o.content_based_deduplication = false
  end
  if a.flow_key or a.flow_parallelism or a.flow_rate or a.flow_period then
    if not a.flow_key then return nil, "--flow-parallelism, --flow-rate and --flow-period need --flow-key" end
    o.flow_control = { key = a.flow_key, parallelism = a.flow_parallelism, rate = a.flow_rate,
      period = a.flow_period }
  end
  local names = a.redact_header
  if a.redact_body or a.redact_all_headers or (names and #names > 0) then
    o.redact = { body = a.redact_body or nil }
    if a.redact_all_headers then
      o.redact.header = true
    elseif names and #names > 0 then
      o.redact.header = names
    end
  end
  return o
end
M.retry_opts = retry_opts

---------------------------------------------------------------- output

local function iso_utc(ms)
  if type(ms) ~= "number" then return "" end
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(ms / 1000))
end

local COLUMNS = { "DLQ ID", "MESSAGE ID", "STATUS", "URL", "CREATED" }

-- Control bytes from the server never reach the terminal.
local function cell(v)
  if v == nil then return "" end
  return (tostring(v):gsub("%c", "?"))
end

local function row_of(m)
  return {
    cell(m.dlqId),
    cell(m.messageId),
    cell(m.responseStatus),
    cell(m.url or m.topicName),
    iso_utc(m.createdAt),
  }
end

local function print_table(out, messages)
  local rows = { COLUMNS }
  for _, m in ipairs(messages) do rows[#rows + 1] = row_of(m) end
  local widths = {}
  for _, r in ipairs(rows) do
    for i, c in ipairs(r) do
      if not widths[i] or #c > widths[i] then widths[i] = #c end
    end
  end
  for _, r in ipairs(rows) do
    local cells = {}
    for i, c in ipairs(r) do
      cells[i] = i < #r and c .. (" "):rep(widths[i] - #c) or c
    end
    out:write(table.concat(cells, "  "), "\n")
  end
end

-- A JSON object with one sorted top-level key per line; every key and value is
-- encoded by cjson.
local function pretty(v)
  if type(v) ~= "table" then return encode(v) end
  local keys = {}
  for k in pairs(v) do
    if type(k) ~= "string" then return encode(v) end
    keys[#keys + 1] = k
  end
  if #keys == 0 then return "{}" end
  table.sort(keys)
  local lines = {}
  for i, k in ipairs(keys) do
    lines[i] = "  " .. encode(k) .. ": " .. encode(v[k]) .. (i < #keys and "," or "")
  end
  return "{\n" .. table.concat(lines, "\n") .. "\n}"
end

---------------------------------------------------------------- run context

local Run = {}
Run.__index = Run

function Run:out(...)
  self:clear_progress()  -- stdout may be the same terminal
  self.stdout:write(...)
end

function Run:err(...)
  self:clear_progress()
  self.stderr:write(PROG, ": ", ...)
  self.stderr:write("\n")
end

-- An error raised by the module: a structured error (request failed, exit 1) or
-- a "bad argument" string (the command line gave it something invalid: exit 2).
function Run:failure(err, context)
  local prefix = context and (context .. ": ") or ""
  self:err(prefix, tostring(err))
  if type(err) == "string" and err:find("bad argument", 1, true) then return EXIT_USAGE end
  return EXIT_FAIL
end

function Run:tty()
  if self.is_tty == nil then
    local a, _, c = os.execute("test -t 2")
    if type(a) == "number" then self.is_tty = a == 0 else self.is_tty = a == true and (c == nil or c == 0) end
  end
  return self.is_tty
end

function Run:progress(verb, done, total)
  if not self:tty() then return end
  local width = 30
  local line
  if total then
    local filled = total > 0 and math.floor(width * done / total) or width
    line = ("%s [%s%s] %d/%d"):format(verb, ("#"):rep(filled), ("."):rep(width - filled), done, total)
  else
    line = ("%s: %s"):format(verb, plural(done, "message"))
  end
  self.stderr:write("\r", line, "\27[K")
  self.progress_shown = true
end

function Run:clear_progress()
  if self.progress_shown then
    self.stderr:write("\r\27[K")
    self.progress_shown = false
  end
end

function Run:summary(text)
  self:clear_progress()
  self.stderr:write(text, "\n")
end

-- Calls client[method](client, ...) under pcall.
function Run:call(method, ...)
  local client = self.client
  return pcall(client[method], client, ...)
end

---------------------------------------------------------------- commands

local commands = {}

function commands.list(run, a)
  local params = filter_from(a)
  params.count = a.count
  params.cursor = a.cursor
  local messages, cursor = {}, nil
  if a.all_pages then
    local ok, err = pcall(function()
      for m in run.client:dlq_messages(params) do
        if a.json then run:out(encode(m), "\n") else messages[#messages + 1] = m end
      end
    end)
    if not ok then
      if not a.json and #messages > 0 then print_table(run.stdout, messages) end
      return run:failure(err)
    end
  else
    local ok, res = run:call("dlq_list", params)
    if not ok then return run:failure(res) end
    cursor = res.cursor
    for _, m in ipairs(res.messages or {}) do
      if a.json then run:out(encode(m), "\n") else messages[#messages + 1] = m end
    end
  end
  if not a.json then print_table(run.stdout, messages) end
  if cursor ~= nil and cursor ~= "" then
    run.stderr:write("next cursor: ", tostring(cursor), "\n")
  end
  return EXIT_OK
end

-- Calls method(id) for each id, handing results to done(id, res); a failure is
-- reported and the rest go on. Returns the exit status.
local function each_id(run, ids, method, done)
  local status = EXIT_OK
  for _, id in ipairs(ids) do
    local ok, res = run:call(method, id)
    if ok then
      done(id, res)
    else
      local code = run:failure(res, id)
      if code == EXIT_USAGE then return code end
      status = EXIT_FAIL
    end
  end
  return status
end

function commands.get(run, a)
  return each_id(run, a.ids, "dlq_get", function(_, res) run:out(pretty(res), "\n") end)
end

-- The ids of every message matching filter, page by page.  Taken before any
-- change so that messages entering the DLQ meanwhile (a retried message may fail
-- again) are not picked up, and no cursor is used across a change.
local function snapshot(run, filter)
  local ids, cursor = {}, nil
  repeat
    local params = {}
    for k, v in pairs(filter) do params[k] = v end
    params.count, params.cursor = PAGE, cursor
    local ok, res = run:call("dlq_list", params)
    if not ok then return nil, res end
    for _, m in ipairs(res.messages or {}) do ids[#ids + 1] = m.dlqId end
    cursor = res.cursor
    if cursor == "" then cursor = nil end
    run:progress("scanning", #ids)
  until cursor == nil
  return ids
end

local function batches(ids)
  local out = {}
  for i = 1, #ids, PAGE do
    out[#out + 1] = { unpack(ids, i, math.min(i + PAGE - 1, #ids)) }
  end
  return out
end

-- Positional ids and filters/--all exclude each other; one of them is needed.
local function selection(a, verb)
  local filter, any = filter_from(a)
  local seen, ids = {}, {}
  for _, id in ipairs(a.ids) do  -- an id given twice is handled once
    if not seen[id] then seen[id], ids[#ids + 1] = true, id end
  end
  a.ids = ids
  local n = #ids
  if n > 0 and (any or a.all) then
    return nil, ("give either DLQ ids or --all/filters to %s, not both"):format(verb)
  end
  if n == 0 and not any and not a.all then
    return nil, ("nothing to %s: give DLQ ids, --all, or filter flags")
      :format(verb)
  end
  if a.all and any then
    return nil, ("--all and filter flags exclude each other: use one of them")
  end
  return filter
end

local function retry_one(run, id, opts)
  local ok, res = run:call("dlq_retry", id, opts)
  if not ok then return false, res end
  run:out(id, " -> ", tostring(res.messageId), res.deduplicated and " (deduplicated)" or "", "\n")
  return true
end

-- Checks done before any client exists: usage errors come first.
local checks = {}

-- DLQ ids from a file (or stdin with "-"), one per line.
local function read_ids(path)
  local f, err
  if path == "-" then f = io.stdin else f, err = io.open(path, "r") end
  if not f then return nil, "cannot read --file: " .. tostring(err) end
  local ids = {}
  for line in f:lines() do
    line = trim(line)
    if line ~= "" and line:sub(1, 1) ~= "#" then ids[#ids + 1] = line end
  end
  if f ~= io.stdin then f:close() end
  return ids
end

function checks.retry(a)
  local opts, why = retry_opts(a)
  if not opts then return why end
  if a.file then
    local ids, ferr = read_ids(a.file)
    if not ids then return ferr end
    for _, id in ipairs(ids) do a.ids[#a.ids + 1] = id end
    if #a.ids == 0 then return "--file holds no DLQ ids" end
  end
  local filter, why2 = selection(a, "retry")
  if not filter then return why2 end
  a.opts, a.filter = opts, filter
end

function checks.delete(a)
  local filter, why = selection(a, "delete")
  if not filter then return why end
  a.filter = filter
end

function commands.retry(run, a)
  local opts, filter = a.opts, a.filter

  local status = EXIT_OK
  if #a.ids > 0 then
    -- many ids at once over the client's connections (dlq_retry_each)
    local total = #a.ids
    local ok, res = run:call("dlq_retry_each", a.ids, opts, {
      concurrency = a.concurrency or 16,
      on_result = function(id, r, err)
        if r then
          run:clear_progress()
          run:out(id, " -> ", tostring(r.messageId), r.deduplicated and " (deduplicated)" or "", "\n")
        else
          run:failure(err, id)
        end
      end,
      on_progress = function(done) if total > 1 then run:progress("retrying", done, total) end end,
    })
    if not ok then return run:failure(res) end
    if total > 1 then
      run:summary(("retried %d of %s"):format(res.ok, plural(total, "message")))
    end
    return res.failed == 0 and EXIT_OK or EXIT_FAIL
  end

  local ids, err = snapshot(run, filter)
  if not ids then return run:failure(err) end
  local total, done = #ids, 0
  run:progress("retrying", 0, total)
  for _, batch in ipairs(batches(ids)) do
    local ok, res = run:call("dlq_retry_many", batch, opts)
    if ok then
      local responses = res.responses or {}
      for i, r in ipairs(responses) do
        local label = #responses == #batch and batch[i] or "?"
        run:out(label, " -> ", tostring(r.messageId), r.deduplicated and " (deduplicated)" or "", "\n")
      end
      done = done + #responses
    elseif type(res) == "table" and res.kind == "not_found" then
      -- some were retried or deleted meanwhile: go through this batch one by one
      for _, id in ipairs(batch) do
        local one_ok, one_err = retry_one(run, id, opts)
        if one_ok then
          done = done + 1
        else
          local code = run:failure(one_err, id)
          if code == EXIT_USAGE then return code end
          status = EXIT_FAIL
        end
      end
    else
      local code = run:failure(res)
      if code == EXIT_USAGE then return code end
      run:summary(("retried %d of %s"):format(done, plural(total, "message")))
      return EXIT_FAIL
    end
    run:progress("retrying", done, total)
  end
  if status == EXIT_OK then
    run:summary("retried " .. plural(done, "message"))
  else
    run:summary(("retried %d of %s"):format(done, plural(total, "message")))
  end
  return status
end

function commands.delete(run, a)
  local filter = a.filter

  local status = EXIT_OK
  if #a.ids > 0 then
    return each_id(run, a.ids, "dlq_delete", function(id) run:out("deleted ", id, "\n") end)
  end

  local ids, err = snapshot(run, filter)
  if not ids then return run:failure(err) end
  local total, done = #ids, 0
  run:progress("deleting", 0, total)
  for _, batch in ipairs(batches(ids)) do
    local ok, res = run:call("dlq_delete_many", batch)
    if not ok then
      local code = run:failure(res)
      if code == EXIT_USAGE then return code end
      run:summary(("deleted %d of %s"):format(done, plural(total, "message")))
      return EXIT_FAIL
    end
    done = done + (tonumber(res.deleted) or #batch)
    run:progress("deleting", done, total)
  end
  run:summary("deleted " .. plural(done, "message"))
  return status
end

---------------------------------------------------------------- main

local COMMAND_NAMES = { list = "list", ls = "list", get = "get", show = "get", retry = "retry",
  delete = "delete", rm = "delete" }

function Run:usage(msg)
  self:err(msg)
  self.stderr:write(("Try '%s --help' for more information.\n"):format(self.help_for))
  return EXIT_USAGE
end

function M.main(argv, env)
  env = env or {}
  local args = {}
  for i = 1, #(argv or {}) do args[i] = argv[i] end

  local state = {}
  local parser = build_parser(state)
  local run = setmetatable({
    stdout = env.stdout or io.stdout,
    stderr = env.stderr or io.stderr,
    is_tty = env.is_tty,
  }, Run)

  -- where to point for help after a usage error (argparse reports only a message)
  run.help_for = PROG
  for _, arg in ipairs(args) do
    if COMMAND_NAMES[arg] then
      run.help_for = PROG .. " " .. COMMAND_NAMES[arg]
      break
    end
  end

  local ok, parsed_ok, parsed = pcall(parser.pparse, parser, args)
  if state.help then
    run:out(state.help, "\n")
    return EXIT_OK
  end
  if not ok then error(parsed_ok, 0) end
  if not parsed_ok then return run:usage(parsed) end
  local check = checks[parsed.command]
  local why = check and check(parsed)
  if why then return run:usage(why) end

  local qstash = env.qstash
  if qstash == nil then
    local found, mod = pcall(require, "qstash")
    if not found then
      run:err("cannot load the qstash module: ", tostring(mod))
      return EXIT_FAIL
    end
    qstash = mod
  end
  local config = {}
  if parsed.dev then config.dev = true end
  if parsed.base_url then config.base_url = parsed.base_url end
  if parsed.http_timeout then config.timeout = parsed.http_timeout end
  local made, client = pcall(qstash.new, config)
  if not made then return run:failure(client) end
  run.client = client

  local status = commands[parsed.command](run, parsed)
  run:clear_progress()
  if client.close then pcall(client.close, client) end
  return status
end

return M
