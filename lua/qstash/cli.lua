-- qstash.cli: the operators' command line for a QStash dead-letter queue.
--
--   local cli = require "qstash.cli"
--   os.exit(cli.main(arg), true)
--
-- main(argv, env) parses argv (an array of strings), runs one command and
-- returns the exit status: 0 success, 1 a request failed, 2 usage error,
-- 3 pause/resume left a source unchanged, 130 interrupted (Ctrl-C).
-- env (optional) replaces the process' surroundings, for tests and embedding:
--   env.stdout, env.stderr   objects with :write() (default io.stdout/io.stderr)
--   env.is_tty               boolean: is stderr a terminal (default: `test -t 2`)
--   env.qstash               the client module (default: require "qstash")
--   env.sleep                function(seconds), for 429 pauses (default: sleep(1))
--   env.now_ms               function() -> unix ms, for stats' age bands
--
-- The parts: cli/flags.lua (the flag scheme and parser), cli/convert.lua
-- (argument values), cli/context.lua (streams, progress, failures, 429s),
-- cli/scan.lua (reading pages), cli/plan.lua (selection and dry runs),
-- cli/read.lua (list, get, stats, export), cli/retry.lua, cli/delete.lua,
-- cli/logs.lua (a message's history), cli/report.lua (--report), cli/jsonl.lua (files and fsync), cli/stats.lua,
-- cli/kinds.lua (the sources of DLQ entries), cli/sources.lua, cli/pause.lua (pause and resume).
--
-- The interpreter's own streams are never closed and os.exit is never called
-- here: bin/qstash-dlq does that.

local flags = require "qstash.cli.flags"
local convert = require "qstash.cli.convert"
local context = require "qstash.cli.context"
local plan = require "qstash.cli.plan"
local jsonl = require "qstash.cli.jsonl"
local report = require "qstash.cli.report"
local read = require "qstash.cli.read"
local retry = require "qstash.cli.retry"
local delete = require "qstash.cli.delete"
local logs = require "qstash.cli.logs"
local sources = require "qstash.cli.sources"
local pause = require "qstash.cli.pause"

local EXIT_OK, EXIT_FAIL, EXIT_USAGE = context.EXIT_OK, context.EXIT_FAIL, context.EXIT_USAGE

local M = { _NAME = flags.PROG, EXIT_OK = EXIT_OK, EXIT_FAIL = EXIT_FAIL, EXIT_USAGE = EXIT_USAGE,
  EXIT_UNCHANGED = pause.EXIT_UNCHANGED }
M.iso_to_ms = convert.iso_to_ms
M.retry_opts = flags.retry_opts

-- The client's retries: the module's defaults, except that it sleeps through
-- a 429 itself only when the wait is at most half a second; a longer one
-- comes back as `rate_limited` and the command waits it out on the progress
-- line (context.lua). With attempts 4 and base 0.2 the backoff caps are
-- 0.2, 0.4 and 0.5 s (the default's 0.8 s otherwise).
M.RETRY = { attempts = 4, base_delay = 0.2, max_delay = 0.5 }

local COMMAND_NAMES = { list = "list", ls = "list", get = "get", show = "get", stats = "stats",
  export = "export", retry = "retry", delete = "delete", rm = "delete", logs = "logs", sources = "sources",
  pause = "pause", resume = "resume" }

local commands = {
  list = read.list, get = read.get, stats = read.stats, retry = retry.run, delete = delete.run, logs = logs.run,
  sources = sources.run, pause = pause.pause, resume = pause.resume,
  export = function(ctx, a) return read.export(ctx, a, a.output_writer) end,
}

-- Checks made before any client exists: usage errors come first, and files
-- are opened (a bad path is a usage error) before anything is sent.
local checks = {}

function checks.export(a)
  local why = plan.check(a, "export", false)
  if why then return why end
  local w, err = jsonl.open(a.output or "-", { fresh = true, private = true, durable = true })
  if not w then return err end
  a.output_writer = w
end

local function open_report(a, command, now_ms)
  local r, err = report.open((not a.dry_run) and a.report or nil, command, now_ms)
  if not r then return err end
  a.report_writer = r
end

function checks.retry(a, now_ms)
  local opts, why = flags.retry_opts(a)
  if not opts then return why end
  a.opts = opts
  a.follow_opts, why = flags.follow_opts(a)
  if why then return why end
  why = plan.check(a, "retry", true)
  if why then return why end
  return open_report(a, "retry", now_ms)
end

function checks.delete(a, now_ms)
  local why = plan.check(a, "delete", true)
  if why then return why end
  if a.backup and a.backup == a.report then return "--backup and --report need two different files" end
  if a.backup and not a.dry_run then
    local w, err = jsonl.open(a.backup, { private = true, durable = true })
    if not w then return err end
    a.backup_writer = w
  end
  return open_report(a, "delete", now_ms)
end

for _, verb in ipairs { "pause", "resume" } do
  checks[verb] = function(a, now_ms)
    local why = pause.check(a, verb)
    if why then return why end
    return open_report(a, verb, now_ms)
  end
end

-- argparse reports a misspelt flag; for the two that meant two things
-- before, say what to use instead.
local function with_hint(msg)
  local flag = tostring(msg):match("unknown option '([^']+)'")
  local hint = flag and flags.HINTS[flag:match("^[^=]*")]
  if hint then return msg .. "\n" .. flags.PROG .. ": " .. hint end
  return msg
end

local function usage(ctx, help_for, msg)
  ctx:err(msg)
  ctx.stderr:write(("Try '%s --help' for more information.\n"):format(help_for))
  return EXIT_USAGE
end

local function make_client(ctx, qstash, parsed)
  local config = { retry = M.RETRY }
  if parsed.dev then config.dev = true end
  if parsed.api_url then config.base_url = parsed.api_url end
  if parsed.http_timeout then config.timeout = parsed.http_timeout end
  local made, client = pcall(qstash.new, config)
  if not made then return nil, ctx:fail(client) end
  return client
end

-- `qstash-dlq --version`: the module's _VERSION (src/base/version.h), the one
-- place the version is written, and the libcurl it runs on.
function M.version(ctx, env)
  local found, qstash = true, env.qstash
  if qstash == nil then found, qstash = pcall(require, "qstash") end
  if not found then
    ctx:err("cannot load the qstash module: ", tostring(qstash))
    return EXIT_FAIL
  end
  ctx:out(("%s %s\n"):format(flags.PROG, qstash._VERSION))
  return EXIT_OK
end

function M.main(argv, env)
  env = env or {}
  local args = {}
  for i = 1, #(argv or {}) do args[i] = argv[i] end
  local ctx = context.new(env)

  -- where to point for help after a usage error (argparse reports only a message)
  local help_for = flags.PROG
  for _, arg in ipairs(args) do
    if COMMAND_NAMES[arg] then
      help_for = flags.PROG .. " " .. COMMAND_NAMES[arg]
      break
    end
  end

  local state = {}
  local parser = flags.build(state)
  local ok, parsed_ok, parsed = pcall(parser.pparse, parser, args)
  if state.help then
    ctx:out(state.help, "\n")
    return EXIT_OK
  end
  if state.version then return M.version(ctx, env) end
  if not ok then error(parsed_ok, 0) end
  if not parsed_ok then return usage(ctx, help_for, with_hint(parsed)) end
  local check = checks[parsed.command]
  local why = check and check(parsed, ctx.now_ms)
  if not check then
    local _
    parsed.ids = parsed.ids or {}
    parsed.filter, _, why = flags.filter(parsed)
  end
  if why then return usage(ctx, help_for, why) end

  local qstash = env.qstash
  if qstash == nil then
    local found, mod = pcall(require, "qstash")
    if not found then
      ctx:err("cannot load the qstash module: ", tostring(mod))
      return EXIT_FAIL
    end
    qstash = mod
  end
  ctx.qstash = qstash
  local client, code = make_client(ctx, qstash, parsed)
  if not client then return code end
  ctx.client = client

  local status
  if parsed.command == "retry" then
    local valid, err = retry.validate(client, parsed.opts, parsed.follow_opts)
    if not valid then status = usage(ctx, help_for, "invalid --set-* settings: " .. tostring(err)) end
  end
  if status == nil then
    local ran, res = pcall(commands[parsed.command], ctx, parsed)
    if ran then
      status = res
    elseif context.is_failure(res) and res.fatal then
      status = ctx:fail(res)   -- a report, backup or export file could not be written
    elseif context.is_failure(context.classify(res)) then
      status = ctx:fail(context.classify(res)) -- Ctrl-C between two calls: exit 130
    else
      error(res, 0)
    end
  end
  ctx:clear_progress()
  if client.close then pcall(client.close, client) end
  return status
end

return M
