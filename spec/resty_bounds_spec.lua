-- qstash.resty under the hostile servers of bounds_spec and follow_faults_spec:
-- the same whole-call bounds, follows and DLQ lookups as the libcurl path,
-- from a content handler over cosockets (the C core decides; qstash.resty
-- only carries the requests). Needs LuaJIT and nginx
-- (`make test LUA=luajit SPECS=spec/resty_bounds_spec.lua`).
local N = require "spec.support.nginx"
local E = require "spec.support.emulator"
local server = require "spec.support.server"
local cjson = require "cjson"

local skip = N.skip_reason()
if skip then
  describe("qstash.resty under hostile servers", function() pending(skip) end)
  return
end

-- { fn, args = {...}, conf = {...} }: qr[fn](args..., conf); answers { ok, res, err, took }
local HANDLERS = [==[
  local qr = require "qstash.resty"
  local cjson = require "cjson.safe"
  local unpack = table.unpack or unpack
  package.loaded.bounds_h = function()
    ngx.req.read_body()
    local a = cjson.decode(ngx.req.get_body_data())
    local args = a.args
    args[#args + 1] = a.conf
    local t0 = ngx.now()
    local res, err = qr[a.fn](unpack(args))
    ngx.update_time()
    ngx.say(cjson.encode{ ok = res ~= nil, res = res, took = ngx.now() - t0,
      err = err and { kind = err.kind, limit = err.limit, requests = err.requests,
        cancelled = err.cancelled, message = err.message } or nil })
  end
]==]

describe("qstash.resty under hostile servers #issue24", function()
  local srv, ng

  setup(function()
    srv = server.start()
    ng = N.start{
      http = "init_by_lua_block {\n" .. HANDLERS .. "\n}",
      server = "location = /call { content_by_lua_block { package.loaded.bounds_h() } }",
    }
  end)
  teardown(function()
    if ng then ng:stop() end
    if srv then srv:stop() end
  end)
  before_each(function()
    srv:reset()
    srv:default{ status = 400, json = { error = "a request past the bound" } }
  end)

  local function call(fn, args, conf)
    conf.token, conf.base_url = "t", srv.url
    conf.retry = conf.retry or { attempts = 2, base_delay = 0.01 }
    local status, body = E.request(ng.url, "POST", "/call", { body = cjson.encode{ fn = fn, args = args, conf = conf },
      headers = { ["content-type"] = "application/json" } })
    assert.equal(200, status, body .. "\n" .. ng:error_log():sub(-2000))
    return cjson.decode(body)
  end

  it("cancel_many answered {cancelled:100} for ever ends by max_requests, with what it cancelled", function()
    srv:default{ status = 200, json = { cancelled = 100 } }
    local r = call("cancel_many", { { url = "https://example.com/a" } }, { max_requests = 5 })
    assert.is_false(r.ok)
    assert.equal("limit", r.err.kind)
    assert.equal("requests", r.err.limit)
    assert.equal(5, r.err.requests)
    assert.equal(500, r.err.cancelled)
    local reqs = srv:requests()
    assert.equal(5, #reqs)
    -- never messages created after the call began
    for _, q in ipairs(reqs) do assert.matches("toDate=%d+", q.target) end
  end)

  it("a follow under 429 storms (Retry-After: 3) ends within its timeout plus one attempt", function()
    srv:default{ status = 429, headers = { ["Retry-After"] = "3" }, json = { error = "slow down" } }
    local r = call("follow", { "msg_1", { timeout = 1 } }, { timeout = 1, retry = { attempts = 4, base_delay = 0.01 } })
    assert.is_true(r.ok, cjson.encode(r))
    assert.is_false(r.res.done)
    assert.equal("deadline", r.res.limit)
    assert.equal("msg_1", r.res.messageId)
    assert.is_true(r.took < 2.5, "took " .. r.took .. " s")
  end)

  it("follow_many over endless cursors ends by max_requests, each result saying so", function()
    local pages = {}
    for i = 1, 20 do pages[i] = { status = 200, json = { logs = {}, cursor = "p" .. i } } end
    srv:script(pages)
    local r = call("follow_many", { { "msg_1", "msg_2" }, { timeout = 5 } }, { max_requests = 4 })
    assert.is_true(r.ok, cjson.encode(r))
    assert.equal(4, #srv:requests())
    assert.equal("requests", r.res.msg_1.limit)
    assert.equal("requests", r.res.msg_2.limit)
  end)

  it("a DLQ lookup answering another message's entry gives no dlqId; skewed clocks still end it", function()
    srv:script{
      { status = 200, json = { logs = {
        { time = 1700000002000, state = "ACTIVE", messageId = "msg_1" },
        { time = 1700000001000, state = "FAILED", messageId = "msg_1" } } } },
      { status = 200, json = { messages = { { dlqId = "9-9", messageId = "msg_other" } } } },
    }
    local r = call("follow", { "msg_1", { timeout = 1, interval = 0.01 } }, {})
    assert.is_true(r.ok, cjson.encode(r))
    assert.is_true(r.res.done)
    assert.equal("FAILED", r.res.state)
    assert.is_nil(r.res.dlqId)
    local reqs = srv:requests()
    assert.equal(2, #reqs)
    assert.matches("^/v2/dlq%?messageId=msg_1", reqs[2].target)
  end)
end)
