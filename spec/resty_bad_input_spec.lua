-- qstash.resty under nginx: the bad input of spec/support/bad_input.lua (an
-- empty batch, an item without destination, a queue name with '/',
-- parallelism 0 and 1e9, a pin without a limit) raises the same argument
-- error in a content handler as through libcurl, and the emulator's request
-- log shows that nothing reached it. Needs LuaJIT and nginx
-- (`make test LUA=luajit SPECS=spec/resty_bad_input_spec.lua`).

local E = require "spec.support.emulator"
local N = require "spec.support.nginx"
local cjson = require "cjson"
local ROWS = require "spec.support.bad_input"

local skip = N.skip_reason()
if skip then
  describe("qstash.resty bad input under nginx", function() pending(skip) end)
  return
end

-- Every row through qr[fn](args..., config); the failures as JSON.
local HANDLER = [==[
  local qr = require "qstash.resty"
  local ROWS = require "spec.support.bad_input"
  local failures, raised = {}, 0
  for i, row in ipairs(ROWS) do
    local fn, n = row[1], row[2]
    local want = ("bad argument #%d to '%s' (%s"):format(row[4], fn, row[5])
    local args = { unpack(row[3], 1, n) }
    args[n + 1] = package.loaded.bad_input_env
    local ok, err = pcall(qr[fn], unpack(args, 1, n + 1))
    if ok or type(err) ~= "string" or not err:find(want, 1, true) then
      failures[#failures + 1] = ("row %d %s: %s"):format(i, fn, tostring(err))
    else
      raised = raised + 1
    end
  end
  ngx.say(cjson.encode{ raised = raised, failures = failures, phase = ngx.get_phase() })
]==]

describe("qstash.resty bad input under nginx", function()
  local emu, ng

  setup(function()
    emu = E.start{ time_scale = 0.001, quiet = false }
    ng = N.start{
      http = ("init_by_lua_block { package.loaded.bad_input_env = { base_url = %q, token = %q, "
        .. "timeout = 5, retry = false } }"):format(emu.url, emu.token),
      server = "location = /bad { content_by_lua_block { local cjson = require 'cjson'\n"
        .. HANDLER .. " } }",
    }
  end)

  teardown(function()
    if ng then ng:stop() end
    if emu then emu:stop() end
  end)

  it("raises each row's argument error in a content handler and sends nothing", function()
    local offset = #emu:log()
    local status, body = E.request(ng.url, "GET", "/bad")
    assert.equal(200, status, tostring(body) .. "\n" .. ng:error_log():sub(-3000))
    local doc = cjson.decode(body)
    assert.equal("content", doc.phase)
    assert.same({}, doc.failures)
    assert.equal(#ROWS, doc.raised)
    assert.same({}, emu:api_requests_since(offset))
  end)
end)
