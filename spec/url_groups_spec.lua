-- The URL-group API (QStash's topics): against the emulator for what QStash
-- does, against a scripted server for the exact requests, the bounds on the
-- answers and the arguments refused before anything is sent.
local E = require "spec.support.emulator"
local server = require "spec.support.server"
local qstash = require "qstash"
local safe = require "qstash.safe"
local cjson = require "cjson"

local function sorted_by_url(eps)
  table.sort(eps, function(a, b) return a.url < b.url end)
  return eps
end

describe("URL groups against the emulator", function()
  local fx = E.fixture()
  local client

  before_each(function()
    client = client or qstash.new{ token = fx.emu.token, base_url = fx.emu.url, timeout = 5 }
  end)
  teardown(function() if client then client:close() end end)

  it("adds endpoints (creating the group), reads it, lists it and deletes it", function()
    local a, b = fx.sink.url .. "/a", fx.sink.url .. "/b"
    assert.is_true(client:url_group_add_endpoints("grp.1", { { url = a, name = "ep-a" } }))
    assert.is_true(client:url_group_add_endpoints("grp.1", { { url = b } }))
    local g = client:url_group_get("grp.1")
    assert.equal("grp.1", g.name)
    assert.is_number(g.createdAt)
    assert.is_number(g.updatedAt)
    assert.same({ { url = a, name = "ep-a" }, { url = b } }, sorted_by_url(g.endpoints))
    assert.is_true(client:url_group_add_endpoints("other", { { url = a } }))
    local list = client:url_group_list()
    assert.equal(2, #list)
    table.sort(list, function(x, y) return x.name < y.name end)
    assert.equal("grp.1", list[1].name)
    assert.equal(2, #list[1].endpoints)
    assert.same({ { url = a } }, list[2].endpoints)
    assert.is_true(client:url_group_delete("grp.1"))
    local none, err2 = safe.new{ token = fx.emu.token, base_url = fx.emu.url }:url_group_get("grp.1")
    assert.is_nil(none)
    assert.equal(404, err2.status)
    assert.equal("not_found", err2.kind)
  end)

  it("deletes an absent group without error, as QStash does", function()
    assert.is_true(client:url_group_delete("never-made"))
  end)

  it("lists no group as an empty array", function()
    assert.same({}, client:url_group_list())
  end)

  it("removes endpoints by URL or by name, and the group goes with its last one", function()
    local a, b, c = fx.sink.url .. "/a", fx.sink.url .. "/b", fx.sink.url .. "/c"
    client:url_group_add_endpoints("g", { { url = a, name = "na" }, { url = b, name = "nb" }, { url = c } })
    assert.is_true(client:url_group_remove_endpoints("g", { { name = "na" }, { url = c } }))
    assert.same({ { url = b, name = "nb" } }, client:url_group_get("g").endpoints)
    assert.is_true(client:url_group_remove_endpoints("g", { { url = b } }))
    local c2 = safe.new{ token = fx.emu.token, base_url = fx.emu.url }
    local res, err = c2:url_group_get("g")
    assert.is_nil(res)
    assert.equal(404, err.status)
    c2:close()
  end)

  it("a publish to the group fans out: one response per endpoint, one delivery each", function()
    local a, b = fx.sink.url .. "/a", fx.sink.url .. "/b"
    client:url_group_add_endpoints("fan", { { url = a }, { url = b } })
    local res = client:publish("fan", "hello")
    assert.equal(2, #res)
    local urls = {}
    for i, r in ipairs(res) do
      assert.is_string(r.messageId)
      urls[i] = r.url
    end
    table.sort(urls)
    assert.same({ a, b }, urls)
    local got = E.wait_for(function()
      local rs = fx.sink:received()
      if #rs >= 2 then return rs end
    end, 5)
    assert.is_table(got, "the group's endpoints were not both delivered to")
    local paths = {}
    for i, r in ipairs(got) do
      paths[i] = r.target
      assert.equal("fan", fx.sink:header(r, "Upstash-Topic-Name"))
    end
    table.sort(paths)
    assert.same({ "/a", "/b" }, paths)
  end)
end)

describe("URL groups on the wire", function()
  local srv, client

  setup(function()
    srv = server.start()
    client = qstash.new{ token = "tok-ug", base_url = srv.url, retry = { base_delay = 0.01 }, timeout = 1 }
  end)
  teardown(function()
    client:close()
    srv:stop()
  end)
  before_each(function() srv:reset() end)

  it("adds with a POST of {endpoints} as JSON, the name one path segment", function()
    srv:script{ { status = 200, body = "" } }
    assert.is_true(client:url_group_add_endpoints("my_group-1.x",
      { { url = "https://example.com/a?b=1", name = "n1" } }))
    local req = srv:requests()[1]
    assert.equal("POST", req.method)
    assert.equal("/v2/topics/my_group-1.x/endpoints", req.target)
    assert.equal("application/json", req.h["content-type"])
    assert.same({ endpoints = { { url = "https://example.com/a?b=1", name = "n1" } } }, cjson.decode(req.body))
  end)

  it("removes with a DELETE that carries the JSON body", function()
    srv:script{ { status = 200, body = "" } }
    assert.is_true(client:url_group_remove_endpoints("g", { { name = "n1" }, { url = "https://e.com/x" } }))
    local req = srv:requests()[1]
    assert.equal("DELETE", req.method)
    assert.equal("/v2/topics/g/endpoints", req.target)
    assert.equal("application/json", req.h["content-type"])
    assert.same({ endpoints = { { name = "n1" }, { url = "https://e.com/x" } } }, cjson.decode(req.body))
  end)

  it("get, list and delete use GET and DELETE on /v2/topics", function()
    srv:script{
      { status = 200, json = { name = "g", createdAt = 1, updatedAt = 2 } },
      { status = 200, body = "[]" },
      { status = 200, body = "" },
    }
    -- an absent `endpoints` is made an empty array
    assert.same({ name = "g", createdAt = 1, updatedAt = 2, endpoints = {} }, client:url_group_get("g"))
    assert.same({}, client:url_group_list())
    assert.is_true(client:url_group_delete("g"))
    local reqs = srv:requests()
    assert.equal("GET /v2/topics/g", reqs[1].method .. " " .. reqs[1].target)
    assert.equal("GET /v2/topics", reqs[2].method .. " " .. reqs[2].target)
    assert.equal("DELETE /v2/topics/g", reqs[3].method .. " " .. reqs[3].target)
  end)

  it("repeats every URL-group call after an unknown outcome (all are safe to repeat)", function()
    local calls = {
      function() return client:url_group_add_endpoints("g", { { url = "https://e.com" } }) end,
      function() return client:url_group_remove_endpoints("g", { { url = "https://e.com" } }) end,
      function() return client:url_group_delete("g") end,
      function() return client:url_group_list() end,
    }
    for _, f in ipairs(calls) do
      srv:reset()
      srv:script{ { status = 500, body = "{}" }, { status = 200, body = "[]" } }
      assert.truthy(f())
      assert.equal(2, #srv:requests())
    end
  end)

  it("refuses answers of the wrong shape", function()
    local sc = safe.new{ token = "t", base_url = srv.url, retry = { attempts = 1 }, timeout = 1 }
    for _, case in ipairs{
      { function() return sc:url_group_list() end, '{"name":"g"}' .. "", "array" },
      { function() return sc:url_group_list() end, '[{"name":"g","endpoints":"x"}]', "endpoints" },
      { function() return sc:url_group_list() end, '[7]', "object" },
      { function() return sc:url_group_get("g") end, '[1]', nil },
      { function() return sc:url_group_get("g") end, '{"endpoints":5}', "endpoints" },
      { function() return sc:url_group_get("g") end, 'nope', nil },
    } do
      srv:reset()
      srv:script{ { status = 200, body = case[2] } }
      local res, err = case[1]()
      assert.is_nil(res, case[2])
      assert.is_table(err, case[2])
      if case[3] then assert.matches(case[3], tostring(err.message), 1, true) end
    end
    sc:close()
  end)

  it("prepare/step hands out the DELETE with its body and takes the answer back", function()
    local call = client:prepare("url_group_remove_endpoints", "g", { { url = "https://e.com/x" } })
    local what, req = call:step()
    assert.equal("send", what)
    assert.equal("DELETE", req.method)
    assert.equal(srv.url .. "/v2/topics/g/endpoints", req.url)
    assert.same({ endpoints = { { url = "https://e.com/x" } } }, cjson.decode(req.body))
    local ct
    for _, h in ipairs(req.headers) do
      if h[1]:lower() == "content-type" then ct = h[2] end
    end
    assert.equal("application/json", ct)
    local done, res = call:step{ status = 200, headers = {}, body = "" }
    assert.equal("done", done)
    assert.is_true(res)
    call = client:prepare("url_group_list")
    what = call:step()
    assert.equal("send", what)
    done, res = call:step{ status = 200, headers = {}, body = '[{"name":"g","endpoints":[]}]' }
    assert.equal("done", done)
    assert.same({ { name = "g", endpoints = {} } }, res)
    assert.equal(0, #srv:requests())
  end)

  it("refuses bad names and endpoints before sending anything", function()
    local long = ("a"):rep(600)
    local bad = {
      { "url_group_get", "" }, { "url_group_get", "a/b" }, { "url_group_get", "a b" },
      { "url_group_get", ".." }, { "url_group_get", "a%2Fb" }, { "url_group_get", 7 },
      { "url_group_delete", "" }, { "url_group_delete", "x?y" }, { "url_group_delete", nil },
      { "url_group_get", long },
      { "url_group_add_endpoints", "g/h", { { url = "https://e.com" } } },
      { "url_group_add_endpoints", "g", {} },
      { "url_group_add_endpoints", "g", nil },
      { "url_group_add_endpoints", "g", "https://e.com" },
      { "url_group_add_endpoints", "g", { { name = "only-a-name" } } },
      { "url_group_add_endpoints", "g", { { url = "ftp://e.com" } } },
      { "url_group_add_endpoints", "g", { { url = "https://e.com/#frag" } } },
      { "url_group_add_endpoints", "g", { { url = "https://e.com", name = "bad name" } } },
      { "url_group_add_endpoints", "g", { { url = "https://e.com", name = "" } } },
      { "url_group_add_endpoints", "g", { { url = "https://e.com", nmae = "typo" } } },
      { "url_group_add_endpoints", "g", { { url = 5 } } },
      { "url_group_add_endpoints", "g", { "https://e.com" } },
      { "url_group_add_endpoints", "g", { { url = "https://e.com" }, extra = 1 } },
      { "url_group_remove_endpoints", "g", { {} } },
      { "url_group_remove_endpoints", "g", {} },
      { "url_group_remove_endpoints", "", { { url = "https://e.com" } } },
    }
    for _, row in ipairs(bad) do
      local fname = row[1]
      local ok, err = pcall(client[fname], client, row[2], row[3])
      assert.is_false(ok, fname .. " " .. tostring(row[2]))
      assert.matches("bad argument #%d to '" .. fname .. "'", tostring(err))
    end
    -- the module functions and qstash.safe check the same, before any client is needed
    for _, m in ipairs{ qstash, safe } do
      local ok, err = pcall(m.url_group_get, "a/b")
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'url_group_get'", tostring(err), 1, true)
      ok, err = pcall(m.url_group_add_endpoints, "g", { { name = "x" } })
      assert.is_false(ok)
      assert.matches("endpoint #1 needs a 'url'", tostring(err), 1, true)
    end
    assert.equal(0, #srv:requests())
  end)
end)
