-- qstash.verify against the official SDKs' own receiver test cases, ported
-- one row per upstream case (the row's name cites the file and the case):
--   upstash/qstash-js  src/receiver.test.ts, src/client/workflow/receiver.test.ts,
--                      src/client/multi-region.test.ts,
--                      src/client/multi-region-integration.test.ts,
--                      src/dev-server/index.test.ts (dev mode),
--                      rules: src/client/multi-region/incoming.ts
--   upstash/qstash-py  tests/test_receiver.py
--   upstash/qstash-go  receiver_test.go
-- Tokens are signed by spec/support/jwt_vectors.py. Every row runs in a child
-- interpreter with a clean environment (only the row's variables), under
-- both qstash and qstash.safe.
--
-- A key-resolution row (`keys`) proves which key set is in effect: a token
-- signed with each of its keys passes, and a token signed with any other key
-- in the row (environment, call, the emulator's public keys, a stranger's)
-- fails with bad_signature. `raises` means no key set at all. A `sign` row
-- verifies one token, as the upstream test does.
local child = require "spec.support.child"
local jwt = require "spec.support.jwt"
local cjson = require "cjson"

local DEV_CURRENT = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r" -- tools/qstash-dev, qstash-js DEV_CREDENTIALS
local DEV_NEXT = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"
local STRANGER = "sig_strangerKeyNobodyConfigured"

local JS_MR = "qstash-js src/client/multi-region.test.ts"
local JS_MRI = "qstash-js src/client/multi-region-integration.test.ts"
local JS_RECEIVER = "qstash-js src/receiver.test.ts"
local JS_WORKFLOW = "qstash-js src/client/workflow/receiver.test.ts"
local JS_DEV = "qstash-js src/dev-server/index.test.ts"
local PY = "qstash-py tests/test_receiver.py"
local GO = "qstash-go receiver_test.go"

local BODY = '{"message":"test"}'
local URL = "https://example.com/api"
local NO_KEY = "bad argument #1 to '[^']*' %(no signing key" -- the function's name differs per Lua

local DEFAULT_KEYS = { QSTASH_CURRENT_SIGNING_KEY = "default-current-key", QSTASH_NEXT_SIGNING_KEY = "default-next-key" }
local US_KEYS = { US_EAST_1_QSTASH_CURRENT_SIGNING_KEY = "us-current-key", US_EAST_1_QSTASH_NEXT_SIGNING_KEY = "us-next-key" }
local EU_KEYS = { EU_CENTRAL_1_QSTASH_CURRENT_SIGNING_KEY = "eu-current-key",
                  EU_CENTRAL_1_QSTASH_NEXT_SIGNING_KEY = "eu-next-key" }

local function merge(...)
  local t = {}
  for i = 1, select("#", ...) do
    for k, v in pairs((select(i, ...))) do t[k] = v end
  end
  return t
end

-- Which key set is in effect.
local KEY_ROWS = {
  -- multi-region.test.ts › Receiver/Verifier - Multi-Region Signing Keys Resolution
  { JS_MR .. " › should resolve default signing keys from environment",
    env = { QSTASH_CURRENT_SIGNING_KEY = "current-key", QSTASH_NEXT_SIGNING_KEY = "next-key" },
    keys = { "current-key", "next-key" } },
  { JS_MR .. " › should resolve signing keys from config",
    params = { current_signing_key = "config-current", next_signing_key = "config-next" },
    keys = { "config-current", "config-next" } },
  { JS_MR .. " › should return undefined when no signing keys are available",
    raises = NO_KEY },
  { JS_MR .. " › should resolve US region signing keys when header is US_EAST_1",
    env = merge({ QSTASH_REGION = "US_EAST_1" }, US_KEYS), params = { region = "us-east-1" },
    keys = { "us-current-key", "us-next-key" } },
  { JS_MR .. " › should resolve EU region signing keys when header is EU_CENTRAL_1",
    env = merge({ QSTASH_REGION = "EU_CENTRAL_1" }, EU_KEYS), params = { region = "eu-central-1" },
    keys = { "eu-current-key", "eu-next-key" } },
  { JS_MR .. " › should normalize region header with hyphens to underscores",
    env = merge({ QSTASH_REGION = "US_EAST_1" }, US_KEYS), params = { region = "US-EAST-1" },
    keys = { "us-current-key", "us-next-key" } },
  { JS_MR .. " › should fallback to default keys when region-specific keys are missing",
    env = merge({ QSTASH_REGION = "US_EAST_1" }, DEFAULT_KEYS), params = { region = "US_EAST_1" },
    keys = { "default-current-key", "default-next-key" } },
  { JS_MR .. " › should warn and fallback when region header is invalid",
    env = DEFAULT_KEYS, params = { region = "INVALID_REGION" },
    keys = { "default-current-key", "default-next-key" } },
  { JS_MR .. " › should work in receiver-only multi-region mode without QSTASH_REGION (US header)",
    env = merge(US_KEYS, EU_KEYS), params = { region = "US_EAST_1" }, raises = NO_KEY },
  { JS_MR .. " › should work in receiver-only multi-region mode without QSTASH_REGION (EU header)",
    env = merge(US_KEYS, EU_KEYS), params = { region = "EU_CENTRAL_1" }, raises = NO_KEY },
  { JS_MR .. " › should use correct region keys based on header in multi-region setup (US request)",
    env = merge({ QSTASH_REGION = "US_EAST_1" }, US_KEYS, EU_KEYS), params = { region = "US_EAST_1" },
    keys = { "us-current-key", "us-next-key" } },
  { JS_MR .. " › should use correct region keys based on header in multi-region setup (EU request)",
    env = merge({ QSTASH_REGION = "US_EAST_1" }, US_KEYS, EU_KEYS), params = { region = "EU_CENTRAL_1" },
    keys = { "eu-current-key", "eu-next-key" } },
  { JS_MR .. " › config keys should take precedence over region-specific keys",
    env = merge({ QSTASH_REGION = "US_EAST_1" }, US_KEYS),
    params = { current_signing_key = "config-current", next_signing_key = "config-next", region = "US_EAST_1" },
    keys = { "config-current", "config-next" } },
  { JS_MR .. " › should warn when QSTASH_REGION is set but signing keys are incomplete",
    env = { QSTASH_REGION = "US_EAST_1", US_EAST_1_QSTASH_CURRENT_SIGNING_KEY = "us-current-key",
            QSTASH_CURRENT_SIGNING_KEY = "default-current", QSTASH_NEXT_SIGNING_KEY = "default-next" },
    params = { region = "US_EAST_1" }, keys = { "default-current", "default-next" } },

  -- the rules of src/client/multi-region/incoming.ts beyond the tests above
  { "qstash-js incoming.ts: no delivery region, QSTASH_REGION set -> default keys",
    env = merge({ QSTASH_REGION = "US_EAST_1" }, US_KEYS, DEFAULT_KEYS),
    keys = { "default-current-key", "default-next-key" } },
  { "qstash-js incoming.ts: QSTASH_REGION not a region -> default keys, whatever the delivery's region",
    env = merge({ QSTASH_REGION = "mars-1" }, US_KEYS, DEFAULT_KEYS), params = { region = "US_EAST_1" },
    keys = { "default-current-key", "default-next-key" } },
  { "qstash-js utils.ts normalizeRegionHeader: QSTASH_REGION in lower case with hyphens",
    env = merge({ QSTASH_REGION = "eu-central-1" }, EU_KEYS, DEFAULT_KEYS), params = { region = "eu-central-1" },
    keys = { "eu-current-key", "eu-next-key" } },
  { "qstash-js utils.ts normalizeRegionHeader: a delivery region with a NUL byte names no region",
    env = merge({ QSTASH_REGION = "US_EAST_1" }, US_KEYS, DEFAULT_KEYS), params = { region = "US_EAST_1\0" },
    keys = { "default-current-key", "default-next-key" } },
  { "qstash-js incoming.ts: a region's next key alone is no key set -> default keys",
    env = merge({ QSTASH_REGION = "US_EAST_1", US_EAST_1_QSTASH_NEXT_SIGNING_KEY = "us-next-key" }, DEFAULT_KEYS),
    params = { region = "US_EAST_1" }, keys = { "default-current-key", "default-next-key" } },
  { "qstash-js incoming.ts: a delivery region without keys and no default keys -> no key",
    env = merge({ QSTASH_REGION = "US_EAST_1" }, US_KEYS), params = { region = "EU_CENTRAL_1" },
    raises = NO_KEY },

  -- dev-server/index.test.ts › credential priority, shouldUseDevelopmentMode
  { JS_DEV .. " › devMode: true overrides explicit signing key config",
    params = { dev = true, current_signing_key = "real-current", next_signing_key = "real-next" },
    keys = { DEV_CURRENT, DEV_NEXT } },
  { JS_DEV .. " › devMode: false ignores QSTASH_DEV for signing keys",
    env = { QSTASH_DEV = "true", QSTASH_CURRENT_SIGNING_KEY = "real-current", QSTASH_NEXT_SIGNING_KEY = "real-next" },
    params = { dev = false }, keys = { "real-current", "real-next" } },
  { JS_DEV .. " › devMode: true returns true regardless of env",
    env = merge({ QSTASH_DEV = "false" }, DEFAULT_KEYS), params = { dev = true }, keys = { DEV_CURRENT, DEV_NEXT } },
  { JS_DEV .. " › devMode: false returns false regardless of env",
    env = merge({ QSTASH_DEV = "true" }, DEFAULT_KEYS), params = { dev = false },
    keys = { "default-current-key", "default-next-key" } },
  { JS_DEV .. " › undefined + QSTASH_DEV=true returns true",
    env = merge({ QSTASH_DEV = "true" }, DEFAULT_KEYS), keys = { DEV_CURRENT, DEV_NEXT } },
  { JS_DEV .. " › undefined + QSTASH_DEV=1 returns true",
    env = merge({ QSTASH_DEV = "1" }, DEFAULT_KEYS, US_KEYS, { QSTASH_REGION = "US_EAST_1" }),
    params = { region = "US_EAST_1", current_signing_key = "config-current", next_signing_key = "config-next" },
    keys = { DEV_CURRENT, DEV_NEXT } },
  { JS_DEV .. " › undefined + QSTASH_DEV=false returns false",
    env = merge({ QSTASH_DEV = "false" }, DEFAULT_KEYS), keys = { "default-current-key", "default-next-key" } },
  { JS_DEV .. " › undefined + QSTASH_DEV=0 returns false",
    env = merge({ QSTASH_DEV = "0" }, DEFAULT_KEYS), keys = { "default-current-key", "default-next-key" } },
  { JS_DEV .. " › undefined + QSTASH_DEV='' (empty string) returns false",
    env = merge({ QSTASH_DEV = "" }, DEFAULT_KEYS), keys = { "default-current-key", "default-next-key" } },
  { JS_DEV .. " › undefined + no QSTASH_DEV returns false",
    env = DEFAULT_KEYS, keys = { "default-current-key", "default-next-key" } },
  { JS_DEV .. " › undefined + QSTASH_DEV=invalid throws",
    env = merge({ QSTASH_DEV = "invalid" }, DEFAULT_KEYS), config_error = "QSTASH_DEV must be 1, true, 0 or false" },
}

-- One token each, as the upstream test signs and checks it.
local JS_SIGNED = { url = URL, body = BODY, pad_body = false } -- createUpstashSingature
local function signed(key, over)
  local s = merge(JS_SIGNED, { key = key })
  for k, v in pairs(over or {}) do s[k] = v end
  return s
end

local SIGN_ROWS = {
  -- receiver.test.ts (keys are random nanoids upstream)
  { JS_RECEIVER .. " › receiver › verify signed with currentSigningKey",
    params = { current_signing_key = "nanoid-current", next_signing_key = "nanoid-next", url = "example.com",
               body = "bmFub2lkLWJvZHk=" },
    sign = signed("nanoid-current", { url = "example.com", body = "bmFub2lkLWJvZHk=" }), expect = "ok" },
  { JS_RECEIVER .. " › receiver › verify signed with nextSigninKey",
    params = { current_signing_key = "nanoid-current", next_signing_key = "nanoid-next", url = "example.com",
               body = "bmFub2lkLWJvZHk=" },
    sign = signed("nanoid-next", { url = "example.com", body = "bmFub2lkLWJvZHk=" }), expect = "ok" },

  -- workflow/receiver.test.ts (the same three checks under "first invocation",
  -- "third party result" and "normal invocation")
  { JS_WORKFLOW .. " › createSignedRequest helper › should create valid token",
    params = { current_signing_key = "wf-current", next_signing_key = "wf-next", url = "https://www.my-website.com/api" },
    sign = signed("wf-current", { url = "https://www.my-website.com/api" }), expect = "ok" },
  { JS_WORKFLOW .. " › createSignedRequest helper › should create invalid token",
    params = { current_signing_key = "wf-current", next_signing_key = "wf-next", url = "https://www.my-website.com/api" },
    sign = signed("wf-current", { url = "https://wrong-url.com" }), expect = "url_mismatch" },
  { JS_WORKFLOW .. " › should block request without signature (signature: header ?? \"\")",
    params = { current_signing_key = "wf-current", next_signing_key = "wf-next", signature = "" }, expect = "missing" },
  { JS_WORKFLOW .. " › should block request without signature (no header: nil)",
    params = { current_signing_key = "wf-current", next_signing_key = "wf-next" }, no_signature = true,
    expect = "missing" },
  { JS_WORKFLOW .. " › should block request with invalid signature (\"incorrect-signature\")",
    params = { current_signing_key = "wf-current", next_signing_key = "wf-next", signature = "incorrect-signature" },
    expect = "malformed" },
  { JS_WORKFLOW .. " › should block request with invalid signature (\"some-signature\")",
    params = { current_signing_key = "wf-current", next_signing_key = "wf-next", signature = "some-signature" },
    expect = "malformed" },
  { JS_WORKFLOW .. " › should allow request with signature",
    params = { current_signing_key = "wf-current", next_signing_key = "wf-next", url = "https://www.my-website.com/api",
               body = '{"status":200,"body":"x"}' },
    sign = signed("wf-current", { url = "https://www.my-website.com/api", body = '{"status":200,"body":"x"}' }),
    expect = "ok" },

  -- multi-region-integration.test.ts
  { JS_MRI .. " › should verify request with default signing keys",
    env = DEFAULT_KEYS, params = { url = URL }, sign = signed("default-current-key"), expect = "ok" },
  { JS_MRI .. " › should verify request with US region signing keys",
    env = merge({ QSTASH_REGION = "US_EAST_1" }, US_KEYS),
    params = { url = URL, region = "US-EAST-1", clock_tolerance = 0 }, sign = signed("us-current-key"), expect = "ok" },
  { JS_MRI .. " › should verify request with EU region signing keys",
    env = merge({ QSTASH_REGION = "EU_CENTRAL_1" }, EU_KEYS),
    params = { url = URL, region = "EU-CENTRAL-1" }, sign = signed("eu-current-key"), expect = "ok" },
  { JS_MRI .. " › should verify with fallback signing keys when region keys are incomplete",
    env = merge({ QSTASH_REGION = "US_EAST_1", US_EAST_1_QSTASH_CURRENT_SIGNING_KEY = "us-current-key" }, DEFAULT_KEYS),
    params = { url = URL }, sign = signed("default-current-key"), expect = "ok" },
  { JS_MRI .. " › should verify with config override keys",
    env = { QSTASH_CURRENT_SIGNING_KEY = "env-current-key", QSTASH_NEXT_SIGNING_KEY = "env-next-key" },
    params = { url = URL, current_signing_key = "config-current-key", next_signing_key = "config-next-key" },
    sign = signed("config-current-key"), expect = "ok" },
  { JS_MRI .. " › Next.js App Router Verifier › should verify request ... with US region",
    env = merge({ QSTASH_REGION = "US_EAST_1" }, US_KEYS),
    params = { url = "https://example.com/api/route", region = "US-EAST-1" },
    sign = signed("us-current-key", { url = "https://example.com/api/route" }), expect = "ok" },
  { JS_MRI .. " › Next.js App Router Verifier › should verify request ... with default keys",
    env = DEFAULT_KEYS, params = { url = "https://example.com/api/route" },
    sign = signed("default-current-key", { url = "https://example.com/api/route" }), expect = "ok" },
  { JS_MRI .. " › Next.js App Router Verifier › should reject request with invalid signature",
    env = DEFAULT_KEYS, params = { url = "https://example.com/api/route", signature = "invalid-signature" },
    expect = "malformed" },
  { JS_MRI .. " › Next.js App Router Verifier › should use config override",
    env = { QSTASH_CURRENT_SIGNING_KEY = "env-current-key", QSTASH_NEXT_SIGNING_KEY = "env-next-key" },
    params = { url = "https://example.com/api/route", current_signing_key = "config-current-key",
               next_signing_key = "config-next-key" },
    sign = signed("config-current-key", { url = "https://example.com/api/route" }), expect = "ok" },

  -- qstash-py: payload with aud "", a float jti, an unpadded body claim
  { PY .. " › test_receiver",
    params = { current_signing_key = "py-current", next_signing_key = "py-next", url = "https://mock.httpstatus.io/200",
               body = '{"hello": "world"}' },
    sign = { key = "py-current", url = "https://mock.httpstatus.io/200", body = '{"hello": "world"}', pad_body = false,
             claims = { aud = "", jti = 1712345678.25 } },
    expect = "ok" },
  { PY .. " › test_failed_verification",
    params = { current_signing_key = "py-current", next_signing_key = "py-next", url = "https://mock.httpstatus.io/201",
               body = '{"hello": "world"}' },
    sign = { key = "py-current", url = "https://mock.httpstatus.io/200", body = '{"hello": "world"}', pad_body = false,
             claims = { aud = "", jti = 1712345678.25 } },
    expect = "url_mismatch" },

  -- qstash-go: NewReceiverWithEnv reads QSTASH_CURRENT_SIGNING_KEY / QSTASH_NEXT_SIGNING_KEY
  { GO .. " › TestVerify",
    env = { QSTASH_CURRENT_SIGNING_KEY = "go-current", QSTASH_NEXT_SIGNING_KEY = "go-next" },
    params = { url = "https://example.com", body = '{"hello":"world"}' },
    sign = { key = "go-current", url = "https://example.com", body = '{"hello":"world"}', pad_body = false,
             claims = { aud = "", jti = "1712345678.000000" } },
    expect = "ok" },
  { GO .. " › TestFailedVerify",
    env = { QSTASH_CURRENT_SIGNING_KEY = "go-current", QSTASH_NEXT_SIGNING_KEY = "go-next" },
    params = { url = "https://example.com/fail", body = '{"hello":"world"}' },
    sign = { key = "go-current", url = "https://example.com", body = '{"hello":"world"}', pad_body = false,
             claims = { aud = "", jti = "1712345678.000000" } },
    expect = "url_mismatch" },
}

-- Runs every params table in a clean child with `env`, under qstash and
-- qstash.safe; returns one {outcome, outcome} pair per params table.
local CHILD = [[
local cjson = require "cjson"
local list = cjson.decode(PARAMS)
local out = {}
for i, p in ipairs(list) do
  if p.signature == "<nil>" then p.signature = nil end
  local pair = {}
  for _, name in ipairs({ "qstash", "qstash.safe" }) do
    local ok, res, err = pcall(require(name).verify, p)
    local o
    if not ok then
      if type(res) == "table" then o = "raise:" .. tostring(res.kind) .. ":" .. tostring(res.reason or res.message)
      else o = "argerror:" .. tostring(res) end
    elseif res == nil then o = "nil:" .. tostring(err.kind) .. ":" .. tostring(err.reason)
    else o = "ok:" .. tostring(res.iss) end
    pair[#pair + 1] = o
  end
  out[i] = pair
end
io.write(cjson.encode(out))
]]

local function run_child(env, list)
  local code = CHILD:gsub("PARAMS", function() return ("%q"):format(cjson.encode(list)) end)
  local out, ok = child.run(code, env, { clean = true })
  assert(ok and out:sub(1, 1) == "[", out)
  return cjson.decode(out)
end

-- Every key a row mentions, plus the emulator's and a stranger's.
local function candidate_keys(row)
  local seen, list = {}, {}
  local function add(k)
    if k and k ~= "" and not seen[k] then seen[k] = true; list[#list + 1] = k end
  end
  local names = {}
  for name in pairs(row.env or {}) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    if name:match("SIGNING_KEY$") then add(row.env[name]) end
  end
  add((row.params or {}).current_signing_key)
  add((row.params or {}).next_signing_key)
  for _, k in ipairs(row.keys or {}) do add(k) end
  add(DEV_CURRENT); add(DEV_NEXT); add(STRANGER)
  return list
end

local function contains(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

local function expect_pair(expect)
  if expect == "ok" then return { "ok:Upstash", "ok:Upstash" } end
  return { "raise:signature:" .. expect, "nil:signature:" .. expect }
end

describe("qstash.verify: the official SDKs' receiver cases", function()
  -- sign every token once, up front
  local key_tokens, row_tokens = {}, {}
  setup(function()
    local requests, where = {}, {}
    for i, row in ipairs(KEY_ROWS) do
      for _, key in ipairs(candidate_keys(row)) do
        requests[#requests + 1] = { key = key, url = URL, body = BODY }
        where[#requests] = { i, key }
      end
    end
    for i, row in ipairs(SIGN_ROWS) do
      if row.sign then
        requests[#requests + 1] = row.sign
        where[#requests] = { -i }
      end
    end
    for n, tok in ipairs(jwt.sign(requests)) do
      local w = where[n]
      if w[1] > 0 then
        key_tokens[w[1]] = key_tokens[w[1]] or {}
        key_tokens[w[1]][w[2]] = tok
      else
        row_tokens[-w[1]] = tok
      end
    end
  end)

  for i, row in ipairs(KEY_ROWS) do
    it(row[1], function()
      local keys = candidate_keys(row)
      local list = {}
      for n, key in ipairs(keys) do
        list[n] = merge({ body = BODY, url = URL }, row.params or {}, { signature = key_tokens[i][key] })
      end
      local got = run_child(row.env or {}, list)
      for n, key in ipairs(keys) do
        local pair = got[n]
        local where = "token signed with " .. key .. ": " .. cjson.encode(pair)
        if row.raises then
          for _, o in ipairs(pair) do
            assert.truthy(o:find("^argerror:.*" .. row.raises), where)
          end
        elseif row.config_error then
          for _, o in ipairs(pair) do
            assert.truthy(o:find("^raise:config:" .. row.config_error, 1, false), where)
          end
        elseif contains(row.keys, key) then
          assert.same(expect_pair("ok"), pair, where)
        else
          assert.same(expect_pair("bad_signature"), pair, where)
        end
      end
    end)
  end

  for i, row in ipairs(SIGN_ROWS) do
    it(row[1], function()
      local params = merge({ body = BODY }, row.params or {})
      if row.sign then params.signature = row_tokens[i] end
      if row.no_signature then params.signature = "<nil>" end
      local got = run_child(row.env or {}, { params })
      assert.same(expect_pair(row.expect), got[1])
    end)
  end
end)
