-- qstash.verify: Upstash-Signature JWT verification (see "Receiving" in the design).
-- The vectors come from spec/support/jwt_vectors.py, an independent Python
-- implementation, generated at test time so that exp/nbf are relative to now.
local cjson = require "cjson"
local qstash = require "qstash"
local qsafe = require "qstash.safe"

local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function load_vectors()
  local python = os.getenv("PYTHON") or "python3"
  local p = assert(io.popen(python .. " " .. shell_quote(here .. "support/jwt_vectors.py"), "r"))
  local out = p:read("*a")
  p:close()
  assert(out and out:sub(1, 1) == "{", "jwt_vectors.py produced no vectors")
  return cjson.decode(out)
end

-- cjson decodes "\u00e9" to UTF-8; the vectors' bodies are latin-1 (one char = one byte).
local latin1_map = {}
for b = 128, 255 do
  latin1_map[string.char(0xC0 + math.floor(b / 64), 0x80 + b % 64)] = string.char(b)
end
local function latin1(s)
  return (s:gsub("[\194\195][\128-\191]", latin1_map))
end

local function unnull(v)
  if v == cjson.null then return nil end
  return v
end

local function params_of(v)
  return {
    signature = v.signature,
    body = latin1(v.body),
    url = unnull(v.url),
    current_signing_key = unnull(v.current_signing_key),
    next_signing_key = unnull(v.next_signing_key),
    clock_tolerance = unnull(v.clock_tolerance),
  }
end

local function check_no_null(t)
  for _, v in pairs(t) do
    assert.is_not.equal(cjson.null, v)
    if type(v) == "table" then check_no_null(v) end
  end
end

-- expected: the payload as the vectors give it (decoded by the spec's own cjson)
local function check_claims(claims, expected, where)
  assert.equals("table", type(claims), where)
  check_no_null(claims)
  for k, v in pairs(expected) do
    local at = (where or "claims") .. "." .. tostring(k)
    if v == cjson.null then
      assert.is_nil(claims[k], at)
    elseif type(v) == "table" then
      check_claims(claims[k], v, at)
    else
      assert.equals(v, claims[k], at)
      if math.type and type(v) == "number" then
        -- integral numbers come back as integers where the Lua version has them
        assert.equals(v == math.floor(v) and "integer" or "float", math.type(claims[k]), at)
      end
    end
  end
  for k in pairs(claims) do
    assert.is_not_nil(unnull(expected[k]), "unexpected claim " .. tostring(k))
  end
end

local function secrets_absent(s, v)
  for _, key in ipairs({ v.current_signing_key, v.next_signing_key }) do
    if key ~= cjson.null then
      assert.is_nil(s:find(key, 1, true), "a signing key leaked into: " .. s)
    end
  end
end

local vectors = load_vectors()
local names = {}
for name in pairs(vectors) do names[#names + 1] = name end
table.sort(names)

describe("qstash.verify vectors", function()
  it("has the cases it promises", function()
    for _, reason in ipairs({ "ok", "missing", "malformed", "bad_signature", "wrong_issuer", "expired",
                              "not_yet_valid", "url_mismatch", "body_mismatch" }) do
      local n = 0
      for _, v in pairs(vectors) do
        if v.expect == reason then n = n + 1 end
      end
      assert.is_true(n > 0, reason)
    end
  end)

  for _, name in ipairs(names) do
    local v = vectors[name]
    it(name .. " -> " .. v.expect, function()
      local params = params_of(v)
      if v.expect == "ok" then
        local claims = qstash.verify(params)
        check_claims(claims, v.claims)
        assert.equals("Upstash", claims.iss)
        local claims2, err = qsafe.verify(params)
        assert.is_nil(err)
        check_claims(claims2, v.claims)
        assert.are_not.equal(claims, claims2) -- a fresh table every call
      else
        local ok, err = pcall(qstash.verify, params)
        assert.is_false(ok)
        assert.equals("table", type(err))
        assert.is_true(qstash.is_error(err))
        assert.equals("signature", err.kind)
        assert.equals(v.expect, err.reason)
        assert.equals("string", type(err.message))
        local text = tostring(err)
        local prefix = "qstash: signature [" .. v.expect .. "]: "
        assert.equals(prefix, text:sub(1, #prefix))
        secrets_absent(text, v)

        local res, err2 = qsafe.verify(params)
        assert.is_nil(res)
        assert.is_true(qsafe.is_error(err2))
        assert.equals("signature", err2.kind)
        assert.equals(v.expect, err2.reason)
      end
    end)
  end
end)

describe("qstash.verify", function()
  local ok_vector = vectors.ok_current_key
  local function valid(over)
    local p = params_of(ok_vector)
    for k, val in pairs(over or {}) do p[k] = val end
    return p
  end

  it("does not change the params table", function()
    local p = valid()
    local copy = {}
    for k, val in pairs(p) do copy[k] = val end
    qstash.verify(p)
    assert.same(copy, p)
  end)

  it("is not affected by how the shared cjson module is configured", function()
    local nested = params_of(vectors.ok_nested_claims)
    cjson.decode_max_depth(1)
    local ok, claims = pcall(qstash.verify, nested)
    cjson.decode_max_depth(1000)
    assert.is_true(ok, tostring(claims))
    assert.equals(3.5, claims.meta.e.f)
  end)

  it("rejects a very long token as malformed", function()
    local long = string.rep("a", 1024 * 1024) .. "." .. string.rep("b", 10) .. "." .. "c"
    local res, err = qsafe.verify(valid({ signature = long }))
    assert.is_nil(res)
    assert.equals("malformed", err.reason)
  end)

  it("survives arbitrary bytes as a token", function()
    math.randomseed(12345)
    local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.="
    -- make valgrind runs the interpreter some 40 times slower: there 300
    -- rounds still give every kind of token below a hundred times
    local rounds = os.getenv("QSTASH_SPEC_VALGRIND") and 300 or 3000
    for round = 1, rounds do
      local n = math.random(0, 300)
      local buf = {}
      for i = 1, n do
        if round % 3 == 0 then
          buf[i] = string.char(math.random(0, 255))
        else
          local j = math.random(1, #alphabet)
          buf[i] = alphabet:sub(j, j)
        end
      end
      local tok = table.concat(buf)
      if round % 5 == 0 then tok = ok_vector.signature:sub(1, math.random(0, #ok_vector.signature)) .. tok end
      if tok == ok_vector.signature then tok = tok .. "=" end
      local res, err = qsafe.verify(valid({ signature = tok }))
      assert.is_nil(res)
      if tok == "" then
        assert.equals("missing", err.reason)
      else
        assert.is_true(err.reason == "malformed" or err.reason == "bad_signature", tostring(err.reason))
      end
    end
  end)

  describe("argument errors raise a string in both variants", function()
    local cases = {
      { "params not a table", nil, "table expected" },
      { "params a string", "tok", "table expected" },
      { "signature not a string", { signature = 1, body = "", current_signing_key = "k" },
        "'signature' must be a string" },
      { "body missing", { signature = "a.b.c", current_signing_key = "k" }, "'body' must be a string" },
      { "body not a string", { signature = "a.b.c", body = false, current_signing_key = "k" },
        "'body' must be a string" },
      { "url not a string", { signature = "a.b.c", body = "", url = 1, current_signing_key = "k" },
        "'url' must be a string" },
      { "current key not a string", { signature = "a.b.c", body = "", current_signing_key = 1 },
        "'current_signing_key'" },
      { "current key empty", { signature = "a.b.c", body = "", current_signing_key = "" },
        "'current_signing_key' must be a non%-empty string" },
      { "next key not a string", { signature = "a.b.c", body = "", next_signing_key = true },
        "'next_signing_key'" },
      { "negative tolerance", { signature = "a.b.c", body = "", current_signing_key = "k", clock_tolerance = -1 },
        "'clock_tolerance'" },
      { "string tolerance", { signature = "a.b.c", body = "", current_signing_key = "k", clock_tolerance = "5" },
        "'clock_tolerance'" },
      { "NaN tolerance", { signature = "a.b.c", body = "", current_signing_key = "k", clock_tolerance = 0 / 0 },
        "'clock_tolerance'" },
      { "infinite tolerance",
        { signature = "a.b.c", body = "", current_signing_key = "k", clock_tolerance = math.huge },
        "'clock_tolerance'" },
      { "unknown key", { signature = "a.b.c", body = "", current_signing_key = "k", sig = "x" },
        "unknown parameter 'sig'" },
      { "a misspelt key", { signature = "a.b.c", body = "", current_signing_key = "k", sigature = "x" },
        "unknown parameter 'sigature'; did you mean 'signature'?" },
      { "array item", { "x", signature = "a.b.c", body = "", current_signing_key = "k" },
        "parameter keys must be strings, got a number key" },
      { "region not a string", { signature = "a.b.c", body = "", current_signing_key = "k", region = 1 },
        "'region' must be a string" },
      { "dev not a boolean", { signature = "a.b.c", body = "", current_signing_key = "k", dev = "true" },
        "'dev' must be a boolean" },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        for _, mod in ipairs({ qstash, qsafe }) do
          local ok, err = pcall(mod.verify, c[2])
          assert.is_false(ok)
          assert.equals("string", type(err))
          assert.truthy(err:find("bad argument #1", 1, true), err)
          assert.truthy(err:find(c[3]), err)
        end
      end)
    end

    it("a missing signature (nil or \"\") is a rejection, not an argument error", function()
      -- what a handler passing headers["Upstash-Signature"] straight in gives for a request
      -- without the header (qstash-js workflow/receiver.test.ts: "should block request without signature")
      for _, sig in ipairs({ "", false }) do
        local p = valid()
        p.signature = sig or nil
        local res, err = qsafe.verify(p)
        assert.is_nil(res)
        assert.is_true(qsafe.is_error(err))
        assert.equals("signature", err.kind)
        assert.equals("missing", err.reason)
        assert.equals("qstash: signature [missing]: ", tostring(err):sub(1, 29))
        local ok, err2 = pcall(qstash.verify, p)
        assert.is_false(ok)
        assert.is_true(qstash.is_error(err2))
        assert.equals("missing", err2.reason)
      end
    end)

    it("zero tolerance and an empty body are accepted", function()
      local res, err = qsafe.verify(valid({ clock_tolerance = 0, body = "" }))
      assert.is_nil(res)
      assert.equals("body_mismatch", err.reason)
    end)
  end)
end)

-- Environment defaults: run a child interpreter with a controlled environment.
describe("qstash.verify signing keys from the environment", function()
  -- the interpreter running this spec cannot be found reliably under busted: $LUA, else by version
  local lua = os.getenv("LUA") or (jit and "luajit") or ("lua" .. (_VERSION:match("%d+%.%d+") or "5.4"))
  local script
  local cur, nxt = vectors.ok_current_key.current_signing_key, vectors.ok_current_key.next_signing_key
  local by_current, by_next = vectors.ok_current_key, vectors.ok_next_key_only
  local managed = {
    "QSTASH_REGION", "QSTASH_DEV", "QSTASH_CURRENT_SIGNING_KEY", "QSTASH_NEXT_SIGNING_KEY",
    "US_EAST_1_QSTASH_CURRENT_SIGNING_KEY", "US_EAST_1_QSTASH_NEXT_SIGNING_KEY",
    "EU_CENTRAL_1_QSTASH_CURRENT_SIGNING_KEY", "EU_CENTRAL_1_QSTASH_NEXT_SIGNING_KEY",
    "LUA_PATH_5_4", "LUA_CPATH_5_4", "LUA_PATH_5_3", "LUA_CPATH_5_3", "LUA_PATH_5_2", "LUA_CPATH_5_2",
  }

  setup(function()
    script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
      local qstash = require(os.getenv("QS_VARIANT") or "qstash")
      local p = { signature = os.getenv("QS_TOKEN"), body = os.getenv("QS_BODY") or "",
                  current_signing_key = os.getenv("QS_CURRENT"), region = os.getenv("QS_REGION") }
      local ok, res, err = pcall(qstash.verify, p)
      if not ok then
        if type(res) == "table" then io.write("error:", tostring(res.reason))
        else io.write("argerror:", tostring(res)) end
      elseif res == nil then io.write("nil:", tostring(err.reason))
      else io.write("ok:", tostring(res.iss)) end
    ]])
    f:close()
  end)

  teardown(function()
    if script then os.remove(script) end
  end)

  local function run(vector, env)
    local cmd = { "env" }
    for _, name in ipairs(managed) do cmd[#cmd + 1] = "-u " .. name end
    cmd[#cmd + 1] = "LUA_PATH=" .. shell_quote(package.path)
    cmd[#cmd + 1] = "LUA_CPATH=" .. shell_quote(package.cpath)
    cmd[#cmd + 1] = "QS_TOKEN=" .. shell_quote(vector.signature)
    cmd[#cmd + 1] = "QS_BODY=" .. shell_quote(latin1(vector.body))
    for k, v in pairs(env) do cmd[#cmd + 1] = k .. "=" .. shell_quote(v) end
    cmd[#cmd + 1] = lua .. " " .. shell_quote(script) .. " 2>&1"
    local p = assert(io.popen(table.concat(cmd, " "), "r"))
    local out = p:read("*a")
    p:close()
    return out
  end

  it("reads QSTASH_CURRENT_SIGNING_KEY", function()
    assert.equals("ok:Upstash", run(by_current, { QSTASH_CURRENT_SIGNING_KEY = cur }))
  end)

  it("reads QSTASH_NEXT_SIGNING_KEY alone", function()
    assert.equals("ok:Upstash", run(by_next, { QSTASH_NEXT_SIGNING_KEY = nxt }))
  end)

  it("falls back to the next key from the environment (rotation)", function()
    assert.equals("ok:Upstash", run(by_next, { QSTASH_CURRENT_SIGNING_KEY = "sig_wrong", QSTASH_NEXT_SIGNING_KEY = nxt }))
    assert.equals("error:bad_signature", run(by_next, { QSTASH_CURRENT_SIGNING_KEY = cur }))
  end)

  -- the rules of qstash-js src/client/multi-region/incoming.ts; its test cases are
  -- ported one by one in spec/verify_sdk_cases_spec.lua
  it("uses the delivery region's pair when QSTASH_REGION names a region and both keys are set", function()
    local regional = { QSTASH_REGION = "us-east-1", US_EAST_1_QSTASH_CURRENT_SIGNING_KEY = cur,
                       US_EAST_1_QSTASH_NEXT_SIGNING_KEY = nxt, QSTASH_CURRENT_SIGNING_KEY = "sig_wrong" }
    regional.QS_REGION = "us-east-1"
    assert.equals("ok:Upstash", run(by_current, regional))
    assert.equals("ok:Upstash", run(by_next, regional))
    regional.QS_REGION = nil -- no delivery region: the default keys
    assert.equals("error:bad_signature", run(by_current, regional))
  end)

  it("falls back to the default keys when the region's pair is incomplete (never mixes them)", function()
    assert.equals("ok:Upstash", run(by_current, {
      QSTASH_REGION = "US_EAST_1", QS_REGION = "US_EAST_1",
      US_EAST_1_QSTASH_CURRENT_SIGNING_KEY = "sig_wrong", QSTASH_CURRENT_SIGNING_KEY = cur,
    }))
    assert.equals("ok:Upstash", run(by_next, {
      QSTASH_REGION = "US_EAST_1", QS_REGION = "US_EAST_1",
      US_EAST_1_QSTASH_CURRENT_SIGNING_KEY = cur, QSTASH_NEXT_SIGNING_KEY = nxt,
    }))
    assert.equals("error:bad_signature", run(by_current, {
      QSTASH_REGION = "US_EAST_1", QS_REGION = "US_EAST_1",
      US_EAST_1_QSTASH_CURRENT_SIGNING_KEY = cur, QSTASH_NEXT_SIGNING_KEY = nxt,
    }))
  end)

  it("normalizes QSTASH_REGION and the delivery region (US_EAST_1, us-east-1, Us-East_1)", function()
    for _, pair in ipairs({ { "US_EAST_1", "us-east-1" }, { "us-east-1", "US-EAST-1" }, { "Us-East_1", "us_east_1" } }) do
      assert.equals("ok:Upstash", run(by_next, {
        QSTASH_REGION = pair[1], QS_REGION = pair[2],
        US_EAST_1_QSTASH_CURRENT_SIGNING_KEY = cur, US_EAST_1_QSTASH_NEXT_SIGNING_KEY = nxt,
        QSTASH_NEXT_SIGNING_KEY = "sig_wrong",
      }))
    end
  end)

  it("reads no variable named by an unknown region value", function()
    -- the region comes from a request header: only EU_CENTRAL_1 and US_EAST_1 select variables
    for _, region in ipairs({ "AP_SOUTH_1", "us-east-1 ", "", "../US_EAST_1" }) do
      assert.equals("ok:Upstash", run(by_current, {
        QSTASH_REGION = "US_EAST_1", QS_REGION = region, QSTASH_CURRENT_SIGNING_KEY = cur,
        AP_SOUTH_1_QSTASH_CURRENT_SIGNING_KEY = "sig_wrong", AP_SOUTH_1_QSTASH_NEXT_SIGNING_KEY = "sig_wrong",
      }))
    end
  end)

  it("falls back to QSTASH_*_SIGNING_KEY when the region has no keys", function()
    assert.equals("ok:Upstash", run(by_current, { QSTASH_REGION = "eu-central-1", QS_REGION = "eu-central-1",
      QSTASH_CURRENT_SIGNING_KEY = cur }))
  end)

  it("uses only the keys in params when any is given", function()
    assert.equals("error:bad_signature", run(by_current, { QSTASH_CURRENT_SIGNING_KEY = cur, QS_CURRENT = "sig_wrong" }))
    assert.equals("error:bad_signature", run(by_next, { QSTASH_NEXT_SIGNING_KEY = nxt, QS_CURRENT = cur }))
    assert.equals("ok:Upstash", run(by_current, { QSTASH_CURRENT_SIGNING_KEY = "sig_wrong", QS_CURRENT = cur }))
  end)

  it("returns nil, err from qstash.safe", function()
    assert.equals("nil:bad_signature", run(by_current, { QS_VARIANT = "qstash.safe", QSTASH_CURRENT_SIGNING_KEY = "sig_wrong" }))
    assert.equals("ok:Upstash", run(by_current, { QS_VARIANT = "qstash.safe", QSTASH_CURRENT_SIGNING_KEY = cur }))
  end)

  it("raises an argument error naming the variables when there is no key", function()
    for _, variant in ipairs({ "qstash", "qstash.safe" }) do
      local out = run(by_current, { QS_VARIANT = variant })
      assert.truthy(out:find("^argerror:.*bad argument #1"), out)
      assert.truthy(out:find("QSTASH_CURRENT_SIGNING_KEY", 1, true), out)
      assert.truthy(out:find("QSTASH_NEXT_SIGNING_KEY", 1, true), out)
    end
    local out = run(by_current, { QSTASH_REGION = "eu-central-1", QS_REGION = "EU-CENTRAL-1" })
    assert.truthy(out:find("^argerror:"), out)
    assert.truthy(out:find("EU_CENTRAL_1_QSTASH_CURRENT_SIGNING_KEY", 1, true), out)
    assert.truthy(out:find("EU_CENTRAL_1_QSTASH_NEXT_SIGNING_KEY", 1, true), out)
    out = run(by_current, { QSTASH_REGION = "eu-central-1" })
    assert.truthy(out:find("<REGION>_QSTASH_CURRENT_SIGNING_KEY", 1, true), out)
  end)

  it("treats empty variables as unset", function()
    local out = run(by_current, { QSTASH_CURRENT_SIGNING_KEY = "", QSTASH_NEXT_SIGNING_KEY = "" })
    assert.truthy(out:find("^argerror:"), out)
    assert.equals("ok:Upstash", run(by_current, {
      QSTASH_REGION = "us-east-1", US_EAST_1_QSTASH_CURRENT_SIGNING_KEY = "", QSTASH_CURRENT_SIGNING_KEY = cur,
    }))
  end)
end)

-- exp and nbf at the exact second, as jose, PyJWT and golang-jwt treat them:
-- valid while now < exp + tolerance, and from nbf - tolerance on.
describe("qstash.verify time edges", function()
  local jwt = require "spec.support.jwt"
  local KEY = "sig_timeEdgesKeyForTests"

  -- Verifies a token whose `claim` is now + offset, with `tol`. Tokens are signed
  -- ahead for the next minute (signing may be slow on a loaded machine); the one
  -- for the current second is checked, and the check counts only when the clock
  -- did not move on meanwhile.
  local AHEAD = 60
  local function at(claim, offset, tol)
    for _ = 1, 5 do
      local t0 = os.time()
      local requests = {}
      for i = 0, AHEAD do
        local c = { exp = t0 + i + 300, nbf = t0 + i - 300, iat = t0 + i - 300 }
        c[claim] = t0 + i + offset
        requests[i + 1] = { key = KEY, body = "b", claims = c }
      end
      local tokens = jwt.sign(requests)
      local now = os.time()
      if now - t0 <= AHEAD then
        local res, err = qsafe.verify{ signature = tokens[now - t0 + 1], body = "b",
                                       current_signing_key = KEY, clock_tolerance = tol }
        if os.time() == now then return res and "ok" or err.reason end
      end
    end
    error("the clock moved on during every attempt")
  end

  it("rejects at exactly exp + tolerance, accepts one second before", function()
    assert.equals("expired", at("exp", 0, 0))       -- now == exp
    assert.equals("ok", at("exp", 1, 0))            -- now == exp - 1
    assert.equals("expired", at("exp", -5, 5))      -- now == exp + 5, tolerance 5
    assert.equals("ok", at("exp", -4, 5))
    assert.equals("ok", at("exp", 0, 0.5))          -- now < exp + 0.5
    assert.equals("expired", at("exp", -1, 0.5))
  end)

  it("accepts from exactly nbf - tolerance, rejects one second before", function()
    assert.equals("ok", at("nbf", 0, 0))            -- now == nbf
    assert.equals("not_yet_valid", at("nbf", 1, 0)) -- now == nbf - 1
    assert.equals("ok", at("nbf", 5, 5))            -- now == nbf - 5, tolerance 5
    assert.equals("not_yet_valid", at("nbf", 6, 5))
    assert.equals("not_yet_valid", at("nbf", 1, 0.5))
  end)
end)

-- Dev mode takes the public signing keys of tools/qstash-dev (QStash's local
-- dev server's), as the official SDKs' devMode does (qstash-js
-- src/client/multi-region/incoming.ts, src/dev-server/index.test.ts).
describe("qstash.verify dev mode against tools/qstash-dev", function()
  local E = require "spec.support.emulator"
  local child = require "spec.support.child"
  local emu, sink, client, sig, body, url

  setup(function()
    emu = E.start{ time_scale = 0.001 }
    sink = E.start_sink()
    client = qstash.new{ base_url = emu.url, token = emu.token, retry = { base_delay = 0.01 }, timeout = 5 }
    url = sink.url .. "/dev-hook?x=1"
    client:publish(url, "dev payload")
    local got = E.wait_for(function() return sink:received()[1] end, 10)
    assert.is_truthy(got, "the emulator did not deliver")
    sig, body = sink:header(got, "Upstash-Signature"), got.body
  end)
  teardown(function()
    if client then client:close() end
    if sink then sink:stop() end
    if emu then emu:stop() end
  end)

  it("dev = true verifies the emulator's delivery without any key", function()
    local claims = qstash.verify{ signature = sig, body = body, url = url, dev = true }
    assert.equals("Upstash", claims.iss)
    assert.equals(url, claims.sub)
    local res, err = qsafe.verify{ signature = sig, body = "tampered", url = url, dev = true }
    assert.is_nil(res)
    assert.equals("body_mismatch", err.reason)
  end)

  it("dev = true overrides keys given in the call; dev = false uses them", function()
    -- qstash-js src/dev-server/index.test.ts: "devMode: true overrides explicit signing key config"
    local p = { signature = sig, body = body, dev = true,
                current_signing_key = "sig_realCurrent", next_signing_key = "sig_realNext" }
    assert.equals("Upstash", qstash.verify(p).iss)
    p.dev = false
    local res, err = qsafe.verify(p)
    assert.is_nil(res)
    assert.equals("bad_signature", err.reason)
  end)

  it("QSTASH_DEV (1/true on, 0/false/empty off, anything else raises) in a clean child", function()
    local code = ([[
      for _, name in ipairs({ "qstash", "qstash.safe" }) do
        local ok, res, err = pcall(require(name).verify, { signature = %q, body = %q })
        if not ok then
          io.write(type(res) == "table" and ("raise:" .. res.kind .. ":" .. (res.reason or res.message)) or res, ";")
        elseif res then io.write("ok:", res.iss, ";")
        else io.write("nil:", err.reason, ";") end
      end
    ]]):format(sig, body)
    local other = { QSTASH_CURRENT_SIGNING_KEY = "sig_realCurrent", QSTASH_NEXT_SIGNING_KEY = "sig_realNext" }
    local function run(dev)
      local env = { QSTASH_DEV = dev }
      for k, v in pairs(other) do env[k] = v end
      local out, ok = child.run(code, env, { clean = true })
      assert.is_true(ok, out)
      return out
    end
    assert.equals("ok:Upstash;ok:Upstash;", run("1"))
    assert.equals("ok:Upstash;ok:Upstash;", run("true"))
    for _, off in ipairs({ "0", "false", "" }) do
      assert.equals("raise:signature:bad_signature;nil:bad_signature;", run(off))
    end
    local out = run("yes")
    assert.equals("raise:config:QSTASH_DEV must be 1, true, 0 or false (got 'yes');"
      .. "raise:config:QSTASH_DEV must be 1, true, 0 or false (got 'yes');", out)
  end)
end)
