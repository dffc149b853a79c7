-- The CLI's contenders, on the local emulator (tools/qstash-dev) holding N
-- DLQ entries labelled "incident", each next to its reference, the module
-- alone making the same requests:
--   cli_stats   qstash-dlq stats --json              (qstash.cli.main in this process)
--   ref_stats   the same pages with client:dlq_list
--   cli_retry   qstash-dlq retry --label incident --set-delay 1h --report FILE
--   ref_retry   a dlq_list snapshot, then dlq_retry_many per 100 ids
-- Helpers: fill (publish N messages whose delivery fails, with no retries,
-- and wait for them in the DLQ) and wait (until the DLQ holds N entries
-- again: retried messages fail again once their delay is over).
-- Usage: lua5.4 bench/cli_bench.lua MODE BASE_URL N [DEST_BASE | REPORT_FILE]
-- The token comes from QSTASH_TOKEN. Contenders print "RESULT calls=N wall=S cpu=S".
local qstash = require "qstash"
local bu = require "benchutil"

local mode, url, n, extra = arg[1], arg[2], tonumber(arg[3]), arg[4]
local token = assert(os.getenv("QSTASH_TOKEN"), "QSTASH_TOKEN")
local LABEL = "incident"
-- the retried messages are delivered (and fail again) after the run: 1 h at
-- the emulator's --time-scale 0.001 is 3.6 s
local DELAY = "1h"

local function client()
  return qstash.new{ base_url = url, token = token }
end

local function count(c)
  local total, cursor = 0, nil
  repeat
    local page = c:dlq_list{ label = LABEL, count = 100, cursor = cursor }
    total = total + #page.messages
    cursor = page.cursor
  until cursor == nil
  return total
end

local function wait_for(c, want, limit)
  local deadline = bu.now() + limit
  while true do
    local have = count(c)
    if have >= want then return end
    if bu.now() > deadline then error(("the DLQ holds %d of %d entries"):format(have, want)) end
    c:poll(0)
    os.execute("sleep 0.5")
  end
end

local function result(t0, c0)
  local t1, c1 = bu.now(), bu.cpu()
  io.write(string.format("RESULT calls=%d wall=%.6f cpu=%.6f\n", n, t1 - t0, c1 - c0))
end

local modes = {}

function modes.fill()
  local c = client()
  local statuses = { 500, 503, 404 }
  for i = 1, n do
    local dest = ("%s/hook/%d/%d"):format(extra, statuses[i % 3 + 1], i % 7)
    c:publish(dest, ("message %d"):format(i), { retries = 0, label = LABEL })
  end
  wait_for(c, n, 300)
end

function modes.wait()
  wait_for(client(), n, 300)
end

local function cli_main(args)
  local cli = require "qstash.cli"
  local null = assert(io.open("/dev/null", "w"))
  local status = cli.main(args, { stdout = null, is_tty = false })
  null:close()
  if status ~= 0 then error("qstash-dlq " .. table.concat(args, " ") .. " exited " .. status) end
end

function modes.cli_stats()
  local t0, c0 = bu.now(), bu.cpu()
  cli_main{ "--api-url", url, "stats", "--json", "--label", LABEL }
  result(t0, c0)
end

function modes.ref_stats()
  local t0, c0 = bu.now(), bu.cpu()
  local c = client()
  local got = count(c)
  c:close()
  result(t0, c0)
  assert(got == n, "expected " .. n .. " entries, found " .. got)
end

function modes.cli_retry()
  os.remove(extra)
  local t0, c0 = bu.now(), bu.cpu()
  cli_main{ "--api-url", url, "retry", "--label", LABEL, "--set-delay", DELAY, "--report", extra }
  result(t0, c0)
end

function modes.ref_retry()
  local t0, c0 = bu.now(), bu.cpu()
  local c = client()
  local ids, cursor = {}, nil
  repeat
    local page = c:dlq_list{ label = LABEL, count = 100, cursor = cursor }
    for _, m in ipairs(page.messages) do ids[#ids + 1] = m.dlqId end
    cursor = page.cursor
  until cursor == nil
  local done = 0
  for i = 1, #ids, 100 do
    local batch = {}
    for j = i, math.min(i + 99, #ids) do batch[#batch + 1] = ids[j] end
    done = done + #c:dlq_retry_many(batch, { delay = DELAY }).responses
  end
  c:close()
  result(t0, c0)
  assert(done == n, "retried " .. done .. " of " .. n)
end

assert(modes[mode], "unknown mode " .. tostring(mode))()
