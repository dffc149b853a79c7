-- qstash.resty over cosockets against the C module's own libcurl path: the
-- same call, the same scripted answers from spec/support/http_server.py, run
-- once through a real nginx (qstash.resty, the core's caller-driven
-- transport over ngx.socket.tcp) and once in this process (the C module,
-- libcurl). Compared:
--   * the bytes on the wire: method, target, every header in order (but
--     Host, Content-Length, Connection and Accept, which belong to each
--     transport) and the body, request by request;
--   * the outcome: the result, or the error object field by field (not the
--     message of a timeout or network failure, which is each transport's own
--     text, nor libcurl's curl_code), attempts and ambiguity included;
--   * argument errors: the same message, raised before anything is sent.
-- Runs only under LuaJIT (`make test LUA=luajit`), the ABI nginx loads.
local N = require "spec.support.nginx"

if N.pending_unless_runnable("qstash.resty and the C module, side by side") then return end

local E = require "spec.support.emulator"
local server = require "spec.support.server"
local O = require "spec.support.resty_outcome"
local cjson = require "cjson"
local qsafe = require "qstash.safe"

local null = cjson.null

local HANDLERS = [=[
location = /call {
  content_by_lua_block {
    local cjson = require "cjson"
    local O = require "spec.support.resty_outcome"
    local qr = require "qstash.resty"
    ngx.req.read_body()
    local req = cjson.decode(ngx.req.get_body_data())
    local config = req.config
    local out = O.run(function(fname, ...)
      local n = O.NARGS[fname]
      local args = { ... }
      args[n + 1] = config
      return qr[fname](unpack(args, 1, n + 1))
    end, req.doc)
    ngx.header["Content-Type"] = "application/json"
    ngx.say(cjson.encode(out))
  }
}
]=]

local function nginx_conf(ports, prefix)
  return N.preamble(prefix) .. [[
events { worker_connections 1024; }
http {
  access_log off;
  client_body_buffer_size 4m;
  client_max_body_size 4m;
]] .. N.lua_paths(prefix) .. [[
  server {
    listen 127.0.0.1:]] .. ports[1] .. [[;
    include handlers.conf;
  }
}
]]
end

-- Transport headers: each side writes its own.
local TRANSPORT = { host = true, ["content-length"] = true, connection = true, accept = true }

-- The recorded requests as the bytes that must match.
local function wire(reqs)
  local out = {}
  for i, r in ipairs(reqs) do
    local headers = {}
    for _, h in ipairs(r.headers) do
      if not TRANSPORT[h[1]:lower()] then headers[#headers + 1] = h[1] .. ": " .. h[2] end
    end
    out[i] = { method = r.method, target = r.target, headers = headers, body = r.body }
  end
  return out
end

local TOKEN = "tok_parity_0123456789"
local MSG = { dlqId = "1725323658779-0", messageId = "msg_1", url = "https://example.com/a",
              method = "POST", header = { ["Content-Type"] = { "text/plain" } }, body = "hi",
              responseStatus = 500, createdAt = 1725323658779 }
local CREATED = { status = 201, json = { messageId = "msg_new", deduplicated = false } }

local ALL_OPTS = {
  retries = 3, retry_delay = "pow(2, retried) * 1000", delay = "10s", not_before = 1893456000,
  timeout = "30s", method = "put", callback = "https://cb.example/x",
  failure_callback = "https://fcb.example/y",
  callback_options = { method = "POST", timeout = 5, retries = 2, retry_delay = "1000",
                       headers = { ["X-Cb"] = "1" } },
  failure_callback_options = { method = "GET", retries = 1 },
  deduplication_id = "d1", content_based_deduplication = true,
  flow_control = { key = "k", parallelism = 2, rate = 10, period = 60 },
  label = { "a", "b" }, redact = { body = true, header = { "Authorization" } },
  headers = { ["X-A"] = "b", ["Upstash-Custom"] = "c" },
}

local function ids(n, prefix)
  local t = {}
  for i = 1, n do t[i] = (prefix or "1725323658779-") .. i end
  return t
end

-- Every byte from 1 to 127 but CR/LF pairs kept: JSON carries them to nginx.
local BYTES = {}
for b = 0, 127 do BYTES[#BYTES + 1] = string.char(b) end
BYTES = table.concat(BYTES) .. "\r\n\0end"

describe("qstash.resty and the C module, side by side", function()
  local ng, srv

  setup(function()
    srv = server.start()
    ng = N.start(nginx_conf, { files = { ["handlers.conf"] = HANDLERS } })
  end)
  teardown(function()
    if ng then ng:stop() end
    if srv then srv:stop() end
  end)

  local function config(extra)
    local c = { base_url = srv.url, token = TOKEN, timeout = 2, connect_timeout = 2,
                retry = { attempts = 3, base_delay = 0.01, max_delay = 1 } }
    for k, v in pairs(extra or {}) do c[k] = v end
    return c
  end

  local function prime(case)
    srv:reset()
    if case.default then srv:default(case.default) end
    if case.script then srv:script(case.script) end
  end

  -- Runs `case` ({ fname, args, n, batch, script, default, config }) both
  -- ways; returns the two outcomes and the two request lists.
  local function both(case)
    local doc = { fname = case.fname, args = case.args, n = case.n or O.NARGS[case.fname],
                  batch = case.batch }
    local conf = config(case.config)
    local body = cjson.encode{ doc = doc, config = conf }

    prime(case)
    local status, text = E.request(ng.url, "POST", "/call", { body = body })
    assert.equal(200, status, text .. "\n" .. ng:error_log():sub(-3000))
    local via_ngx = cjson.decode(text)
    local ngx_reqs = srv:requests()

    prime(case)
    local decoded = cjson.decode(body)
    local client = qsafe.new(decoded.config)
    local via_c = O.run(function(fname, ...) return client[fname](client, ...) end, decoded.doc)
    client:close()
    local c_reqs = srv:requests()
    return { ngx = via_ngx, c = via_c, ngx_reqs = ngx_reqs, c_reqs = c_reqs }
  end

  local function assert_same(r, what)
    assert.same(wire(r.c_reqs), wire(r.ngx_reqs), what .. ": the requests differ")
    assert.same(O.comparable(r.c), O.comparable(r.ngx), what .. ": the outcomes differ")
  end

  describe("the same bytes on the wire and the same results", function()
    local CASES = {
      { "dlq_retry with every option", fname = "dlq_retry", args = { "a b/c%", ALL_OPTS },
        script = { CREATED } },
      { "dlq_retry without options", fname = "dlq_retry", args = { "1725323658779-0", null },
        script = { CREATED } },
      { "dlq_list with filters", fname = "dlq_list",
        args = { { message_id = "msg_1", url = "https://x/y?z=1", url_group = "g", label = { "a", "b" },
                   from_date = 1700000000000, to_date = 1700000001000, response_status = 500,
                   count = 10, cursor = "c" } },
        script = { { json = { messages = { MSG }, cursor = "next" } } } },
      { "dlq_list without params", fname = "dlq_list", args = { null },
        script = { { json = { messages = {}, cursor = "" } } } },
      { "dlq_get", fname = "dlq_get", args = { "1725323658779-0" }, script = { { json = MSG } } },
      { "dlq_delete", fname = "dlq_delete", args = { "1725323658779-0" },
        script = { { status = 200, body = "" } } },
      { "dlq_delete_many with 150 ids: two requests", fname = "dlq_delete_many", args = { ids(150) },
        script = { { json = { deleted = 100 } }, { json = { deleted = 50 } } } },
      { "dlq_delete_many with a filter: a cursor loop", fname = "dlq_delete_many",
        args = { { url = "https://x", label = "l" } },
        script = { { json = { deleted = 2, cursor = "a" } }, { json = { deleted = 1 } } } },
      { "dlq_retry_many with 150 ids and options", fname = "dlq_retry_many",
        args = { ids(150), { retries = 1, delay = 5, headers = { ["X-B"] = "2" } } },
        script = { { status = 202, json = { responses = { { messageId = "m1" } } } },
                   { status = 202, json = { responses = { { messageId = "m2" } } } } } },
      { "dlq_retry_many with a filter: a cursor loop", fname = "dlq_retry_many",
        args = { { url_group = "g" }, null },
        script = { { json = { responses = { { messageId = "m1" } }, cursor = "a" } },
                   { json = { responses = { { messageId = "m2" } } } } } },
      { "publish raw bytes with options", fname = "publish",
        args = { "https://example.com/a?x=1", BYTES,
                 { content_type = "application/octet-stream", delay = "1m", retries = 0 } },
        script = { CREATED } },
      { "publish a 4 KiB body", fname = "publish",
        args = { "https://example.com/big", ("0123456789abcdef"):rep(256), null }, script = { CREATED } },
      { "publish an empty body to a URL group", fname = "publish",
        args = { "my-group_1.x", "", { headers = { ["X-A"] = "1" } } }, script = { CREATED } },
      { "publish_json", fname = "publish_json",
        -- one key per object: the order of a Lua table's keys is no transport's
        args = { "https://example.com/j", { items = { 1, "caf\195\169", null, { nested = true } } },
                 { headers = { ["X-Trace"] = "t" }, deduplication_id = "j1" } },
        script = { CREATED } },
      { "batch: a URL, a URL group's array, a refused item", fname = "batch",
        args = { { { destination = "https://example.com/a", body = "one", queue = "q.1",
                     opts = { retries = 1, headers = { ["X-A"] = "1" } } },
                   { destination = "my-group" }, { destination = "no-group", body = "x" } } },
        script = { { json = { { messageId = "m1" }, { { messageId = "m2", url = "https://e/1" } },
                              { error = "url group no-group not found" } } } } },
      { "batch_json", fname = "batch_json",
        args = { { { destination = "https://example.com/j", body = { items = { 1, "caf\195\169" } },
                     opts = { deduplication_id = "b1" } } } },
        script = { { json = { { messageId = "m1" } } } } },
      { "dlq_retry_each: results, callbacks and a failure among them", fname = "dlq_retry_each",
        args = { { "1-0", "2-0", "3-0", "2-0" }, { retries = 2 } },
        batch = { concurrency = 1, record = true },
        script = { CREATED, { status = 404, json = { error = "message not found" } }, CREATED } },
      { "dlq_messages across pages", fname = "dlq_messages", args = { { url = "https://x", count = 2 } },
        script = { { json = { messages = { MSG, MSG }, cursor = "p2" } },
                   { json = { messages = { MSG } } } } },
    }
    for _, case in ipairs(CASES) do
      it(case[1], function()
        local r = both(case)
        assert.is_true(#r.c_reqs > 0)
        assert.is_nil(r.c.err)
        assert.is_nil(r.c.raised)
        assert.is_nil(r.c.raised_error)
        assert_same(r, case[1])
      end)
    end
  end)

  describe("the same attempts, waits and errors", function()
    local busy = { status = 503, json = { error = "busy" } }
    local CASES = {
      { "a 5xx is tried again, then the result", want = "ok", sent = 3,
        fname = "dlq_retry", args = { "1-0" },
        script = { busy, busy, CREATED } },
      { "a 5xx on every attempt: server, ambiguous",
        want = { kind = "server", status = 503, attempts = 3, ambiguous = true }, sent = 3,
        fname = "dlq_retry", args = { "1-0" },
        script = { busy, busy, busy } },
      { "publish is not repeated after a 5xx without deduplication_id",
        want = { kind = "server", attempts = 1, ambiguous = true }, sent = 1,
        fname = "publish",
        args = { "https://example.com/a", "b" }, script = { busy, CREATED } },
      { "publish with deduplication_id is repeated", want = "ok", sent = 2,
        fname = "publish",
        args = { "https://example.com/a", "b", { deduplication_id = "d" } }, script = { busy, CREATED } },
      { "a connection closed without an answer, then the answer", want = "ok", sent = 2,
        fname = "dlq_retry",
        args = { "1-0" }, script = { { fault = "close" }, CREATED } },
      { "publish after a reset in the body: ambiguous, not repeated",
        want = { kind = "network", attempts = 1, ambiguous = true }, sent = 1,
        fname = "publish",
        args = { "https://example.com/a", "b" },
        script = { { status = 201, body = ("r"):rep(2000), fault = "reset_in_body" }, CREATED } },
      { "a 404 after an unknown outcome is ambiguous",
        want = { kind = "not_found", attempts = 2, ambiguous = true }, sent = 2,
        fname = "dlq_retry", args = { "1-0" },
        script = { busy, { status = 404, json = { error = "message not found" } } } },
      { "a 429 with Retry-After: 0, then the result", want = "ok", sent = 2,
        fname = "dlq_retry", args = { "1-0" },
        script = { { status = 429, headers = { ["Retry-After"] = "0" } }, CREATED } },
      { "a 429 longer than max_delay fails at once, with retry_after and the limits",
        want = { kind = "rate_limited", attempts = 1, ambiguous = false, retry_after = 100 }, sent = 1,
        fname = "dlq_retry", args = { "1-0" },
        script = { { status = 429, json = { error = "slow down" },
                     headers = { ["Retry-After"] = "100", ["Burst-RateLimit-Limit"] = "100",
                                 ["Burst-RateLimit-Remaining"] = "0",
                                 ["Burst-RateLimit-Reset"] = "1893456000" } } } },
      { "a 429 on every attempt", want = { kind = "rate_limited", attempts = 3, ambiguous = false }, sent = 3,
        fname = "dlq_get", args = { "1-0" },
        script = { { status = 429, headers = { ["Retry-After"] = "0" } },
                   { status = 429, headers = { ["Retry-After"] = "0" } },
                   { status = 429, headers = { ["RateLimit-Limit"] = "500", ["RateLimit-Reset"] = "0" } } } },
      { "400 is not repeated",
        want = { kind = "bad_request", attempts = 1, message = "invalid delay" }, sent = 1,
        fname = "dlq_retry", args = { "1-0", { delay = "1s" } },
        script = { { status = 400, json = { error = "invalid delay" } }, CREATED } },
      { "403: unauthorized", want = { kind = "unauthorized", status = 403 }, sent = 1,
        fname = "dlq_list", args = { null },
        script = { { status = 403, json = { error = "forbidden" } } } },
      { "412: quota", want = { kind = "quota", status = 412 }, sent = 1,
        fname = "publish_json", args = { "https://example.com/a", { x = 1 } },
        script = { { status = 412, json = { error = "quota exceeded" } } } },
      { "an unknown status: http", want = { kind = "http", status = 418 }, sent = 1,
        fname = "dlq_get", args = { "1-0" },
        script = { { status = 418, body = "teapot" } } },
      { "invalid JSON in a 200: decode", want = { kind = "decode", attempts = 1 }, sent = 1,
        fname = "dlq_get", args = { "1-0" },
        script = { { status = 200, body = "not json" } } },
      { "a body over max_response_bytes: too_large, not repeated",
        want = { kind = "too_large", attempts = 1 }, sent = 1,
        fname = "dlq_get", args = { "1-0" },
        config = { max_response_bytes = 64 }, script = { { json = MSG }, { json = MSG } } },
      { "the token echoed back is scrubbed",
        want = { kind = "bad_request", message = "bad token [REDACTED]" }, sent = 1,
        fname = "dlq_get", args = { "1-0" },
        script = { { status = 400, json = { error = "bad token " .. TOKEN } } } },
      { "a failing page of a cursor loop carries what was done",
        want = { kind = "server", attempts = 3, deleted = 2 }, sent = 4,
        fname = "dlq_delete_many",
        args = { { url = "https://x" } },
        script = { { json = { deleted = 2, cursor = "a" } }, busy, busy, busy } },
      { "a cursor repeated by a bulk call", want = { kind = "decode", cursor = "a" }, sent = 2,
        fname = "dlq_delete_many", args = { { url = "https://x" } },
        script = { { json = { deleted = 2, cursor = "a" } }, { json = { deleted = 1, cursor = "a" } } } },
      { "a timeout on each attempt", want = { kind = "timeout", attempts = 2, ambiguous = true }, sent = 2,
        fname = "dlq_get", args = { "1-0" },
        config = { timeout = 0.5, retry = { attempts = 2, base_delay = 0.01 } },
        script = { { fault = "hang" }, { fault = "hang" } } },
      { "nothing listens: never sent, not ambiguous",
        want = { kind = "network", attempts = 3, ambiguous = false }, sent = 0,
        fname = "dlq_retry", args = { "1-0" },
        config = { base_url = "http://127.0.0.1:" .. N.free_port() } },
      { "dlq_retry_each: a callback error stops the batch and is raised",
        want = "qstash: error in a callback: boom", sent = 2,
        fname = "dlq_retry_each",
        args = { { "1-0", "2-0", "3-0" }, null }, batch = { concurrency = 1, record = true, raise_after = 2 },
        default = CREATED },
      { "dlq_retry_each: 429 waits and retries inside the batch", want = "ok", sent = 4,
        fname = "dlq_retry_each",
        args = { { "1-0", "2-0" }, null }, batch = { concurrency = 1, record = true },
        script = { { status = 429, headers = { ["Retry-After"] = "0" } }, CREATED, busy, CREATED } },
      { "dlq_messages: a failing page raises the error object",
        want = { kind = "server", attempts = 3 }, sent = 4,
        fname = "dlq_messages", args = { null },
        script = { { json = { messages = { MSG }, cursor = "p2" } }, busy, busy, busy } },
    }
    for _, case in ipairs(CASES) do
      it(case[1], function()
        local r = both(case)
        -- what the C module did (the comparison below holds nginx to it)
        assert.equal(case.sent, #r.c_reqs)
        if case.want == "ok" then
          assert.is_nil(r.c.err)
          assert.is_nil(r.c.raised)
        elseif type(case.want) == "string" then
          assert.equal(case.want, r.c.raised)
        else
          local e = r.c.err or r.c.raised_error
          assert.is_table(e, "no error")
          assert.is_true(e.is_error)
          for k, v in pairs(case.want) do assert.equal(v, e[k], k) end
        end
        assert_same(r, case[1])
      end)
    end

    it("dlq_messages: a repeated cursor ends the loop with the same decode error, without `body`", function()
      -- The core cannot prepare dlq_messages: over the caller-driven
      -- transport the iterator is made of dlq_list calls and the caller makes
      -- this error. It has every field of the C module's but `body`: that is
      -- the page's body with the token scrubbed, which the core does and the
      -- caller must not imitate.
      local r = both{ fname = "dlq_messages", args = { null }, script = {
        { json = { messages = { MSG }, cursor = "c1" } },
        { json = { messages = { MSG }, cursor = "c2" } }, busy,
        { json = { messages = { MSG }, cursor = "c1" } } } }
      assert.same(wire(r.c_reqs), wire(r.ngx_reqs))
      local c, n = O.comparable(r.c), O.comparable(r.ngx)
      assert.equal("decode", c.raised_error.kind)
      assert.equal(2, c.raised_error.attempts)
      assert.is_true(c.raised_error.ambiguous)
      assert.equal(3, #c.msgs)
      assert.equal("c1", c.raised_error.cursor)
      assert.is_string(c.raised_error.body)
      assert.is_nil(n.raised_error.body)
      c.raised_error.body = nil
      assert.same(c, n)
    end)
  end)

  it("dlq_messages starts at params.cursor (docs/api.md: the same params as dlq_list)", function()
    local r = both{ fname = "dlq_messages", args = { { cursor = "c0" } },
                    script = { { json = { messages = { MSG } } } } }
    assert.equal("/v2/dlq?cursor=c0", r.ngx_reqs[1].target)
    assert.equal(1, #r.ngx.msgs)
    assert.equal(r.ngx_reqs[1].target, r.c_reqs[1].target)
    assert_same(r, "dlq_messages from a cursor")
  end)

  describe("argument errors: raised before anything is sent", function()
    local BAD = {
      { "dlq_retry", { "", null } },
      { "dlq_retry", { "..", null } },
      { "dlq_retry", { ("x"):rep(513), null } },
      { "dlq_retry", { "a\1b", null } },
      { "dlq_retry", { 5, null } },
      { "dlq_retry", { "1-0", 5 } },
      { "dlq_retry", { "1-0", { retires = 1 } } },
      { "dlq_retry", { "1-0", { retries = -1 } } },
      { "dlq_retry", { "1-0", { retries = 1.5 } } },
      { "dlq_retry", { "1-0", { delay = "10x" } } },
      { "dlq_retry", { "1-0", { not_before = 1893456000000 } } },
      { "dlq_retry", { "1-0", { method = "TRACE" } } },
      { "dlq_retry", { "1-0", { callback = "ftp://x" } } },
      { "dlq_retry", { "1-0", { headers = { ["X-A"] = "b\r\nX-Evil: 1" } } } },
      { "dlq_retry", { "1-0", { headers = { ["Bad Name"] = "b" } } } },
      { "dlq_retry", { "1-0", { flow_control = { parallelism = 1 } } } },
      { "dlq_retry", { "1-0", { label = { "a,b" } } } },
      { "dlq_list", { 5 } },
      { "dlq_list", { { bogus = 1 } } },
      { "dlq_list", { { count = 0 } } },
      { "dlq_list", { { label = {} } } },
      { "dlq_get", { "" } },
      { "dlq_delete", { "." } },
      { "dlq_delete_many", { {} } },
      { "dlq_delete_many", { "1-0" } },
      { "dlq_delete_many", { { "1-0", "" } } },
      { "dlq_retry_many", { { all = true, url = "https://x" }, null } },
      { "dlq_retry_many", { { "1-0" }, { delay = -1 } } },
      { "publish", { "not a url", "b", null } },
      { "publish", { "https://example.com/a b", "b", null } },
      { "publish", { "https://example.com/a#f", "b", null } },
      { "publish", { "https://example.com/a", 5, null } },
      { "publish", { "https://example.com/a", "b", { bogus = true } } },
      { "publish_json", { "https://example.com/a", { 1, 2 }, { content_type = "text/plain" } } },
      { "dlq_retry_each", { "1-0", null, null } },
      { "dlq_retry_each", { {}, null, null } },
      { "dlq_retry_each", { { "1-0", 5 }, null, null } },
      { "dlq_retry_each", { { "1-0", "" }, null, null } },
      { "dlq_retry_each", { { "1-0", x = "2-0" }, null, null } },
      { "dlq_retry_each", { { "", "1-0" }, { retries = -1 }, null } },
      { "dlq_retry_each", { { "1-0" }, { retires = 1 }, { concurrency = 0 } } },
      { "dlq_retry_each", { { "1-0" }, null, 5 } },
      { "dlq_retry_each", { { "1-0" }, null, { concurrency = 0 } } },
      { "dlq_retry_each", { { "1-0" }, null, { concurrency = 1.5 } } },
      { "dlq_retry_each", { { "1-0" }, null, { concurrency = 1025 } } },
      { "dlq_retry_each", { { "1-0" }, null, { concurency = 2 } } },
      { "dlq_retry_each", { { "1-0" }, null, { on_progres = 2 } } },
      { "dlq_retry_each", { { "1-0" }, null, { zzzzzzzzzzzzz = 2 } } },
      { "dlq_retry_each", { { "1-0" }, null, { "positional" } } },
      { "dlq_retry_each", { { "1-0" }, null, { ["it's\1"] = 1 } } },
      { "dlq_retry_each", { { "1-0" }, null, { on_result = "f" } } },
      { "dlq_messages", { 5 } },
      { "dlq_messages", { { bogus = 1 } } },
      { "dlq_messages", { { count = 101 } } },
    }
    for i, row in ipairs(BAD) do
      it(("%s #%d"):format(row[1], i), function()
        local r = both{ fname = row[1], args = row[2], n = O.NARGS[row[1]] }
        assert.is_string(r.c.raised, "the C module did not raise")
        assert.matches("^bad argument #%d to '" .. row[1] .. "' %(", r.c.raised)
        assert.equal(r.c.raised, r.ngx.raised)
        assert.equal(0, #r.c_reqs)
        assert.equal(0, #r.ngx_reqs)
      end)
    end
  end)

  it("left nothing alarming in the error log", function()
    local log = ng:error_log()
    assert.not_matches("%[alert%]", log)
    assert.not_matches("%[crit%]", log)
    assert.not_matches("%[emerg%]", log)
    assert.not_matches("lua entry thread aborted", log, 1, true)
  end)
end)
