-- qr.url_group_* from an OpenResty content handler over cosockets, against
-- the emulator: the same calls as spec/url_groups_spec.lua's libcurl path,
-- the DELETE with a JSON body included. Needs LuaJIT and nginx
-- (`make test LUA=luajit SPECS=spec/resty_url_groups_spec.lua`).
local RC = require "spec.support.resty_calls"
local cjson = require "cjson"

local skip = RC.skip_reason()
if skip then
  describe("qr.url_group_* under nginx", function() pending(skip) end)
  return
end

describe("qr.url_group_* under nginx", function()
  local env
  setup(function() env = RC.start() end)
  teardown(function() if env then env:stop() end end)
  before_each(function() env:reset() end)

  it("adds, reads, lists, removes and deletes over cosockets", function()
    local a, b = "http://127.0.0.1:1/a", "http://127.0.0.1:1/b"
    local r = env:call("url_group_add_endpoints", 2, "rg", { { url = a, name = "na" }, { url = b } })
    assert.is_true(r.ok, cjson.encode(r))
    assert.is_true(r.res)
    r = env:call("url_group_get", 1, "rg")
    assert.is_true(r.ok, cjson.encode(r))
    assert.equal("rg", r.res.name)
    assert.equal(2, #r.res.endpoints)
    r = env:call("url_group_remove_endpoints", 2, "rg", { { name = "na" } })
    assert.is_true(r.ok, cjson.encode(r))
    r = env:call("url_group_list", 0)
    assert.is_true(r.ok, cjson.encode(r))
    assert.equal(1, #r.res)
    assert.same({ { url = b } }, r.res[1].endpoints)
    r = env:call("url_group_delete", 1, "rg")
    assert.is_true(r.ok, cjson.encode(r))
    r = env:call("url_group_get", 1, "rg")
    assert.is_false(r.ok)
    assert.equal("not_found", r.err.kind)
    r = env:call("url_group_list", 0)
    assert.is_true(r.ok, cjson.encode(r))
    assert.equal(0, #r.res)
  end)

  it("raises an argument error for a bad name, from the handler, sending nothing", function()
    local r = env:call("url_group_get", 1, "a/b")
    assert.matches("bad argument #1 to 'url_group_get'", r.raised, 1, true)
    r = env:call("url_group_add_endpoints", 2, "g", {})
    assert.matches("bad argument #2 to 'url_group_add_endpoints'", r.raised, 1, true)
  end)
end)
