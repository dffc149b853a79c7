-- dlq_retry_each of N DLQ ids with follow, against the emulator: how many
-- logs requests the batch makes to follow the new messages, against the
-- target of one request per 100 messages per round (never one per message).
-- Usage: lua5.4 bench/follow_requests.lua [N] [delayed]
-- "delayed": the retries ask for a 2 s delay (0.5 s at the emulator's time
-- scale), so that the batch is followed over several rounds of 0.2 s.
-- Prints one line per figure and "RESULT ..." (what bench/run reads).
local E = require "spec.support.emulator"
local cjson = require "cjson"
local socket = require "socket"
local qstash = require "qstash"

local n = tonumber(arg[1]) or 1000
local delayed = arg[2] == "delayed"
local emu = E.start{ time_scale = delayed and 0.25 or 0.001 }
local sink = E.start_sink()
local ok, err = pcall(function()
  local c = qstash.new{ token = emu.token, base_url = emu.url }
  -- N messages that fail once (retries 0): N DLQ entries
  sink:set_status(500)
  for from = 1, n, 100 do
    local batch = {}
    for i = from, math.min(n, from + 99) do
      batch[#batch + 1] = { destination = sink.url .. "/b" .. i, body = tostring(i),
        headers = { ["Upstash-Retries"] = "0" } }
    end
    assert(emu:json("POST", "/v2/batch", { body = cjson.encode(batch),
      headers = { ["Content-Type"] = "application/json" } }) == 200)
  end
  local ids = E.wait_for(function()
    local got = {}
    for m in c:dlq_messages() do got[#got + 1] = m.dlqId end
    if #got == n then return got end
  end, 60)
  assert(ids, "the DLQ did not fill")
  sink:set_status(200)
  local _, before = emu:json("GET", "/__dev/requests")
  local t0 = socket.gettime()
  local delivered = 0
  local out = c:dlq_retry_each(ids, { delay = delayed and 2 or nil, follow = { timeout = 120, interval = 0.2 } }, {
    concurrency = 32,
    on_result = function(_, res) if res and res.delivery.state == "DELIVERED" then delivered = delivered + 1 end end,
  })
  local wall = socket.gettime() - t0
  local _, after = emu:json("GET", "/__dev/requests")
  local function diff(k) return (after[k] or 0) - (before[k] or 0) end
  local logs, asked, paged = diff("GET logs"), diff("logs messageIds"), diff("logs with cursor")
  -- one request per 100 messages for each round: the ids asked about over
  -- the rounds, 100 to a request
  local target = math.ceil(asked / 100)
  print(("ids %d%s, retried %d, delivered %d, in %.2f s"):format(n, delayed and " (delayed 2 s)" or "", out.ok,
    delivered, wall))
  print(("logs requests %d (with a cursor %d), messages asked about %d: one per 100 would be %d"):format(
    logs, paged, asked, target))
  print(("rounds of 0.2 s: about %d"):format(math.ceil(asked / n)))
  print(("RESULT ids=%d logs_requests=%d per_100=%d ratio=%.2f per_id=%.3f delivered=%d"):format(
    n, logs, target, logs / target, logs / n, delivered))
  c:close()
end)
emu:stop()
sink:stop()
if not ok then error(err, 0) end
