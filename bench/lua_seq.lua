-- Contender: client:dlq_retry in a sequential loop (one keep-alive connection).
-- Usage: lua5.4 bench/lua_seq.lua BASE_URL N WARMUP CA_FILE [HTTP_VERSION]
-- (HTTP_VERSION: the client's http_version, "auto" when left out)
-- Prints "RESULT calls=N wall=S cpu=S" (the loop only, without start-up).
local qstash = require "qstash"
local bu = require "benchutil"

local url, n, warm, ca, version = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4], arg[5]
local c = qstash.new{ base_url = url, token = "bench", ca_file = ca, http_version = version }

local function check(res, id)
  if type(res) ~= "table" or res.messageId ~= "msg_bench" then
    error("unexpected result for " .. id)
  end
end

for i = 1, warm do check(c:dlq_retry("w-" .. i), "w-" .. i) end

local t0, c0 = bu.now(), bu.cpu()
for i = 1, n do
  local res = c:dlq_retry("id-" .. i)
  if res.messageId ~= "msg_bench" then error("unexpected result for id-" .. i) end
end
local t1, c1 = bu.now(), bu.cpu()
c:close()
io.write(string.format("RESULT calls=%d wall=%.6f cpu=%.6f\n", n, t1 - t0, c1 - c0))
