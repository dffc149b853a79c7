-- qstash.cli.flags: the command line's flag scheme and its parser.
--
-- One flag, one meaning, in every position and every command:
--   * filters choose DLQ entries and are spelled the same in list, stats,
--     export, retry and delete (FILTERS);
--   * what retry sets on the new message starts with --set- (SETTERS), so no
--     setting reads like a filter (--label filters, --set-label sets);
--   * connection flags have names of their own and work anywhere (GLOBALS).
-- Old spellings stay as hidden aliases only where they cannot be misread:
-- --base-url, --filter-label and the setters' unprefixed names. --timeout and
-- --url before the command (which meant two things each) are gone: HINTS
-- says what to use instead.

local argparse = require "argparse"
local C = require "qstash.cli.convert"
local match = require "qstash.cli.match"

local M = {}

M.PROG = "qstash-dlq"

M.GLOBALS = {
  { flag = "--api-url", alias = "--base-url", target = "api_url", arg = "<url>",
    help = "QStash API base URL (default: QSTASH_URL, or https://qstash.upstash.io)." },
  { flag = "--http-timeout", target = "http_timeout", arg = "<seconds>", convert = C.seconds("--http-timeout"),
    help = "Limit for one HTTP attempt, in seconds (default 30)." },
  { flag = "--dev", target = "dev", switch = true,
    help = "Target the local QStash emulator (QSTASH_DEV_PORT, default 8080)." },
}

-- key: the dlq_list/dlq_delete_many filter key. All but --message-id, --from
-- and --to may be repeated (QStash ORs the values of one filter).
M.FILTERS = {
  { flag = "--message-id", key = "message_id", arg = "<id>", single = true,
    help = "Only the message with this message id." },
  { flag = "--url", key = "url", arg = "<url>", help = "Only messages sent to this destination URL." },
  { flag = "--url-group", key = "url_group", arg = "<name>", help = "Only messages published to this URL group." },
  { flag = "--schedule-id", key = "schedule_id", arg = "<id>", help = "Only messages created by this schedule." },
  { flag = "--queue", key = "queue_name", arg = "<name>", help = "Only messages of this queue." },
  { flag = "--from", key = "from_date", arg = "<time>", single = true, convert = C.time("--from"),
    help = "Only messages created at or after this time (unix ms or ISO-8601, UTC unless an offset is given)." },
  { flag = "--to", key = "to_date", arg = "<time>", single = true, convert = C.time("--to"),
    help = "Only messages created at or before this time (unix ms or ISO-8601)." },
  { flag = "--status", key = "response_status", arg = "<code>", convert = C.status,
    help = "Only messages whose last delivery got this HTTP status." },
  { flag = "--caller-ip", key = "caller_ip", arg = "<ip>", help = "Only messages published from this IP address." },
  { flag = "--label", alias = "--filter-label", key = "label", arg = "<label>",
    help = "Only messages with this label." },
  { flag = "--flow-control-key", key = "flow_control_key", arg = "<key>",
    help = "Only messages with this flow-control key." },
}

-- What pause and resume take: the filters' spellings of the sources that can
-- be paused; target is the argparse result key (cli/kinds.lua's rows).
M.SOURCES = {
  { flag = "--schedule-id", arg = "<id>", target = "schedule_id", what = "schedule" },
  { flag = "--queue", arg = "<name>", target = "queue_name", what = "queue" },
  { flag = "--flow-control-key", arg = "<key>", target = "flow_control_key", what = "flow-control key" },
}

-- What retry sets on the new message; target is the argparse result key.
local SETTERS = {
  { flag = "--set-retries", alias = "--retries", arg = "<n>", conv = C.uint,
    help = "Delivery retries (Upstash-Retries)." },
  { flag = "--set-delay", alias = "--delay", arg = "<duration>", conv = C.duration,
    help = "Delay before delivery (Upstash-Delay)." },
  { flag = "--set-retry-delay", alias = "--retry-delay", arg = "<expr>",
    help = "Delay between retries, a math expression such as '1000 * pow(2, retried)' (Upstash-Retry-Delay)." },
  { flag = "--set-not-before", alias = "--not-before", arg = "<unix>", conv = C.uint,
    help = "Deliver not before this unix time in seconds (Upstash-Not-Before)." },
  { flag = "--set-timeout", arg = "<duration>", conv = C.duration, help = "Delivery timeout (Upstash-Timeout)." },
  { flag = "--set-method", alias = "--method", arg = "<method>",
    help = "HTTP method of the delivery: GET, POST, PUT, PATCH or DELETE (Upstash-Method)." },
  { flag = "--set-callback", alias = "--callback", arg = "<url>", help = "Callback URL (Upstash-Callback)." },
  { flag = "--set-failure-callback", alias = "--failure-callback", arg = "<url>",
    help = "Failure callback URL (Upstash-Failure-Callback)." },
}
for _, prefix in ipairs { "callback", "failure-callback" } do
  local what = prefix == "callback" and "callback" or "failure callback"
  local rows = {
    { "method", "<method>", nil, "HTTP method of the " .. what .. "." },
    { "timeout", "<duration>", C.duration, "Timeout of the " .. what .. "." },
    { "retries", "<n>", C.uint, "Retries of the " .. what .. "." },
    { "retry-delay", "<expr>", nil, "Retry delay expression of the " .. what .. "." },
    { "header", "<'Name: value'>", C.header, "Header forwarded with the " .. what .. ". Repeatable.", true },
  }
  for _, r in ipairs(rows) do
    SETTERS[#SETTERS + 1] = { flag = "--set-" .. prefix .. "-" .. r[1], alias = "--" .. prefix .. "-" .. r[1],
      arg = r[2], conv = r[3], help = r[4], many = r[5] }
  end
end
for _, s in ipairs {
  { flag = "--set-dedup-id", alias = "--dedup-id", arg = "<id>",
    help = "Deduplication id (Upstash-Deduplication-Id)." },
  { flag = "--set-content-dedup", alias = "--content-dedup", switch = true,
    help = "Content-based deduplication on (Upstash-Content-Based-Deduplication: true)." },
  { flag = "--set-no-content-dedup", alias = "--no-content-dedup", switch = true,
    help = "Content-based deduplication off (sends false)." },
  { flag = "--set-label", arg = "<label>", many = true,
    help = "Label of the new message (Upstash-Label). Repeatable." },
  { flag = "--set-header", alias = "--header", arg = "<'Name: value'>", conv = C.header, many = true,
    help = "Header forwarded to the destination (Upstash-Forward-<Name>). Repeatable." },
  { flag = "--set-flow-key", alias = "--flow-key", arg = "<key>",
    help = "Flow-control key (Upstash-Flow-Control-Key)." },
  { flag = "--set-flow-parallelism", alias = "--flow-parallelism", arg = "<n>", conv = C.uint,
    help = "Flow control: deliveries in flight at once." },
  { flag = "--set-flow-rate", alias = "--flow-rate", arg = "<n>", conv = C.uint,
    help = "Flow control: deliveries per period." },
  { flag = "--set-flow-period", alias = "--flow-period", arg = "<duration>", conv = C.duration,
    help = "Flow control: the rate's period." },
  { flag = "--set-redact-body", alias = "--redact-body", switch = true,
    help = "Redact the body in logs and the console (Upstash-Redact-Fields)." },
  { flag = "--set-redact-header", alias = "--redact-header", arg = "<name>", many = true,
    help = "Redact this header. Repeatable." },
  { flag = "--set-redact-all-headers", alias = "--redact-all-headers", switch = true, help = "Redact every header." },
} do
  SETTERS[#SETTERS + 1] = s
end
for _, s in ipairs(SETTERS) do
  s.target = s.flag:sub(3):gsub("%-", "_")   -- "--set-flow-key" -> "set_flow_key"
  if s.conv then s.convert = s.conv(s.flag) end
end
M.SETTERS = SETTERS

-- Spellings that meant two things before: what to use now.
M.HINTS = {
  ["--timeout"] = "--http-timeout is the limit of one HTTP attempt; retry's delivery timeout is --set-timeout",
  ["--url"] = "the API base URL is --api-url; --url is a filter of list, stats, export, retry and delete",
}

---------------------------------------------------------------- building the parser

local function add(cmd, row, default_target)
  local opt
  if row.switch then
    opt = cmd:flag(row.flag, row.help)
  else
    opt = cmd:option(row.flag, row.help .. ((row.many and not row.help:find("Repeatable")) and " Repeatable." or ""))
      :argname(row.arg)
    if row.convert then opt:convert(row.convert) end
    if row.many then opt:count "*" end
  end
  opt:target(row.target or default_target)
  if row.alias then opt:hidden_name(row.alias) end
  return opt
end

local unpack = table.unpack or unpack -- luacheck: ignore

local function add_filters(cmd)
  local opts = {}
  for _, f in ipairs(M.FILTERS) do
    opts[#opts + 1] = add(cmd, { flag = f.flag, alias = f.alias, arg = f.arg, convert = f.convert,
      many = not f.single, help = f.help }, "filter_" .. f.key)
  end
  cmd:group("Filters (the same in list, stats, export, retry, delete and sources)", unpack(opts))
end

-- Which entries a state-changing command works on: ids, --file, or --all.
local function add_selection(cmd, verb, all)
  cmd:argument("dlq-id", "DLQ ids to " .. verb .. ".") :args "*" :target "ids"
  local file = cmd:option("--file",
    "Read DLQ ids from this file, one per line ('-' for stdin; blank lines and # comments skipped).")
    :argname "<path>"
  if all then
    cmd:group("Selection", file, cmd:flag("--all", "Every message in the DLQ (not together with filters)."))
  else
    cmd:group("Selection", file)
  end
end

local function add_rehearsal(cmd, verb, extra)
  local opts = {
    cmd:flag("--dry-run", ("List what would be %s (count, first ids with URL and status) and change nothing.")
      :format(verb)) :target "dry_run",
    cmd:option("--report", "Append one JSON line per DLQ id (the result or the error) and a summary line to FILE.")
      :argname "<file>" :convert(C.path("--report")),
  }
  if extra then opts[#opts + 1] = extra(cmd) end
  cmd:group("Rehearse and record", unpack(opts))
end

local function add_help(cmd, state)
  cmd:add_help {
    action = function()
      state.help = cmd:get_help()
      error("help requested", 0)
    end,
  }
end

local SCHEME = [[
Flags mean the same in every command and position:
  filters (list, stats, export, retry, delete, sources):
    --message-id --url --url-group --schedule-id --queue --from --to
    --status --caller-ip --label --flow-control-key
  what retry sets on the new message: --set-* (--set-label, --set-retries, ...)
  sources to pause or resume: --schedule-id --queue --flow-control-key
  following the new messages (retry): --follow --follow-timeout --follow-interval
  connection (before or after the command): --api-url --http-timeout --dev]]

function M.build(state)
  local parser = argparse(M.PROG)
    :description "See, rehearse, back up, retry and delete the messages of a QStash dead-letter queue (DLQ)."
    :epilog(SCHEME .. [[


Configuration comes from QSTASH_TOKEN and QSTASH_URL (or QSTASH_REGION with
<REGION>_QSTASH_URL/_TOKEN); QSTASH_DEV=1 or --dev targets the local emulator
on port QSTASH_DEV_PORT (default 8080).

Exit status: 0 success, 1 a request failed (or an outcome is unknown), 2 usage
error, 3 pause/resume left a source unchanged (already in that state, or it does
not exist), 130 interrupted (Ctrl-C; the ids in flight are reported as ambiguous).
Run 'qstash-dlq <command> --help' for the flags of a command.]])
  add_help(parser, state)
  -- the version is the module's (src/base/version.h): read when asked, after parsing
  parser:flag("--version", "Print the version of qstash-dlq and of the module, and exit.")
    :action(function()
      state.version = true
      error("version requested", 0)
    end)
  parser:command_target "command"
  for _, g in ipairs(M.GLOBALS) do add(parser, g) end

  local list = parser:command("list ls", "List the messages in the DLQ, one page or all.")
  add_help(list, state)
  add_filters(list)
  list:flag("--json", "Print one JSON object per message and line.")
  list:option("--count", "Messages per page (1-100).") :argname "<n>" :convert(C.count)
  list:option("--cursor", "Continue from this cursor (printed on stderr by a previous list).") :argname "<cursor>"
  list:flag("--all-pages", "Follow the cursor through every page.") :target "all_pages"

  local get = parser:command("get show", "Print DLQ messages as JSON.")
  add_help(get, state)
  get:argument("dlq-id", "DLQ ids.") :args "+" :target "ids"

  local stats = parser:command("stats", "Count the (filtered) DLQ by destination URL, last status, label and age.")
    :epilog "One pass over the pages; nothing is changed."
  add_help(stats, state)
  add_filters(stats)
  stats:flag("--json", "Print one JSON object instead of tables.")

  local export = parser:command("export", "Write the (filtered) messages whole, as JSON Lines.")
    :epilog [[
Each line is one DLQ message as the API returns it: body (or bodyBase64),
headers, the last response (status, headers, body) and the rest. Without ids
or filters every message is written. An existing non-empty file is never
overwritten.]]
  add_help(export, state)
  add_selection(export, "export")
  add_filters(export)
  export:option("--output -o", "Write to this file instead of stdout ('-').") :argname "<file>"
    :convert(C.path("--output", true))

  local retry = parser:command("retry", "Deliver DLQ messages again (each leaves the DLQ).")
    :epilog [[
Each --set-* flag overrides the stored message's setting for this retry; a
setting left out keeps the stored value. Durations are whole seconds (10) or
QStash durations (10s, 1m, 2h30m).

Given ids (or --file) are retried concurrently; --all or filters take a
snapshot of the matching ids first, then retry them 100 per request, so a
message that fails again and re-enters the DLQ is not picked up twice. Run the
same command again after an interruption: retried entries have left the DLQ.
Nothing is retried without ids, --all or a filter.

With --follow the command waits for each new message to end and prints
delivered, failed again (with the new DLQ id), cancelled or still pending;
it exits 1 unless every followed message was delivered.]]
  add_help(retry, state)
  add_selection(retry, "retry", true)
  add_filters(retry)
  add_rehearsal(retry, "retried", function(cmd)
    return cmd:option("--concurrency", "Retries of given ids in flight at once (1-1024, default 16).")
      :argname "<n>" :convert(C.concurrency)
  end)
  retry:group("Follow the new messages",
    retry:flag("--follow", "Wait for each new message to end (delivered, failed again, cancelled) and say which."),
    retry:option("--follow-timeout", "With --follow: stop waiting after this many seconds (default 60).")
      :argname "<seconds>" :convert(C.seconds("--follow-timeout")) :target "follow_timeout",
    retry:option("--follow-interval", "With --follow: seconds between two looks at the logs (default 1).")
      :argname "<seconds>" :convert(C.seconds("--follow-interval")) :target "follow_interval")
  local setters = {}
  for _, s in ipairs(M.SETTERS) do setters[#setters + 1] = add(retry, s) end
  retry:group("Settings of the new message (each overrides the stored one)", unpack(setters))

  local logs = parser:command("logs", "Print the history of one message (its log entries), oldest first.")
    :epilog [[
Each line is one log entry: its time (UTC), state (CREATED, ACTIVE, RETRY,
ERROR, DELIVERED, FAILED, CANCEL_REQUESTED, CANCELLED), the error of a failed
delivery, and when the next delivery is due. A message id, not a DLQ id: the
ids retry prints after the arrow.]]
  add_help(logs, state)
  logs:argument("message-id", "The message id (msg_...).") :target "message_id"
    :convert(C.message_id("the message id"))
  logs:flag("--json", "Print one JSON object per log entry and line.")

  local sources = parser:command("sources",
    "Show which schedules, queues, URL groups and flow-control keys the (filtered) DLQ came from, and their state.")
    :epilog [[
One pass over the pages (at most 1000 pages and 300 s), then one request per
source for its live state: a schedule paused or its next run, a queue paused
with its lag and parallelism, a flow-control key paused or pinned with its
parallelism and rate, a URL group's endpoints. A source that no longer exists
is shown as gone. Nothing is changed.]]
  add_help(sources, state)
  add_filters(sources)
  sources:flag("--json", "Print one JSON array: {kind, id or name, count, newest, state} per source.")

  for _, verb in ipairs { "pause", "resume" } do
    local cmd = parser:command(verb, verb == "pause"
      and "Pause schedules, queues or flow-control keys: stop what keeps feeding the DLQ."
      or "Resume paused schedules, queues or flow-control keys.")
      :epilog(([[
Each source named is read first; one that does not exist or is %s
is reported and left alone, and the command exits 3. Nothing is %s
without --schedule-id, --queue or --flow-control-key.]]):format(
        verb == "pause" and "already paused" or "not paused", verb == "pause" and "paused" or "resumed"))
    add_help(cmd, state)
    local opts = {}
    for _, row in ipairs(M.SOURCES) do
      opts[#opts + 1] = add(cmd, { flag = row.flag, arg = row.arg, many = true,
        help = ("%s this %s."):format(verb == "pause" and "Pause" or "Resume", row.what) }, row.target)
    end
    cmd:group("Sources (spelled as the filters)", unpack(opts))
    cmd:group("Rehearse and record",
      cmd:flag("--dry-run", ("Read each source's state and list what would be %s; change nothing.")
        :format(verb == "pause" and "paused" or "resumed")) :target "dry_run",
      cmd:option("--report", "Append one JSON line per source (the result or the error) and a summary line to FILE.")
        :argname "<file>" :convert(C.path("--report")))
  end

  local delete = parser:command("delete rm", "Remove messages from the DLQ without delivering them.")
    :epilog [[
With --backup FILE each message is appended whole to FILE (JSON Lines, as
export writes them) and the file is flushed to disk (fsync) before the request
that deletes it is sent; only messages written are deleted, so a crash at any
point leaves every deleted message in FILE.
Nothing is deleted without ids, --all or a filter.]]
  add_help(delete, state)
  add_selection(delete, "delete", true)
  add_filters(delete)
  add_rehearsal(delete, "deleted", function(cmd)
    return cmd:option("--backup", "Append each message whole to FILE, fsync'd, before deleting it.")
      :argname "<file>" :convert(C.path("--backup"))
  end)

  return parser
end

---------------------------------------------------------------- results

-- One value stays a string, several become an array (the module takes both).
local function one_or_many(list)
  if list == nil or #list == 0 then return nil end
  if #list == 1 then return list[1] end
  return list
end

-- Why the value of filter flag f cannot be sent, or nil: a value made only of
-- ',' and spaces would read as no filter (every message), and a ',' in a
-- one-value filter would name several messages.
local function refuse(f, v)
  if match.names_nothing(v) then
    return ("%s '%s' selects nothing: a value made only of ',' and spaces would match every message")
      :format(f.flag, v)
  end
  if f.single and type(v) == "string" and v:find(",", 1, true) then
    return ("%s takes one value, without ','"):format(f.flag)
  end
end

-- The dlq_list/dlq_delete_many filter of parsed arguments, whether any
-- filter flag was given, and a usage message for a value that selects nothing.
function M.filter(a)
  local filter, any, why = {}, false, nil
  for _, f in ipairs(M.FILTERS) do
    local v = a["filter_" .. f.key]
    for _, one in ipairs(type(v) == "table" and v or { v }) do why = why or refuse(f, one) end
    if not f.single then v = one_or_many(v) end
    if v ~= nil then filter[f.key], any = v, true end
  end
  return filter, any, why
end

-- The flag of a filter key ("label" -> "--label").
function M.filter_flag(key)
  for _, f in ipairs(M.FILTERS) do
    if f.key == key then return f.flag end
  end
  return key
end

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

-- The follow option of parsed --follow flags (nil without --follow), or
-- nil and a usage message.
function M.follow_opts(a)
  if not a.follow then
    if a.follow_timeout or a.follow_interval then
      return nil, "--follow-timeout and --follow-interval need --follow"
    end
    return nil
  end
  return { timeout = a.follow_timeout or 60, interval = a.follow_interval or 1 }
end

-- The dlq_retry options of parsed --set-* flags, or nil and a usage message.
function M.retry_opts(a)
  local o = {
    retries = a.set_retries,
    delay = a.set_delay,
    retry_delay = a.set_retry_delay,
    not_before = a.set_not_before,
    timeout = a.set_timeout,
    method = a.set_method,
    callback = a.set_callback,
    failure_callback = a.set_failure_callback,
    callback_options = callback_options(a, "set_callback"),
    failure_callback_options = callback_options(a, "set_failure_callback"),
    deduplication_id = a.set_dedup_id,
    label = one_or_many(a.set_label),
    headers = header_map(a.set_header),
  }
  if a.set_content_dedup and a.set_no_content_dedup then
    return nil, "--set-content-dedup and --set-no-content-dedup exclude each other"
  elseif a.set_content_dedup then
    o.content_based_deduplication = true
  elseif a.set_no_content_dedup then
    o.content_based_deduplication = false
  end
  if a.set_flow_key or a.set_flow_parallelism or a.set_flow_rate or a.set_flow_period then
    if not a.set_flow_key then
      return nil, "--set-flow-parallelism, --set-flow-rate and --set-flow-period need --set-flow-key"
    end
    o.flow_control = { key = a.set_flow_key, parallelism = a.set_flow_parallelism, rate = a.set_flow_rate,
      period = a.set_flow_period }
  end
  local names = a.set_redact_header
  if a.set_redact_body or a.set_redact_all_headers or (names and #names > 0) then
    o.redact = { body = a.set_redact_body or nil }
    if a.set_redact_all_headers then
      o.redact.header = true
    elseif names and #names > 0 then
      o.redact.header = names
    end
  end
  return o
end

return M
