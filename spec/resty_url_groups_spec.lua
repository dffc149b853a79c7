-- qr.url_group_* from an OpenResty content handler over cosockets, against
-- the emulator: the same calls as spec/url_groups_spec.lua's libcurl path,
-- the DELETE with a JSON body included. Needs LuaJIT and nginx
-- (`make test LUA=luajit SPECS=spec/resty_url_groups_spec.lua`).
local N = require "spec.support.nginx"
local E = require "spec.support.emulator"
local cjson = require "cjson"

local skip = N.skip_reason()
if skip then
  describe("qr.url_group_* under nginx", function() pending(skip) end)
  return
end

-- { fn, args = {...}, conf = {...} }: qr[fn](args..., conf); answers { ok, res, err }
local HANDLERS = [==[
  local qr = require "qstash.resty"
  local cjson = require "cjson.safe"
  package.loaded.ug_h = function()
    ngx.req.read_body()
    local a = cjson.decode(ngx.req.get_body_data())
    local args = a.args
    args[a.n + 1] = a.conf
    local ok, res, err = pcall(qr[a.fn], unpack(args, 1, a.n + 1))
    if not ok then
      ngx.say(cjson.encode{ raised = tostring(res) })
      return
    end
    ngx.say(cjson.encode{ ok = res ~= nil, res = res,
      err = err and { kind = err.kind, status = err.status, message = err.message } or nil })
  end
]==]

describe("qr.url_group_* under nginx", function()
  local emu, ng

  setup(function()
    emu = E.start{}
    ng = N.start{
      http = "init_by_lua_block {\n" .. HANDLERS .. "\n}",
      server = "location = /call { content_by_lua_block { package.loaded.ug_h() } }",
    }
  end)
  teardown(function()
    if ng then ng:stop() end
    if emu then emu:stop() end
  end)

  local function call(fn, args, n)
    local conf = { token = emu.token, base_url = emu.url, timeout = 5 }
    local status, body = E.request(ng.url, "POST", "/call", {
      body = cjson.encode{ fn = fn, args = args, n = n, conf = conf },
      headers = { ["content-type"] = "application/json" } })
    assert.equal(200, status, body .. "\n" .. ng:error_log():sub(-2000))
    return cjson.decode(body)
  end

  it("adds, reads, lists, removes and deletes over cosockets", function()
    local a, b = "http://127.0.0.1:1/a", "http://127.0.0.1:1/b"
    local r = call("url_group_add_endpoints", { "rg", { { url = a, name = "na" }, { url = b } } }, 2)
    assert.is_true(r.ok, cjson.encode(r))
    assert.is_true(r.res)
    r = call("url_group_get", { "rg" }, 1)
    assert.is_true(r.ok, cjson.encode(r))
    assert.equal("rg", r.res.name)
    assert.equal(2, #r.res.endpoints)
    r = call("url_group_remove_endpoints", { "rg", { { name = "na" } } }, 2)
    assert.is_true(r.ok, cjson.encode(r))
    r = call("url_group_list", {}, 0)
    assert.is_true(r.ok, cjson.encode(r))
    assert.equal(1, #r.res)
    assert.same({ { url = b } }, r.res[1].endpoints)
    r = call("url_group_delete", { "rg" }, 1)
    assert.is_true(r.ok, cjson.encode(r))
    r = call("url_group_get", { "rg" }, 1)
    assert.is_false(r.ok)
    assert.equal("not_found", r.err.kind)
    r = call("url_group_list", {}, 0)
    assert.is_true(r.ok, cjson.encode(r))
    assert.equal(0, #r.res)
  end)

  it("raises an argument error for a bad name, from the handler, sending nothing", function()
    local r = call("url_group_get", { "a/b" }, 1)
    assert.matches("bad argument #1 to 'url_group_get'", r.raised, 1, true)
    r = call("url_group_add_endpoints", { "g", {} }, 2)
    assert.matches("bad argument #2 to 'url_group_add_endpoints'", r.raised, 1, true)
  end)
end)
