-- qstash.resty: calls from OpenResty handlers through ngx.run_worker_thread,
-- the receiving helper, and direct calls outside a request context.
--
-- The nginx part starts a real nginx (Debian's nginx-light with
-- libnginx-mod-http-lua) with one worker and runs only under LuaJIT, the ABI
-- nginx loads (`make test LUA=luajit SPECS=spec/resty_spec.lua`); under other
-- interpreters it is pending. The direct-call part runs everywhere.
local E = require "spec.support.emulator"
local server = require "spec.support.server"
local socket = require "socket"
local cjson = require "cjson"
local qstash = require "qstash"
local qr = require "qstash.resty"

local q = E.shell_quote

local NGINX = "/usr/sbin/nginx"
local MODULES = "/usr/lib/nginx/modules"
local LUA_CJSON_DIR = "/usr/lib/x86_64-linux-gnu/lua/5.1"

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local function own_pid()
  local stat = E.read_file("/proc/self/stat")
  return stat and tonumber(stat:match("^(%d+)"))
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

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

  it("calls qstash.safe directly and returns res", function()
    local res, err = qr.dlq_list(nil, conf())
    assert.is_nil(err)
    assert.same({}, res.messages)
  end)

  it("returns nil and the module's error object on a runtime failure", function()
    local port = free_port()
    local res, err = qr.dlq_get("abc", {
      base_url = "http://127.0.0.1:" .. port, token = "t", retry = false, connect_timeout = 2 })
    assert.is_nil(res)
    assert.is_true(qstash.is_error(err))
    assert.equal("network", err.kind)
    assert.is_true(starts_with(tostring(err), "qstash: network GET /v2/dlq/abc"), tostring(err))

    res, err = qr.dlq_retry("1725323658779-0", nil, conf())
    assert.is_nil(res)
    assert.equal("not_found", err.kind)
    assert.is_true(starts_with(tostring(err), "qstash: not_found (404) POST /v2/dlq/retry/1725323658779-0"))
  end)

  it("raises argument errors, as qstash.safe does, at the caller's line", function()
    local ok, msg = pcall(qr.dlq_retry, "x", { retires = 1 }, conf())
    assert.is_false(ok)
    assert.equal("string", type(msg))
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
      local res = qr.dlq_get("x", { thread_pool = false })
      return res
    end)
    assert.is_false(ok)
    assert.matches("resty_spec.lua:" .. line .. ": bad argument #2 to 'dlq_get'", msg, 1, true)
  end)

  it("accepts only values that can cross to a worker thread, in every context", function()
    local ok, msg = pcall(qr.dlq_retry, "x", { headers = { ["X-A"] = print } }, conf())
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'dlq_retry' %(qstash.resty: opts.headers%[X%-A%] is a function", msg)
    local cyclic = {}
    cyclic.self = cyclic
    ok, msg = pcall(qr.publish_json, "https://example.com/a", cyclic, nil, conf())
    assert.is_false(ok)
    assert.matches("value.self is a table that contains itself", msg, 1, true)
    ok, msg = pcall(qr.publish_json, "https://example.com/a", { x = io.stdout }, nil, conf())
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'publish_json' (qstash.resty: value.x is a userdata", msg, 1, true)
    ok, msg = pcall(qr.dlq_list, nil, setmetatable(conf(), {}))
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'dlq_list' (qstash.resty: config is a table with a metatable", msg, 1, true)
    ok, msg = pcall(qr.dlq_retry_each, { "a" }, nil, { on_result = function() end }, conf())
    assert.is_false(ok)
    assert.matches("batch option 'on_result' is not supported", msg, 1, true)
    ok, msg = pcall(qr.dlq_get, "x", { thread_pool = 1 })
    assert.is_false(ok)
    assert.matches("'thread_pool' must be a non-empty string", msg, 1, true)
  end)

  it("ignores thread_pool and keeps one client per config, reusing its connection", function()
    srv:reset()
    srv:script{ { json = { dlqId = "a" } }, { json = { dlqId = "b" } }, { json = { dlqId = "c" } } }
    local c1 = { base_url = srv.url, token = "t1", retry = false, timeout = 5, thread_pool = "x" }
    -- the same config built in another order: the same client
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

  it("returns dlq_retry_each results with error objects", function()
    local res = assert(qr.dlq_retry_each({ "1-0", "2-0", "1-0" }, nil, { concurrency = 2 }, conf()))
    assert.equal(0, res.ok)
    assert.equal(2, res.failed)
    assert.is_true(qstash.is_error(res.results["1-0"]))
    assert.equal("not_found", res.results["2-0"].kind)
  end)

  it("verify_request needs a request", function()
    local ok, msg = pcall(qr.verify_request, {})
    assert.is_false(ok)
    assert.matches("needs an OpenResty request handler", msg, 1, true)
  end)
end)

---------------------------------------------------------------- under nginx

local skip_reason
if rawget(_G, "jit") == nil then
  skip_reason = "nginx loads the LuaJIT build: run it with make test LUA=luajit"
elseif not (exists(NGINX) and exists(MODULES .. "/ngx_http_lua_module.so")
            and exists(MODULES .. "/ndk_http_module.so")) then
  skip_reason = "needs Debian's nginx-light and libnginx-mod-http-lua (make deps)"
end

if skip_reason then
  describe("qstash.resty under nginx", function()
    pending(skip_reason)
  end)
  return
end

-- Handlers of the test nginx. `env` (resty_spec_env.lua in the prefix) holds
-- the URLs of the servers the spec started.
local HANDLERS = [=[
local cjson = require "cjson"
local qstash = require "qstash"
local qr = require "qstash.resty"
local env = require "resty_spec_env"

local H = { env = env }

function H.emu_conf(extra)
  local c = { base_url = env.emu_url, token = env.emu_token, retry = { base_delay = 0.01 }, timeout = 5 }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

function H.srv_conf()
  return { base_url = env.srv_url, token = "srv-token", retry = false, timeout = 5 }
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

function H.split(s)
  local t = {}
  for part in (s or ""):gmatch("[^,]+") do t[#t + 1] = part end
  return t
end

return H
]=]

local function nginx_conf(prefix, port)
  local root = E.root
  if root:sub(1, 1) ~= "/" then
    local p = io.popen("pwd")
    root = p:read("*l") .. (root == "." and "" or "/" .. root)
    p:close()
  end
  local text = ([=[
user root;
worker_processes 1;
pid PREFIX/nginx.pid;
error_log PREFIX/error.log warn;
load_module MODULES/ndk_http_module.so;
load_module MODULES/ngx_http_lua_module.so;
thread_pool qstash threads=4;
thread_pool other threads=2;
events { worker_connections 256; }

http {
  access_log off;
  default_type text/plain;
  client_body_temp_path PREFIX/client_body;
  client_body_buffer_size 1k;
  client_max_body_size 1m;
  lua_package_path "ROOT/lua/?.lua;ROOT/lua/?/init.lua;ROOT/?.lua;PREFIX/?.lua;;";
  lua_package_cpath "ROOT/build/luajit/?.so;CJSON/?.so;;";
  lua_shared_dict spec 1m;

  # init_by_lua runs in the master before the workers exist: a direct call.
  init_by_lua_block {
    local H = require "resty_spec_handlers"
    local qr = require "qstash.resty"
    local res, err = qr.dlq_list(nil, H.emu_conf())
    local doc = H.outcome(res, err)
    local _, err2 = qr.dlq_list(nil, { base_url = H.env.closed_url, token = "t", retry = false,
                                       connect_timeout = 2, timeout = 2 })
    doc.phase = ngx.get_phase()
    doc.closed = H.outcome(nil, err2)
    ngx.shared.spec:set("init", require("cjson").encode(doc))
  }
  # the same config again, in the forked worker (a direct call, too)
  init_worker_by_lua_block {
    local H = require "resty_spec_handlers"
    local doc = H.outcome(require("qstash.resty").dlq_list(nil, H.emu_conf()))
    doc.phase = ngx.get_phase()
    ngx.shared.spec:set("init_worker", require("cjson").encode(doc))
  }

  server {
    listen 127.0.0.1:PORT;

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
        local res, err = require("qstash.resty").dlq_retry(ngx.var.arg_id, { retries = 1 }, H.emu_conf())
        H.out(res, err)
      }
    }

    location = /each {
      content_by_lua_block {
        local H = require "resty_spec_handlers"
        local qstash = require "qstash"
        local res, err = require("qstash.resty").dlq_retry_each(H.split(ngx.var.arg_ids), nil,
          { concurrency = 2 }, H.emu_conf())
        if not res then return H.out(res, err) end
        local results = {}
        for id, r in pairs(res.results) do
          results[id] = { is_error = qstash.is_error(r), str = tostring(r), messageId = r.messageId }
        end
        H.say{ ok = res.ok, failed = res.failed, results = results }
      }
    }

    # every call of the module, through the thread pool
    location = /all {
      content_by_lua_block {
        local H = require "resty_spec_handlers"
        local qr = require "qstash.resty"
        local cjson = require "cjson"
        local ids = H.split(ngx.var.arg_ids)
        local c = H.emu_conf()
        H.say{
          list = H.outcome(qr.dlq_list({ count = 10 }, c)),
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

    location = /slow {
      content_by_lua_block {
        local H = require "resty_spec_handlers"
        H.out(require("qstash.resty").dlq_retry("slow-id", nil, H.srv_conf()))
      }
    }

    location = /one {
      content_by_lua_block {
        local H = require "resty_spec_handlers"
        H.out(require("qstash.resty").dlq_get(ngx.var.arg_id, H.srv_conf()))
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
        local ok, e = pcall(require("qstash.resty").dlq_retry, "x", { retires = 1 }, H.emu_conf())
        H.say{ ok = ok, type = type(e), msg = tostring(e) }
      }
    }
    location = /pool {
      content_by_lua_block {
        local H = require "resty_spec_handlers"
        local ok, res, err = pcall(require("qstash.resty").dlq_list, nil,
          H.emu_conf{ thread_pool = ngx.var.arg_name })
        if ok then return H.out(res, err) end
        H.say{ raised = tostring(res) }
      }
    }

    # one call in each phase that can yield
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

    # log_by_lua cannot yield: the call raises instead of blocking the worker
    location = /log_phase {
      content_by_lua_block { ngx.say("ok") }
      log_by_lua_block {
        local H = require "resty_spec_handlers"
        local ok, e = pcall(require("qstash.resty").dlq_list, nil, H.emu_conf())
        ngx.shared.spec:set("log_phase", tostring(ok) .. " " .. tostring(e))
      }
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
  }
}
]=])
  local subst = { PREFIX = prefix, MODULES = MODULES, ROOT = root, CJSON = LUA_CJSON_DIR,
                  PORT = tostring(port) }
  return (text:gsub("%u+", function(word) return subst[word] end))
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

-- Starts nginx in the foreground of a background shell; returns pid, port.
local function start_nginx(prefix, env)
  E.write_file(prefix .. "/resty_spec_handlers.lua", HANDLERS)
  E.write_file(prefix .. "/resty_spec_env.lua", env_module(env))
  local last
  for _ = 1, 3 do
    local port = free_port()
    E.write_file(prefix .. "/nginx.conf", nginx_conf(prefix, port))
    os.remove(prefix .. "/error.log")
    local cmd = table.concat({ q(NGINX), "-p", q(prefix .. "/"), "-c", q(prefix .. "/nginx.conf"),
      "-e", q(prefix .. "/error.log"), "-g", q("daemon off;") }, " ")
    assert(E.exec_ok(cmd .. " >" .. q(prefix .. "/stdout") .. " 2>&1 </dev/null & echo $! >"
      .. q(prefix .. "/master.pid")))
    local pid = tonumber((E.read_file(prefix .. "/master.pid") or ""):match("%d+"))
    assert(pid, "nginx did not start")
    -- stop nginx if this process goes away without teardown
    local me = own_pid()
    if me then
      E.exec_ok(("(while kill -0 %d 2>/dev/null && kill -0 %d 2>/dev/null; do sleep 1; done; "
        .. "kill -TERM %d 2>/dev/null) >/dev/null 2>&1 </dev/null &"):format(me, pid, pid))
    end
    local up = E.wait_for(function()
      if not E.alive(pid) then return "dead" end
      local c = socket.tcp()
      c:settimeout(0.5)
      local ok = c:connect("127.0.0.1", port)
      c:close()
      return ok and "up" or nil
    end, 20)
    if up == "up" then return pid, port end
    last = (E.read_file(prefix .. "/stdout") or "") .. (E.read_file(prefix .. "/error.log") or "")
    E.exec_ok("kill -KILL " .. pid .. " 2>/dev/null")
  end
  error("nginx did not start:\n" .. tostring(last), 0)
end

local function stop_nginx(pid)
  E.exec_ok("kill -TERM " .. pid .. " 2>/dev/null")
  local gone = E.wait_for(function() return not E.alive(pid) end, 5)
  if not gone then
    E.exec_ok("kill -KILL " .. pid .. " 2>/dev/null")
    E.wait_for(function() return not E.alive(pid) end, 2)
  end
end

describe("qstash.resty under nginx", function()
  local emu, sink, srv, client, prefix, pid, port, base

  setup(function()
    emu = E.start{ time_scale = 0.001 }
    sink = E.start_sink()
    srv = server.start()
    client = qstash.new{ base_url = emu.url, token = emu.token, retry = { base_delay = 0.01 }, timeout = 5 }
    prefix = E.tmpdir()
    pid, port = start_nginx(prefix, {
      emu_url = emu.url, emu_token = emu.token, srv_url = srv.url, sink_url = sink.url,
      closed_url = "http://127.0.0.1:" .. free_port(),
      current_key = E.CURRENT_SIGNING_KEY, next_key = E.NEXT_SIGNING_KEY,
    })
    base = "http://127.0.0.1:" .. port
  end)
  teardown(function()
    if pid then stop_nginx(pid) end
    if prefix then os.execute("rm -rf " .. q(prefix)) end
    if client then client:close() end
    if srv then srv:stop() end
    if sink then sink:stop() end
    if emu then emu:stop() end
  end)

  local function error_log()
    return E.read_file(prefix .. "/error.log") or ""
  end

  local function get(path, opts)
    return E.request(base, opts and opts.method or "GET", path, opts)
  end

  local function get_json(path, opts)
    local status, body = get(path, opts)
    assert.equal(200, status, path .. " -> " .. status .. " " .. body .. "\n" .. error_log())
    return cjson.decode(body)
  end

  local function state(k)
    local status, body = get("/state?k=" .. k)
    if status ~= 200 then return nil end
    return cjson.decode(body)
  end

  -- Publishes to `url` with retries = 0 and waits for its DLQ entry.
  local function into_dlq(url, body)
    local published = client:publish(url, body, { retries = 0 })
    local entry = E.wait_for(function()
      for msg in client:dlq_messages{ message_id = published.messageId } do return msg end
    end, 10)
    assert.is_truthy(entry, "message did not reach the DLQ")
    return entry
  end

  before_each(function()
    emu:reset()
    sink:clear()
    sink:set_status(200)
    srv:reset()
  end)

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

  it("gives dlq_retry_each's error results their metatable back", function()
    sink:set_status(500)
    local entry = into_dlq(sink.url .. "/each", "e")
    sink:set_status(200)
    local doc = get_json("/each?ids=" .. entry.dlqId .. ",1-0")
    assert.equal(1, doc.ok)
    assert.equal(1, doc.failed)
    assert.is_false(doc.results[entry.dlqId].is_error)
    assert.matches("^msg_", doc.results[entry.dlqId].messageId)
    assert.is_true(doc.results["1-0"].is_error)
    assert.is_true(starts_with(doc.results["1-0"].str, "qstash: not_found (404)"), doc.results["1-0"].str)
  end)

  it("does not block the worker while a call waits for a slow server", function()
    -- A direct libcurl call would hold the only worker for the whole 1.5 s,
    -- and /fast would wait behind it; on the thread pool it answers at once.
    srv:script{ { status = 201, json = { messageId = "slow" }, delay = 1.5 } }
    local t0 = E.now()
    local c = socket.tcp()
    c:settimeout(5)
    assert(c:connect("127.0.0.1", port))
    assert(c:send("GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"))
    srv:wait_requests(1, 5) -- the call is in flight

    local t1 = E.now()
    local status, body = get("/fast")
    local fast = E.now() - t1
    assert.equal(200, status)
    assert.equal("ok\n", body)
    assert.is_true(fast < 0.5, ("/fast took %.3f s while /slow was in flight"):format(fast))
    assert.is_true(E.now() - t0 < 1.5, "/fast was not answered while /slow was in flight")

    local raw = c:receive("*a")
    c:close()
    local took = E.now() - t0
    assert.matches("^HTTP/1%.1 200", raw)
    assert.matches('"messageId":"slow"', raw, 1, true)
    assert.is_true(took >= 1.4, ("/slow answered after %.3f s"):format(took))
  end)

  it("reuses the worker thread's client: sequential calls share one connection", function()
    srv:script{ { json = { dlqId = "first" } }, { json = { dlqId = "second" } } }
    local doc = get_json("/two")
    assert.is_true(doc[1].ok and doc[2].ok, cjson.encode(doc))
    assert.equal("first", doc[1].res.dlqId)
    assert.equal("second", doc[2].res.dlqId)
    local reqs = srv:requests()
    assert.equal(2, #reqs)
    assert.equal(reqs[1].conn, reqs[2].conn)

    -- and across requests to nginx
    srv:reset()
    srv:script{ { json = { dlqId = "x" } }, { json = { dlqId = "y" } } }
    assert.equal("x", get_json("/one?id=x").res.dlqId)
    assert.equal("y", get_json("/one?id=y").res.dlqId)
    reqs = srv:requests()
    assert.equal(2, #reqs)
    assert.equal(reqs[1].conn, reqs[2].conn)
    assert.equal("Bearer srv-token", srv:header(reqs[1], "Authorization"))
  end)

  it("raises argument errors in the handler", function()
    local doc = get_json("/badarg")
    assert.is_false(doc.ok)
    assert.equal("string", doc.type)
    assert.matches("bad argument #2 to 'dlq_retry' %(unknown option 'retires'; did you mean 'retries'%?%)$", doc.msg)
    assert.not_matches("resty.lua", doc.msg, 1, true)
  end)

  it("runs on the thread pool named by config.thread_pool", function()
    local doc = get_json("/pool?name=other")
    assert.is_true(doc.ok, cjson.encode(doc))
    doc = get_json("/pool?name=missing")
    assert.matches("thread pool 'missing' failed", doc.raised, 1, true)
    assert.matches("thread_pool missing threads=", doc.raised, 1, true)
  end)

  it("works in rewrite, access and content handlers and in timers", function()
    local doc = get_json("/phases")
    for _, phase in ipairs{ "rewrite", "access", "content" } do
      assert.is_true(doc[phase].ok, phase .. ": " .. cjson.encode(doc[phase]))
      assert.same({}, doc[phase].res.messages)
    end
    doc = get_json("/timer")
    assert.is_true(doc.ok, cjson.encode(doc))
    assert.equal("timer", doc.phase)
  end)

  it("refuses to block the worker in a phase that cannot yield", function()
    assert.equal(200, (get("/log_phase")))
    local v = E.wait_for(function()
      local status, body = get("/state?k=log_phase")
      return status == 200 and body or nil
    end, 5)
    assert.matches("^false qstash.resty: dlq_list cannot run in the log phase", v)
  end)

  it("calls directly in init_by_lua and init_worker_by_lua, and nothing blocks", function()
    -- nginx started, so neither hook hung; both saw the emulator
    local init = state("init")
    assert.equal("init", init.phase)
    assert.is_true(init.ok, cjson.encode(init))
    assert.same({}, init.res.messages)
    assert.is_false(init.closed.ok)
    assert.equal("network", init.closed.kind)
    assert.is_true(init.closed.is_error)
    assert.is_true(starts_with(init.closed.str, "qstash: network GET /v2/dlq"), init.closed.str)
    local worker = state("init_worker")
    assert.equal("init_worker", worker.phase)
    assert.is_true(worker.ok, cjson.encode(worker))
  end)

  describe("verify_request", function()
    local function wait_hook(n)
      return E.wait_for(function()
        local count = state("hook_n")
        if count and count >= n then return state("hook_last") end
      end, 10)
    end

    local function hook_count()
      return state("hook_n") or 0
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
