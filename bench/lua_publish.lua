-- Contender: publishing N messages, sequentially (client:publish, one request
-- each) or in batches of 100 (client:batch, one request per 100 messages).
-- Usage: lua5.4 bench/lua_publish.lua BASE_URL N MODE WARMUP CA_FILE
-- (MODE: "seq" or "batch"; with "batch", N and WARMUP are multiples of 100)
-- Prints "RESULT calls=N wall=S cpu=S" (calls = messages; the loop only), or
-- "RESULT na" while the client has no batch.
local qstash = require "qstash"
local bu = require "benchutil"

local url, n, mode, warm, ca = arg[1], tonumber(arg[2]), arg[3], tonumber(arg[4]), arg[5]
local c = qstash.new{ base_url = url, token = "bench", ca_file = ca }
if mode == "batch" and c.batch == nil then
  io.write("RESULT na\n")
  os.exit(0)
end
local DEST, PER = "https://example.com/hook", 100

-- The batch body: the same 100 items each time, as a sender reuses its list.
local items = {}
for i = 1, PER do items[i] = { destination = DEST, body = "message " .. i, opts = { retries = 3 } } end

local function run(count)
  if mode == "seq" then
    for i = 1, count do
      local res = c:publish(DEST, "message " .. i, { retries = 3 })
      if res.messageId ~= "msg_bench" then error("unexpected publish result") end
    end
  else
    for _ = 1, math.floor(count / PER) do
      local res = c:batch(items)
      if #res ~= PER or res[PER].messageId ~= "msg_bench" then error("unexpected batch result") end
    end
  end
end

run(warm)
local t0, c0 = bu.now(), bu.cpu()
run(n)
local t1, c1 = bu.now(), bu.cpu()
c:close()
io.write(string.format("RESULT calls=%d wall=%.6f cpu=%.6f\n", n, t1 - t0, c1 - c0))
