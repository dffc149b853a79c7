-- Client credentials from the table and the environment, always as one pair
-- (design.md, "Client configuration"; qstash-js src/client/multi-region/outgoing.ts):
-- the table's token and base_url; else dev mode's; else, when QSTASH_REGION
-- names a region, <REGION>_QSTASH_URL and <REGION>_QSTASH_TOKEN only when both
-- are set; else QSTASH_URL and QSTASH_TOKEN. A URL is never sent the token of
-- another environment source.
--
-- Rows port the official SDK's test cases (the name cites file and case):
--   upstash/qstash-js  src/client/multi-region.test.ts,
--                      src/client/multi-region-integration.test.ts,
--                      src/dev-server/index.test.ts
-- Each row runs in a child interpreter with a clean environment. The upstream
-- hosts (https://us-qstash.upstash.io, the mock server...) are replaced by this
-- spec's test server with a path per source (SRV/us, SRV/mock...): the request
-- it records shows which URL and which token the client chose. The default URL
-- (https://qstash.upstash.io) is never called: there the row checks the URL, and
-- that a token is present by a call through a proxy that refuses connections.
local child = require "spec.support.child"
local server = require "spec.support.server"
local E = require "spec.support.emulator"
local socket = require "socket"

local JS_MR = "qstash-js src/client/multi-region.test.ts"
local JS_MRI = "qstash-js src/client/multi-region-integration.test.ts"
local JS_DEV = "qstash-js src/dev-server/index.test.ts"
local DEFAULT = "https://qstash.upstash.io"
local DEV_TOKEN = "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="

local ALL_REGIONS = {
  QSTASH_REGION = "US_EAST_1",
  US_EAST_1_QSTASH_URL = "SRV/us", US_EAST_1_QSTASH_TOKEN = "us-token",
  EU_CENTRAL_1_QSTASH_URL = "SRV/eu", EU_CENTRAL_1_QSTASH_TOKEN = "eu-token",
}

local function with(base, over)
  local t = {}
  for k, v in pairs(base) do t[k] = v end
  for k, v in pairs(over or {}) do t[k] = v end
  return t
end

-- url: expected base URL; token: expected token, or false for none (a config
-- error at call time naming `looked`).
local ROWS = {
  -- multi-region.test.ts › QStash Client - Multi-Region Credentials Resolution
  { JS_MR .. " › Default (EU) - Only Token › should use default EU endpoint with token from env",
    env = { QSTASH_TOKEN = "test-token" }, url = DEFAULT, token = "test-token" },
  { JS_MR .. " › Default (EU) - Only Token › should use default EU endpoint with token from config",
    cfg = { token = "config-token" }, url = DEFAULT, token = "config-token" },
  { JS_MR .. " › Default (EU) - Only Token › should warn when token is missing",
    url = DEFAULT, token = false, looked = { "QSTASH_TOKEN" } },
  { JS_MR .. " › Default (EU) with Signing Keys › should resolve default credentials with signing keys present",
    env = { QSTASH_TOKEN = "test-token", QSTASH_CURRENT_SIGNING_KEY = "current-key",
            QSTASH_NEXT_SIGNING_KEY = "next-key" }, url = DEFAULT, token = "test-token" },
  { JS_MR .. " › Region Specified via URL › should use custom URL from environment",
    env = { QSTASH_URL = "SRV/custom", QSTASH_TOKEN = "test-token" }, url = "SRV/custom", token = "test-token" },
  { JS_MR .. " › Region Specified via URL › should use custom URL from config",
    env = { QSTASH_TOKEN = "env-token" }, cfg = { base_url = "SRV/config", token = "config-token" },
    url = "SRV/config", token = "config-token" },
  { JS_MR .. " › Region Specified via URL › should strip trailing slash from URL",
    env = { QSTASH_URL = "SRV/custom/", QSTASH_TOKEN = "test-token" }, url = "SRV/custom", token = "test-token" },
  { JS_MR .. " › Multi-Region Usage (Priority US) › should use US region credentials when QSTASH_REGION is US_EAST_1",
    env = ALL_REGIONS, url = "SRV/us", token = "us-token" },
  { JS_MR .. " › Multi-Region Usage (Priority US) › should use EU region credentials when QSTASH_REGION is EU_CENTRAL_1",
    env = with(ALL_REGIONS, { QSTASH_REGION = "EU_CENTRAL_1" }), url = "SRV/eu", token = "eu-token" },
  { JS_MR .. " › Multi-Region Usage (Priority US) › should fallback to default when region credentials are missing",
    env = { QSTASH_REGION = "US_EAST_1", QSTASH_URL = "SRV/default", QSTASH_TOKEN = "default-token" },
    url = "SRV/default", token = "default-token" },
  { JS_MR .. " › Multi-Region Usage (Priority US) › should warn and fallback when region is invalid",
    env = { QSTASH_REGION = "INVALID_REGION", QSTASH_TOKEN = "default-token" }, url = DEFAULT, token = "default-token" },
  { JS_MR .. " › Multi-Region Usage (Priority US) › config overrides should take precedence over region-specific credentials",
    env = { QSTASH_REGION = "US_EAST_1", US_EAST_1_QSTASH_URL = "SRV/us", US_EAST_1_QSTASH_TOKEN = "us-token" },
    cfg = { base_url = "SRV/override", token = "override-token" }, url = "SRV/override", token = "override-token" },
  { JS_MR .. " › Edge cases and warnings › should warn when QSTASH_REGION is set but credentials are incomplete",
    env = { QSTASH_REGION = "US_EAST_1", US_EAST_1_QSTASH_URL = "SRV/us" },
    url = DEFAULT, token = false, looked = { "QSTASH_TOKEN", "US_EAST_1_QSTASH_URL", "US_EAST_1_QSTASH_TOKEN" } },

  -- multi-region-integration.test.ts (MOCK_QSTASH_SERVER_URL is SRV/mock)
  { JS_MRI .. " › Default (EU) Configuration › should use default EU URL when publishing",
    env = { QSTASH_TOKEN = "default-token", QSTASH_CURRENT_SIGNING_KEY = "default-current-key",
            QSTASH_NEXT_SIGNING_KEY = "default-next-key" },
    cfg = { base_url = "SRV/mock", token = "default-token" }, url = "SRV/mock", token = "default-token" },
  { JS_MRI .. " › Multi-Region US Configuration › should use US region URL when QSTASH_REGION is US_EAST_1",
    env = with(ALL_REGIONS, { US_EAST_1_QSTASH_URL = "SRV/mock" }), url = "SRV/mock", token = "us-token" },
  { JS_MRI .. " › Multi-Region EU Configuration › should use EU region URL when QSTASH_REGION is EU_CENTRAL_1",
    env = with(ALL_REGIONS, { QSTASH_REGION = "EU_CENTRAL_1", EU_CENTRAL_1_QSTASH_URL = "SRV/mock" }),
    url = "SRV/mock", token = "eu-token" },
  { JS_MRI .. " › Fallback Behavior › should fallback to default URL when region credentials are incomplete",
    env = { QSTASH_REGION = "US_EAST_1", QSTASH_TOKEN = "default-token", QSTASH_URL = "SRV/mock" },
    url = "SRV/mock", token = "default-token" },
  { JS_MRI .. " › Config Override Priority › config should override environment variables",
    env = { QSTASH_TOKEN = "env-token", QSTASH_URL = "SRV/env" },
    cfg = { base_url = "SRV/mock", token = "config-token" }, url = "SRV/mock", token = "config-token" },

  -- dev-server/index.test.ts › credential priority
  { JS_DEV .. " › credential priority › devMode: false ignores QSTASH_DEV env var",
    env = { QSTASH_DEV = "true", QSTASH_TOKEN = "env-token" }, cfg = { dev = false },
    url = DEFAULT, token = "env-token" },
  { JS_DEV .. " › credential priority › devMode: true overrides explicit config credentials"
      .. " (design.md differs on purpose: the table's token and base_url come first)",
    cfg = { dev = true, base_url = "SRV/real", token = "real-token" }, url = "SRV/real", token = "real-token" },

  -- the pair rule (outgoing.ts) where the upstream tests stop
  { "outgoing.ts: a region URL without the region token is not paired with QSTASH_TOKEN",
    env = { QSTASH_REGION = "US_EAST_1", US_EAST_1_QSTASH_URL = "SRV/us", QSTASH_URL = "SRV/default",
            QSTASH_TOKEN = "default-token" }, url = "SRV/default", token = "default-token" },
  { "outgoing.ts: a region token without the region URL is not paired with QSTASH_URL",
    env = { QSTASH_REGION = "US_EAST_1", US_EAST_1_QSTASH_TOKEN = "us-token", QSTASH_URL = "SRV/default",
            QSTASH_TOKEN = "default-token" }, url = "SRV/default", token = "default-token" },
  { "outgoing.ts: a region token alone never reaches the default URL; the error names the pair",
    env = { QSTASH_REGION = "us-east-1", US_EAST_1_QSTASH_TOKEN = "us-token", QSTASH_URL = "SRV/default" },
    url = "SRV/default", token = false, looked = { "QSTASH_TOKEN", "both US_EAST_1_QSTASH_URL and US_EAST_1_QSTASH_TOKEN" } },
  { "utils.ts: QSTASH_REGION in lower case with hyphens",
    env = with(ALL_REGIONS, { QSTASH_REGION = "eu-central-1" }), url = "SRV/eu", token = "eu-token" },
  { "utils.ts: a region's variables without QSTASH_REGION are not read",
    env = with(ALL_REGIONS, { QSTASH_REGION = false, QSTASH_URL = "SRV/default", QSTASH_TOKEN = "default-token" }),
    url = "SRV/default", token = "default-token" },
  { "QSTASH_REGION that names no region: the error says so",
    env = { QSTASH_REGION = "mars-1", MARS_1_QSTASH_URL = "SRV/mars", MARS_1_QSTASH_TOKEN = "mars-token" },
    url = DEFAULT, token = false, looked = { "QSTASH_REGION 'mars-1' is not a region" } },
  { "the table's token replaces the pair's token (its URL stays)",
    env = ALL_REGIONS, cfg = { token = "table-token" }, url = "SRV/us", token = "table-token" },
  { "the table's base_url replaces the pair's URL (its token stays)",
    env = with(ALL_REGIONS, { QSTASH_TOKEN = "default-token" }), cfg = { base_url = "SRV/table" },
    url = "SRV/table", token = "us-token" },
  { "dev mode's pair comes before the environment's",
    env = with(ALL_REGIONS, { QSTASH_DEV = "1", QSTASH_DEV_PORT = "PORT", QSTASH_TOKEN = "env-token" }),
    url = "SRV", token = DEV_TOKEN },
  { "a region URL that may not be used is a config error naming it",
    env = with(ALL_REGIONS, { US_EAST_1_QSTASH_URL = "http://us.example.com" }),
    raised = "qstash: config: US_EAST_1_QSTASH_URL may use http:// only for a loopback host" },
}

-- Creates the client, prints its URL, and makes one call: to the test server,
-- or (for any other URL) through a proxy that refuses connections.
local CHILD = [[
local q = require "qstash"
local cfg = CFG
cfg.retry = false
cfg.timeout = 5
local ok, c = pcall(q.new, cfg)
if not ok then print("RAISED", tostring(c)) return end
local url = tostring(c):match("%((.-)%)")
print("URL", url)
if not url:find("^http://127%.0%.0%.1:") then
  cfg.proxy = "http://127.0.0.1:CLOSED"
  c = q.new(cfg)
end
local ok2, err = pcall(c.dlq_get, c, "probe")
print("CALL", ok2 and "ok" or err.kind, ok2 and "" or err.message)
]]

local function lua_literal(t)
  local parts = {}
  for k, v in pairs(t) do
    parts[#parts + 1] = ("[%q] = %s"):format(k, type(v) == "string" and ("%q"):format(v) or tostring(v))
  end
  return "{ " .. table.concat(parts, ", ") .. " }"
end

local function closed_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

describe("client credentials in pairs (clean child environment)", function()
  local srv, closed

  setup(function()
    srv = server.start()
    closed = closed_port()
  end)
  teardown(function()
    if srv then srv:stop() end
  end)

  local function subst(v)
    if type(v) ~= "string" then return v end
    return (v:gsub("^SRV", srv.url):gsub("^PORT$", tostring(srv.port)))
  end

  -- Runs `code` (with CFG and CLOSED filled in) for a row; returns the child's output
  -- and the requests the test server recorded.
  local function run(code, row)
    local env, cfg = {}, {}
    for k, v in pairs(row.env or {}) do
      if v then env[k] = subst(v) end
    end
    for k, v in pairs(row.cfg or {}) do cfg[k] = subst(v) end
    srv:reset()
    code = code:gsub("CFG", function() return lua_literal(cfg) end):gsub("CLOSED", tostring(closed))
    local out, ok = child.run(code, env, { clean = true })
    assert.is_true(ok, out)
    return out, srv:requests()
  end

  for _, row in ipairs(ROWS) do
    it(row[1], function()
      local out, reqs = run(CHILD, row)
      if row.raised then
        assert.truthy(out:find("RAISED\t" .. row.raised, 1, true), out)
        assert.equal(0, #reqs)
        return
      end
      local url = subst(row.url)
      assert.truthy(out:find("URL\t" .. url .. "\n", 1, true), out)
      local call = out:match("CALL\t([^\t]*)\t([^\n]*)")
      if row.token == false then
        assert.equal("config", call, out)
        for _, name in ipairs(row.looked) do assert.truthy(out:find(name, 1, true), out) end
        assert.equal(0, #reqs)
      elseif url:find(srv.url, 1, true) == 1 then
        assert.equal(1, #reqs, out)
        local prefix = url:sub(#srv.url + 1)
        assert.equal(prefix .. "/v2/dlq/probe", reqs[1].path)
        assert.equal("Bearer " .. row.token, reqs[1].h.authorization)
      else
        -- a token is there: the call went on to the network (and the closed proxy)
        assert.equal("network", call, out)
        assert.equal(0, #reqs)
      end
    end)
  end

  describe("the CLI (qstash-dlq takes its client from qstash.new)", function()
    local CLI = E.root .. "/bin/qstash-dlq"
    local CLI_CHILD = ([[
      arg = { [0] = %q, ARGS }
      dofile(arg[0])
    ]]):format(CLI)

    local function cli(args, env)
      local quoted = {}
      for i, a in ipairs(args) do quoted[i] = ("%q"):format(subst(a)) end
      return run(CLI_CHILD:gsub("ARGS", function() return table.concat(quoted, ", ") end), { env = env })
    end

    it("uses the region's pair", function()
      local out, reqs = cli({ "get", "probe" }, with(ALL_REGIONS, { QSTASH_TOKEN = "default-token" }))
      assert.equal(1, #reqs, out)
      assert.equal("/us/v2/dlq/probe", reqs[1].path)
      assert.equal("Bearer us-token", reqs[1].h.authorization)
    end)

    it("never pairs a region URL with QSTASH_TOKEN", function()
      local out, reqs = cli({ "get", "probe" }, { QSTASH_REGION = "US_EAST_1", US_EAST_1_QSTASH_URL = "SRV/us",
        QSTASH_URL = "SRV/default", QSTASH_TOKEN = "default-token" })
      assert.equal(1, #reqs, out)
      assert.equal("/default/v2/dlq/probe", reqs[1].path)
      assert.equal("Bearer default-token", reqs[1].h.authorization)
    end)

    it("--base-url replaces the pair's URL, like base_url", function()
      local out, reqs = cli({ "--base-url", "SRV/flag", "get", "probe" }, ALL_REGIONS)
      assert.equal(1, #reqs, out)
      assert.equal("/flag/v2/dlq/probe", reqs[1].path)
      assert.equal("Bearer us-token", reqs[1].h.authorization)
    end)
  end)
end)
