-- qstash.resty.driver: the loop of the caller-driven transport over
-- cosockets, in a real nginx: sends through qstash.resty.http, waits with
-- ngx.sleep, dlq_retry_each on light threads with a batch-wide 429 pause,
-- dlq_messages over cursor pages, and where a call may run at all.
--
-- The call objects come from spec/support/fake_core.lua, written to the
-- contract of the core's client:prepare / call:step (the driver is not yet
-- wired to qstash.resty's public functions). Runs only under LuaJIT.
local N = require "spec.support.nginx"

local skip = N.skip_reason()
if skip then
  describe("qstash.resty.driver under nginx", function() pending(skip) end)
  return
end

local E = require "spec.support.emulator"
local server = require "spec.support.server"
local socket = require "socket"
local cjson = require "cjson"

local HANDLERS = [=[
# ?base=<url>&ids=a,b&conc=n&attempts=n
location = /run {
  content_by_lua_block {
    local driver = require "qstash.resty.driver"
    local fake = require "spec.support.fake_core"
    local client = fake.new{ base_url = ngx.var.arg_base, attempts = tonumber(ngx.var.arg_attempts) }
    local res, err = driver.run(client:prepare("dlq_retry", ngx.var.arg_id))
    ngx.say(require("cjson").encode{ res = res, err = err and { kind = err.kind,
      status = err.status, str = tostring(err), is_error = require("qstash").is_error(err),
      attempts = err.attempts } })
  }
}
location = /each {
  content_by_lua_block {
    local cjson = require "cjson"
    local driver = require "qstash.resty.driver"
    local fake = require "spec.support.fake_core"
    local client = fake.new{ base_url = ngx.var.arg_base }
    local ids = {}
    for id in ngx.var.arg_ids:gmatch("[^,]+") do ids[#ids + 1] = id end
    local seen, progress = {}, {}
    local raise_after = tonumber(ngx.var.arg_raise_after)
    local ok, out = pcall(driver.each, client, ids, nil, {
      concurrency = tonumber(ngx.var.arg_conc),
      on_result = function(id, res, err)
        seen[#seen + 1] = { id = id, ok = res ~= nil, kind = err and err.kind }
        if raise_after and #seen >= raise_after then error("boom", 0) end
      end,
      on_progress = function(done, total) progress[#progress + 1] = { done, total } end,
    })
    if not ok then return ngx.say(cjson.encode{ raised = tostring(out), seen = seen }) end
    local results = {}
    for id, r in pairs(out.results) do
      results[id] = require("qstash").is_error(r) and ("error " .. r.kind) or r.messageId
    end
    ngx.say(cjson.encode{ ok = out.ok, failed = out.failed, results = results,
      seen = seen, progress = progress })
  }
}
location = /each_bad {
  content_by_lua_block {
    local driver = require "qstash.resty.driver"
    local client = require("spec.support.fake_core").new{ base_url = ngx.var.arg_base }
    local out = {}
    for i, args in ipairs{ { { "a", 5 } }, { { "a", "" } }, { {} }, { { "a" }, 1 },
                           { { "a" }, nil, { concurrency = 0 } }, { { "a" }, nil, { bogus = 1 } } } do
      local ok, e = pcall(driver.each, client, args[1], args[2], args[3])
      out[i] = ok and "no error" or tostring(e)
    end
    ngx.say(require("cjson").encode(out))
  }
}
location = /messages {
  content_by_lua_block {
    local driver = require "qstash.resty.driver"
    local client = require("spec.support.fake_core").new{ base_url = ngx.var.arg_base }
    local got = {}
    local ok, e = pcall(function()
      for msg in driver.messages(client, {}) do got[#got + 1] = msg.id end
    end)
    ngx.say(require("cjson").encode{ got = got, ok = ok, kind = type(e) == "table" and e.kind or nil,
      str = tostring(e), is_error = require("qstash").is_error(e) })
  }
}
location = /fast { content_by_lua_block { ngx.say("ok") } }
location = /modes {
  content_by_lua_block {
    local d = ngx.shared.spec
    d:set("content", require("qstash.resty.driver").mode("dlq_retry"))
    ngx.timer.at(0, function()
      d:set("timer", require("qstash.resty.driver").mode("dlq_retry"))
    end)
    ngx.sleep(0.05)
    ngx.say("ok")
  }
  log_by_lua_block {
    local ok, e = pcall(require("qstash.resty.driver").mode, "dlq_retry")
    ngx.shared.spec:set("log", tostring(ok) .. " " .. tostring(e))
  }
}
location = /state {
  content_by_lua_block { ngx.print(ngx.shared.spec:get(ngx.var.arg_k) or "") }
}
]=]

local function nginx_conf(ports, prefix)
  return N.preamble(prefix) .. [[
events { worker_connections 1024; }
http {
  access_log off;
  default_type text/plain;
  lua_shared_dict spec 1m;
]] .. N.lua_paths(prefix) .. [[
  init_by_lua_block {
    require("resty.core")
    local ok, m = pcall(require("qstash.resty.driver").mode, "dlq_retry")
    ngx.shared.spec:set("init", tostring(ok) .. " " .. tostring(m))
  }
  init_worker_by_lua_block {
    local ok, m = pcall(require("qstash.resty.driver").mode, "dlq_retry")
    ngx.shared.spec:set("init_worker", tostring(ok) .. " " .. tostring(m))
  }
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

  local function state(k)
    local _, body = E.request(ng.url, "GET", "/state?k=" .. k)
    return body
  end

  it("sends, retries after a 5xx and a network failure, and returns the result", function()
    srv:script{ { status = 503 }, { fault = "close" }, { status = 201, json = { messageId = "msg_1" } } }
    local doc = get_json("/run?id=abc&base=" .. srv.url)
    assert.same({ messageId = "msg_1" }, doc.res)
    local reqs = srv:requests()
    assert.equal(3, #reqs)
    assert.equal("POST", reqs[1].method)
    assert.equal("/v2/dlq/retry/abc", reqs[3].target)
  end)

  it("returns the core's error object", function()
    srv:script{ { status = 404, json = { error = "message not found" } } }
    local doc = get_json("/run?id=abc&base=" .. srv.url)
    assert.is_nil(doc.res)
    assert.equal("not_found", doc.err.kind)
    assert.is_true(doc.err.is_error)
    assert.equal("qstash: not_found (404) POST /v2/dlq/retry/abc: message not found", doc.err.str)

    doc = get_json("/run?id=abc&attempts=2&base=http://127.0.0.1:" .. N.free_port())
    assert.equal("network", doc.err.kind)
    assert.equal(2, doc.err.attempts)
  end)

  it("waits out a 429 with ngx.sleep, which does not block another location", function()
    srv:script{ { status = 429, headers = { ["Retry-After"] = "1" } },
                { status = 201, json = { messageId = "after" } } }
    local t0 = E.now()
    local c = socket.tcp()
    c:settimeout(5)
    assert(c:connect("127.0.0.1", ng.port))
    assert(c:send("GET /run?id=x&base=" .. srv.url .. " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    srv:wait_requests(1, 5) -- the 429 is in, the wait has begun
    local t1 = E.now()
    local status, body = E.request(ng.url, "GET", "/fast")
    assert.equal(200, status)
    assert.equal("ok\n", body)
    assert.is_true(E.now() - t1 < 0.5, "/fast waited behind the 429 wait")
    local raw = c:receive("*a")
    c:close()
    assert.matches('"messageId":"after"', raw, 1, true)
    assert.is_true(E.now() - t0 >= 0.9, "the 429 wait was not kept")
  end)

  describe("each", function()
    it("retries each distinct id once with light threads and reports as results come in", function()
      srv:default{ status = 201, json = { messageId = "m" } }
      local doc = get_json("/each?conc=2&ids=a,b,a,c&base=" .. srv.url)
      assert.equal(3, doc.ok)
      assert.equal(0, doc.failed)
      assert.same({ a = "m", b = "m", c = "m" }, doc.results)
      assert.equal(3, #doc.seen)
      assert.same({ 3, 3 }, doc.progress[3])
      assert.equal(3, #srv:requests())
    end)

    it("keeps failures in results", function()
      srv:script{ { status = 201, json = { messageId = "m1" } }, { status = 404, json = { error = "gone" } } }
      local doc = get_json("/each?conc=1&ids=a,b&base=" .. srv.url)
      assert.equal(1, doc.ok)
      assert.equal(1, doc.failed)
      assert.same({ a = "m1", b = "error not_found" }, doc.results)
    end)

    it("runs `concurrency` calls at once", function()
      srv:default{ status = 201, json = { messageId = "m" }, delay = 0.5 }
      local t0 = E.now()
      local doc = get_json("/each?conc=8&ids=1,2,3,4,5,6,7,8&base=" .. srv.url)
      assert.equal(8, doc.ok)
      assert.is_true(E.now() - t0 < 2, "8 calls of 0.5 s took " .. (E.now() - t0))
      local conns = {}
      for _, r in ipairs(srv:requests()) do conns[r.conn] = true end
      local n = 0
      for _ in pairs(conns) do n = n + 1 end
      assert.equal(8, n)
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

    it("stops starting calls after on_result raises, then raises it", function()
      srv:default{ status = 201, json = { messageId = "m" }, delay = 0.05 }
      local doc = get_json("/each?conc=1&raise_after=2&ids=1,2,3,4,5,6&base=" .. srv.url)
      assert.equal("qstash: error in a callback: boom", doc.raised)
      assert.equal(2, #doc.seen)
      assert.equal(2, #srv:requests())
    end)

    it("checks every id and the batch before sending anything", function()
      local doc = get_json("/each_bad?base=" .. srv.url)
      assert.matches("bad argument #1 to 'dlq_retry_each' (DLQ id #2 is not a string)", doc[1], 1, true)
      assert.matches("bad argument #1 to 'dlq_retry_each' (DLQ id #2: invalid DLQ id)", doc[2], 1, true)
      assert.matches("bad argument #1 to 'dlq_retry_each' (an empty list of ids)", doc[3], 1, true)
      assert.matches("bad argument #2 to 'dlq_retry_each' (opts must be a table or nil)", doc[4], 1, true)
      assert.matches("'concurrency' must be an integer from 1 to 1024", doc[5], 1, true)
      assert.matches("unknown batch option 'bogus'", doc[6], 1, true)
      assert.equal(0, #srv:requests())
    end)
  end)

  it("iterates dlq_list pages by cursor and ends a repeated cursor with a decode error", function()
    srv:script{
      { json = { messages = { { id = 1 }, { id = 2 } }, cursor = "c1" } },
      { json = { messages = {}, cursor = "c2" } },
      { json = { messages = { { id = 3 } }, cursor = "c1" } },
    }
    local doc = get_json("/messages?base=" .. srv.url)
    assert.same({ 1, 2, 3 }, doc.got)
    assert.is_false(doc.ok)
    assert.equal("decode", doc.kind)
    assert.is_true(doc.is_error)
    assert.matches("cursor c1 repeated", doc.str, 1, true)
    local reqs = srv:requests()
    assert.equal(3, #reqs)
    assert.equal("/v2/dlq", reqs[1].target)
    assert.equal("/v2/dlq?cursor=c1", reqs[2].target)
    assert.equal("/v2/dlq?cursor=c2", reqs[3].target)

    srv:reset()
    srv:script{ { json = { messages = { { id = 9 } }, cursor = "" } } }
    doc = get_json("/messages?base=" .. srv.url)
    assert.same({ 9 }, doc.got)
    assert.is_true(doc.ok)
  end)

  it("runs over cosockets in handlers and timers, directly in init, and raises elsewhere", function()
    assert.equal(200, (E.request(ng.url, "GET", "/modes")))
    assert.equal("true direct", state("init"))
    assert.equal("cosocket", state("content"))
    assert.equal("cosocket", E.wait_for(function() local v = state("timer") return v ~= "" and v end, 5))
    local log = E.wait_for(function() local v = state("log") return v ~= "" and v end, 5)
    assert.matches("^false qstash.resty: dlq_retry cannot run in the log phase", log)
    assert.matches("ngx.timer.at(0, function() ... end)", log, 1, true)
    assert.matches("^false qstash.resty: dlq_retry cannot run in the init_worker phase", state("init_worker"))
  end)

  it("left nothing alarming in the error log", function()
    local log = ng:error_log()
    assert.not_matches("%[alert%]", log)
    assert.not_matches("%[crit%]", log)
    assert.not_matches("lua entry thread aborted", log, 1, true)
  end)
end)
