-- Run by tools/rock-check with only an installed rock on the paths: the
-- module loads from the tree, publishes through the emulator
-- (QSTASH_SMOKE_URL, QSTASH_SMOKE_TOKEN) to a closed port so the message
-- lands in the DLQ, finds it, retries it with overrides, and prints the
-- version it saw. Any failure raises (non-zero exit).
local qstash = require "qstash"
local qsafe = require "qstash.safe"
local tree = assert(os.getenv("QSTASH_SMOKE_TREE"), "QSTASH_SMOKE_TREE")
local where = package.searchpath and package.searchpath("qstash", package.cpath)
if where then assert(where:sub(1, #tree) == tree, "qstash loaded from " .. where .. ", not the tree") end
assert(type(qsafe.dlq_retry) == "function")
assert(type(require("qstash.resty").dlq_retry) == "function")

local client = qstash.new{ base_url = os.getenv("QSTASH_SMOKE_URL"), token = os.getenv("QSTASH_SMOKE_TOKEN") }
local label = "smoke-" .. tostring(os.time())
-- port 9 (discard) on loopback: closed, so the delivery fails at once
local pub = client:publish("http://127.0.0.1:9/smoke", "hello", { retries = 0, label = label })
assert(pub.messageId, "publish gave no messageId")

local entry
for _ = 1, 200 do
  local page = client:dlq_list{ label = label }
  entry = page.messages[1]
  if entry then break end
  local t = os.clock() + 0.02
  while os.clock() < t do end
end
assert(entry and entry.messageId == pub.messageId, "the message did not reach the DLQ")
local res = client:dlq_retry(entry.dlqId, { retries = 0, headers = { ["X-Smoke"] = "1" } })
assert(res.messageId and res.deduplicated == false, "dlq_retry gave no new messageId")
local ok, err = qsafe.dlq_get(entry.dlqId)
assert(ok == nil and qstash.is_error(err) or ok ~= nil)
client:close()
print(("smoke ok: %s %s on %s"):format(qstash._VERSION, res.messageId, _VERSION))
