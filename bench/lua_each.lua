-- Contender: client:dlq_retry_each(ids, nil, { concurrency = C }).
-- Usage: lua5.4 bench/lua_each.lua BASE_URL N CONC WARMUP CA_FILE [HTTP_VERSION]
-- (HTTP_VERSION: the client's http_version, "auto" when left out)
-- Prints "RESULT calls=N wall=S cpu=S", or "RESULT na" while the client has
-- no dlq_retry_each.
local qstash = require "qstash"
local bu = require "benchutil"

local url, n, conc, warm, ca, version = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4]), arg[5], arg[6]
local c = qstash.new{ base_url = url, token = "bench", ca_file = ca, http_version = version }
if c.dlq_retry_each == nil then
  io.write("RESULT na\n")
  os.exit(0)
end

local function ids(prefix, count)
  local t = {}
  for i = 1, count do t[i] = prefix .. i end
  return t
end

local function check(res, count)
  if type(res) ~= "table" or res.ok ~= count or (res.failed or 0) ~= 0 then
    error(string.format("dlq_retry_each: ok=%s failed=%s, want ok=%d",
      tostring(res and res.ok), tostring(res and res.failed), count))
  end
end

if warm > 0 then check(c:dlq_retry_each(ids("w-", warm), nil, { concurrency = conc }), warm) end
local batch = ids("id-", n)
local t0, c0 = bu.now(), bu.cpu()
local res = c:dlq_retry_each(batch, nil, { concurrency = conc })
local t1, c1 = bu.now(), bu.cpu()
check(res, n)
c:close()
io.write(string.format("RESULT calls=%d wall=%.6f cpu=%.6f\n", n, t1 - t0, c1 - c0))
