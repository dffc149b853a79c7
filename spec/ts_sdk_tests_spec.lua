-- The official TypeScript SDK's own test files, ported to Node's test runner
-- (spec/ts-sdk/*.test.mjs, listed in spec/ts-sdk/README.md): qstash-js's
-- dlq.test.ts, messages.test.ts, logs.test.ts, queue.test.ts,
-- url-groups.test.ts and flow-control.test.ts (every case), the batch and
-- queue cases of client.test.ts (batch.test.mjs) and the dev-server
-- integration tests, against the emulator: our emulator must accept what the
-- SDK sends and answer what the SDK's tests expect, with no workaround. Each
-- file runs in `node --test` against a fresh emulator; it passes only when
-- every one of its tests passed (none skipped, none missing).
-- Node.js and npm are required: see spec/support/ts_sdk.lua.
local E = require "spec.support.emulator"
local sdk = require "spec.support.ts_sdk"

local q = E.shell_quote

-- Variables the SDK reads: the child gets only those a test file sets.
local CLEARED = {
  "QSTASH_URL", "QSTASH_TOKEN", "QSTASH_DEV", "QSTASH_DEV_PORT", "QSTASH_REGION",
  "QSTASH_CURRENT_SIGNING_KEY", "QSTASH_NEXT_SIGNING_KEY", "US_EAST_1_QSTASH_URL",
  "US_EAST_1_QSTASH_TOKEN", "EU_CENTRAL_1_QSTASH_URL", "EU_CENTRAL_1_QSTASH_TOKEN",
  "NODE_OPTIONS", "NODE_ENV", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
  "all_proxy", "ALL_PROXY",
  -- `make asan` preloads the ASan runtime for the Lua interpreter; Node is
  -- none of ours and only slows down under it
  "LD_PRELOAD",
}

-- How many tests a ported file declares (`test(` at the start of a line).
local function declared_tests(file)
  local n = 0
  for line in io.lines(sdk.source .. "/" .. file) do
    if line:match("^%s*test%(") then n = n + 1 end
  end
  return n
end

-- Runs one file under `node --test`; returns the TAP summary counts and the output.
local function node_test(file, env)
  local parts = { "cd", q(sdk.dir), "&&", "env" }
  for _, name in ipairs(CLEARED) do parts[#parts + 1] = "-u " .. name end
  for name, value in pairs(env) do parts[#parts + 1] = name .. "=" .. q(value) end
  parts[#parts + 1] = "node --test " .. q(file)
  local ok, out = sdk.run(table.concat(parts, " "))
  local counts = {}
  for key, n in out:gmatch("\n# (%a+) (%d+)") do counts[key] = tonumber(n) end
  return ok, counts, out
end

local function assert_passed(file, ok, counts, out)
  local want = declared_tests(file)
  assert(want > 0, file .. " declares no test")
  local failing = {}
  for line in out:gmatch("[^\n]+") do
    if line:match("^%s*not ok") then failing[#failing + 1] = line end
  end
  local report = ("%s: %d declared, %s passed, %s failed, %s cancelled, %s skipped\n%s\n--- node's report:\n%s")
    :format(file, want, tostring(counts.pass), tostring(counts.fail), tostring(counts.cancelled),
      tostring(counts.skipped), table.concat(failing, "\n"), out)
  assert(ok, report)
  assert(counts.pass == want and counts.fail == 0 and (counts.cancelled or 0) == 0
    and (counts.skipped or 0) == 0 and (counts.todo or 0) == 0, report)
end

describe("the official TypeScript SDK's own tests against the emulator", function()
  local emu

  setup(function() sdk.install() end)

  before_each(function()
    -- real time: the message tests publish with delays (60 s, 10 d) that must
    -- still be pending when they cancel
    emu = E.start{}
  end)

  after_each(function()
    if emu then emu:stop() end
  end)

  it("passes qstash-js src/client/dlq.test.ts (every case)", function()
    assert_passed("dlq.test.mjs", node_test("dlq.test.mjs", { QSTASH_URL = emu.url, QSTASH_TOKEN = emu.token }))
  end)

  it("passes qstash-js src/client/messages.test.ts (every case)", function()
    assert_passed("messages.test.mjs", node_test("messages.test.mjs", { QSTASH_URL = emu.url, QSTASH_TOKEN = emu.token }))
  end)

  it("passes qstash-js src/client/logs.test.ts (every case)", function()
    assert_passed("logs.test.mjs", node_test("logs.test.mjs", { QSTASH_URL = emu.url, QSTASH_TOKEN = emu.token }))
  end)

  it("passes the batch and queue cases of qstash-js src/client/client.test.ts", function()
    assert_passed("batch.test.mjs", node_test("batch.test.mjs", { QSTASH_URL = emu.url, QSTASH_TOKEN = emu.token }))
  end)

  it("passes qstash-js src/client/url-groups.test.ts (every case)", function()
    assert_passed("url-groups.test.mjs",
      node_test("url-groups.test.mjs", { QSTASH_URL = emu.url, QSTASH_TOKEN = emu.token }))
  end)

  it("passes qstash-js src/client/flow-control.test.ts (every case)", function()
    assert_passed("flow-control.test.mjs",
      node_test("flow-control.test.mjs", { QSTASH_URL = emu.url, QSTASH_TOKEN = emu.token }))
  end)

  it("passes qstash-js src/client/queue.test.ts (every case)", function()
    assert_passed("queue.test.mjs", node_test("queue.test.mjs", { QSTASH_URL = emu.url, QSTASH_TOKEN = emu.token }))
  end)

  it("passes qstash-js src/client/schedules.test.ts (every case)", function()
    assert_passed("schedules.test.mjs",
      node_test("schedules.test.mjs", { QSTASH_URL = emu.url, QSTASH_TOKEN = emu.token }))
  end)

  it("passes the dev-server integration tests of qstash-js src/dev-server/index.test.ts", function()
    assert_passed("dev-server.test.mjs", node_test("dev-server.test.mjs", { QSTASH_SDK_TEST_DEV_PORT = emu.port }))
    -- the SDK talked to this emulator (and started no dev server of its own):
    -- the five messages it published were delivered from here
    local delivered = E.wait_for(function()
      local ds = emu:deliveries()
      if #ds >= 5 then return ds end
    end, 5)
    assert.is_table(delivered, "the dev-server tests' messages never reached the emulator")
  end)
end)
