-- qstash.resty's signing-key calls (qr.signing_keys, qr.signing_keys_rotate)
-- from content handlers over cosockets: the C module's results against the
-- emulator, and a rotation whose outcome is unknown is reported ambiguous
-- and not sent again. Needs LuaJIT and nginx
-- (`make test LUA=luajit SPECS=spec/resty_signing_keys_spec.lua`).

local E = require "spec.support.emulator"
local N = require "spec.support.nginx"
local server = require "spec.support.server"
local cjson = require "cjson"

local skip = N.skip_reason()
if skip then
  describe("qstash.resty signing keys under nginx", function() pending(skip) end)
  return
end

local qstash = require "qstash"

-- package.loaded.keys_h: the handler, run by content_by_lua_block.
local HANDLERS = [==[
  local qr = require "qstash.resty"
  local cjson = require "cjson.safe"
  local H = {}
  -- { fn, conf }: qr[fn](conf)
  function H.call()
    ngx.req.read_body()
    local a = cjson.decode(ngx.req.get_body_data())
    local ok, res, err = pcall(qr[a.fn], a.conf)
    if not ok then
      ngx.say(cjson.encode{ raised = tostring(res) })
      return
    end
    ngx.say(cjson.encode{ res = res, phase = ngx.get_phase(), err = err and {
      kind = err.kind, status = err.status, ambiguous = err.ambiguous == true,
      attempts = err.attempts, is_error = require("qstash").is_error(err) } or nil })
  end
  package.loaded.keys_h = H
]==]

describe("qstash.resty signing keys under nginx", function()
  local emu, srv, ng, client, conf

  setup(function()
    emu = E.start{ time_scale = 0.001 }
    srv = server.start()
    conf = { base_url = emu.url, token = emu.token, retry = { base_delay = 0.01 }, timeout = 5 }
    client = qstash.new(conf)
    ng = N.start{
      http = ("init_by_lua_block { %s }"):format(HANDLERS),
      server = "location = /call { content_by_lua_block { package.loaded.keys_h.call() } }",
    }
  end)

  teardown(function()
    if ng then ng:stop() end
    if client then client:close() end
    if srv then srv:stop() end
    if emu then emu:stop() end
  end)

  before_each(function()
    emu:reset()
    srv:reset()
  end)

  local function call(fn, c)
    local status, body = E.request(ng.url, "POST", "/call", {
      body = cjson.encode{ fn = fn, conf = c or conf },
      headers = { ["content-type"] = "application/json" } })
    assert.equal(200, status, body .. "\n" .. ng:error_log():sub(-3000))
    return cjson.decode(body)
  end

  it("reads and rotates the keys from a handler, with the C module's results", function()
    local c = call("signing_keys")
    assert.equal("content", c.phase)
    assert.same({ current = E.CURRENT_SIGNING_KEY, next = E.NEXT_SIGNING_KEY }, c.res)
    c = call("signing_keys_rotate")
    assert.equal(E.NEXT_SIGNING_KEY, c.res.current)
    assert.matches("^sig_", c.res.next)
    assert.same(client:signing_keys(), c.res)
    assert.same(client:signing_keys(), call("signing_keys").res)
  end)

  it("does not send a rotation again after an unknown outcome: the error is ambiguous", function()
    srv:script{ { fault = "close" }, { status = 200, json = { current = "sig_a", next = "sig_b" } } }
    local c = call("signing_keys_rotate", { base_url = srv.url, token = "t",
      retry = { attempts = 4, base_delay = 0.01 }, timeout = 5 })
    assert.is_nil(c.res)
    assert.same({ kind = "network", ambiguous = true, attempts = 1, is_error = true }, c.err)
    local n = 0
    for _, r in ipairs(srv:requests()) do
      if r.path == "/v2/keys/rotate" then n = n + 1 end
    end
    assert.equal(1, n)
  end)
end)
