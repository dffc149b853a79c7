-- qstash.resty.http: HTTP/1.1 over nginx cosockets, in a real nginx.
--
-- The handler nginx runs request values (as the core's "send" step gives
-- them) through the client and answers what came back as JSON. The servers
-- it talks to: the same nginx on other ports (plain HTTP; HTTPS with
-- certificates from two CAs made here), the suite's scriptable fault server
-- (spec/support/http_server.py) and a CONNECT proxy
-- (spec/support/connect_proxy.py). Runs only under LuaJIT
-- (`make test LUA=luajit`).
local N = require "spec.support.nginx"

if N.pending_unless_runnable("qstash.resty.http under nginx") then return end

local E = require "spec.support.emulator"
local server = require "spec.support.server"
local certs = require "spec.support.certs"
local cjson = require "cjson"

local q = E.shell_quote

-- The certificates: CA1 is nginx's lua_ssl_trusted_certificate, CA2 only
-- ever a ca_file. Server certificates for 127.0.0.1, and for 127.0.0.2 (a
-- wrong address when reached as 127.0.0.1).
local CERTS = {
  { name = "ca1_srv", ca = "ca1", san = "IP:127.0.0.1" },
  { name = "ca2_srv", ca = "ca2", san = "IP:127.0.0.1" },
  { name = "ca1_wrongip", ca = "ca1", san = "IP:127.0.0.2" },
  { name = "ca2_wrongip", ca = "ca2", san = "IP:127.0.0.2" },
}

-- Locations of every upstream server block (plain and TLS).
local UPSTREAM = [=[
location = /cl {
  content_by_lua_block {
    ngx.header["X-Conn"] = ngx.var.connection
    ngx.header["X-Reqs"] = ngx.var.connection_requests
    ngx.header["X-Multi"] = { "a", "b" }
    local body = "hello " .. (ngx.var.arg_x or "")
    ngx.header.content_length = #body
    ngx.print(body)
  }
}
location = /chunked {
  content_by_lua_block {
    ngx.header["X-Conn"] = ngx.var.connection
    ngx.print("first;")
    ngx.flush(true)
    ngx.print(("x"):rep(20000))
    ngx.flush(true)
    ngx.print(";last")
  }
}
location = /close {
  chunked_transfer_encoding off;
  content_by_lua_block {
    ngx.header["X-Conn"] = ngx.var.connection
    ngx.print("until ")
    ngx.flush(true)
    ngx.print("the end")
  }
}
location = /conn_close {
  keepalive_timeout 0;
  content_by_lua_block {
    ngx.header["X-Conn"] = ngx.var.connection
    ngx.header.content_length = 3
    ngx.print("bye")
  }
}
location = /slow {
  content_by_lua_block {
    ngx.sleep(tonumber(ngx.var.arg_t))
    ngx.header.content_length = 4
    ngx.print("late")
  }
}
# n bytes in 64 KiB pieces (Content-Length when cl=1, else chunked), with a
# pause after each piece: a client reading all of it would take long.
location = /big {
  content_by_lua_block {
    local n = tonumber(ngx.var.arg_n)
    if ngx.var.arg_cl == "1" then ngx.header.content_length = n end
    ngx.header["X-Conn"] = ngx.var.connection
    local piece = ("b"):rep(65536)
    local sent = 0
    while sent < n do
      local m = math.min(#piece, n - sent)
      local ok = ngx.print(m == #piece and piece or piece:sub(1, m))
      if not ok then return end
      if not ngx.flush(true) then return end
      sent = sent + m
      ngx.sleep(0.05)
    end
  }
}
location = /echo {
  content_by_lua_block {
    ngx.req.read_body()
    local body = ngx.req.get_body_data() or ""
    local out = require("cjson").encode{ head = ngx.req.raw_header(), body = body,
      conn = ngx.var.connection }
    ngx.header.content_length = #out
    ngx.print(out)
  }
}
# a response written byte for byte on the raw connection: ?r=<name>
location = /raw {
  content_by_lua_block {
    local R = {
      bare_lf = "HTTP/1.1 200 OK\r\nX-A: b\nContent-Length: 2\r\n\r\nok",
      bare_cr = "HTTP/1.1 200 OK\r\nX-A: b\rX-B: c\r\nContent-Length: 2\r\n\r\nok",
      nul = "HTTP/1.1 200 OK\r\nX-A: b\0c\r\nContent-Length: 2\r\n\r\nok",
      no_colon = "HTTP/1.1 200 OK\r\nX-A b\r\nContent-Length: 2\r\n\r\nok",
      space_in_name = "HTTP/1.1 200 OK\r\nX-A : b\r\nContent-Length: 2\r\n\r\nok",
      folded = "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 2\r\n\r\nok",
      bad_status = "HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok",
      http2 = "HTTP/2 200\r\nContent-Length: 2\r\n\r\nok",
      status_lf = "HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok",
      no_reason = "HTTP/1.1 201\r\nContent-Length: 2\r\n\r\nok",
      spaces = "HTTP/1.0 200 OK\r\nX-Space: \t a b \t\r\nX-Empty:\r\nX-Tab:\tv\r\n"
        .. "Content-Length:  2 \r\n\r\nok",
    }
    local sock = ngx.req.socket(true)
    sock:send(R[ngx.var.arg_r])
  }
}
# for the flood: how many are in here at once
location = /count {
  content_by_lua_block {
    local d = ngx.shared.spec
    local now = d:incr("inflight", 1, 0)
    if now > (d:get("peak") or 0) then d:set("peak", now) end
    ngx.sleep(0.5)
    d:incr("inflight", -1)
    ngx.header.content_length = 7
    ngx.print("counted")
  }
}
]=]

-- The handlers: /req runs the request value in the POST body.
local HANDLERS = [=[
location = /req {
  content_by_lua_block {
    local cjson = require "cjson"
    local http = require "qstash.resty.http"
    ngx.req.read_body()
    local v = cjson.decode(ngx.req.get_body_data())
    -- JSON has no array of pairs with holes: headers come as [[n, v], ...]
    local t0 = ngx.now()
    local ok, a, b, c = http.request(v)
    ngx.update_time()
    local doc = { ok = ok, elapsed = ngx.now() - t0 }
    if ok then
      doc.status, doc.headers, doc.body = a, b, c
    else
      doc.failure = a
    end
    ngx.say(cjson.encode(doc))
  }
}
location = /raise {
  content_by_lua_block {
    local cjson = require "cjson"
    ngx.req.read_body()
    local v = cjson.decode(ngx.req.get_body_data())
    local ok, err = pcall(require("qstash.resty.http").request, v)
    ngx.say(cjson.encode{ ok = ok, err = tostring(err) })
  }
}
location = /peak {
  content_by_lua_block { ngx.print(ngx.shared.spec:get("peak") or 0) }
}
location = /flood {
  content_by_lua_block {
    local ok, status, _, body = require("qstash.resty.http").request{
      method = "GET", url = "http://127.0.0.1:" .. ngx.var.arg_port .. "/count", headers = {},
      body = "", timeout = 30, connect_timeout = 10, max_response_bytes = 1024 }
    if not ok then
      ngx.status = 502
      return ngx.say("failed: ", status.message)
    end
    ngx.say(status, " ", body)
  }
}
]=]

local function nginx_conf(ports, prefix)
  local p = ports
  local tls = {}
  for i, c in ipairs(CERTS) do
    tls[#tls + 1] = ([[
  server {
    listen 127.0.0.1:%d ssl;
    ssl_certificate %s/%s.pem;
    ssl_certificate_key %s/%s.key;
    keepalive_requests 1000;
    include upstream.conf;
  }
]]):format(p[2 + i], prefix, c.name, prefix, c.name)
  end
  return N.preamble(prefix) .. [[
worker_rlimit_nofile 20000;
events { worker_connections 8000; }
http {
  access_log off;
  default_type text/plain;
  lua_shared_dict spec 1m;
  lua_ssl_trusted_certificate ]] .. prefix .. [[/ca1.pem;
  lua_ssl_verify_depth 2;
]] .. N.lua_paths(prefix) .. [[
  server {
    listen 127.0.0.1:]] .. p[1] .. [[ backlog=4096;
    include handlers.conf;
  }
  server {
    listen 127.0.0.1:]] .. p[2] .. [[ backlog=4096;
    keepalive_requests 1000;
    include upstream.conf;
  }
]] .. table.concat(tls) .. "}\n"
end

describe("qstash.resty.http under nginx", function()
  local ng, srv, dir, proxy_pid, proxy_port, proxy_log, auth_pid, auth_port
  local plain, https_ca1, https_ca2, https_ca1_wrongip, https_ca2_wrongip

  local function start_proxy(extra)
    local pdir = E.tmpdir()
    local log = pdir .. "/log.jsonl"
    local me = E.read_file("/proc/self/stat"):match("^(%d+)")
    assert(E.exec_ok(("python3 %s --port-file %s --log %s --watch-pid %s %s >%s 2>&1 </dev/null & echo $! >%s")
      :format(q(E.root .. "/spec/support/connect_proxy.py"), q(pdir .. "/port"), q(log), me,
        extra or "", q(pdir .. "/stderr"), q(pdir .. "/pid"))))
    local pid = tonumber(E.read_file(pdir .. "/pid"):match("%d+"))
    local port = E.wait_for(function()
      return tonumber((E.read_file(pdir .. "/port") or ""):match("^(%d+)\n"))
    end, 10)
    assert(port, "the proxy did not start: " .. tostring(E.read_file(pdir .. "/stderr")))
    return pid, port, log, pdir
  end

  setup(function()
    dir = E.tmpdir()
    certs.make(dir, CERTS)
    srv = server.start()
    ng = N.start(nginx_conf, { prefix = dir, nports = 2 + #CERTS,
      files = { ["upstream.conf"] = UPSTREAM, ["handlers.conf"] = HANDLERS } })
    local P = ng.ports
    plain = "http://127.0.0.1:" .. P[2]
    https_ca1 = "https://127.0.0.1:" .. P[3]
    https_ca2 = "https://127.0.0.1:" .. P[4]
    https_ca1_wrongip = "https://127.0.0.1:" .. P[5]
    https_ca2_wrongip = "https://127.0.0.1:" .. P[6]
    proxy_pid, proxy_port, proxy_log = start_proxy()
    auth_pid, auth_port = start_proxy("--auth " .. q("us er:p@ss"))
  end)

  teardown(function()
    for _, pid in ipairs{ proxy_pid, auth_pid } do
      if pid then E.exec_ok("kill -TERM " .. pid .. " 2>/dev/null") end
    end
    if ng then ng:stop() end
    if srv then srv:stop() end
  end)

  before_each(function()
    srv:reset()
  end)

  -- Runs one request value in the handler nginx; returns its outcome.
  local function run(v, path)
    local req = { method = "GET", headers = {}, body = "", timeout = 5, connect_timeout = 2,
                  max_response_bytes = 1048576 }
    for k, x in pairs(v) do req[k] = x end
    local status, body = E.request(ng.url, "POST", path or "/req", { body = cjson.encode(req) })
    assert.equal(200, status, body .. "\n" .. ng:error_log())
    return cjson.decode(body)
  end

  local function ok_run(v)
    local doc = run(v)
    assert.is_true(doc.ok, cjson.encode(doc))
    return doc
  end

  local function failed_run(v)
    local doc = run(v)
    assert.is_false(doc.ok, cjson.encode(doc))
    return doc.failure, doc
  end

  describe("the request on the wire", function()
    it("sends the headers exactly as given, after Host, and adds Content-Length", function()
      local doc = ok_run{ method = "POST", url = plain .. "/echo?q=1",
        headers = { { "Authorization", "Bearer t" }, { "upstash-retries", "0" },
                    { "X-Mixed-Case", "a  b" }, { "X-Mixed-Case", "second" } } }
      local echo = cjson.decode(doc.body)
      assert.equal("POST /echo?q=1 HTTP/1.1\r\nHost: 127.0.0.1:" .. ng.ports[2] .. "\r\n"
        .. "Authorization: Bearer t\r\nupstash-retries: 0\r\nX-Mixed-Case: a  b\r\n"
        .. "X-Mixed-Case: second\r\nContent-Length: 0\r\n\r\n", echo.head)
      assert.equal("", echo.body)

      doc = ok_run{ method = "POST", url = plain .. "/echo", body = "a\0b\r\n" }
      echo = cjson.decode(doc.body)
      assert.matches("\r\nContent%-Length: 5\r\n\r\n$", echo.head)
      assert.equal("a\0b\r\n", echo.body)

      -- a GET without a body has no Content-Length (as libcurl)
      doc = ok_run{ method = "GET", url = plain .. "/echo" }
      echo = cjson.decode(doc.body)
      assert.equal("GET /echo HTTP/1.1\r\nHost: 127.0.0.1:" .. ng.ports[2] .. "\r\n\r\n", echo.head)
    end)

    it("raises for a request value that would inject bytes", function()
      for _, v in ipairs{
        { url = plain .. "/echo", headers = { { "X-A", "b\r\nX-Injected: 1" } } },
        { url = plain .. "/echo", headers = { { "X-A\n", "b" } } },
        { url = plain .. "/e cho" },
        { url = "ftp://127.0.0.1/x" },
        { url = plain .. "/echo", method = "GET /x HTTP/1.1\r\n" },
        { url = plain .. "/echo", headers = { { "Content-Length", "0" } } },
        { url = plain .. "/echo", headers = { { "host", "evil" } } },
        { url = plain .. "/echo", headers = { { "Bad Name", "x" } } },
      } do
        local status, body = E.request(ng.url, "POST", "/raise", { body = cjson.encode(v) })
        assert.equal(200, status)
        local doc = cjson.decode(body)
        assert.is_false(doc.ok, cjson.encode(v))
        assert.matches("qstash.resty.http:", doc.err, 1, true)
      end
    end)
  end)

  describe("responses", function()
    it("reads a Content-Length body, with lower-case header names and repeated headers as lists", function()
      local doc = ok_run{ url = plain .. "/cl?x=there" }
      assert.equal(200, doc.status)
      assert.equal("hello there", doc.body)
      assert.equal("11", doc.headers["content-length"])
      assert.same({ "a", "b" }, doc.headers["x-multi"])
    end)

    it("reads a chunked body", function()
      local doc = ok_run{ url = plain .. "/chunked" }
      assert.equal("chunked", doc.headers["transfer-encoding"])
      assert.equal("first;" .. ("x"):rep(20000) .. ";last", doc.body)
    end)

    it("reads a body delimited by the end of the connection, which is not reused", function()
      local doc = ok_run{ url = plain .. "/close" }
      assert.is_nil(doc.headers["content-length"])
      assert.is_nil(doc.headers["transfer-encoding"])
      assert.equal("until the end", doc.body)
      local again = ok_run{ url = plain .. "/close" }
      assert.not_equal(doc.headers["x-conn"], again.headers["x-conn"])
    end)

    it("skips informational answers and reads a 204 without a body", function()
      srv:script{
        { status = 200, body = "after 100", interim = { { status = 100, headers = {} } } },
        { status = 204 },
        { status = 201, body = "next" },
      }
      local base = srv.url
      assert.equal("after 100", ok_run{ url = base .. "/a" }.body)
      local doc = ok_run{ url = base .. "/b" }
      assert.equal(204, doc.status)
      assert.equal("", doc.body)
      -- the connection after a 204 is intact
      doc = ok_run{ url = base .. "/c" }
      assert.equal(201, doc.status)
      assert.equal("next", doc.body)
      local reqs = srv:requests()
      assert.equal(reqs[1].conn, reqs[3].conn)
    end)

    it("refuses a head with bare CR or LF, NUL, a field without a colon or an invalid name or status", function()
      for _, name in ipairs{ "bare_lf", "bare_cr", "nul", "no_colon", "space_in_name", "folded",
                             "bad_status", "http2", "status_lf" } do
        local f = failed_run{ url = plain .. "/raw?r=" .. name }
        assert.equal("network", f.failure, name)
        assert.is_true(f.sent, name)
        assert.matches("invalid response: ", f.message, 1, true)
      end
    end)

    it("reads a status line without a reason and trims the whitespace around values", function()
      local doc = ok_run{ url = plain .. "/raw?r=no_reason" }
      assert.equal(201, doc.status)
      assert.equal("ok", doc.body)
      doc = ok_run{ url = plain .. "/raw?r=spaces" }
      assert.equal(200, doc.status)
      assert.equal("a b", doc.headers["x-space"])
      assert.equal("", doc.headers["x-empty"])
      assert.equal("v", doc.headers["x-tab"])
      assert.equal("ok", doc.body)
    end)

    it("fails on an invalid response, and never reuses its connection", function()
      srv:script{ { status = 200, headers = { { "Content-Length", "5" }, { "Content-Length", "6" } },
                    body = "12345" } }
      local f = failed_run{ url = srv.url .. "/x" }
      assert.equal("network", f.failure)
      assert.is_true(f.sent)
      assert.matches("conflicting Content%-Length", f.message)
    end)
  end)

  describe("connection reuse", function()
    it("reuses a connection after a whole response, as the server counts", function()
      local a = ok_run{ url = plain .. "/cl" }
      local b = ok_run{ url = plain .. "/cl" }
      local c = ok_run{ url = plain .. "/chunked" }
      assert.equal(a.headers["x-conn"], b.headers["x-conn"])
      assert.equal(a.headers["x-conn"], c.headers["x-conn"])
      assert.equal(tonumber(a.headers["x-reqs"]) + 1, tonumber(b.headers["x-reqs"]))

      -- on the fault server too: one connection for three requests
      srv:script{ { body = "1" }, { body = "2" }, { body = "3" } }
      for i = 1, 3 do assert.equal(tostring(i), ok_run{ url = srv.url .. "/r" .. i }.body) end
      local reqs = srv:requests()
      assert.equal(3, #reqs)
      assert.equal(reqs[1].conn, reqs[2].conn)
      assert.equal(reqs[1].conn, reqs[3].conn)
    end)

    it("does not reuse a connection the server closes with Connection: close", function()
      local a = ok_run{ url = plain .. "/conn_close" }
      assert.equal("close", a.headers["connection"])
      local b = ok_run{ url = plain .. "/conn_close" }
      assert.not_equal(a.headers["x-conn"], b.headers["x-conn"])
    end)

    it("does not reuse a connection after a partial read or a timeout", function()
      local first = ok_run{ url = plain .. "/cl" }
      -- too large: the body is left unread, the connection is closed
      local f = failed_run{ url = plain .. "/big?n=200000&cl=1", max_response_bytes = 1000 }
      assert.equal("too_large", f.failure)
      local after = ok_run{ url = plain .. "/cl" }
      assert.not_equal(first.headers["x-conn"], after.headers["x-conn"])
      -- timed out while the answer was pending
      f = failed_run{ url = plain .. "/slow?t=0.5", timeout = 0.2 }
      assert.equal("timeout", f.failure)
      local last = ok_run{ url = plain .. "/cl" }
      assert.not_equal(after.headers["x-conn"], last.headers["x-conn"])
    end)

    it("reports a reused connection that dies before any answer as possibly sent", function()
      srv:script{ { body = "one" }, { fault = "close" } }
      assert.equal("one", ok_run{ url = srv.url .. "/one" }.body)
      local f = failed_run{ url = srv.url .. "/two" }
      assert.equal("network", f.failure)
      assert.is_true(f.sent)
      assert.matches("reused connection", f.message, 1, true)
      local reqs = srv:requests()
      assert.equal(2, #reqs)
      assert.equal(reqs[1].conn, reqs[2].conn)
    end)
  end)

  describe("time", function()
    it("ends a read that waits too long with a timeout, sent = true", function()
      srv:script{ { fault = "hang" } }
      local f, doc = failed_run{ url = srv.url .. "/hang", timeout = 1 }
      assert.equal("timeout", f.failure)
      assert.is_true(f.sent)
      assert.is_true(doc.elapsed >= 0.9 and doc.elapsed < 2.5, "took " .. doc.elapsed)
    end)

    it("bounds the whole exchange, not each read", function()
      -- a byte every 0.2 s: every read is quick, the whole is 4 s
      srv:script{ { body = ("z"):rep(20), fault = "slow_body", delay_per_byte = 0.2 } }
      local f, doc = failed_run{ url = srv.url .. "/drip", timeout = 1 }
      assert.equal("timeout", f.failure)
      assert.is_true(f.sent)
      assert.is_true(doc.elapsed >= 0.9 and doc.elapsed < 2.5, "took " .. doc.elapsed)
    end)

    it("fails to connect with sent = false", function()
      local f = failed_run{ url = "http://127.0.0.1:" .. N.free_port() .. "/x" }
      assert.equal("network", f.failure)
      assert.is_false(f.sent)
      assert.matches("connect to 127.0.0.1:%d+ failed: connection refused", f.message)
      assert.is_nil(f.retryable) -- another attempt may connect
    end)
  end)

  describe("broken answers", function()
    it("reports a reset in the middle of the body as a network failure, sent = true", function()
      srv:script{ { body = ("r"):rep(1000), fault = "reset_in_body" } }
      local f = failed_run{ url = srv.url .. "/reset" }
      assert.equal("network", f.failure)
      assert.is_true(f.sent)
      assert.matches("reading the response body failed", f.message, 1, true)
    end)

    it("reports a reset in the headers", function()
      srv:script{ { body = "x", fault = "reset_in_headers" } }
      local f = failed_run{ url = srv.url .. "/reset" }
      assert.equal("network", f.failure)
      assert.is_true(f.sent)
    end)

    it("reports a body shorter than its Content-Length", function()
      srv:script{ { body = "short", fault = "short_body" } }
      local f = failed_run{ url = srv.url .. "/short" }
      assert.equal("network", f.failure)
      assert.is_true(f.sent)
    end)
  end)

  describe("max_response_bytes", function()
    it("refuses a Content-Length over the cap at once, with the status", function()
      -- 100 MB in pieces with a pause after each: reading it would take minutes
      local f, doc = failed_run{ url = plain .. "/big?n=100000000&cl=1", max_response_bytes = 100000 }
      assert.equal("too_large", f.failure)
      assert.equal(200, f.status)
      assert.is_true(f.sent)
      assert.is_true(doc.elapsed < 2, "took " .. doc.elapsed)
    end)

    it("stops reading a chunked or close-delimited body past the cap", function()
      local f, doc = failed_run{ url = plain .. "/big?n=100000000", max_response_bytes = 100000 }
      assert.equal("too_large", f.failure)
      assert.equal(200, f.status)
      assert.is_true(doc.elapsed < 2, "took " .. doc.elapsed)
      f = failed_run{ url = plain .. "/close", max_response_bytes = 5 }
      assert.equal("too_large", f.failure)
      -- at the cap exactly: fine
      local ok = ok_run{ url = plain .. "/close", max_response_bytes = 13 }
      assert.equal("until the end", ok.body)
      ok = ok_run{ url = plain .. "/cl?x=12345", max_response_bytes = 11 }
      assert.equal("hello 12345", ok.body)
    end)
  end)

  describe("TLS", function()
    it("verifies against a ca_file given per request, and reuses the connection", function()
      local a = ok_run{ url = https_ca2 .. "/cl", ca_file = dir .. "/ca2.pem" }
      local b = ok_run{ url = https_ca2 .. "/cl", ca_file = dir .. "/ca2.pem" }
      assert.equal("hello ", a.body)
      assert.equal(a.headers["x-conn"], b.headers["x-conn"])
      local c = ok_run{ url = https_ca2 .. "/chunked", ca_file = dir .. "/ca2.pem" }
      assert.equal(a.headers["x-conn"], c.headers["x-conn"])
    end)

    it("verifies against lua_ssl_trusted_certificate without ca_file", function()
      local a = ok_run{ url = https_ca1 .. "/cl" }
      local b = ok_run{ url = https_ca1 .. "/cl" }
      assert.equal(a.headers["x-conn"], b.headers["x-conn"])
      -- the other CA is not nginx's
      local f = failed_run{ url = https_ca2 .. "/cl" }
      assert.equal("network", f.failure)
      assert.is_false(f.sent)
      assert.matches("certificate", f.message, 1, true)
      assert.matches("lua_ssl_trusted_certificate", f.message, 1, true)
      -- repeating cannot mend it: the core makes no other attempt
      assert.is_false(f.retryable)
    end)

    it("trusts only the ca_file when one is given", function()
      local f = failed_run{ url = https_ca1 .. "/cl", ca_file = dir .. "/ca2.pem" }
      assert.equal("network", f.failure)
      assert.is_false(f.sent)
      assert.matches("certificate verify failed with ca_file", f.message, 1, true)
      assert.is_false(f.retryable)
      -- a pooled connection verified with CA1 is not one for ca_file = CA2
      ok_run{ url = https_ca1 .. "/cl" }
      f = failed_run{ url = https_ca1 .. "/cl", ca_file = dir .. "/ca2.pem" }
      assert.equal("network", f.failure)
    end)

    it("checks the address the certificate is for", function()
      local f = failed_run{ url = https_ca1_wrongip .. "/cl" }
      assert.equal("network", f.failure)
      assert.is_false(f.sent)
      assert.matches("IP address mismatch", f.message, 1, true)
      f = failed_run{ url = https_ca2_wrongip .. "/cl", ca_file = dir .. "/ca2.pem" }
      assert.equal("network", f.failure)
      assert.matches("certificate verify failed with ca_file", f.message, 1, true)
    end)

    it("fails without sending when the ca_file cannot be read", function()
      local f = failed_run{ url = https_ca2 .. "/cl", ca_file = dir .. "/missing.pem" }
      assert.equal("network", f.failure)
      assert.is_false(f.sent)
      assert.matches("cannot load CA certificates", f.message, 1, true)
      assert.is_false(f.retryable)
    end)
  end)

  describe("proxy", function()
    local function proxy_records(log)
      local list = {}
      for line in (E.read_file(log) or ""):gmatch("[^\n]+") do list[#list + 1] = cjson.decode(line) end
      return list
    end

    it("tunnels to an https origin with CONNECT, and reuses the tunnel", function()
      local before = #proxy_records(proxy_log)
      local proxy = "http://127.0.0.1:" .. proxy_port
      local a = ok_run{ url = https_ca2 .. "/cl?x=tunnel", ca_file = dir .. "/ca2.pem", proxy = proxy }
      local b = ok_run{ url = https_ca2 .. "/cl", ca_file = dir .. "/ca2.pem", proxy = proxy }
      assert.equal("hello tunnel", a.body)
      assert.equal(a.headers["x-conn"], b.headers["x-conn"])
      local recs = proxy_records(proxy_log)
      assert.equal(before + 1, #recs)
      assert.equal("CONNECT", recs[#recs].method)
      assert.equal("127.0.0.1:" .. ng.ports[4], recs[#recs].target)
      -- the same origin without the proxy: another pool, another connection
      local c = ok_run{ url = https_ca2 .. "/cl", ca_file = dir .. "/ca2.pem" }
      assert.not_equal(a.headers["x-conn"], c.headers["x-conn"])
    end)

    it("sends an http request in absolute form", function()
      local doc = ok_run{ url = plain .. "/echo?via=proxy", proxy = "http://127.0.0.1:" .. proxy_port }
      local recs = proxy_records(proxy_log)
      assert.equal("GET", recs[#recs].method)
      assert.equal(plain .. "/echo?via=proxy", recs[#recs].target)
      assert.matches("^GET " .. plain:gsub("%p", "%%%0") .. "/echo%?via=proxy HTTP/1.1\r\nHost: 127.0.0.1:",
        cjson.decode(doc.body).head)
    end)

    it("sends the proxy's credentials, and fails without sending on a refusal", function()
      local doc = ok_run{ url = https_ca2 .. "/cl?x=auth", ca_file = dir .. "/ca2.pem",
        proxy = "http://us%20er:p%40ss@127.0.0.1:" .. auth_port }
      assert.equal("hello auth", doc.body)
      local f = failed_run{ url = https_ca2 .. "/cl", ca_file = dir .. "/ca2.pem",
        proxy = "http://us%20er:wrong@127.0.0.1:" .. auth_port }
      assert.equal("network", f.failure)
      assert.is_false(f.sent)
      assert.matches("answered CONNECT 127.0.0.1:%d+ with 407", f.message)
      f = failed_run{ url = https_ca2 .. "/cl", proxy = "socks5://127.0.0.1:1" }
      assert.equal("network", f.failure)
      assert.is_false(f.sent)
      assert.matches("not supported over cosockets", f.message, 1, true)
      assert.is_false(f.retryable)
    end)
  end)

  it("answers 1,000 concurrent handler requests on one worker", function()
    local cmd = ("python3 %s %d %s 1000 60"):format(q(E.root .. "/spec/support/flood.py"), ng.port,
      q("/flood?port=" .. ng.ports[2]))
    local p = io.popen(cmd)
    local out = p:read("*a")
    p:close()
    local doc = cjson.decode(out)
    assert.same({ ["200"] = 1000 }, doc.statuses, out .. "\n" .. ng:error_log():sub(-2000))
    assert.same({ ["200 counted"] = 1000 }, doc.bodies)
    assert.same({}, doc.errors)
    -- the upstream saw many at once (each stays 0.5 s), not one after another
    local _, peak = E.request(ng.url, "GET", "/peak")
    assert.is_true(tonumber(peak) >= 50, "peak " .. peak)
  end)

  it("left nothing alarming in the error log", function()
    local log = ng:error_log()
    assert.not_matches("%[alert%]", log)
    assert.not_matches("%[crit%]", log)
    assert.not_matches("%[emerg%]", log)
    assert.not_matches("lua entry thread aborted", log, 1, true)
  end)
end)
