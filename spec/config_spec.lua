-- Configuration from the table and the environment, with the design's
-- precedence. Environment cases run in a child interpreter.
local child = require "spec.support.child"
local qstash = require "qstash"

local DEV_TOKEN = "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="

-- Prints "<base_url> <token source>" as a client sees them: the token is
-- checked by what a server would receive, read back from the test server.
local PROBE = [[
  local server = require "spec.support.server"
  local q = require "qstash"
  local cfg = ...
  local ok, c = pcall(q.new, cfg)
  if not ok then print("RAISED", tostring(c)) return end
  print("URL", tostring(c):match("%((.-)%)"))
]]

local function probe(cfg_src, env)
  local out, ok = child.run("local cfg = " .. cfg_src .. "\n" .. PROBE:gsub("local cfg = %.%.%.", ""), env)
  assert.is_true(ok, out)
  return out
end

-- assert.matches with a plain (non-pattern) needle
local function matches_plain(needle, haystack)
  assert(haystack:find(needle, 1, true), ("expected %q in %q"):format(needle, haystack))
end

describe("config", function()
  it("defaults to https://qstash.upstash.io", function()
    matches_plain("URL\thttps://qstash.upstash.io\n", probe("{}", {}))
  end)

  it("reads QSTASH_URL and strips one trailing slash", function()
    matches_plain("URL\thttps://qstash-us-east-1.upstash.io\n",
      probe("{}", { QSTASH_URL = "https://qstash-us-east-1.upstash.io/" }))
  end)

  it("prefers the table's base_url over the environment", function()
    matches_plain("URL\thttps://a.example.com\n",
      probe('{ base_url = "https://a.example.com" }', { QSTASH_URL = "https://b.example.com" }))
  end)

  it("uses <REGION>_QSTASH_URL with <REGION>_QSTASH_TOKEN, as a pair, when QSTASH_REGION is set", function()
    matches_plain("URL\thttps://us.example.com\n", probe("{}", {
      QSTASH_REGION = "us-east-1", US_EAST_1_QSTASH_URL = "https://us.example.com", US_EAST_1_QSTASH_TOKEN = "t",
      QSTASH_URL = "https://plain.example.com" }))
    -- half a pair is not used (spec/credentials_spec.lua has the whole rule)
    matches_plain("URL\thttps://plain.example.com\n", probe("{}", {
      QSTASH_REGION = "us-east-1", US_EAST_1_QSTASH_URL = "https://us.example.com",
      QSTASH_URL = "https://plain.example.com" }))
  end)

  it("dev mode from QSTASH_DEV and QSTASH_DEV_PORT", function()
    matches_plain("URL\thttp://127.0.0.1:8080\n", probe("{}", { QSTASH_DEV = "1" }))
    matches_plain("URL\thttp://127.0.0.1:9999\n", probe("{}", { QSTASH_DEV = "true", QSTASH_DEV_PORT = "9999" }))
    matches_plain("URL\thttps://qstash.upstash.io\n", probe("{}", { QSTASH_DEV = "0" }))
    matches_plain("URL\thttp://127.0.0.1:8080\n", probe("{ dev = true }", { QSTASH_DEV = "false" }))
  end)

  it("a bad QSTASH_DEV or QSTASH_DEV_PORT is a config error", function()
    matches_plain("RAISED\tqstash: config: QSTASH_DEV must be 1, true, 0 or false", probe("{}", { QSTASH_DEV = "yes" }))
    matches_plain("RAISED\tqstash: config: QSTASH_DEV_PORT", probe("{}", { QSTASH_DEV = "1", QSTASH_DEV_PORT = "80a" }))
  end)

  it("qstash.safe.new returns nil, err for a config error from the environment", function()
    local out = child.run([[
      local qs = require "qstash.safe"
      local c, err = qs.new{}
      print(c, err.kind)
    ]], { QSTASH_DEV = "maybe" })
    assert.matches("nil\tconfig", out)
  end)

  it("http:// is only for loopback hosts", function()
    assert.has_error(function() qstash.new{ base_url = "http://qstash.upstash.io" } end)
    matches_plain("RAISED\tqstash: config: QSTASH_URL may use http:// only for a loopback host",
      probe("{}", { QSTASH_URL = "http://example.com" }))
    for _, url in ipairs{ "http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:8080" } do
      assert.is_truthy(qstash.new{ base_url = url })
    end
  end)

  it("rejects malformed values", function()
    local bad = {
      { { timeout = 0 }, "'timeout' must be a positive" },
      { { timeout = "5" }, "'timeout' must be a number" },
      { { connect_timeout = -1 }, "'connect_timeout'" },
      { { retry = true }, "'retry' must be a table or false" },
      { { retry = { attempts = 0 } }, "'retry.attempts'" },
      { { retry = { atempts = 2 } }, "did you mean 'attempts'" },
      { { retry = { base_delay = -1 } }, "'base_delay'" },
      { { token = "" }, "'token' must not be empty" },
      { { token = "a\nb" }, "control bytes" },
      { { token = 5 }, "'token' must be a string" },
      { { base_url = "ftp://x" }, "https://" },
      { { base_url = "https://x/#frag" }, "'#'" },
      { { dev = "yes" }, "'dev' must be a boolean" },
      { { token_in_query = 1 }, "'token_in_query' must be a boolean" },
      { { max_response_bytes = 0 }, "'max_response_bytes'" },
      { { user_agent = 1 }, "'user_agent' must be a string" },
      { "nope", "config must be a table" },
    }
    for _, case in ipairs(bad) do
      local ok, err = pcall(qstash.new, case[1])
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'new'", err, 1, true)
      assert.matches(case[2], err, 1, true)
    end
  end)

  describe("token precedence (what the server receives)", function()
    -- Runs a child that calls a local test server and prints the Authorization header.
    local SEND = [[
      local server = require "spec.support.server"
      local q = require "qstash"
      local srv = server.start()
      local cfg = CFG
      cfg.base_url = srv.url
      cfg.retry = false
      local c = q.new(cfg)
      local ok, err = pcall(c.dlq_retry, c, "x")
      if not ok then print("ERR", err.kind) end
      local r = srv:requests()[1]
      print("AUTH", r and r.h.authorization)
      srv:stop()
    ]]
    local function auth(cfg_src, env)
      local out, ok = child.run(SEND:gsub("CFG", cfg_src), env)
      assert.is_true(ok, out)
      return out
    end

    it("table token wins over everything", function()
      assert.matches("AUTH\tBearer from%-table", auth('{ token = "from-table" }',
        { QSTASH_TOKEN = "env", QSTASH_DEV = "1", QSTASH_REGION = "US_EAST_1", US_EAST_1_QSTASH_TOKEN = "r" }))
    end)
    it("dev mode's public token comes next", function()
      assert.matches("AUTH\tBearer " .. DEV_TOKEN:gsub("%p", "%%%0"), auth("{}", { QSTASH_TOKEN = "env", QSTASH_DEV = "1" }))
    end)
    it("then the region's token, when the region's URL is set too", function()
      assert.matches("AUTH\tBearer regional", auth("{}", { QSTASH_TOKEN = "env", QSTASH_REGION = "us-east-1",
        US_EAST_1_QSTASH_TOKEN = "regional", US_EAST_1_QSTASH_URL = "https://us.example.com" }))
      assert.matches("AUTH\tBearer env", auth("{}", { QSTASH_TOKEN = "env", QSTASH_REGION = "us-east-1",
        US_EAST_1_QSTASH_TOKEN = "regional" }))
    end)
    it("then QSTASH_TOKEN (also when the region has none)", function()
      assert.matches("AUTH\tBearer env", auth("{}", { QSTASH_TOKEN = "env" }))
      assert.matches("AUTH\tBearer env", auth("{}", { QSTASH_TOKEN = "env", QSTASH_REGION = "eu-central-1" }))
    end)
    it("none: a config error at call time, nothing sent", function()
      local out = auth("{}", {})
      assert.matches("ERR\tconfig", out)
      assert.matches("AUTH\tnil", out)
    end)
  end)

  it("sends the configured user_agent", function()
    local server = require "spec.support.server"
    local srv = server.start()
    local c = qstash.new{ token = "t", base_url = srv.url, user_agent = "my-app/1.0" }
    c:dlq_retry("x")
    assert.equal("my-app/1.0", srv:requests()[1].h["user-agent"])
    c:close()
    srv:stop()
  end)
end)
