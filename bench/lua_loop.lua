-- Contender: N DLQ retries at CONC in flight inside a host's event loop,
-- against dlq_retry_each at the same concurrency.
-- Usage: lua5.4 bench/lua_loop.lua BASE_URL N CONC WARMUP CA_FILE MODE
-- MODE: luv (client:async in uv's loop through qstash.loop.luv; each
-- callback starts the next retry), cqueues (CONC coroutines calling
-- qstash.loop.cqueues.call one retry after another), each
-- (client:dlq_retry_each(ids, nil, { concurrency = CONC }): the reference).
-- Prints "RESULT calls=N wall=S cpu=S", or "RESULT na" when the mode's loop
-- library is missing. The engine's waits inside the loop must stay 0.
local qstash = require "qstash"
local bu = require "benchutil"

local url, n, conc, warm, ca, mode =
  arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4]), arg[5], arg[6]
local c = qstash.new{ base_url = url, token = "bench", ca_file = ca }

local function fail(fmt, ...) error(string.format(fmt, ...), 0) end

-- Each mode retries `count` ids named prefix..i, CONC at a time.
local runs = {}

function runs.each(prefix, count)
  local ids = {}
  for i = 1, count do ids[i] = prefix .. i end
  local res = c:dlq_retry_each(ids, nil, { concurrency = conc })
  if res.ok ~= count then fail("dlq_retry_each: ok=%s failed=%s", tostring(res.ok), tostring(res.failed)) end
end

function runs.luv(prefix, count)
  local uv = require "luv"
  local started, ok = 0, 0
  local function start()
    started = started + 1
    c:async("dlq_retry", prefix .. started, nil, function(res, err)
      if not res then fail("dlq_retry: %s", tostring(err)) end
      ok = ok + 1
      if started < count then start() end
    end)
  end
  for _ = 1, math.min(conc, count) do start() end
  uv.run()
  if ok ~= count then fail("luv: %d of %d retried", ok, count) end
end

function runs.cqueues(prefix, count)
  local cqueues = require "cqueues"
  local QC = require "qstash.loop.cqueues"
  local cq = cqueues.new()
  local started, ok = 0, 0
  for _ = 1, math.min(conc, count) do
    cq:wrap(function()
      while started < count do
        started = started + 1
        QC.call(c, "dlq_retry", prefix .. started)
        ok = ok + 1
      end
    end)
  end
  assert(cq:loop())
  if ok ~= count then fail("cqueues: %d of %d retried", ok, count) end
end

if mode == "luv" or mode == "cqueues" then
  local lib = mode == "luv" and "luv" or "cqueues"
  if not pcall(require, lib) then
    io.write("RESULT na\n")
    os.exit(0)
  end
  if mode == "luv" then require("qstash.loop.luv").attach(c) end
end
local run = assert(runs[mode], "MODE: luv, cqueues or each")

if warm > 0 then run("w-", warm) end
local t0, c0 = bu.now(), bu.cpu()
run("id-", n)
local t1, c1 = bu.now(), bu.cpu()
local waits = c:_stats().loop_waits
if mode ~= "each" and waits ~= 0 then fail("the engine waited %d times inside the loop", waits) end
c:close()
if mode == "luv" then require("luv").run("nowait") end
io.write(string.format("RESULT calls=%d wall=%.6f cpu=%.6f\n", n, t1 - t0, c1 - c0))
