-- The main job, on the local emulator: a schedule keeps firing into a broken
-- endpoint and messages fail into the dead-letter queue; an operator sees
-- where they come from (qstash-dlq sources), pauses the schedule, retries one
-- message with overridden settings, sees it delivered, bulk-retries the rest
-- and resumes the schedule. Run by `make demo`.
--
-- The emulator (tools/qstash-dev) and a destination that fails on demand run
-- on free loopback ports, started and stopped with the specs' harness.
local E = require "spec.support.emulator"
local qstash = require "qstash"
local cli = require "qstash.cli"

local function say(fmt, ...) io.write(string.format(fmt, ...), "\n") end

-- A cron minute lasts 0.6 s at this scale; retry delays shrink alike.
local emu = E.start{ time_scale = 0.01 }

-- qstash-dlq run in this process against the emulator, its lines indented.
local function qstash_dlq(...)
  local argv = { "--api-url", emu.url, ... }
  say("   $ qstash-dlq %s", table.concat({ ... }, " "))
  local out = { write = function(_, ...)
    local text = table.concat({ ... })
    io.write((text:gsub("([^\n]*)\n", "   %1\n")))
  end }
  local module = setmetatable({ new = function(config)
    config.token = emu.token
    return qstash.new(config)
  end }, { __index = qstash })
  return cli.main(argv, { stdout = out, stderr = out, is_tty = false, qstash = module })
end
local dest = E.start_sink()

local function main()
  say("QStash emulator:  %s", emu.url)
  say("destination:      %s (answering 500 for now)", dest.url)
  dest:set_status(500, { body = "database unavailable" })

  local client = qstash.new{ base_url = emu.url, token = emu.token }

  say("\n0. a schedule fires every minute (0.6 s here) into the broken endpoint, without retries")
  local sched = client:schedule_create(dest.url .. "/sync", "* * * * *", "sync", { retries = 0,
    schedule_id = "nightly-sync" }).scheduleId
  say("   schedule %s (cron * * * * *)", sched)
  assert(E.wait_for(function()
    return #client:dlq_list{ schedule_id = sched }.messages >= 2
  end, 15), "the schedule's runs did not reach the DLQ")
  say("   where does the DLQ come from? (the incident view)")
  assert(qstash_dlq("sources") == 0)
  say("   stop the bleeding:")
  assert(qstash_dlq("pause", "--schedule-id", sched) == 0)
  E.sleep(0.3) -- a run in flight lands
  local held = #client:dlq_list{ schedule_id = sched }.messages
  E.sleep(1.3) -- two cron minutes
  local after = #client:dlq_list{ schedule_id = sched }.messages
  assert(after == held, "the paused schedule kept firing")
  say("   two minutes later the schedule's entries are still %d: paused = %s", after,
    tostring(client:schedule_get(sched).isPaused))

  say("\n1. publish 4 orders with retries = 0; each fails once and lands in the DLQ")
  for i = 1, 4 do
    local res = client:publish_json(dest.url .. "/orders", { order = i }, { retries = 0, label = "orders" })
    say("   published %s", res.messageId)
  end
  local entries = E.wait_for(function()
    local page = client:dlq_list{ label = "orders" }
    return #page.messages == 4 and page.messages
  end, 15)
  assert(entries, "the messages did not reach the DLQ")

  say("\n2. the DLQ (client:dlq_list)")
  say("   %-22s %-30s %-6s %s", "DLQ ID", "MESSAGE ID", "STATUS", "LAST RESPONSE")
  for _, m in ipairs(entries) do
    say("   %-22s %-30s %-6d %s", m.dlqId, m.messageId, m.responseStatus, m.responseBody or "")
  end

  say("\n3. the destination is fixed; retry %s with overrides", entries[1].dlqId)
  dest:clear()
  dest:set_status(200)
  local res = client:dlq_retry(entries[1].dlqId, {
    retries = 3, retry_delay = "1000 * (1 + retried)", headers = { ["X-Replayed-By"] = "make-demo" },
  })
  say("   new message %s (deduplicated = %s)", res.messageId, tostring(res.deduplicated))
  local first = res.messageId
  local got = E.wait_for(function() return dest:received()[1] end, 15)
  assert(got, "the retried message was not delivered")
  say("   delivered: %s %s body=%s", got.method, got.target, got.body)
  say("   X-Replayed-By: %s   Upstash-Message-Id: %s", dest:header(got, "X-Replayed-By"),
    dest:header(got, "Upstash-Message-Id"))
  local claims = qstash.verify{
    signature = dest:header(got, "Upstash-Signature"), body = got.body, url = dest.url .. "/orders",
    current_signing_key = E.CURRENT_SIGNING_KEY, next_signing_key = E.NEXT_SIGNING_KEY,
  }
  say("   Upstash-Signature verified (iss = %s, sub = %s)", claims.iss, claims.sub)

  say("\n4. bulk-retry the rest (client:dlq_retry_many{ label = \"orders\" }, then { schedule_id = ... })")
  local bulk = client:dlq_retry_many({ label = "orders" }, { headers = { ["X-Replayed-By"] = "make-demo" } })
  for _, r in ipairs(client:dlq_retry_many{ schedule_id = sched }.responses) do
    bulk.responses[#bulk.responses + 1] = r
  end
  for _, r in ipairs(bulk.responses) do say("   new message %s", r.messageId) end

  say("\n5. did they get delivered this time? (client:follow_many, through QStash's logs)")
  local ids = { first }
  for _, r in ipairs(bulk.responses) do ids[#ids + 1] = r.messageId end
  local followed = client:follow_many(ids, { timeout = 15, interval = 0.1 })
  for _, id in ipairs(ids) do
    local f = followed[id]
    assert(f.done and f.state == "DELIVERED", id .. " did not reach DELIVERED: " .. tostring(f.state))
    say("   %s  %s", id, f.state)
  end
  say("   left in the DLQ: %d", #client:dlq_list().messages)
  say("   the endpoint works again: resume the schedule")
  assert(qstash_dlq("resume", "--schedule-id", sched) == 0)

  say("\n6. the history of %s (client:follow)", first)
  local f = client:follow(first, { timeout = 15, interval = 0.1 })
  say("   %-26s %-10s %s", "TIME (UTC)", "STATE", "ERROR")
  for _, e in ipairs(f.history) do
    local ms = math.floor(e.time)
    local when = os.date("!%Y-%m-%dT%H:%M:%S", math.floor(ms / 1000))
    say("   %s.%03dZ   %-10s %s", when, ms % 1000, e.state, e.error or "")
  end
  client:close()
end

local ok, err = pcall(main)
dest:stop()
emu:stop()
if not ok then
  io.stderr:write("demo failed: ", tostring(err), "\n")
  os.exit(1)
end
say("\ndone: everything started has been stopped.")
