-- qstash.resty.driver in a real nginx with the real core: what the batch and
-- the pager do over cosockets beyond what the C module's own path shows
-- (spec/resty_parity_spec.lua compares results, errors and bytes): light
-- threads running `concurrency` calls at once over shared keepalive pools, the
-- batch-wide 429 pause, callbacks that raise while calls are in flight, and
-- an iterator that survives a failed page. Runs only under LuaJIT.
--
-- Every call object comes from the C core (client:prepare): no stand-in is
-- needed, since the scriptable server (spec/support/http_server.py) makes
-- the core produce every answer and wait these specs need.
local N = require "spec.support.nginx"

if N.pending_unless_runnable("qstash.resty.driver under nginx") then return end

local E = require "spec.support.emulator"
local server = require "spec.support.server"
local cjson = require "cjson"

local HANDLERS = [=[
# ?base=<url>&ids=a,b&conc=n&raise_after=n
location = /each {
  content_by_lua_block {
    local cjson = require "cjson"
    local qr = require "qstash.resty"
    local qstash = require "qstash"
    local ids = {}
    for id in ngx.var.arg_ids:gmatch("[^,]+") do ids[#ids + 1] = id end
    local seen, progress = {}, {}
    local raise_after = tonumber(ngx.var.arg_raise_after)
    local config = { base_url = ngx.var.arg_base, token = "each-token-0123456789",
                     retry = { attempts = 3, base_delay = 0.01, max_delay = 5 } }
    if ngx.var.arg_notoken then config.token = nil end
    local ok, out, err = pcall(qr.dlq_retry_each, ids, nil, {
      concurrency = tonumber(ngx.var.arg_conc),
      on_result = function(id, res, e)
        seen[#seen + 1] = { id = id, ok = res ~= nil, kind = e and e.kind }
        if raise_after and #seen >= raise_after then error("boom", 0) end
      end,
      on_progress = function(done, total) progress[#progress + 1] = { done, total } end,
    }, config)
    if not ok then return ngx.say(cjson.encode{ raised = tostring(out), seen = seen }) end
    if not out then
      return ngx.say(cjson.encode{ err = { kind = err.kind, is_error = qstash.is_error(err) } })
    end
    local results = {}
    for id, r in pairs(out.results) do
      results[id] = qstash.is_error(r) and ("error " .. r.kind) or r.messageId
    end
    ngx.say(cjson.encode{ ok = out.ok, failed = out.failed, results = results,
      seen = seen, progress = progress })
  }
}
# ?base=&cursor=: pages until the end or an error; a failed page is asked again once
location = /messages {
  content_by_lua_block {
    local qr = require "qstash.resty"
    local params = { count = 2, cursor = ngx.var.arg_cursor }
    local next_msg = qr.dlq_messages(params, { base_url = ngx.var.arg_base,
      token = "pages-token-0123456789", retry = false })
    local got, errors = {}, {}
    while true do
      local ok, msg = pcall(next_msg)
      if not ok then
        errors[#errors + 1] = msg.kind
        if #errors > 1 then break end
      elseif msg == nil then
        break
      else
        got[#got + 1] = msg.dlqId
      end
    end
    local ok_after, after = pcall(next_msg)
    ngx.say(require("cjson").encode{ got = got, errors = errors, after_end = ok_after and after == nil })
  }
}
]=]

local function nginx_conf(ports, prefix)
  return N.preamble(prefix) .. [[
events { worker_connections 1024; }
http {
  access_log off;
  default_type text/plain;
]] .. N.lua_paths(prefix) .. [[
  server {
    listen 127.0.0.1:]] .. ports[1] .. [[;
    include handlers.conf;
  }
}
]]
end

describe("qstash.resty.driver under nginx", function()
  local ng, srv

  setup(function()
    srv = server.start()
    ng = N.start(nginx_conf, { files = { ["handlers.conf"] = HANDLERS } })
  end)
  teardown(function()
    if ng then ng:stop() end
    if srv then srv:stop() end
  end)
  before_each(function() srv:reset() end)

  local function get_json(path)
    local status, body = E.request(ng.url, "GET", path)
    assert.equal(200, status, body .. "\n" .. ng:error_log())
    return cjson.decode(body)
  end

  local function distinct(reqs)
    local conns, n = {}, 0
    for _, r in ipairs(reqs) do
      if not conns[r.conn] then
        conns[r.conn] = true
        n = n + 1
      end
    end
    return n, conns
  end

  describe("dlq_retry_each", function()
    it("runs `concurrency` calls at once, each on a connection of its own", function()
      srv:default{ status = 201, json = { messageId = "m" }, delay = 0.5 }
      local t0 = E.now()
      local doc = get_json("/each?conc=8&ids=1,2,3,4,5,6,7,8&base=" .. srv.url)
      assert.equal(8, doc.ok)
      assert.is_true(E.now() - t0 < 2, "8 calls of 0.5 s took " .. (E.now() - t0))
      assert.equal(8, (distinct(srv:requests())))
      assert.same({ 8, 8 }, doc.progress[8])
    end)

    it("shares the keepalive pool between its light threads and with later batches", function()
      srv:default{ status = 201, json = { messageId = "m" }, delay = 0.1 }
      get_json("/each?conc=4&ids=1,2,3,4&base=" .. srv.url)
      local n1, first = distinct(srv:requests())
      assert.equal(4, n1)
      srv:reset()
      srv:default{ status = 201, json = { messageId = "m" } }
      local doc = get_json("/each?conc=4&ids=5,6,7,8,9,10,11,12&base=" .. srv.url)
      assert.equal(8, doc.ok)
      local n2, second = distinct(srv:requests())
      assert.is_true(n2 <= 4, n2 .. " connections for 4 light threads")
      for conn in pairs(second) do assert.is_true(first[conn], "a new connection") end
    end)

    it("pauses the starts of the whole batch after a 429", function()
      srv:script{ { status = 429, headers = { ["Retry-After"] = "1" } } }
      srv:default{ status = 201, json = { messageId = "m" }, delay = 0.1 }
      local doc = get_json("/each?conc=2&ids=1,2,3,4,5,6&base=" .. srv.url)
      assert.equal(6, doc.ok)
      local reqs = srv:requests()
      assert.equal(7, #reqs)
      -- after the 429 (at t0) only the call already in flight may be sent
      -- before the wait is over
      local t0 = reqs[1].t
      local early = 0
      for i = 2, #reqs do
        if reqs[i].t - t0 < 0.9 then early = early + 1 end
      end
      assert.is_true(early <= 1, early .. " requests started during the 429 pause")
    end)

    it("lets the calls in flight end when a callback raises, starts none after, then raises", function()
      srv:default{ status = 201, json = { messageId = "m" }, delay = 0.2 }
      local doc = get_json("/each?conc=3&raise_after=1&ids=1,2,3,4,5,6&base=" .. srv.url)
      assert.equal("qstash: error in a callback: boom", doc.raised)
      assert.equal(1, #doc.seen) -- no callback after the one that raised
      assert.equal(3, #srv:requests())
    end)

    it("fails the whole batch before sending when the call cannot start (no token)", function()
      local doc = get_json("/each?conc=2&notoken=1&ids=1,2&base=" .. srv.url)
      assert.equal("config", doc.err.kind)
      assert.is_true(doc.err.is_error)
      assert.equal(0, #srv:requests())
    end)
  end)

  describe("dlq_messages", function()
    it("starts at params.cursor and follows each page's cursor to the end", function()
      srv:script{
        { json = { messages = { { dlqId = "a" }, { dlqId = "b" } }, cursor = "c1" } },
        { json = { messages = { { dlqId = "c" } }, cursor = "" } },
      }
      local doc = get_json("/messages?cursor=c0&base=" .. srv.url)
      assert.same({ "a", "b", "c" }, doc.got)
      assert.same({}, doc.errors)
      assert.is_true(doc.after_end)
      local reqs = srv:requests()
      assert.equal("/v2/dlq?count=2&cursor=c0", reqs[1].target)
      assert.equal("/v2/dlq?count=2&cursor=c1", reqs[2].target)
    end)

    it("asks a failed page again on the next call", function()
      srv:script{
        { json = { messages = { { dlqId = "a" } }, cursor = "c1" } },
        { status = 503 },
        { json = { messages = { { dlqId = "b" } } } },
      }
      local doc = get_json("/messages?base=" .. srv.url)
      assert.same({ "a", "b" }, doc.got)
      assert.same({ "server" }, doc.errors)
      local reqs = srv:requests()
      assert.equal(3, #reqs)
      assert.equal(reqs[2].target, reqs[3].target)
    end)

    it("raises the repeated cursor's error again when asked past it", function()
      srv:script{
        { json = { messages = { { dlqId = "a" } }, cursor = "c1" } },
        { json = { messages = { { dlqId = "b" } }, cursor = "c1" } },
      }
      local doc = get_json("/messages?base=" .. srv.url)
      assert.same({ "a", "b" }, doc.got)
      assert.same({ "decode", "decode" }, doc.errors)
      assert.is_false(doc.after_end)
      assert.equal(2, #srv:requests())
    end)
  end)

  it("left nothing alarming in the error log", function()
    local log = ng:error_log()
    assert.not_matches("%[alert%]", log)
    assert.not_matches("%[crit%]", log)
    assert.not_matches("lua entry thread aborted", log, 1, true)
    assert.not_matches("ngx.sleep(0)", log, 1, true)
  end)
end)
