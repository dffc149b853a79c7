-- qstash.resty: calls from OpenResty handlers over cosockets (the C core's
-- caller-driven transport, qstash.resty.driver), direct calls where nginx has
-- no request yet, the phases that raise, and the receiving helper.
--
-- The nginx part starts a real nginx (Debian's nginx-light with
-- libnginx-mod-http-lua) with one worker and runs only under LuaJIT, the ABI
-- nginx loads (`make test LUA=luajit SPECS=spec/resty_spec.lua`); under other
-- interpreters it is pending. The direct-call part runs everywhere.
-- spec/resty_parity_spec.lua holds the same calls against the C module's
-- libcurl path; spec/resty_driver_spec.lua the batch and paging details.
local E = require "spec.support.emulator"
local server = require "spec.support.server"
local N = require "spec.support.nginx"
local certs = require "spec.support.certs"
local socket = require "socket"
local cjson = require "cjson"
local qstash = require "qstash"
local qr = require "qstash.resty"

local q = E.shell_quote

local function starts_with(s, prefix)
  return type(s) == "string" and s:sub(1, #prefix) == prefix
end

---------------------------------------------------------------- outside nginx

describe("qstash.resty outside a request context", function()
  local emu, srv

  setup(function()
    emu = E.start{ time_scale = 0.001 }
    srv = server.start()
  end)
  teardown(function()
    srv:stop()
    emu:stop()
  end)

  local function conf()
    return { base_url = emu.url, token = emu.token, retry = { base_delay = 0.01 }, timeout = 5 }
  end

  it("calls the C module directly and returns res", function()
    local res, err = qr.dlq_list(nil, conf())
    assert.is_nil(err)
    assert.same({}, res.messages)
  end)

  it("returns nil and the module's error object on a runtime failure", function()
    local res, err = qr.dlq_get("abc", {
      base_url = "http://127.0.0.1:" .. N.free_port(), token = "t", retry = false, connect_timeout = 2 })
    assert.is_nil(res)
    assert.is_true(qstash.is_error(err))
    assert.equal("network", err.kind)
    assert.is_true(starts_with(tostring(err), "qstash: network GET /v2/dlq/abc"), tostring(err))

    res, err = qr.dlq_retry("1725323658779-0", nil, conf())
    assert.is_nil(res)
    assert.equal("not_found", err.kind)
    assert.is_true(starts_with(tostring(err), "qstash: not_found (404) POST /v2/dlq/retry/1725323658779-0"))
  end)

  it("raises argument errors at the caller's line, config errors as the function's own", function()
    local ok, msg = pcall(qr.dlq_retry, "x", { retires = 1 }, conf())
    assert.is_false(ok)
    assert.equal("bad argument #2 to 'dlq_retry' (unknown option 'retires'; did you mean 'retries'?)", msg)
    local line
    ok, msg = pcall(function()
      line = debug.getinfo(1, "l").currentline + 1
      local res = qr.dlq_get("", conf())
      return res
    end)
    assert.is_false(ok)
    assert.matches("resty_spec.lua:" .. line .. ": bad argument #1 to 'dlq_get'", msg, 1, true)
    ok, msg = pcall(function()
      line = debug.getinfo(1, "l").currentline + 1
      local res = qr.dlq_get("x", { thread_pool = "qstash" })
      return res
    end)
    assert.is_false(ok)
    assert.matches("resty_spec.lua:" .. line .. ": bad argument #2 to 'dlq_get' (unknown config key 'thread_pool')",
      msg, 1, true)
    ok, msg = pcall(qr.publish, "https://example.com/a", "b", nil, "token")
    assert.is_false(ok)
    assert.matches("bad argument #4 to 'publish' (config must be a table or nil, got string)", msg, 1, true)
    ok, msg = pcall(qr.dlq_retry_each, { "a" }, nil, { concurency = 1 }, conf())
    assert.is_false(ok)
    assert.matches("bad argument #3 to 'dlq_retry_each' (unknown batch option 'concurency'; "
      .. "did you mean 'concurrency'?)", msg, 1, true)
  end)

  it("checks http_version and, over HTTP/1.1 cosockets, answers the same with any of them", function()
    local ok, msg = pcall(qr.dlq_get, "x", { base_url = srv.url, token = "t", http_version = "3" })
    assert.is_false(ok)
    assert.matches("'http_version' must be \"1.1\", \"2\" or \"auto\"", msg, 1, true)
    for _, v in ipairs({ "1.1", "2", "auto" }) do
      srv:reset()
      srv:script{ { json = { dlqId = "v" .. v } } }
      local res = assert(qr.dlq_get("a", { base_url = srv.url, token = "t", retry = false, http_version = v }))
      assert.equal("v" .. v, res.dlqId)
      assert.equal("HTTP/1.1", srv:requests()[1].version)
    end
  end)

  it("keeps one client per config, whatever the order of its keys, reusing its connection", function()
    srv:reset()
    srv:script{ { json = { dlqId = "a" } }, { json = { dlqId = "b" } }, { json = { dlqId = "c" } } }
    local c1 = { base_url = srv.url, token = "t1", retry = false, timeout = 5 }
    local c2 = { timeout = 5, retry = false }
    c2.token = "t1"
    c2.base_url = srv.url
    assert.equal("a", assert(qr.dlq_get("a", c1)).dlqId)
    assert.equal("b", assert(qr.dlq_get("b", c2)).dlqId)
    -- another config: another client, another connection
    assert.equal("c", assert(qr.dlq_get("c", { base_url = srv.url, token = "t2", retry = false })).dlqId)
    local reqs = srv:requests()
    assert.equal(3, #reqs)
    assert.equal(reqs[1].conn, reqs[2].conn)
    assert.not_equal(reqs[1].conn, reqs[3].conn)
    assert.equal("Bearer t2", srv:header(reqs[3], "Authorization"))
  end)

  it("sees a config changed in place", function()
    srv:reset()
    srv:default{ json = { dlqId = "x" } }
    local c = { base_url = srv.url, token = "first", retry = false }
    assert(qr.dlq_get("a", c))
    c.token = "second"
    assert(qr.dlq_get("a", c))
    local reqs = srv:requests()
    assert.equal("Bearer first", srv:header(reqs[1], "Authorization"))
    assert.equal("Bearer second", srv:header(reqs[2], "Authorization"))
    -- a nested table changed in place
    c.retry = { attempts = 2, base_delay = 0.01 }
    srv:reset()
    srv:script{ { status = 503 }, { json = { dlqId = "x" } }, { status = 503 } }
    assert(qr.dlq_get("a", c))
    assert.equal(2, #srv:requests())
    c.retry.attempts = 1
    local res, err = qr.dlq_get("a", c)
    assert.is_nil(res)
    assert.equal("server", err.kind)
    assert.equal(1, err.attempts)
    assert.equal(3, #srv:requests())
  end)

  it("runs dlq_retry_each with callbacks, and dlq_messages", function()
    local seen, progress = {}, 0
    local res = assert(qr.dlq_retry_each({ "1-0", "2-0", "1-0" }, nil, { concurrency = 2,
      on_result = function(id, _, err) seen[id] = err.kind end,
      on_progress = function(done) progress = done end }, conf()))
    assert.equal(0, res.ok)
    assert.equal(2, res.failed)
    assert.is_true(qstash.is_error(res.results["1-0"]))
    assert.same({ ["1-0"] = "not_found", ["2-0"] = "not_found" }, seen)
    assert.equal(2, progress)
    local n = 0
    for _ in qr.dlq_messages({ count = 10 }, conf()) do n = n + 1 end
    assert.equal(0, n)
  end)

  it("verify_request needs a request", function()
    local ok, msg = pcall(qr.verify_request, {})
    assert.is_false(ok)
    assert.matches("needs an OpenResty request handler", msg, 1, true)
  end)
end)

---------------------------------------------------------------- under nginx

if N.pending_unless_runnable("qstash.resty under nginx") then return end

-- Handlers of the test nginx. `env` (resty_spec_env.lua in the prefix) holds
-- the URLs of the servers the spec started.
local HANDLERS = [=[
local cjson = require "cjson"
local qstash = require "qstash"
local env = require "resty_spec_env"

local H = { env = env }

function H.emu_conf(extra)
  local c = { base_url = env.emu_url, token = env.emu_token, retry = { base_delay = 0.01 }, timeout = 5 }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

function H.srv_conf(extra)
  local c = { base_url = env.srv_url, token = "srv-token-0123456789", retry = false, timeout = 5 }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

local function plain(t)
  local o = {}
  for k, v in pairs(t) do o[k] = v end
  return o
end

-- The outcome of a call as JSON-able data.
function H.outcome(res, err)
  if res ~= nil then return { ok = true, res = res } end
  return { ok = false, kind = err.kind, status = err.status, str = tostring(err),
           is_error = qstash.is_error(err), err = plain(err) }
end

function H.say(doc)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(doc))
end

function H.out(res, err)
  H.say(H.outcome(res, err))
end

-- A call that must raise: what it raised.
function H.raised(f, ...)
  local ok, e = pcall(f, ...)
  return ok and "did not raise" or tostring(e)
end

function H.split(s)
  local t = {}
  for part in (s or ""):gmatch("[^,]+") do t[#t + 1] = part end
  return t
end

return H
]=]

local LOCATIONS = [=[
location = /fast { content_by_lua_block { ngx.say("ok") } }

location = /state {
  content_by_lua_block {
    local v = ngx.shared.spec:get(ngx.var.arg_k)
    if v == nil then return ngx.exit(404) end
    ngx.print(v)
  }
}
location = /set {
  content_by_lua_block {
    if ngx.var.arg_v then ngx.shared.spec:set(ngx.var.arg_k, ngx.var.arg_v)
    else ngx.shared.spec:delete(ngx.var.arg_k) end
    ngx.say("ok")
  }
}

location = /retry {
  content_by_lua_block {
    local H = require "resty_spec_handlers"
    H.out(require("qstash.resty").dlq_retry(ngx.var.arg_id, { retries = 1 }, H.emu_conf()))
  }
}

# every call of the module, over cosockets
location = /all {
  content_by_lua_block {
    local H = require "resty_spec_handlers"
    local qr = require "qstash.resty"
    local cjson = require "cjson"
    local ids = H.split(ngx.var.arg_ids)
    local c = H.emu_conf()
    local pages = {}
    for msg in qr.dlq_messages({ count = 1 }, c) do pages[#pages + 1] = msg.dlqId end
    H.say{
      list = H.outcome(qr.dlq_list({ count = 10 }, c)),
      messages = pages,
      get = H.outcome(qr.dlq_get(ids[1], c)),
      delete = H.outcome(qr.dlq_delete(ids[1], c)),
      retry_many = H.outcome(qr.dlq_retry_many({ ids[2] }, { retries = 0 }, c)),
      delete_many = H.outcome(qr.dlq_delete_many({ ids[3] }, c)),
      publish = H.outcome(qr.publish(H.env.sink_url .. "/raw", "raw body",
        { content_type = "text/plain" }, c)),
      publish_json = H.outcome(qr.publish_json(H.env.sink_url .. "/json",
        { a = cjson.null, b = { 1, 2 } }, nil, c)),
      delete_again = H.outcome(qr.dlq_delete(ids[1], c)),
    }
  }
}

location = /each {
  content_by_lua_block {
    local H = require "resty_spec_handlers"
    local qstash = require "qstash"
    local order = {}
    local res, err = require("qstash.resty").dlq_retry_each(H.split(ngx.var.arg_ids), nil,
      { concurrency = 2, on_result = function(id) order[#order + 1] = id end }, H.emu_conf())
    if not res then return H.out(res, err) end
    local results = {}
    for id, r in pairs(res.results) do
      results[id] = { is_error = qstash.is_error(r), str = tostring(r), messageId = r.messageId }
    end
    H.say{ ok = res.ok, failed = res.failed, results = results, order = order }
  }
}

# a QStash stub over TLS: ?port=&ca=<file name or none>
location = /tls {
  content_by_lua_block {
    local H = require "resty_spec_handlers"
    local qr = require "qstash.resty"
    local conf = { base_url = "https://127.0.0.1:" .. ngx.var.arg_port, token = "tls-token-0123456789",
                   retry = { attempts = 3, base_delay = 0.01 }, timeout = 5 }
    if ngx.var.arg_ca then conf.ca_file = H.env.prefix .. "/" .. ngx.var.arg_ca end
    local a = H.outcome(qr.dlq_retry("1-0", nil, conf))
    local b = H.outcome(qr.dlq_retry("2-0", nil, conf))
    H.say{ a, b }
  }
}

# the scriptable server: ?id=, config from the query
location = /srv {
  content_by_lua_block {
    local H = require "resty_spec_handlers"
    local extra = {}
    if ngx.var.arg_timeout then extra.timeout = tonumber(ngx.var.arg_timeout) end
    if ngx.var.arg_max then extra.max_response_bytes = tonumber(ngx.var.arg_max) end
    if ngx.var.arg_attempts then extra.retry = { attempts = tonumber(ngx.var.arg_attempts), base_delay = 0.01 } end
    ngx.update_time()
    local t0 = ngx.now()
    local doc = H.outcome(require("qstash.resty").dlq_retry(ngx.var.arg_id or "1-0", nil, H.srv_conf(extra)))
    ngx.update_time()
    doc.elapsed = ngx.now() - t0
    H.say(doc)
  }
}
location = /two {
  content_by_lua_block {
    local H = require "resty_spec_handlers"
    local qr = require "qstash.resty"
    local a = H.outcome(qr.dlq_get("first", H.srv_conf()))
    local b = H.outcome(qr.dlq_get("second", H.srv_conf()))
    H.say{ a, b }
  }
}

location = /badarg {
  content_by_lua_block {
    local H = require "resty_spec_handlers"
    local qr = require "qstash.resty"
    H.say{
      H.raised(qr.dlq_retry, "x", { retires = 1 }, H.emu_conf()),
      H.raised(qr.dlq_get, "x", { thread_pool = "qstash" }),
      H.raised(qr.dlq_retry_each, { "a", "" }, nil, nil, H.emu_conf()),
      H.raised(qr.dlq_messages, { bogus = 1 }, H.emu_conf()),
    }
  }
}

# one call in each phase with cosockets
location = /phases {
  rewrite_by_lua_block {
    local H = require "resty_spec_handlers"
    ngx.ctx.rewrite = H.outcome(require("qstash.resty").dlq_list(nil, H.emu_conf()))
  }
  access_by_lua_block {
    local H = require "resty_spec_handlers"
    ngx.ctx.access = H.outcome(require("qstash.resty").dlq_list(nil, H.emu_conf()))
  }
  content_by_lua_block {
    local H = require "resty_spec_handlers"
    H.say{ rewrite = ngx.ctx.rewrite, access = ngx.ctx.access,
           content = H.outcome(require("qstash.resty").dlq_list(nil, H.emu_conf())) }
  }
}

location = /timer {
  content_by_lua_block {
    local H = require "resty_spec_handlers"
    local d = ngx.shared.spec
    d:delete("timer")
    assert(ngx.timer.at(0, function()
      local doc = H.outcome(require("qstash.resty").dlq_list(nil, H.emu_conf()))
      doc.phase = ngx.get_phase()
      d:set("timer", require("cjson").encode(doc))
    end))
    for _ = 1, 100 do
      local v = d:get("timer")
      if v then return ngx.print(v) end
      ngx.sleep(0.05)
    end
    ngx.exit(504)
  }
}

# a TLS handshake with this nginx's own server whose ssl_certificate_by_lua makes a call
location = /ssl_phase {
  content_by_lua_block {
    local sock = ngx.socket.tcp()
    sock:settimeout(5000)
    assert(sock:connect("127.0.0.1", tonumber(ngx.var.arg_port)))
    local session, err = sock:sslhandshake(nil, nil, false)
    sock:close()
    ngx.say(session and "handshake done" or ("handshake failed: " .. tostring(err)))
  }
}

# log_by_lua has no cosockets: the call raises instead of blocking the worker
location = /log_phase {
  content_by_lua_block { ngx.say("ok") }
  log_by_lua_block {
    local H = require "resty_spec_handlers"
    ngx.shared.spec:set("log_phase", H.raised(require("qstash.resty").dlq_list, nil, H.emu_conf()))
  }
}

# 1,000 of these at once: each waits 0.5 s for the slow stub
location = /flood {
  content_by_lua_block {
    local H = require "resty_spec_handlers"
    local res, err = require("qstash.resty").dlq_retry("1-0", nil,
      { base_url = "http://127.0.0.1:" .. H.env.slow_port, token = "flood-token-0123456789", timeout = 30 })
    if not res then
      ngx.status = 502
      return ngx.say("failed: ", tostring(err))
    end
    ngx.say(res.messageId)
  }
}
location = /peak {
  content_by_lua_block { ngx.print(ngx.shared.spec:get("peak") or 0) }
}

# the receiver: QStash delivers here
location /hook {
  content_by_lua_block {
    local H = require "resty_spec_handlers"
    local qr = require "qstash.resty"
    local claims = qr.verify_request{ url = true,
      current_signing_key = H.env.current_key, next_signing_key = H.env.next_key }
    -- a failed check has answered 401 and ended the request
    local d = ngx.shared.spec
    if d:get("hook_fail") then
      ngx.status = 500
      ngx.say("down")
      return ngx.exit(500)
    end
    d:set("hook_last", require("cjson").encode{
      claims = claims, body = qr.read_body(),
      in_file = ngx.req.get_body_file() ~= nil,
      signature = ngx.var.http_upstash_signature, uri = ngx.var.request_uri })
    d:incr("hook_n", 1, 0)
    ngx.say("ok")
  }
}
location = /hook_noreply {
  content_by_lua_block {
    local H = require "resty_spec_handlers"
    local claims, err = require("qstash.resty").verify_request{ respond = false,
      current_signing_key = H.env.current_key, next_signing_key = H.env.next_key }
    if claims then return H.say{ ok = true, iss = claims.iss } end
    H.say{ ok = false, reason = err.reason, kind = err.kind, str = tostring(err),
           is_error = require("qstash").is_error(err) }
  }
}
location = /hook_bugs {
  content_by_lua_block {
    local qr = require "qstash.resty"
    local _, nokeys = pcall(qr.verify_request, {})
    local _, unknown = pcall(qr.verify_request, { respnd = false })
    require("resty_spec_handlers").say{ nokeys = nokeys, unknown = unknown }
  }
}
location = /hook_access {
  access_by_lua_block {
    local H = require "resty_spec_handlers"
    require("qstash.resty").verify_request{ url = true,
      current_signing_key = H.env.current_key, next_signing_key = H.env.next_key }
  }
  content_by_lua_block { ngx.say("content ran") }
}
]=]

-- A QStash stub over TLS: the message id names the server-side connection.
local TLS_STUB = [[
location /v2/dlq/retry/ {
  default_type application/json;
  return 201 '{"messageId":"msg_$connection","deduplicated":false}';
}
]]

local CERTS = {
  { name = "ca1_srv", ca = "ca1", san = "IP:127.0.0.1" }, -- lua_ssl_trusted_certificate
  { name = "ca2_srv", ca = "ca2", san = "IP:127.0.0.1" }, -- only ever a ca_file
}

local function nginx_conf(ports, prefix)
  local P = ports
  return N.preamble(prefix) .. [[
worker_rlimit_nofile 20000;
events { worker_connections 8000; }
http {
  access_log off;
  default_type text/plain;
  client_body_buffer_size 1k;
  client_max_body_size 1m;
  lua_shared_dict spec 1m;
  lua_ssl_trusted_certificate ]] .. prefix .. [[/ca1.pem;
  lua_ssl_verify_depth 2;
]] .. N.lua_paths(prefix) .. [[

  # init_by_lua runs in the master before the workers exist: a direct call.
  init_by_lua_block {
    local H = require "resty_spec_handlers"
    local qr = require "qstash.resty"
    local doc = H.outcome(qr.dlq_list(nil, H.emu_conf()))
    local _, err2 = qr.dlq_list(nil, { base_url = H.env.closed_url, token = "t", retry = false,
                                       connect_timeout = 2, timeout = 2 })
    doc.phase = ngx.get_phase()
    doc.closed = H.outcome(nil, err2)
    ngx.shared.spec:set("init", require("cjson").encode(doc))
  }
  # init_worker_by_lua has no cosockets: the call raises; a timer started here can call
  init_worker_by_lua_block {
    local H = require "resty_spec_handlers"
    local d = ngx.shared.spec
    d:set("init_worker", H.raised(require("qstash.resty").dlq_list, nil, H.emu_conf()))
    ngx.timer.at(0, function()
      local doc = H.outcome(require("qstash.resty").dlq_list(nil, H.emu_conf()))
      doc.phase = ngx.get_phase()
      d:set("init_worker_timer", require("cjson").encode(doc))
    end)
  }

  server {
    listen 127.0.0.1:]] .. P[1] .. [[ backlog=4096;
    include locations.conf;
  }
  server {
    listen 127.0.0.1:]] .. P[2] .. [[ ssl;
    ssl_certificate ]] .. prefix .. [[/ca1_srv.pem;
    ssl_certificate_key ]] .. prefix .. [[/ca1_srv.key;
    keepalive_requests 1000;
    include tls_stub.conf;
  }
  server {
    listen 127.0.0.1:]] .. P[3] .. [[ ssl;
    ssl_certificate ]] .. prefix .. [[/ca2_srv.pem;
    ssl_certificate_key ]] .. prefix .. [[/ca2_srv.key;
    keepalive_requests 1000;
    include tls_stub.conf;
  }
  server {
    # the slow stub of the flood: answers after 0.5 s, counting how many wait at once
    listen 127.0.0.1:]] .. P[4] .. [[ backlog=4096;
    keepalive_requests 100000;
    location /v2/dlq/retry/ {
      content_by_lua_block {
        local d = ngx.shared.spec
        local now = d:incr("inflight", 1, 0)
        if now > (d:get("peak") or 0) then d:set("peak", now) end
        ngx.sleep(0.5)
        d:incr("inflight", -1)
        ngx.status = 201
        ngx.header["Content-Type"] = "application/json"
        ngx.print('{"messageId":"msg_slow","deduplicated":false}')
      }
    }
  }
  server {
    # a call from ssl_certificate_by_lua, during the TLS handshake
    listen 127.0.0.1:]] .. P[5] .. [[ ssl;
    ssl_certificate ]] .. prefix .. [[/ca1_srv.pem;
    ssl_certificate_key ]] .. prefix .. [[/ca1_srv.key;
    ssl_certificate_by_lua_block {
      local H = require "resty_spec_handlers"
      local doc = H.outcome(require("qstash.resty").dlq_get("from-ssl", H.srv_conf()))
      doc.phase = ngx.get_phase()
      ngx.shared.spec:set("ssl_cert", require("cjson").encode(doc))
    }
    location / { return 200 "tls"; }
  }
  server {
    # a call from server_rewrite_by_lua, before any location
    listen 127.0.0.1:]] .. P[6] .. [[;
    server_rewrite_by_lua_block {
      local H = require "resty_spec_handlers"
      ngx.ctx.doc = H.outcome(require("qstash.resty").dlq_list(nil, H.emu_conf()))
      ngx.ctx.doc.phase = ngx.get_phase()
    }
    location / { content_by_lua_block { require("resty_spec_handlers").say(ngx.ctx.doc) } }
  }
}
]]
end

local function env_module(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = { "return {" }
  for _, k in ipairs(keys) do out[#out + 1] = ("  %s = %q,"):format(k, t[k]) end
  out[#out + 1] = "}"
  return table.concat(out, "\n") .. "\n"
end

describe("qstash.resty under nginx", function()
  local emu, sink, srv, client, ng, dir, base

  setup(function()
    emu = E.start{ time_scale = 0.001 }
    sink = E.start_sink()
    srv = server.start()
    client = qstash.new{ base_url = emu.url, token = emu.token, retry = { base_delay = 0.01 }, timeout = 5 }
    dir = E.tmpdir()
    certs.make(dir, CERTS)
    -- the ports are picked by N.start; the env module needs the slow stub's
    local env = {
      emu_url = emu.url, emu_token = emu.token, srv_url = srv.url, sink_url = sink.url,
      closed_url = "http://127.0.0.1:" .. N.free_port(), prefix = dir,
      current_key = E.CURRENT_SIGNING_KEY, next_key = E.NEXT_SIGNING_KEY,
    }
    ng = N.start(function(ports, prefix)
      env.slow_port = tostring(ports[4])
      E.write_file(prefix .. "/resty_spec_env.lua", env_module(env))
      return nginx_conf(ports, prefix)
    end, { prefix = dir, nports = 6, files = {
      ["resty_spec_handlers.lua"] = HANDLERS, ["locations.conf"] = LOCATIONS, ["tls_stub.conf"] = TLS_STUB } })
    base = ng.url
  end)
  teardown(function()
    if ng then ng:stop() end
    if client then client:close() end
    if srv then srv:stop() end
    if sink then sink:stop() end
    if emu then emu:stop() end
  end)

  local function error_log()
    return ng:error_log()
  end

  local function get(path, opts)
    return E.request(base, opts and opts.method or "GET", path, opts)
  end

  local function get_json(path, opts)
    local status, body = get(path, opts)
    assert.equal(200, status, path .. " -> " .. status .. " " .. body .. "\n" .. error_log():sub(-3000))
    return cjson.decode(body)
  end

  local function state(k)
    local status, body = get("/state?k=" .. k)
    if status ~= 200 then return nil end
    return body
  end

  local function state_json(k)
    local v = state(k)
    return v and cjson.decode(v)
  end

  -- Publishes to `url` with retries = 0 and waits for its DLQ entry.
  local function into_dlq(url, body)
    local published = client:publish(url, body, { retries = 0 })
    local entry = E.wait_for(function()
      return client:dlq_messages{ message_id = published.messageId }()
    end, 10)
    assert.is_truthy(entry, "message did not reach the DLQ")
    return entry
  end

  -- Sends `path` and returns the socket, to read the answer later (HTTP/1.0:
  -- the body is what follows the head, up to the close).
  local function start_request(path)
    local c = socket.tcp()
    c:settimeout(10)
    assert(c:connect("127.0.0.1", ng.port))
    assert(c:send("GET " .. path .. " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"))
    return c
  end

  -- How long /fast takes to answer now.
  local function fast_time()
    local t1 = E.now()
    local status, body = get("/fast")
    assert.equal(200, status)
    assert.equal("ok\n", body)
    return E.now() - t1
  end

  before_each(function()
    emu:reset()
    sink:clear()
    sink:set_status(200)
    srv:reset()
  end)

  describe("over HTTP", function()
    it("retries a DLQ entry from a handler, then reports the 404 as the module's error", function()
      sink:set_status(500, { body = "destination down" })
      local entry = into_dlq(sink.url .. "/orders", '{"order":1}')
      sink:clear()
      sink:set_status(200)

      local doc = get_json("/retry?id=" .. entry.dlqId)
      assert.is_true(doc.ok, cjson.encode(doc))
      assert.matches("^msg_", doc.res.messageId)
      assert.is_false(doc.res.deduplicated)
      local delivered = E.wait_for(function() return sink:received()[1] end, 10)
      assert.is_truthy(delivered, "the sink received nothing")
      assert.equal('{"order":1}', delivered.body)
      assert.equal(doc.res.messageId, sink:header(delivered, "Upstash-Message-Id"))

      doc = get_json("/retry?id=" .. entry.dlqId)
      assert.is_false(doc.ok)
      assert.equal("not_found", doc.kind)
      assert.equal(404, doc.status)
      assert.is_true(doc.is_error)
      assert.is_true(starts_with(doc.str, "qstash: not_found (404) POST /v2/dlq/retry/" .. entry.dlqId), doc.str)
      assert.equal("POST", doc.err.method)
    end)

    it("offers every call of the module", function()
      sink:set_status(500)
      local ids = {}
      for i = 1, 3 do ids[i] = into_dlq(sink.url .. "/all/" .. i, "m" .. i).dlqId end
      sink:clear()
      sink:set_status(200)
      local doc = get_json("/all?ids=" .. table.concat(ids, ","))
      for _, name in ipairs{ "list", "get", "delete", "retry_many", "delete_many", "publish", "publish_json" } do
        assert.is_true(doc[name].ok, name .. ": " .. cjson.encode(doc[name]))
      end
      assert.equal(3, #doc.list.res.messages)
      assert.same(ids, doc.messages)
      assert.equal("m1", doc.get.res.body)
      assert.is_true(doc.delete.res)
      assert.equal(1, #doc.retry_many.res.responses)
      assert.same({ deleted = 1 }, doc.delete_many.res)
      assert.matches("^msg_", doc.publish.res.messageId)
      assert.matches("^msg_", doc.publish_json.res.messageId)
      assert.equal("not_found", doc.delete_again.kind)

      local got = E.wait_for(function()
        local r = sink:received()
        if #r >= 3 then return r end
      end, 10)
      assert.is_truthy(got, "the sink did not receive 3 deliveries")
      local by_target = {}
      for _, r in ipairs(got) do by_target[r.target] = r end
      assert.equal("m2", by_target["/all/2"].body)
      assert.equal("raw body", by_target["/raw"].body)
      assert.equal("text/plain", sink:header(by_target["/raw"], "Content-Type"))
      local json = cjson.decode(by_target["/json"].body)
      assert.equal(cjson.null, json.a)
      assert.same({ 1, 2 }, json.b)
      assert.equal("application/json", sink:header(by_target["/json"], "Content-Type"))
    end)

    it("runs dlq_retry_each with callbacks; error results keep their metatable", function()
      sink:set_status(500)
      local entry = into_dlq(sink.url .. "/each", "e")
      sink:set_status(200)
      local doc = get_json("/each?ids=" .. entry.dlqId .. ",1-0," .. entry.dlqId)
      assert.equal(1, doc.ok)
      assert.equal(1, doc.failed)
      assert.equal(2, #doc.order)
      assert.is_false(doc.results[entry.dlqId].is_error)
      assert.matches("^msg_", doc.results[entry.dlqId].messageId)
      assert.is_true(doc.results["1-0"].is_error)
      assert.is_true(starts_with(doc.results["1-0"].str, "qstash: not_found (404)"), doc.results["1-0"].str)
    end)

    it("reuses one connection for sequential calls, in a handler and across requests", function()
      srv:script{ { json = { dlqId = "first" } }, { json = { dlqId = "second" } },
                  { json = { dlqId = "third" } }, { json = { dlqId = "fourth" } } }
      local a = get_json("/two")
      local b = get_json("/two")
      assert.is_true(a[1].ok and a[2].ok and b[1].ok and b[2].ok, cjson.encode{ a, b })
      assert.equal("first", a[1].res.dlqId)
      assert.equal("fourth", b[2].res.dlqId)
      local reqs = srv:requests()
      assert.equal(4, #reqs)
      for i = 2, 4 do assert.equal(reqs[1].conn, reqs[i].conn) end
      assert.equal("Bearer srv-token-0123456789", srv:header(reqs[1], "Authorization"))
    end)

    it("raises argument errors in the handler, before anything is sent", function()
      local doc = get_json("/badarg")
      assert.matches("bad argument #2 to 'dlq_retry' %(unknown option 'retires'; did you mean 'retries'%?%)$", doc[1])
      assert.matches("bad argument #2 to 'dlq_get' (unknown config key 'thread_pool')", doc[2], 1, true)
      assert.matches("bad argument #1 to 'dlq_retry_each' (DLQ id must not be empty", doc[3], 1, true)
      assert.matches("bad argument #1 to 'dlq_messages' (unknown filter 'bogus')", doc[4], 1, true)
      for _, msg in ipairs(doc) do assert.not_matches("resty[/.]", msg) end
      assert.equal(0, #srv:requests())
    end)
  end)

  describe("over HTTPS", function()
    it("verifies against a self-signed CA given as ca_file, and reuses the connection", function()
      local doc = get_json("/tls?ca=ca2.pem&port=" .. ng.ports[3])
      assert.is_true(doc[1].ok and doc[2].ok, cjson.encode(doc))
      -- the stub names its connection in the message id
      assert.matches("^msg_%d+$", doc[1].res.messageId)
      assert.equal(doc[1].res.messageId, doc[2].res.messageId)
      local again = get_json("/tls?ca=ca2.pem&port=" .. ng.ports[3])
      assert.equal(doc[1].res.messageId, again[1].res.messageId)
    end)

    it("verifies against lua_ssl_trusted_certificate without ca_file", function()
      local doc = get_json("/tls?port=" .. ng.ports[2])
      assert.is_true(doc[1].ok and doc[2].ok, cjson.encode(doc))
      assert.equal(doc[1].res.messageId, doc[2].res.messageId)
    end)

    it("fails a certificate from another CA at once, as the C module does", function()
      local cases = {
        -- nginx: ca_file CA2 against a CA1 server; the C module: the same
        { port = ng.ports[2], ca = "ca2.pem", c_ca = "ca2.pem" },
        -- nginx: its store (CA1) against a CA2 server; the C module: CA1 as ca_file
        { port = ng.ports[3], c_ca = "ca1.pem" },
      }
      for _, case in ipairs(cases) do
        local doc = get_json("/tls?port=" .. case.port .. (case.ca and ("&ca=" .. case.ca) or ""))
        assert.is_false(doc[1].ok)
        assert.equal("network", doc[1].kind)
        assert.is_true(doc[1].is_error)
        assert.matches("certificate", doc[1].err.message, 1, true)
        -- the C module: one attempt, never sent, not ambiguous
        local c = require("qstash.safe").new{ base_url = "https://127.0.0.1:" .. case.port,
          token = "tls-token-0123456789", retry = { attempts = 3, base_delay = 0.01 },
          ca_file = dir .. "/" .. case.c_ca }
        local _, err = c:dlq_retry("1-0")
        c:close()
        assert.equal("network", err.kind)
        assert.equal(err.attempts, doc[1].err.attempts)
        assert.equal(1, doc[1].err.attempts)
        assert.equal(err.ambiguous, doc[1].err.ambiguous)
      end
    end)
  end)

  describe("time", function()
    it("does not block the worker while a call waits for a slow server", function()
      srv:script{ { status = 201, json = { messageId = "slow" }, delay = 1.5 } }
      local t0 = E.now()
      local c = start_request("/srv?id=slow")
      srv:wait_requests(1, 5) -- the call is in flight
      local fast = fast_time()
      assert.is_true(fast < 0.5, ("/fast took %.3f s while /srv was in flight"):format(fast))
      assert.is_true(E.now() - t0 < 1.5, "/fast was not answered while /srv was in flight")
      local raw = c:receive("*a")
      c:close()
      assert.matches("^HTTP/1%.%d 200", raw)
      assert.matches('"messageId":"slow"', raw, 1, true)
      assert.is_true(E.now() - t0 >= 1.4, "/srv answered too early")
    end)

    it("waits out a 429 with ngx.sleep, which does not block another location", function()
      srv:script{ { status = 429, headers = { ["Retry-After"] = "1" } },
                  { status = 201, json = { messageId = "after" } } }
      local t0 = E.now()
      local c = start_request("/srv?attempts=2")
      srv:wait_requests(1, 5) -- the 429 is in, the wait has begun
      local fast = fast_time()
      assert.is_true(fast < 0.5, ("/fast took %.3f s during the 429 wait"):format(fast))
      local raw = c:receive("*a")
      c:close()
      assert.matches('"messageId":"after"', raw, 1, true)
      assert.is_true(E.now() - t0 >= 0.9, "the 429 wait was not kept")
      assert.equal(2, #srv:requests())
    end)

    it("ends an attempt at its timeout, without blocking the worker", function()
      srv:script{ { fault = "hang" } }
      local c = start_request("/srv?timeout=1")
      srv:wait_requests(1, 5)
      assert.is_true(fast_time() < 0.5)
      local raw = c:receive("*a")
      c:close()
      local doc = cjson.decode(raw:match("\r\n\r\n(.*)$"))
      assert.equal("timeout", doc.kind)
      assert.is_true(doc.is_error)
      assert.equal(1, doc.err.attempts)
      assert.is_true(doc.err.ambiguous) -- the retry was sent: it may have happened
      assert.is_true(doc.elapsed >= 0.9 and doc.elapsed < 2.5, "took " .. doc.elapsed)
    end)
  end)

  describe("broken answers", function()
    it("reports a reset in the middle of the response as an ambiguous network failure", function()
      srv:script{ { status = 201, body = ("r"):rep(1000), fault = "reset_in_body" } }
      local doc = get_json("/srv")
      assert.equal("network", doc.kind)
      assert.is_true(doc.is_error)
      assert.is_true(doc.err.ambiguous)
      assert.equal(1, #srv:requests())
    end)

    it("refuses a body over max_response_bytes", function()
      srv:script{ { status = 201, json = { messageId = ("m"):rep(5000) } } }
      local doc = get_json("/srv?max=1024")
      assert.equal("too_large", doc.kind)
      assert.is_true(doc.is_error)
      assert.equal("response body larger than max_response_bytes (1024)", doc.err.message)
    end)
  end)

  it("answers 1,000 concurrent handler requests on one worker", function()
    local cmd = ("python3 %s %d /flood 1000 60"):format(q(E.root .. "/spec/support/flood.py"), ng.port)
    local p = io.popen(cmd)
    local out = p:read("*a")
    p:close()
    local doc = cjson.decode(out)
    assert.same({ ["200"] = 1000 }, doc.statuses, out .. "\n" .. error_log():sub(-2000))
    assert.same({ msg_slow = 1000 }, doc.bodies)
    assert.same({}, doc.errors)
    -- the stub saw many at once (each waits 0.5 s), not one after another
    local _, peak = get("/peak")
    assert.is_true(tonumber(peak) >= 50, "peak " .. peak)
  end)

  describe("phases", function()
    it("works in rewrite, access and content handlers and in timers", function()
      local doc = get_json("/phases")
      for _, phase in ipairs{ "rewrite", "access", "content" } do
        assert.is_true(doc[phase].ok, phase .. ": " .. cjson.encode(doc[phase]))
        assert.same({}, doc[phase].res.messages)
      end
      doc = get_json("/timer")
      assert.is_true(doc.ok, cjson.encode(doc))
      assert.equal("timer", doc.phase)
      doc = E.wait_for(function() return state_json("init_worker_timer") end, 5)
      assert.is_true(doc.ok, cjson.encode(doc))
    end)

    it("works in server_rewrite_by_lua", function()
      local status, body = E.request("http://127.0.0.1:" .. ng.ports[6], "GET", "/")
      assert.equal(200, status, body)
      local doc = cjson.decode(body)
      assert.equal("server_rewrite", doc.phase)
      assert.is_true(doc.ok, body)
      assert.same({}, doc.res.messages)
    end)

    it("works in ssl_certificate_by_lua, during a handshake", function()
      srv:script{ { json = { dlqId = "from-ssl" } } }
      local status, body = get("/ssl_phase?port=" .. ng.ports[5])
      assert.equal(200, status)
      assert.equal("handshake done\n", body)
      local doc = state_json("ssl_cert")
      assert.equal("ssl_cert", doc.phase)
      assert.is_true(doc.ok, cjson.encode(doc))
      assert.equal("from-ssl", doc.res.dlqId)
    end)

    it("calls directly in init_by_lua", function()
      local init = state_json("init")
      assert.equal("init", init.phase)
      assert.is_true(init.ok, cjson.encode(init))
      assert.same({}, init.res.messages)
      assert.is_false(init.closed.ok)
      assert.equal("network", init.closed.kind)
      assert.is_true(init.closed.is_error)
      assert.is_true(starts_with(init.closed.str, "qstash: network GET /v2/dlq"), init.closed.str)
    end)

    it("raises in phases without cosockets, pointing to ngx.timer.at", function()
      assert.equal(200, (get("/log_phase")))
      local v = E.wait_for(function() return state("log_phase") end, 5)
      assert.matches("qstash.resty: dlq_list cannot run in the log phase", v, 1, true)
      assert.matches("ngx.timer.at(0, function() ... end)", v, 1, true)
      v = state("init_worker")
      assert.matches("qstash.resty: dlq_list cannot run in the init_worker phase", v, 1, true)
    end)
  end)

  describe("verify_request", function()
    local function wait_hook(n)
      return E.wait_for(function()
        local count = tonumber(state("hook_n") or "0")
        if count >= n then return state_json("hook_last") end
      end, 10)
    end

    local function hook_count()
      return tonumber(state("hook_n") or "0")
    end

    it("accepts a retried DLQ delivery and rejects tampered or unsigned requests", function()
      local hook = base .. "/hook?src=dlq"
      get("/set?k=hook_fail&v=1")
      local entry = into_dlq(hook, "hello hook")
      get("/set?k=hook_fail")
      local n = hook_count()

      local doc = get_json("/retry?id=" .. entry.dlqId)
      assert.is_true(doc.ok, cjson.encode(doc))
      local last = wait_hook(n + 1)
      assert.is_truthy(last, "the hook was not called:\n" .. error_log())
      assert.equal("Upstash", last.claims.iss)
      assert.equal(hook, last.claims.sub)
      assert.equal("hello hook", last.body)
      assert.is_false(last.in_file)

      local sig = last.signature
      local status, body = get("/hook?src=dlq", { method = "POST", body = "tampered",
        headers = { ["Upstash-Signature"] = sig } })
      assert.equal(401, status)
      assert.equal("invalid Upstash-Signature (body_mismatch)\n", body)

      status, body = get("/hook?src=dlq", { method = "POST", body = "hello hook" })
      assert.equal(401, status)
      assert.equal("invalid Upstash-Signature (missing)\n", body)

      -- the URL is part of what is signed
      status, body = get("/hook?src=elsewhere", { method = "POST", body = "hello hook",
        headers = { ["Upstash-Signature"] = sig } })
      assert.equal(401, status)
      assert.equal("invalid Upstash-Signature (url_mismatch)\n", body)

      -- the genuine request still passes (within its expiry)
      status = get("/hook?src=dlq", { method = "POST", body = "hello hook",
        headers = { ["Upstash-Signature"] = sig } })
      assert.equal(200, status)
      assert.equal(n + 2, hook_count())
    end)

    it("reads a body that nginx buffered to a temp file", function()
      local big = ("0123456789abcdef"):rep(512) -- 8 KiB, client_body_buffer_size is 1k
      local n = hook_count()
      client:publish(base .. "/hook?size=big", big)
      local last = wait_hook(n + 1)
      assert.is_truthy(last, "the hook was not called:\n" .. error_log())
      assert.is_true(last.in_file)
      assert.equal(#big, #last.body)
      assert.equal(big, last.body)
      assert.equal(base .. "/hook?size=big", last.claims.sub)

      local status, body = get("/hook?size=big", { method = "POST", body = big:sub(2) .. "!",
        headers = { ["Upstash-Signature"] = last.signature } })
      assert.equal(401, status)
      assert.equal("invalid Upstash-Signature (body_mismatch)\n", body)
    end)

    it("returns nil, err with respond = false", function()
      local doc = get_json("/hook_noreply", { method = "POST", body = "x" })
      assert.is_false(doc.ok)
      assert.equal("signature", doc.kind)
      assert.equal("missing", doc.reason)
      assert.is_true(doc.is_error)
      assert.equal("qstash: signature [missing]: no signature (the Upstash-Signature header is missing or empty)",
        doc.str)

      doc = get_json("/hook_noreply", { method = "POST", body = "x",
        headers = { ["Upstash-Signature"] = "a.b.c" } })
      assert.is_false(doc.ok)
      assert.equal("malformed", doc.reason)
    end)

    it("raises for a receiver without signing keys or with an unknown option", function()
      -- nginx passes no environment variable without an `env` directive
      local doc = get_json("/hook_bugs")
      assert.matches("bad argument #1 to 'verify_request' (no signing key", doc.nokeys, 1, true)
      assert.matches("bad argument #1 to 'verify_request' (unknown option 'respnd')", doc.unknown, 1, true)
      doc = get_json("/hook_bugs", { method = "POST", body = "x", headers = { ["Upstash-Signature"] = "a.b.c" } })
      assert.matches("(no signing key", doc.nokeys, 1, true)
    end)

    it("ends the request with 401 from an access handler", function()
      local status, body = get("/hook_access", { method = "POST", body = "x" })
      assert.equal(401, status)
      assert.not_matches("content ran", body, 1, true)
    end)
  end)

  it("left nothing alarming in the error log", function()
    local log = error_log()
    assert.not_matches("%[alert%]", log)
    assert.not_matches("%[crit%]", log)
    assert.not_matches("%[emerg%]", log)
    assert.not_matches("lua entry thread aborted", log, 1, true)
  end)
end)
