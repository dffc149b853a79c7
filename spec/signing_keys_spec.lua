-- The signing keys (signing_keys, signing_keys_rotate): on the wire against
-- the recording server (method, path, shapes, resend safety: a rotation is
-- never sent twice after an unknown outcome), through prepare/step, async,
-- qstash.safe and the module functions; and end to end against the
-- emulator, whose rotation changes the key deliveries are signed with, as
-- qstash.verify sees it.
local qstash = require "qstash"
local qsafe = require "qstash.safe"
local server = require "spec.support.server"
local E = require "spec.support.emulator"
local child = require "spec.support.child"
local step_http = require "spec.support.step_http"
local ports = require "spec.support.ports"

local KEYS = { current = "sig_currentAAAAAAAAAAAAAAAAAAAAAAA", next = "sig_nextBBBBBBBBBBBBBBBBBBBBBBBBBBB" }

describe("signing keys on the wire", function()
  local srv, client

  setup(function()
    srv = server.start()
    client = qstash.new{ token = "tok-keys", base_url = srv.url, timeout = 5,
                         retry = { attempts = 3, base_delay = 0.01, max_delay = 0.05 } }
  end)
  teardown(function()
    client:close()
    srv:stop()
  end)
  before_each(function() srv:reset() end)

  local function received(path)
    local n = 0
    for _, r in ipairs(srv:requests()) do
      if r.path == path then n = n + 1 end
    end
    return n
  end

  it("signing_keys reads GET /v2/keys; signing_keys_rotate sends an empty POST /v2/keys/rotate", function()
    srv:script{ { status = 200, json = KEYS }, { status = 200, json = KEYS } }
    assert.same(KEYS, client:signing_keys())
    assert.same(KEYS, client:signing_keys_rotate())
    local reqs = srv:requests()
    assert.equal("GET", reqs[1].method)
    assert.equal("/v2/keys", reqs[1].target)
    assert.equal("POST", reqs[2].method)
    assert.equal("/v2/keys/rotate", reqs[2].target)
    assert.equal("", reqs[2].body)
    assert.equal("Bearer tok-keys", reqs[2].h["authorization"])
  end)

  it("an answer without two non-empty key strings is a decode error, not a result", function()
    local bodies = { '{"current":"sig_a"}', '{"next":"sig_b"}', '{"current":"","next":"sig_b"}',
      '{"current":1,"next":"sig_b"}', '{"current":"sig_a","next":null}', '["sig_a","sig_b"]',
      '"sig_a"', "not json", "" }
    for _, fname in ipairs{ "signing_keys", "signing_keys_rotate" } do
      for _, body in ipairs(bodies) do
        srv:reset()
        srv:script{ { status = 200, body = body } }
        local ok, err = pcall(client[fname], client, nil)
        assert.is_false(ok, fname .. " " .. body)
        assert.equal("decode", err.kind, fname .. " " .. body)
      end
    end
  end)

  it("a 401 is unauthorized; qstash.safe returns it as nil, err", function()
    srv:script{ { status = 401, json = { error = "invalid token" } }, { status = 401, json = { error = "invalid token" } } }
    local ok, err = pcall(client.signing_keys, client)
    assert.is_false(ok)
    assert.equal("unauthorized", err.kind)
    local sc = qsafe.new{ token = "tok-keys", base_url = srv.url, retry = false }
    local res, serr = sc:signing_keys_rotate()
    sc:close()
    assert.is_nil(res)
    assert.equal("unauthorized", serr.kind)
    assert.is_true(qstash.is_error(serr))
  end)

  it("reading the keys is repeated after an unknown outcome", function()
    srv:script{ { status = 503, json = { error = "busy" } }, { fault = "close" }, { status = 200, json = KEYS } }
    assert.same(KEYS, client:signing_keys())
    assert.equal(3, received("/v2/keys"))
  end)

  -- a repeat would rotate twice, and receivers holding the keys read before
  -- would reject every delivery
  for _, case in ipairs{ { "the connection closed unanswered", { fault = "close" }, "network" },
                         { "a 503", { status = 503, json = { error = "busy" } }, "server" } } do
    it("a rotation after " .. case[1] .. " fails ambiguous and is not sent again", function()
      local function script() srv:reset(); srv:script{ case[2], { status = 200, json = KEYS } } end
      local function check(way, res, err)
        assert.is_nil(res, way)
        assert.equal(case[3], err.kind, way)
        assert.is_true(err.ambiguous, way)
        assert.equal(1, err.attempts, way)
        assert.equal(1, received("/v2/keys/rotate"), way)
      end
      script()
      local ok, got = pcall(client.signing_keys_rotate, client)
      if ok then check("libcurl", got, nil) else check("libcurl", nil, got) end
      script()
      check("prepare/step", step_http.run(client:prepare("signing_keys_rotate")))
      script()
      local res, err
      client:async("signing_keys_rotate", function(r, e) res, err = r, e end)
      while client:pending() > 0 do client:poll(1) end
      check("async", res, err)
    end)
  end

  it("a connection refused before anything was sent is tried again, rotation included", function()
    local c = qstash.new{ token = "t", base_url = "http://127.0.0.1:" .. ports.closed(), retry = { attempts = 3, base_delay = 0.01 } }
    local ok, err = pcall(c.signing_keys_rotate, c)
    c:close()
    assert.is_false(ok)
    assert.equal("network", err.kind)
    assert.equal(3, err.attempts)
    assert.is_falsy(err.ambiguous)
  end)

  it("prepare/step sends what libcurl sends and gives the same result", function()
    for _, row in ipairs{ { "signing_keys", "GET", "/v2/keys" }, { "signing_keys_rotate", "POST", "/v2/keys/rotate" } } do
      srv:reset()
      srv:script{ { status = 200, json = KEYS }, { status = 200, json = KEYS } }
      local via_curl = client[row[1]](client)
      local via_step = step_http.run(client:prepare(row[1]))
      assert.same(via_curl, via_step, row[1])
      local reqs = srv:requests()
      for i = 1, 2 do
        assert.equal(row[2], reqs[i].method, row[1])
        assert.equal(row[3], reqs[i].target, row[1])
        assert.equal("", reqs[i].body, row[1])
      end
    end
  end)

  it("takes no arguments: extra ones are ignored and change nothing that is sent", function()
    srv:script{ { status = 200, json = KEYS }, { status = 200, json = KEYS } }
    client:signing_keys("ignored", { any = 1 })
    client:prepare("signing_keys", 42)
    local reqs = srv:requests()
    assert.equal(1, #reqs)
    assert.equal("/v2/keys", reqs[1].target)
  end)

  it("raises an argument error, sending nothing, when called without a client", function()
    for _, fname in ipairs{ "signing_keys", "signing_keys_rotate" } do
      local ok, err = pcall(client[fname])
      assert.is_false(ok)
      assert.matches("bad argument #1", err, 1, true)
      ok, err = pcall(client[fname], {})
      assert.is_false(ok)
      assert.matches("bad argument #1", err, 1, true)
    end
    assert.same({}, srv:requests())
  end)

  it("is a module function on the default client, in both variants", function()
    srv:script{ { status = 200, json = KEYS }, { status = 200, json = KEYS } }
    local out, ok = child.run([[
      local qstash = require "qstash"
      local k = qstash.signing_keys()
      local r, err = require("qstash.safe").signing_keys_rotate()
      io.write(k.current, " ", k.next, " ", r and r.current or tostring(err))
    ]], { QSTASH_URL = srv.url, QSTASH_TOKEN = "tok-env" })
    assert.is_true(ok, out)
    assert.equal(KEYS.current .. " " .. KEYS.next .. " " .. KEYS.current, out)
    local reqs = srv:requests()
    assert.equal("/v2/keys", reqs[1].target)
    assert.equal("/v2/keys/rotate", reqs[2].target)
    assert.equal("Bearer tok-env", reqs[2].h["authorization"])
  end)
end)

describe("signing keys against the emulator", function()
  local emu, sink, client
  local fx = E.fixture{ time_scale = 0.001 }
  setup(function()
    emu, sink = fx.emu, fx.sink
    client = qstash.new{ base_url = emu.url, token = emu.token, retry = { base_delay = 0.01 } }
  end)
  teardown(function() client:close() end)

  -- Publishes `body` to the sink and returns the delivery (its signature and body).
  local function deliver(path, body)
    sink:clear()
    client:publish(sink.url .. path, body, { retries = 0 })
    local r = E.wait_for(function() return sink:received()[1] end, 10, 0.02)
    return sink:header(r, "Upstash-Signature"), r.body
  end

  local function verify(sig, body, keys, url)
    return qsafe.verify{ signature = sig, body = body, url = url,
      current_signing_key = keys.current, next_signing_key = keys.next }
  end

  it("starts with the public dev keys, the ones dev-mode verification uses", function()
    assert.same({ current = E.CURRENT_SIGNING_KEY, next = E.NEXT_SIGNING_KEY }, client:signing_keys())
    local sig, body = deliver("/dev", "hello")
    assert.equal("Upstash", qstash.verify{ signature = sig, body = body, dev = true }.iss)
  end)

  it("a rotation makes next the current key; receivers with the old keys verify once, not twice", function()
    local before = client:signing_keys()
    local first = client:signing_keys_rotate()
    assert.equal(before.next, first.current)
    assert.matches("^sig_%w+$", first.next)
    assert.are_not.equal(before.current, first.next)
    assert.same(first, client:signing_keys())

    -- signed after the rotation: with the new current key, the old "next"
    local sig, body = deliver("/after-one", "one rotation")
    local claims = verify(sig, body, before, sink.url .. "/after-one")
    assert.equal(sink.url .. "/after-one", claims.sub)
    local res, err = verify(sig, body, { current = before.current }, nil)
    assert.is_nil(res)
    assert.equal("bad_signature", err.reason)
    assert.is_truthy(verify(sig, body, first))

    local second = client:signing_keys_rotate()
    assert.equal(first.next, second.current)
    sig, body = deliver("/after-two", "two rotations")
    res, err = verify(sig, body, before, nil)
    assert.is_nil(res)
    assert.equal("signature", err.kind)
    assert.equal("bad_signature", err.reason)
    local ok, raised = pcall(qstash.verify, { signature = sig, body = body,
      current_signing_key = before.current, next_signing_key = before.next })
    assert.is_false(ok)
    assert.equal("bad_signature", raised.reason)
    -- a receiver that stored the keys read after a rotation verifies
    assert.is_truthy(verify(sig, body, first))
    assert.is_truthy(verify(sig, body, second))
    -- so does the dev mode no longer: its keys are the defaults
    res = qsafe.verify{ signature = sig, body = body, dev = true }
    assert.is_nil(res)
  end)

  it("signs callbacks with the current key after a rotation too", function()
    local before = client:signing_keys()
    local after = client:signing_keys_rotate()
    sink:clear()
    client:publish(sink.url .. "/target", "with a callback", { retries = 0, callback = sink.url .. "/cb" })
    local cb = E.wait_for(function()
      for _, r in ipairs(sink:received()) do
        if r.target == "/cb" then return r end
      end
    end, 10, 0.02)
    local sig = sink:header(cb, "Upstash-Signature")
    assert.is_truthy(verify(sig, cb.body, { current = after.current }, sink.url .. "/cb"))
    local res, err = verify(sig, cb.body, { current = before.current }, nil)
    assert.is_nil(res)
    assert.equal("bad_signature", err.reason)
  end)

  it("the dev reset restores the public dev keys", function()
    client:signing_keys_rotate()
    client:signing_keys_rotate()
    emu:reset()
    assert.same({ current = E.CURRENT_SIGNING_KEY, next = E.NEXT_SIGNING_KEY }, client:signing_keys())
    local sig, body = deliver("/reset", "after reset")
    assert.is_truthy(qsafe.verify{ signature = sig, body = body, current_signing_key = E.CURRENT_SIGNING_KEY })
  end)

  it("answers only the documented rotation path (qstash-go's POST /v2/rotate is a 404)", function()
    local status = emu:request("POST", "/v2/rotate")
    assert.equal(404, status)
    status = emu:request("GET", "/v2/keys/rotate")
    assert.equal(405, status)
    assert.same({ current = E.CURRENT_SIGNING_KEY, next = E.NEXT_SIGNING_KEY }, client:signing_keys())
  end)
end)
