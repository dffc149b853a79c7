-- Self-test of the HTTP test server (spec/support/http_server.py) and its Lua
-- harness (spec/support/server.lua), using raw luasocket connections.

local socket = require "socket"
local server = require "spec.support.server"

-- ---------------------------------------------------------------------------
-- A tiny raw HTTP/1.1 client so the tests see exactly what goes on the wire.

local function connect(srv, timeout)
  local c = assert(socket.tcp())
  c:settimeout(timeout or 2)
  assert(c:connect("127.0.0.1", srv.port))
  return c
end

-- headers: array of {name, value}; Content-Length is added for a body unless
-- a Content-Length or Transfer-Encoding header is given.
local function send_request(c, method, target, headers, body)
  local lines = { method .. " " .. target .. " HTTP/1.1", "Host: 127.0.0.1" }
  local explicit = false
  for _, h in ipairs(headers or {}) do
    lines[#lines + 1] = h[1] .. ": " .. h[2]
    local l = h[1]:lower()
    if l == "content-length" or l == "transfer-encoding" then explicit = true end
  end
  if body and not explicit then
    lines[#lines + 1] = "Content-Length: " .. #body
  end
  assert(c:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")))
end

-- Reads one response.  On a socket error the returned table has `err` set and
-- carries whatever arrived (`in_headers` tells where it stopped).
local function read_response(c)
  local resp = { headers = {}, h = {}, body = "" }
  local line, err, partial = c:receive("*l")
  if not line then
    resp.err, resp.partial, resp.in_headers = err, partial, true
    return resp
  end
  resp.status_line = line
  resp.status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
  while true do
    line, err, partial = c:receive("*l")
    if not line then
      resp.err, resp.partial, resp.in_headers = err, partial, true
      return resp
    end
    if line == "" then break end
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    resp.headers[#resp.headers + 1] = { k, v }
    resp.h[k:lower()] = v
  end
  if resp.status == 204 or resp.status == 304 or (resp.status or 0) < 200 then
    return resp
  elseif (resp.h["transfer-encoding"] or ""):lower() == "chunked" then
    resp.chunks = {}
    local parts = {}
    while true do
      local size_line
      size_line, err = c:receive("*l")
      if not size_line then resp.err = err; break end
      local size = tonumber(size_line:match("^(%x+)"), 16)
      if size == 0 then
        repeat line = c:receive("*l") until not line or line == ""
        break
      end
      local data
      data, err, partial = c:receive(size)
      if not data then resp.err = err; parts[#parts + 1] = partial; break end
      parts[#parts + 1] = data
      resp.chunks[#resp.chunks + 1] = data
      c:receive("*l")
    end
    resp.body = table.concat(parts)
  elseif resp.h["content-length"] then
    local n = tonumber(resp.h["content-length"])
    local data = ""
    if n > 0 then data, err, partial = c:receive(n) end
    if data then resp.body = data else resp.err, resp.body = err, partial or "" end
  else
    local data
    data, err, partial = c:receive("*a")
    resp.body = data or partial or ""
    if not data then resp.err = err end
  end
  return resp
end

local function request(srv, method, target, headers, body, timeout)
  local c = connect(srv, timeout)
  send_request(c, method, target, headers, body)
  local resp = read_response(c)
  c:close()
  return resp
end

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- ---------------------------------------------------------------------------

describe("spec.support.server", function()
  local srv

  setup(function()
    srv = server.start()
  end)

  teardown(function()
    srv:stop()
  end)

  before_each(function()
    srv:reset()
  end)

  describe("start", function()
    it("listens on a free local port", function()
      assert.is_number(srv.port)
      assert.is_true(srv.port > 0)
      assert.equal("http://127.0.0.1:" .. srv.port, srv.url)
      assert.is_true(server.alive(srv.pid))
    end)
  end)

  describe("responses", function()
    it("answers with the built-in default response", function()
      local r = request(srv, "GET", "/anything")
      assert.is_nil(r.err)
      assert.equal(201, r.status)
      assert.equal("application/json", r.h["content-type"])
      assert.equal('{"messageId":"msg_test","deduplicated":false}', r.body)
      assert.equal(tostring(#r.body), r.h["content-length"])
    end)

    it("plays scripted responses in order, then falls back to the default", function()
      assert.equal(3, srv:script{
        { status = 404, json = { error = "message not found" } },
        { status = 200, body = "plain", headers = { ["X-Thing"] = "one" } },
        { status = 302, headers = { { "Location", "/elsewhere" }, { "Set-Cookie", "a=1" }, { "Set-Cookie", "b=2" } } },
      })
      assert.equal(3, srv:pending())

      local r1 = request(srv, "GET", "/1")
      assert.equal(404, r1.status)
      assert.equal("application/json", r1.h["content-type"])
      assert.equal('{"error":"message not found"}', r1.body)

      local r2 = request(srv, "GET", "/2")
      assert.equal(200, r2.status)
      assert.equal("one", r2.h["x-thing"])
      assert.equal("plain", r2.body)

      local r3 = request(srv, "GET", "/3")
      assert.equal(302, r3.status)
      assert.equal("/elsewhere", r3.h["location"])
      assert.same({ "Set-Cookie", "a=1" }, r3.headers[2])
      assert.same({ "Set-Cookie", "b=2" }, r3.headers[3])
      assert.equal("0", r3.h["content-length"])

      assert.equal(201, request(srv, "GET", "/4").status)
      assert.equal(0, srv:pending())
    end)

    it("accepts a single response object in script()", function()
      assert.equal(1, srv:script{ status = 500, body = "boom" })
      local r = request(srv, "GET", "/")
      assert.equal(500, r.status)
      assert.equal("boom", r.body)
    end)

    it("supports body_size and explicit Content-Type with json", function()
      srv:script{
        { body_size = 1000 },
        { json = { 1, 2 }, headers = { ["Content-Type"] = "application/vnd.test+json" } },
      }
      local r = request(srv, "GET", "/big")
      assert.equal(string.rep("x", 1000), r.body)
      r = request(srv, "GET", "/json")
      assert.equal("[1,2]", r.body)
      assert.equal("application/vnd.test+json", r.h["content-type"])
      assert.equal(1, #server.header_values(r, "content-type"))
    end)

    it("enqueues a response `repeat` times", function()
      assert.equal(4, srv:script{ { status = 503, ["repeat"] = 3 }, { status = 202 } })
      local got = {}
      for i = 1, 5 do got[i] = request(srv, "GET", "/r").status end
      assert.same({ 503, 503, 503, 202, 201 }, got)
    end)

    it("uses a configured default until reset()", function()
      srv:default{ status = 200, body = "", headers = { ["X-Default"] = "yes" } }
      local r = request(srv, "GET", "/")
      assert.equal(200, r.status)
      assert.equal("yes", r.h["x-default"])
      assert.equal("", r.body)
      srv:reset()
      assert.equal(201, request(srv, "GET", "/").status)
    end)

    it("honours delay", function()
      srv:script{ { delay = 0.3 } }
      local t0 = socket.gettime()
      local r = request(srv, "GET", "/slow")
      assert.equal(200, r.status)
      assert.is_true(socket.gettime() - t0 >= 0.28)
    end)

    it("closes the connection when keep_alive is false", function()
      srv:script{ { status = 200, body = "bye", keep_alive = false } }
      local c = connect(srv)
      send_request(c, "GET", "/")
      local r = read_response(c)
      assert.equal("close", r.h["connection"])
      assert.equal("bye", r.body)
      local line, err = c:receive("*l")
      assert.is_nil(line)
      assert.equal("closed", err)
      c:close()
    end)

    it("rejects invalid response objects", function()
      assert.has_error(function() srv:script{ { fault = "bogus" } } end)
      assert.has_error(function() srv:script{ { stauts = 200 } } end)
      local ok, err = pcall(srv.script, srv, { { fault = "bogus" } })
      assert.is_false(ok)
      assert.matches("unknown fault", err)
      assert.equal(0, srv:pending())
    end)
  end)

  describe("recording", function()
    it("records method, target, headers in original case and order, body, conn, t", function()
      local c = connect(srv)
      send_request(c, "POST", "/v2/publish/https://example.com/x?a=1&b=%20", {
        { "X-Custom-Header", "Abc" },
        { "upstash-retries", "3" },
        { "UPSTASH-DELAY", "10s" },
        { "X-Dup", "1" },
        { "x-dup", "2" },
      }, '{"hello":"world"}')
      assert.equal(201, read_response(c).status)
      c:close()

      local reqs = srv:requests()
      assert.equal(1, #reqs)
      local req = reqs[1]
      assert.equal("POST", req.method)
      assert.equal("/v2/publish/https://example.com/x?a=1&b=%20", req.target)
      assert.equal("/v2/publish/https://example.com/x", req.path)
      assert.equal("a=1&b=%20", req.query)
      assert.equal("HTTP/1.1", req.version)
      assert.same({
        { "Host", "127.0.0.1" },
        { "X-Custom-Header", "Abc" },
        { "upstash-retries", "3" },
        { "UPSTASH-DELAY", "10s" },
        { "X-Dup", "1" },
        { "x-dup", "2" },
        { "Content-Length", "17" },
      }, req.headers)
      assert.equal('{"hello":"world"}', req.body)
      assert.equal(17, req.body_len)
      assert.is_false(req.chunked)
      assert.is_number(req.conn)
      assert.is_number(req.t)

      assert.equal("3", req.h["upstash-retries"])
      assert.equal("2", req.h["x-dup"])
      assert.is_nil(req.h["X-Custom-Header"])
      assert.equal("3", srv:header(req, "Upstash-Retries"))
      assert.equal("10s", server.header(req, "upstash-delay"))
      assert.equal("2", srv:header(req, "X-DUP"))
      assert.same({ "1", "2" }, srv:header_values(req, "x-dup"))
      assert.is_nil(srv:header(req, "Missing"))
    end)

    it("records a query-less target and an empty body", function()
      request(srv, "DELETE", "/v2/messages/msg_1")
      local req = srv:last_request()
      assert.equal("DELETE", req.method)
      assert.equal("/v2/messages/msg_1", req.path)
      assert.equal("", req.query)
      assert.equal("", req.body)
      assert.equal(0, req.body_len)
    end)

    it("keeps binary bodies byte-exact", function()
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      local body = table.concat(bytes)
      request(srv, "POST", "/bin", nil, body)
      local req = srv:last_request()
      assert.equal(256, req.body_len)
      assert.equal(body, req.body)
    end)

    it("reads chunked request bodies, with extensions and trailers", function()
      local c = connect(srv)
      send_request(c, "POST", "/chunked", { { "Transfer-Encoding", "chunked" } })
      assert(c:send("5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n"))
      assert.equal(201, read_response(c).status)
      c:close()
      local req = srv:last_request()
      assert.equal("hello world", req.body)
      assert.equal(11, req.body_len)
      assert.is_true(req.chunked)
      assert.same({ { "X-Trailer", "yes" } }, req.trailers)
    end)

    it("answers Expect: 100-continue before reading the body", function()
      local c = connect(srv)
      send_request(c, "PUT", "/expect", { { "Expect", "100-continue" }, { "Content-Length", "4" } })
      assert.equal("HTTP/1.1 100 Continue", c:receive("*l"))
      assert.equal("", c:receive("*l"))
      assert(c:send("data"))
      assert.equal(201, read_response(c).status)
      c:close()
      assert.equal("data", srv:last_request().body)
    end)

    it("keeps connections alive and tags requests with the connection id", function()
      local c1 = connect(srv)
      send_request(c1, "GET", "/a")
      assert.equal(201, read_response(c1).status)
      send_request(c1, "POST", "/b", nil, "body-b")
      assert.equal(201, read_response(c1).status)
      local c2 = connect(srv)
      send_request(c2, "GET", "/c")
      assert.equal(201, read_response(c2).status)
      c1:close()
      c2:close()

      local reqs = srv:requests()
      assert.equal(3, #reqs)
      assert.equal("/a", reqs[1].path)
      assert.equal("/b", reqs[2].path)
      assert.equal("body-b", reqs[2].body)
      assert.equal(reqs[1].conn, reqs[2].conn)
      assert.is_true(reqs[3].conn > reqs[1].conn)
      assert.is_true(reqs[2].t >= reqs[1].t)
      assert.is_true(reqs[3].t >= reqs[2].t)
    end)

    it("counts accepted connections", function()
      local before = srv:connections()
      request(srv, "GET", "/x")
      request(srv, "GET", "/y")
      -- two raw connections plus the control connection of the second call
      assert.equal(before + 3, srv:connections())
    end)

    it("does not record control requests; reset() clears records and queue", function()
      srv:script{ { status = 500 }, { status = 500 } }
      request(srv, "GET", "/before-reset")
      assert.equal(1, #srv:requests())
      srv:reset()
      assert.same({}, srv:requests())
      assert.equal(0, srv:pending())
      assert.equal(201, request(srv, "GET", "/after-reset").status)
      assert.equal(1, #srv:wait_requests(1))
    end)
  end)

  describe("faults", function()
    it("close: the connection is closed without a response", function()
      srv:script{ { fault = "close" } }
      local r = request(srv, "GET", "/")
      assert.is_nil(r.status)
      assert.equal("closed", r.err)
      assert.equal("", r.partial)
      assert.equal(1, #srv:requests())
    end)

    it("hang: the client times out", function()
      srv:script{ { fault = "hang" } }
      local t0 = socket.gettime()
      local r = request(srv, "GET", "/", nil, nil, 0.5)
      assert.equal("timeout", r.err)
      assert.is_nil(r.status)
      assert.is_true(socket.gettime() - t0 >= 0.45)
    end)

    it("headers_then_stall: headers arrive, the body never does", function()
      srv:script{ { fault = "headers_then_stall", body = "never sent" } }
      local r = request(srv, "GET", "/", nil, nil, 0.5)
      assert.equal(200, r.status)
      assert.equal("10", r.h["content-length"])
      assert.equal("timeout", r.err)
      assert.equal("", r.body)
    end)

    it("reset_in_headers: the connection breaks inside the header section", function()
      srv:script{ { fault = "reset_in_headers", headers = { ["X-A"] = "aaaaaaaaaa", ["X-B"] = "bbbbbbbbbb" } } }
      local r = request(srv, "GET", "/")
      assert.is_true(r.in_headers)
      assert.is_truthy(r.err == "closed" or r.err:match("reset"))
    end)

    it("reset_in_body: the connection breaks inside the body", function()
      srv:script{ { fault = "reset_in_body", body_size = 100 } }
      local r = request(srv, "GET", "/")
      assert.equal(200, r.status)
      assert.equal("100", r.h["content-length"])
      assert.is_truthy(r.err == "closed" or r.err:match("reset"))
      assert.is_true(#r.body < 100)
    end)

    it("short_body: the body ends before Content-Length", function()
      srv:script{ { fault = "short_body", body = "0123456789" } }
      local r = request(srv, "GET", "/")
      assert.equal(200, r.status)
      assert.equal("20", r.h["content-length"])
      assert.equal("closed", r.err)
      assert.equal("0123456789", r.body)
    end)

    it("chunked: the body arrives in several chunks and reassembles", function()
      srv:script{
        { fault = "chunked", json = { messageId = "msg_chunked" } },
        { fault = "chunked", body = "abcdefghij", chunk_size = 3 },
      }
      local c = connect(srv)
      send_request(c, "GET", "/1")
      local r = read_response(c)
      assert.is_nil(r.err)
      assert.equal("chunked", r.h["transfer-encoding"])
      assert.is_nil(r.h["content-length"])
      assert.is_true(#r.chunks > 1)
      assert.equal('{"messageId":"msg_chunked"}', r.body)
      -- the connection stays usable afterwards
      send_request(c, "GET", "/2")
      r = read_response(c)
      assert.same({ "abc", "def", "ghi", "j" }, r.chunks)
      assert.equal("abcdefghij", r.body)
      c:close()
      local reqs = srv:requests()
      assert.equal(reqs[1].conn, reqs[2].conn)
    end)

    it("slow_body: the body trickles in byte by byte", function()
      srv:script{ { fault = "slow_body", body = "0123456789", delay_per_byte = 0.02 } }
      local t0 = socket.gettime()
      local r = request(srv, "GET", "/")
      assert.is_nil(r.err)
      assert.equal("0123456789", r.body)
      assert.is_true(socket.gettime() - t0 >= 0.18)
    end)

    it("survives faults: later requests are served normally", function()
      srv:script{ { fault = "close" }, { fault = "reset_in_body" }, { status = 204 } }
      request(srv, "GET", "/1")
      request(srv, "GET", "/2")
      local r = request(srv, "GET", "/3")
      assert.equal(204, r.status)
      assert.is_nil(r.h["content-length"])
      assert.equal(201, request(srv, "GET", "/4").status)
      assert.equal(4, #srv:requests())
    end)
  end)
end)

describe("spec.support.server lifecycle", function()
  it("runs several servers at once and stops them idempotently", function()
    local a = server.start()
    local b = server.start()
    assert.are_not.equal(a.port, b.port)
    a:script{ { status = 418 } }
    assert.equal(418, request(a, "GET", "/").status)
    assert.equal(201, request(b, "GET", "/").status)

    local pid, files = a.pid, { a._pidfile, a._portfile, a._logfile }
    assert.is_true(a:stop())
    assert.is_false(server.alive(pid))
    for _, f in ipairs(files) do assert.is_false(file_exists(f)) end
    assert.is_true(a:stop())
    local c = socket.tcp()
    c:settimeout(1)
    assert.is_nil(c:connect("127.0.0.1", a.port))
    c:close()
    assert.has_error(function() a:requests() end)

    server.stop_all()
    assert.is_false(server.alive(b.pid))
    assert.is_true(b:stop())
  end)

  it("stops a hanging server promptly", function()
    local s = server.start()
    s:script{ { fault = "hang" }, { fault = "headers_then_stall" } }
    local c1 = connect(s, 5)
    send_request(c1, "GET", "/")
    local c2 = connect(s, 5)
    send_request(c2, "GET", "/")
    s:wait_requests(2)
    local t0 = socket.gettime()
    s:stop()
    assert.is_true(socket.gettime() - t0 < 2)
    assert.is_false(server.alive(s.pid))
    c1:close()
    c2:close()
  end)
end)

describe("spec.support.server: proxies' echoes, bounded stalls, chaos mode, TLS", function()
  local srv

  setup(function() srv = server.start() end)
  teardown(function() srv:stop() end)
  before_each(function() srv:reset() end)

  it("echo_target appends the request target, hex digits as sent or in one case", function()
    srv:script{ { status = 502, body = "bad gateway: ", echo_target = "raw" },
      { status = 502, body = "", echo_target = "lower" }, { status = 502, body = "", echo_target = "upper" } }
    assert.equal("bad gateway: /x?t=a%2Fb%2bc", request(srv, "GET", "/x?t=a%2Fb%2bc").body)
    assert.equal("/x?t=a%2fb%2bc", request(srv, "GET", "/x?t=a%2Fb%2bc").body)
    assert.equal("/x?t=a%2FB%2BC", request(srv, "GET", "/x?t=a%2FB%2bC").body)
    assert.has_error(function() srv:script{ { echo_target = "mixed" } } end)
  end)

  it("hold ends a hang after that many seconds", function()
    srv:script{ { fault = "hang", hold = 0.2 } }
    local c = connect(srv, 5)
    send_request(c, "GET", "/")
    local t0 = socket.gettime()
    local data, _, partial = c:receive("*a")
    c:close()
    assert.is_true(socket.gettime() - t0 < 2)
    assert.equal("", data or partial) -- closed without a byte
  end)

  describe("chaos", function()
    local function outcomes_of(seed)
      srv:reset()
      srv:chaos{ seed = seed, weights = { ok = 1, fail = 1, drop = 1 } }
      for i = 1, 30 do
        -- one response, read by its length: an ok answer keeps the
        -- connection alive, so reading to EOF would wait out the timeout
        local c = connect(srv, 5)
        send_request(c, "POST", "/v2/dlq/retry/id-" .. i)
        read_response(c)
        c:close()
      end
      local log = srv:chaos_log()
      local out = {}
      for i = 1, 30 do out[i] = log["id-" .. i].outcomes[1] end
      return out
    end

    it("draws the same outcomes from the same seed", function()
      local a = outcomes_of("s1")
      assert.same(a, outcomes_of("s1"))
      assert.are_not.same(a, outcomes_of("s2"))
    end)

    it("executes an id once: later requests find it gone, and the log says so", function()
      srv:chaos{ seed = 1, weights = { ok = 1 } }
      local r1 = request(srv, "POST", "/v2/dlq/retry/abc")
      local r2 = request(srv, "POST", "/v2/dlq/retry/abc")
      assert.equal(201, r1.status)
      assert.equal('{"messageId":"msg_chaos_abc","deduplicated":false}', r1.body)
      assert.equal(404, r2.status)
      assert.same({ abc = { received = 2, executed = true, outcomes = { "ok", "gone" },
                            messageId = "msg_chaos_abc" } }, srv:chaos_log())
      assert.same({}, srv:requests())
    end)

    it("a failure before executing leaves the id to execute later", function()
      srv:chaos{ seed = 1, weights = { fail = 1 } }
      assert.equal(503, request(srv, "POST", "/v2/dlq/retry/f").status)
      assert.is_false(srv:chaos_log().f.executed)
    end)

    it("a stall sends the headers, then holds the connection", function()
      srv:chaos{ seed = 1, weights = { stall = 1 }, hold = 0.2 }
      local r = request(srv, "POST", "/v2/dlq/retry/st")
      assert.equal(201, r.status)
      assert.is_not_nil(r.err)
      assert.is_true(srv:chaos_log().st.executed)
    end)

    it("is off after reset and refuses unknown outcomes", function()
      srv:chaos{ seed = 1, weights = { fail = 1 } }
      srv:reset()
      assert.equal(201, request(srv, "POST", "/v2/dlq/retry/x").status)
      assert.equal(1, #srv:requests())
      assert.has_error(function() srv:chaos{ weights = { explode = 1 } } end)
      assert.has_error(function() srv:chaos{ weights = {} } end)
    end)

    describe("for follows (chaos_follow.py)", function()
      local cjson = require "cjson"

      local function get(target)
        local r = request(srv, "GET", target)
        return r.status, r.status == 200 and cjson.decode(r.body) or nil
      end

      local function states(doc)
        local out = {}
        for _, e in ipairs(doc.logs or doc.events) do out[#out + 1] = e.state end
        return table.concat(out, ",")
      end

      it("logs a message's end once it was asked about often enough, newest first", function()
        srv:chaos{ seed = 1, weights = { ok = 1 },
                   follow = { fates = { delivered = 1 }, late = 1 } }
        local seen = {}
        for i = 1, 3 do seen[i] = states(select(2, get("/v2/logs?messageId=m1"))) end
        local needed = srv:chaos_follow_log().messages.m1.needed
        assert.is_true(needed == 2 or needed == 3)
        assert.equal("ACTIVE,CREATED", seen[1])
        assert.equal("DELIVERED,ERROR,RETRY,ACTIVE,CREATED", seen[needed])
        assert.is_true(srv:chaos_follow_log().messages.m1.served_final)
        -- fromDate: only what is new
        local t = srv:chaos_follow_log().messages.m1.time
        assert.equal("DELIVERED", states(select(2, get(("/v2/logs?messageId=m1&fromDate=%.0f"):format(t + 10)))))
      end)

      it("answers a DLQ lookup with the message's own entry; retries shared by two ids", function()
        srv:chaos{ seed = 1, weights = { ok = 1 },
                   follow = { fates = { failed_lookup = 1 }, late = 0, shared = 1 } }
        assert.equal("FAILED,ACTIVE,CREATED", states(select(2, get("/v2/logs?messageId=m2"))))
        local _, doc = get("/v2/dlq?messageId=m2")
        assert.same({ { dlqId = "dlq_m2", messageId = "m2", url = "https://example.com/x" } }, doc.messages)
        local a = cjson.decode(request(srv, "POST", "/v2/dlq/retry/x-2").body)
        local b = cjson.decode(request(srv, "POST", "/v2/dlq/retry/x-3").body)
        assert.equal("msg_chaos_shared_x-1", a.messageId)
        assert.same({ messageId = "msg_chaos_shared_x-1", deduplicated = true }, b)
      end)

      it("pages an answer by cursor, and a repeated cursor gets the same page", function()
        srv:chaos{ seed = 1, weights = { ok = 1 },
                   follow = { fates = { cancelled = 1 }, late = 0, mess = { paged = 1 }, page = 2 } }
        local _, p1 = get("/v2/logs?messageId=m3")
        assert.equal("CANCELLED,CANCEL_REQUESTED", states(p1))
        local _, p2 = get("/v2/logs?messageId=m3&cursor=" .. p1.cursor)
        assert.same(p2, select(2, get("/v2/logs?messageId=m3&cursor=" .. p1.cursor)))
        assert.equal("ACTIVE,CREATED", states(p2))
        assert.is_nil(p2.cursor)
      end)

      it("refuses an unknown part", function()
        assert.has_error(function() srv:chaos{ weights = { ok = 1 }, follow = { nope = 1 } } end)
        assert.has_error(function() srv:chaos{ weights = { ok = 1 }, follow = { mess = { odd = 2 } } } end)
      end)
    end)
  end)

  it("serves TLS on a second port with the same queue and records", function()
    local tls = require "spec.support.tls"
    local proc = require "spec.support.proc"
    local cert = tls.self_signed()
    local s = server.start{ tls = cert }
    s:script{ { status = 202, body = "over tls" } }
    assert.matches("^https://127%.0%.0%.1:%d+$", s.tls_url)
    local out, code = proc.sh(("python3 -c %q %s %s"):format(
      "import ssl, sys, urllib.request as u; " ..
      "r = u.urlopen(sys.argv[1] + '/secure', context=ssl.create_default_context(cafile=sys.argv[2])); " ..
      "print(r.status, r.read().decode())", s.tls_url, cert.cert))
    local reqs = s:requests()
    s:stop()
    cert:remove()
    assert.equal(0, code, out)
    assert.equal("202 over tls\n", out)
    assert.equal(1, #reqs)
    assert.equal("/secure", reqs[1].path)
  end)
end)
