-- qstash.resty.verify_request under a real nginx: the signing keys come from
-- the environment nginx passes (`env` lines) as the official SDKs resolve them,
-- with the delivery's region read from its Upstash-Region header; dev mode
-- takes the emulator's public keys and logs one warning per worker.
-- Cases from upstash/qstash-js src/client/multi-region-integration.test.ts
-- ("Next.js App Router Verifier", the SDK's own request-level receiver) and the
-- rules of src/client/multi-region/incoming.ts. Runs under LuaJIT only
-- (`make test LUA=luajit`), the ABI nginx loads.
local nginx = require "spec.support.nginx"
local jwt = require "spec.support.jwt"
local socket = require "socket"

local JS_MRI = "qstash-js multi-region-integration.test.ts › Next.js App Router Verifier › "
local DEV_CURRENT = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r" -- tools/qstash-dev
local WARNING = "verify_request accepts signatures made with the local emulator's public signing keys"
local BODY = '{"message":"test"}'

if nginx.pending_unless_runnable("qstash.resty.verify_request under nginx") then return end

-- The handler answers "ok <sub>" or "fail <reason>" (respond = false), or lets
-- verify_request answer 401 (respond=1). Query: dev=1/0, cur/next (keys in the call).
local SERVER = [[
    location = /hook {
      content_by_lua_block {
        local a = ngx.var
        local opts = { respond = a.arg_respond == "1" }
        if a.arg_dev then opts.dev = a.arg_dev == "1" end
        if a.arg_cur then opts.current_signing_key, opts.next_signing_key = a.arg_cur, a.arg_next end
        local ok, claims, err = pcall(require("qstash.resty").verify_request, opts)
        if not ok then
          local qstash = require "qstash"
          return ngx.say("raised ", qstash.is_error(claims) and claims.kind or "string", " ", tostring(claims))
        end
        if claims then return ngx.say("ok ", claims.sub) end
        ngx.say("fail ", err.reason, " ", err.message)
      }
    }
]]

local ENV = [[
env QSTASH_REGION=US_EAST_1;
env US_EAST_1_QSTASH_CURRENT_SIGNING_KEY=us-current-key;
env US_EAST_1_QSTASH_NEXT_SIGNING_KEY=us-next-key;
env EU_CENTRAL_1_QSTASH_CURRENT_SIGNING_KEY=eu-current-key;
env EU_CENTRAL_1_QSTASH_NEXT_SIGNING_KEY=eu-next-key;
env QSTASH_CURRENT_SIGNING_KEY=default-current-key;
env QSTASH_NEXT_SIGNING_KEY=default-next-key;
]]

-- One request on its own connection (HTTP/1.0: a plain body back); headers is a
-- list of {name, value}, so a header can be repeated.
local function post(srv, path, headers, body)
  local c = socket.tcp()
  c:settimeout(10)
  assert(c:connect("127.0.0.1", srv.port))
  local lines = { "POST " .. path .. " HTTP/1.0", "Host: 127.0.0.1", "Content-Length: " .. #body }
  for _, h in ipairs(headers) do lines[#lines + 1] = h[1] .. ": " .. h[2] end
  assert(c:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. body))
  local resp = c:receive("*a")
  c:close()
  return tonumber(resp:match("^HTTP/1%.%d (%d+)")), (resp:match("\r\n\r\n(.*)$") or ""):gsub("\n$", "")
end

-- Warning lines of the error log, per worker pid.
local function warnings(srv)
  local per_pid, total = {}, 0
  for line in srv:error_log():gmatch("[^\n]+") do
    if line:find(WARNING, 1, true) then
      assert.truthy(line:find("[warn]", 1, true), line)
      local pid = line:match("%[warn%] (%d+)#")
      per_pid[pid] = (per_pid[pid] or 0) + 1
      total = total + 1
    end
  end
  return per_pid, total
end

local function no_alarms(srv)
  local log = srv:error_log()
  for _, bad in ipairs({ "[alert]", "[crit]", "[emerg]", "lua entry thread aborted" }) do
    assert.is_nil(log:find(bad, 1, true), log)
  end
end

describe("qstash.resty.verify_request under nginx", function()
  local tok = {}
  setup(function()
    local keys = { "us-current-key", "eu-current-key", "default-current-key", "config-current-key",
                   DEV_CURRENT, "sig_strangerKey" }
    local requests = {}
    for i, key in ipairs(keys) do requests[i] = { key = key, body = BODY, url = "https://example.com/api/route" } end
    for i, t in ipairs(jwt.sign(requests)) do tok[keys[i]] = t end
  end)

  describe("with region and default keys in the environment", function()
    local srv
    setup(function()
      srv = nginx.start{ main = ENV, server = SERVER, workers = 2 }
    end)
    teardown(function()
      if srv then srv:stop() end
    end)
    after_each(function()
      no_alarms(srv)
    end)

    local function check(key, headers, query)
      local h = { { "Upstash-Signature", tok[key] } }
      for _, x in ipairs(headers or {}) do h[#h + 1] = x end
      local status, body = post(srv, "/hook" .. (query or ""), h, BODY)
      assert.equal(200, status, body)
      return body
    end

    it(JS_MRI .. "should verify request using verifySignatureAppRouter with US region", function()
      assert.equal("ok https://example.com/api/route", check("us-current-key", { { "Upstash-Region", "US-EAST-1" } }))
      -- the header chose the keys: the default ones do not verify this delivery
      assert.matches("^fail bad_signature", check("default-current-key", { { "Upstash-Region", "US-EAST-1" } }))
    end)

    it("incoming.ts: the delivery's region, not QSTASH_REGION, selects the keys", function()
      assert.equal("ok https://example.com/api/route", check("eu-current-key", { { "upstash-region", "eu-central-1" } }))
      assert.matches("^fail bad_signature", check("us-current-key", { { "Upstash-Region", "EU_CENTRAL_1" } }))
    end)

    it(JS_MRI .. "should verify request using verifySignatureAppRouter with default keys", function()
      assert.equal("ok https://example.com/api/route", check("default-current-key"))
      assert.matches("^fail bad_signature", check("us-current-key"))
    end)

    it("incoming.ts: a header that names no region, or is repeated, gets the default keys", function()
      assert.equal("ok https://example.com/api/route", check("default-current-key", { { "Upstash-Region", "mars-1" } }))
      local twice = { { "Upstash-Region", "US-EAST-1" }, { "Upstash-Region", "US-EAST-1" } }
      assert.equal("ok https://example.com/api/route", check("default-current-key", twice))
      assert.matches("^fail bad_signature", check("us-current-key", twice))
    end)

    it(JS_MRI .. "should use config override with verifySignatureAppRouter", function()
      local q = "?cur=config-current-key&next=config-next-key"
      assert.equal("ok https://example.com/api/route",
        check("config-current-key", { { "Upstash-Region", "US-EAST-1" } }, q))
      assert.matches("^fail bad_signature", check("us-current-key", { { "Upstash-Region", "US-EAST-1" } }, q))
    end)

    it(JS_MRI .. "should reject request with invalid signature using verifySignatureAppRouter", function()
      local status, body = post(srv, "/hook", { { "Upstash-Signature", "invalid-signature" } }, BODY)
      assert.equal(200, status)
      assert.matches("^fail malformed", body)
      status, body = post(srv, "/hook?respond=1", { { "Upstash-Signature", "invalid-signature" } }, BODY)
      assert.equal(401, status)
      assert.equal("invalid Upstash-Signature (malformed)", body)
    end)

    it("answers 401 (missing) without the header, malformed when it is repeated", function()
      local status, body = post(srv, "/hook?respond=1", {}, BODY)
      assert.equal(401, status)
      assert.equal("invalid Upstash-Signature (missing)", body)
      status, body = post(srv, "/hook", { { "Upstash-Signature", "" } }, BODY)
      assert.equal(200, status)
      assert.matches("^fail missing", body)
      status, body = post(srv, "/hook", { { "Upstash-Signature", tok["default-current-key"] },
                                          { "Upstash-Signature", tok["default-current-key"] } }, BODY)
      assert.equal(200, status)
      assert.equal("fail malformed more than one Upstash-Signature header", body)
    end)

    it("dev = true takes the emulator's keys and logs one warning per worker", function()
      local _, before = warnings(srv)
      assert.equal(0, before)
      for _ = 1, 12 do
        assert.equal("ok https://example.com/api/route", check(DEV_CURRENT, nil, "?dev=1"))
      end
      assert.matches("^fail bad_signature", check("default-current-key", nil, "?dev=1"))
      local per_pid, total = warnings(srv)
      assert.is_true(total >= 1 and total <= 2, srv:error_log())
      for pid, n in pairs(per_pid) do assert.equal(1, n, "worker " .. pid .. " warned " .. n .. " times") end
      -- without dev mode, nothing more is logged
      check("default-current-key")
      local _, after = warnings(srv)
      assert.equal(total, after)
    end)
  end)

  describe("with QSTASH_DEV=1 in the environment", function()
    local srv
    setup(function()
      srv = nginx.start{ main = ENV .. "env QSTASH_DEV=1;\n", server = SERVER }
    end)
    teardown(function()
      if srv then srv:stop() end
    end)
    after_each(function()
      no_alarms(srv)
    end)

    it("verifies with the emulator's keys, warns once, and dev = false turns it off", function()
      for _ = 1, 3 do
        local status, body = post(srv, "/hook", { { "Upstash-Signature", tok[DEV_CURRENT] } }, BODY)
        assert.equal(200, status)
        assert.equal("ok https://example.com/api/route", body)
      end
      local _, body = post(srv, "/hook", { { "Upstash-Signature", tok["default-current-key"] } }, BODY)
      assert.matches("^fail bad_signature", body)
      local _, total = warnings(srv)
      assert.equal(1, total, srv:error_log())
      _, body = post(srv, "/hook?dev=0", { { "Upstash-Signature", tok["default-current-key"] } }, BODY)
      assert.equal("ok https://example.com/api/route", body)
    end)
  end)

  describe("with a QSTASH_DEV that is neither on nor off", function()
    local srv
    setup(function()
      srv = nginx.start{ main = ENV .. "env QSTASH_DEV=yes;\n", server = SERVER }
    end)
    teardown(function()
      if srv then srv:stop() end
    end)
    after_each(function()
      no_alarms(srv)
    end)

    it("raises the config error object (a misconfigured receiver)", function()
      local _, body = post(srv, "/hook", { { "Upstash-Signature", tok[DEV_CURRENT] } }, BODY)
      assert.equal("raised config qstash: config: QSTASH_DEV must be 1, true, 0 or false (got 'yes')", body)
      _, body = post(srv, "/hook?dev=1", { { "Upstash-Signature", tok[DEV_CURRENT] } }, BODY)
      assert.equal("ok https://example.com/api/route", body)
    end)
  end)
end)
