-- qstash.cli.pause: `qstash-dlq pause` and `qstash-dlq resume` of the
-- sources named by --schedule-id, --queue and --flow-control-key (the
-- filters' own spellings), each repeatable.
--
-- Two phases, so that a rehearsal and a bad name change nothing: first each
-- source's state is read (one GET each); a source that does not exist, or is
-- already in the state asked for, is reported as unchanged (exit 3, never a
-- silent success); an argument error of the module (a name it refuses) is a
-- usage error before anything is sent. Then each remaining source is paused
-- or resumed (one POST each). --dry-run stops after the first phase.
--
-- Report lines (--report FILE, appended):
--   {"type":"paused","kind":"queue","name":"orders"}      ("resumed" for resume)
--   {"type":"unchanged","kind":"schedule","id":"scd_1","reason":"already_paused"}
--     reason: already_paused, not_paused or not_found
--   {"type":"failed","kind":"flow_control_key","name":"k","error":{"kind":...}}
--   {"type":"summary","command":"pause","selected":3,"paused":1,"unchanged":1,"failed":1,"exit_status":1,...}

local context = require "qstash.cli.context"
local kinds = require "qstash.cli.kinds"
local tabular = require "qstash.cli.tabular"

local M = {}

-- Nothing failed, but some source named was not changed: already in that
-- state, or unknown. The next code after the parser's 0, 1 and 2.
M.EXIT_UNCHANGED = 3

local EXIT_OK, EXIT_FAIL = context.EXIT_OK, context.EXIT_FAIL

-- What each command wants, and its words.
local VERBS = {
  pause = { want = true, done = "paused", ing = "pausing", same = "already_paused", same_text = "is already paused" },
  resume = { want = false, done = "resumed", ing = "resuming", same = "not_paused", same_text = "is not paused" },
}

-- The sources named on the command line, in the kinds' order, each once.
function M.targets(a)
  local out, seen = {}, {}
  for _, row in ipairs(kinds.ROWS) do
    if row.pause then
      for _, id in ipairs(a[row.target] or {}) do
        local key = row.kind .. "\0" .. id
        if not seen[key] then
          seen[key] = true
          out[#out + 1] = { row = row, id = id }
        end
      end
    end
  end
  return out
end

-- The parser's check: nothing is paused or resumed implicitly.
function M.check(a, command)
  a.targets = M.targets(a)
  if #a.targets == 0 then
    return ("nothing to %s: give --schedule-id, --queue or --flow-control-key"):format(command)
  end
end

local function name_of(t)
  return kinds.label(t.row.kind) .. " " .. tabular.cell(t.id)
end

local function line(t, fields)
  local l = { kind = t.row.kind, [t.row.id_key] = t.id }
  for k, v in pairs(fields) do l[k] = v end
  return l
end

-- Phase one: reads each target's state. Returns nil and an exit status when
-- the command must stop (a usage error, an interrupt) before anything changed.
local function read_states(ctx, targets, verb, report)
  for _, t in ipairs(targets) do
    if type(ctx.client[t.row.get]) ~= "function" then
      t.failed = context.failure("unsupported", "this qstash module has no " .. t.row.get)
    else
      local ok, res = ctx:call(t.row.get, t.id)
      if ok then
        t.paused = t.row.paused(res)
        if t.paused == verb.want then t.unchanged = verb.same end
      elseif type(res) == "string" then
        return nil, ctx:fail(res)  -- the module refused the name: nothing was sent
      elseif context.is_failure(res) and res.exit then
        return nil, ctx:fail(res)  -- interrupted: nothing was changed
      elseif type(res) == "table" and res.kind == "not_found" then
        t.unchanged = "not_found"
      else
        t.failed = res
      end
    end
    if t.unchanged then
      report:record(line(t, { type = "unchanged", reason = t.unchanged }))
      ctx:err(name_of(t), " ", t.unchanged == "not_found" and "does not exist" or verb.same_text)
    elseif t.failed then
      report:record(line(t, { type = "failed", error = context.describe(t.failed) }))
      ctx:fail(t.failed, name_of(t))
    end
  end
  return true
end

local function exit_status(report)
  if report:count("failed") > 0 then return EXIT_FAIL end
  if report:count("unchanged") > 0 then return M.EXIT_UNCHANGED end
  return EXIT_OK
end

local function run(ctx, a, command)
  local verb, report, targets = VERBS[command], a.report_writer, a.targets
  local ok, stop = read_states(ctx, targets, verb, report)
  if not ok then return stop end
  local todo = {}
  for _, t in ipairs(targets) do
    if not t.unchanged and not t.failed then todo[#todo + 1] = t end
  end

  if a.dry_run then
    ctx:out(("dry run: %d source%s would be %s; nothing was changed\n")
      :format(#todo, #todo == 1 and "" or "s", verb.done))
    for _, t in ipairs(todo) do ctx:out("  ", name_of(t), "\n") end
    if a.report then ctx:out(("would append results to %s\n"):format(a.report)) end
    return exit_status(report)
  end

  local interrupted
  for i, t in ipairs(todo) do
    ctx:progress(verb.ing, i - 1, #todo)
    local done, res = ctx:call(t.row[command], t.id)
    if done then
      report:record(line(t, { type = verb.done }))
      ctx:out(verb.done, " ", name_of(t), "\n")
    else
      if type(res) == "string" then res = context.failure("usage", res) end
      report:record(line(t, { type = "failed", error = context.describe(res) }))
      ctx:fail(res, name_of(t))
      if context.is_failure(res) and res.exit then -- interrupted: the rest is not attempted
        interrupted = res.exit
        break
      end
    end
    report:flush()
  end
  report:flush()
  local status = interrupted or exit_status(report)
  local lost
  status, lost = report:summary { selected = #targets, [verb.done] = report:count(verb.done),
    unchanged = report:count("unchanged"), failed = report:count("failed"), exit_status = status }
  if lost then ctx:err("the --report file is incomplete: ", lost) end
  ctx:summary(("%s %d of %d source%s: %d unchanged, %d failed"):format(verb.done, report:count(verb.done),
    #targets, #targets == 1 and "" or "s", report:count("unchanged"), report:count("failed")))
  return status
end

function M.pause(ctx, a) return run(ctx, a, "pause") end
function M.resume(ctx, a) return run(ctx, a, "resume") end

return M
