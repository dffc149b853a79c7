-- qstash.resty's signing-key calls (qr.signing_keys, qr.signing_keys_rotate)
-- from content handlers over cosockets: the C module's results against the
-- emulator, and a rotation whose outcome is unknown is reported ambiguous
-- and not sent again. Needs LuaJIT and nginx
-- (`make test LUA=luajit SPECS=spec/resty_signing_keys_spec.lua`).

local RC = require "spec.support.resty_calls"
local E = require "spec.support.emulator"

local skip = RC.skip_reason()
if skip then
  describe("qstash.resty signing keys under nginx", function() pending(skip) end)
  return
end

describe("qstash.resty signing keys under nginx", function()
  local env
  setup(function() env = RC.start() end)
  teardown(function() if env then env:stop() end end)
  before_each(function()
    env:reset()
    env.srv:reset()
  end)

  it("reads and rotates the keys from a handler, with the C module's results", function()
    local c = env:call("signing_keys", 0)
    assert.equal("content", c.phase)
    assert.same({ current = E.CURRENT_SIGNING_KEY, next = E.NEXT_SIGNING_KEY }, c.res)
    c = env:call("signing_keys_rotate", 0)
    assert.equal(E.NEXT_SIGNING_KEY, c.res.current)
    assert.matches("^sig_", c.res.next)
    assert.same(env.client:signing_keys(), c.res)
    assert.same(env.client:signing_keys(), env:call("signing_keys", 0).res)
  end)

  it("does not send a rotation again after an unknown outcome: the error is ambiguous", function()
    env.srv:script{ { fault = "close" }, { status = 200, json = { current = "sig_a", next = "sig_b" } } }
    local c = env:call_conf({ base_url = env.srv.url, token = "t",
      retry = { attempts = 4, base_delay = 0.01 }, timeout = 5 }, "signing_keys_rotate", 0)
    assert.is_nil(c.res)
    assert.same({ kind = "network", ambiguous = true, attempts = 1, is_error = true }, c.err)
    local n = 0
    for _, r in ipairs(env.srv:requests()) do
      if r.path == "/v2/keys/rotate" then n = n + 1 end
    end
    assert.equal(1, n)
  end)
end)
