-- make soak: 100,000 sequential dlq_retry calls against a local server,
-- sampling the process's RSS. After warm-up it must grow by less than 1 MiB.
-- usage: lua5.4 bench/soak.lua [calls]
local server = require "spec.support.server"
local qstash = require "qstash"

local CALLS = tonumber(arg[1]) or 100000
local WARMUP = math.floor(CALLS / 10)
local SAMPLE = math.floor(CALLS / 20)
local LIMIT_KIB = 1024

local function rss_kib()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local srv = server.start()
local ok, err = pcall(function()
  local client = qstash.new{ token = "soak-token", base_url = srv.url }
  local opts = { retries = 2, delay = "10s", headers = { ["X-Soak"] = "1" } }
  local base
  io.write(string.format("%10s %10s %10s\n", "calls", "RSS KiB", "growth"))
  for i = 1, CALLS do
    local res = client:dlq_retry("soak-" .. i, opts)
    assert(res.messageId == "msg_test")
    if i % SAMPLE == 0 or i == WARMUP then
      collectgarbage()
      local rss = rss_kib()
      if i == WARMUP then base = rss end
      io.write(string.format("%10d %10d %10s\n", i, rss, base and (rss - base) or "warm-up"))
      io.flush()
    end
  end
  collectgarbage()
  local growth = rss_kib() - base
  client:close()
  io.write(string.format("growth after warm-up: %d KiB (limit %d KiB)\n", growth, LIMIT_KIB))
  if growth >= LIMIT_KIB then error("RSS grew by " .. growth .. " KiB") end
end)
srv:stop()
if not ok then
  io.stderr:write("soak failed: ", tostring(err), "\n")
  os.exit(1)
end
