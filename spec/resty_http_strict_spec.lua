-- qstash.resty.http against hostile servers: responses parsed strictly
-- (RFC 9112), connections never pooled after a doubtful answer, pooled
-- connections checked before reuse, answers that come before the request
-- was sent whole. The server is spec/support/raw_http_server.py, answering
-- each path with exact bytes and logging every request and every connection
-- the client closed; the client runs in a real nginx. Runs only under
-- LuaJIT (`make test LUA=luajit`).
local N = require "spec.support.nginx"

if N.pending_unless_runnable("qstash.resty.http against hostile servers") then return end

local E = require "spec.support.emulator"
local cjson = require "cjson"

local q = E.shell_quote

local OK_HEAD = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"

-- Each row: the name (the path asked), the bytes the server answers with
-- (`send`, optionally `then` after a pause, `after` what the server does
-- next: see raw_http_server.py), and the outcome: `err`, a fragment of
-- the "invalid response: ..." message, or `body` (and `status`, default
-- 200) of a response read whole. The connection is never pooled, except
-- for the rows with `pooled = true`.
local HOSTILE = {
  -- status lines
  { "status_4digit", "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok", err = "status line" },
  { "status_000", "HTTP/1.1 000 Zero\r\nContent-Length: 2\r\n\r\nok", err = "status code 000" },
  { "status_099", "HTTP/1.1 099 Low\r\nContent-Length: 2\r\n\r\nok", err = "status code 099" },
  { "status_600", "HTTP/1.1 600 High\r\nContent-Length: 2\r\n\r\nok", err = "status code 600" },
  { "status_letters", "HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok", err = "status line" },
  { "status_short", "HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok", err = "status line" },
  { "status_tab", "HTTP/1.1\t200 OK\r\nContent-Length: 2\r\n\r\nok", err = "status line" },
  { "status_two_spaces", "HTTP/1.1  200 OK\r\nContent-Length: 2\r\n\r\nok", err = "status line" },
  { "version_2", "HTTP/2 200\r\nContent-Length: 2\r\n\r\nok", err = "HTTP/1.0 or HTTP/1.1" },
  { "version_1_2", "HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok", err = "HTTP/1.0 or HTTP/1.1" },
  { "version_lower", "http/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", err = "HTTP/1.0 or HTTP/1.1" },
  { "version_0_9", "HTTP/0.9 200 OK\r\nContent-Length: 2\r\n\r\nok", err = "HTTP/1.0 or HTTP/1.1" },
  { "reason_ctl", "HTTP/1.1 200 O\1K\r\nContent-Length: 2\r\n\r\nok", err = "control character" },
  { "not_http", "SSH-2.0-OpenSSH_9.2\r\n", err = "HTTP/1.0 or HTTP/1.1", fast = true },
  { "status_101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", err = "101" },
  { "interim_loop", ("HTTP/1.1 100 Continue\r\n\r\n"):rep(40) .. OK_HEAD .. "late",
    err = "informational" },
  -- line endings
  { "bare_lf_head", "HTTP/1.1 200 OK\nContent-Length: 2\n\nhi", err = "bare LF", fast = true },
  { "bare_lf_field", "HTTP/1.1 200 OK\r\nX-A: b\nContent-Length: 2\r\n\r\nok", err = "bare LF" },
  { "bare_lf_end", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\nok", err = "bare LF", fast = true },
  { "bare_cr", "HTTP/1.1 200 OK\r\nX-A: b\rX-B: c\r\nContent-Length: 2\r\n\r\nok", err = "bare CR" },
  { "bare_cr_wait", "HTTP/1.1 200 OK\rContent-Length: 2\r", err = "bare CR", fast = true },
  -- field lines
  { "nul", "HTTP/1.1 200 OK\r\nX-A: b\0c\r\nContent-Length: 2\r\n\r\nok", err = "control character" },
  { "ctl", "HTTP/1.1 200 OK\r\nX-A: b\27c\r\nContent-Length: 2\r\n\r\nok", err = "control character" },
  { "del", "HTTP/1.1 200 OK\r\nX-A: b\127\r\nContent-Length: 2\r\n\r\nok", err = "control character" },
  { "no_colon", "HTTP/1.1 200 OK\r\nX-A b\r\nContent-Length: 2\r\n\r\nok", err = "without a colon" },
  { "space_before_colon", "HTTP/1.1 200 OK\r\nX-A : b\r\nContent-Length: 2\r\n\r\nok",
    err = "whitespace before" },
  { "tab_before_colon", "HTTP/1.1 200 OK\r\nContent-Length\t: 2\r\n\r\nok", err = "whitespace before" },
  { "empty_name", "HTTP/1.1 200 OK\r\n: b\r\nContent-Length: 2\r\n\r\nok", err = "not a token" },
  { "bad_name", "HTTP/1.1 200 OK\r\nX(A): b\r\nContent-Length: 2\r\n\r\nok", err = "not a token" },
  { "obs_fold", "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 2\r\n\r\nok", err = "obs-fold" },
  { "space_first_line", "HTTP/1.1 200 OK\r\n X-A: b\r\nContent-Length: 2\r\n\r\nok", err = "obs-fold" },
  -- framing
  { "te_xchunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    err = "Transfer-Encoding" },
  { "te_gzip_chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    err = "Transfer-Encoding" },
  { "te_twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
    .. "2\r\nok\r\n0\r\n\r\n", err = "Transfer-Encoding" },
  { "te_gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok", err = "Transfer-Encoding" },
  { "te_and_cl", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n"
    .. "2\r\nok\r\n0\r\n\r\n", err = "both Transfer-Encoding and Content-Length" },
  { "te_http10", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    err = "HTTP/1.0" },
  { "cl_plus", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", err = "invalid Content-Length" },
  { "cl_negative", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok", err = "invalid Content-Length" },
  { "cl_hex", "HTTP/1.1 200 OK\r\nContent-Length: 0x2\r\n\r\nok", err = "invalid Content-Length" },
  { "cl_space", "HTTP/1.1 200 OK\r\nContent-Length: 2 2\r\n\r\nok", err = "invalid Content-Length" },
  { "cl_overflow", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nok",
    err = "invalid Content-Length" },
  { "cl_conflict", "HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok", err = "conflicting" },
  { "chunk_2zz", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2zz\r\nok\r\n0\r\n\r\n",
    err = "chunk size" },
  { "chunk_huge", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nok\r\n",
    err = "chunk size" },
  { "chunk_negative", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\nok\r\n0\r\n\r\n",
    err = "chunk size" },
  { "chunk_empty_size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\nok\r\n0\r\n\r\n",
    err = "chunk size" },
  { "chunk_space_first", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n 2\r\nok\r\n0\r\n\r\n",
    err = "chunk size" },
  { "chunk_bad_ext", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;a b\r\nok\r\n0\r\n\r\n",
    err = "chunk size" },
  { "chunk_empty_ext", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;\r\nok\r\n0\r\n\r\n",
    err = "chunk size" },
  { "chunk_bare_lf", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n",
    err = "bare LF", fast = true },
  { "chunk_no_crlf", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n",
    err = "CRLF after chunk data" },
  { "chunk_bad_trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
    .. "bad trailer\r\n\r\n", err = "trailer" },
  { "chunk_folded_trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
    .. "X-T: a\r\n b\r\n\r\n", err = "trailer" },
  { "chunk_no_final_crlf", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n",
    after = "close", err = "closed", network = true },
  { "cl_short_close", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok", after = "close",
    err = "closed", network = true },
  -- read whole, but the connection is doubtful: never pooled
  { "garbage_after_cl", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokGARBAGE", body = "ok" },
  { "garbage_after_chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    .. "HTTP/1.1 200 OK\r\n", body = "ok" },
  { "http10_no_keepalive", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", body = "ok" },
  { "connection_close", "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nok",
    body = "ok" },
  { "close_delimited", "HTTP/1.1 200 OK\r\n\r\nuntil the end", after = "shut", body = "until the end" },
  -- accepted, and pooled
  { "clean", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", body = "ok", pooled = true },
  { "clean_http10", "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok", body = "ok",
    pooled = true },
  { "chunk_ext_trailer", "HTTP/1.1 201 Created\r\nTransfer-Encoding: Chunked\r\n\r\n"
    .. "2;name=value\r\nok\r\n3 ; a = \"q;\\\"x\" ;b\r\n!!!\r\n000\r\nX-Trailer: t\r\n\r\n",
    status = 201, body = "ok!!!", pooled = true },
  { "no_reason", "HTTP/1.1 204\r\n\r\n", status = 204, body = "", pooled = true },
  { "interim_then_final", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    .. "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", body = "ok", pooled = true },
}

-- Other entries of the server's script.
local SCRIPT = {
  -- a whole answer, then an unsolicited one on the same connection
  stale = { send = OK_HEAD .. "good", ["then"] = OK_HEAD .. "EVIL" },
  -- a whole answer, then a proxy's 408 on the idle connection, and the end
  stale408 = { send = OK_HEAD .. "good",
    ["then"] = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    after = "close" },
  -- a whole answer, then the end of the idle connection
  closed = { send = OK_HEAD .. "good", after = "close" },
  good = { send = OK_HEAD .. "good" },
  -- an answer before the request body, then a reset
  early413 = { read_body = 0, send = "HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n"
    .. "Content-Length: 9\r\n\r\ntoo large", after = "close" },
  -- an answer before the request body, then the sending side shut
  early400 = { read_body = 0, send = "HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad",
    after = "shut" },
  -- the connection reset after a part of the request body
  mid_body = { read_body = 1000, after = "reset" },
  -- QStash's answer to a publish
  pub_ok = { send = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n"
    .. '{"messageId":"msg_1"}\n' },
}
for _, row in ipairs(HOSTILE) do
  SCRIPT[row[1]] = { send = row[2], after = row.after }
end

local HANDLERS = [=[
location = /req {
  content_by_lua_block {
    local cjson = require "cjson"
    local http = require "qstash.resty.http"
    ngx.req.read_body()
    local v = cjson.decode(ngx.req.get_body_data())
    -- a large body made here (nginx's client_max_body_size is 1 MiB)
    if v.body_size then v.body, v.body_size = ("b"):rep(v.body_size), nil end
    local t0 = ngx.now()
    local ok, a, b, c = http.request(v)
    ngx.update_time()
    local doc = { ok = ok, elapsed = ngx.now() - t0 }
    if ok then doc.status, doc.headers, doc.body = a, b, c else doc.failure = a end
    ngx.say(cjson.encode(doc))
  }
}
# qstash.resty: a publish that leaves its connection in the pool, then one
# of `size` bytes to `dest` on it; answers the second one's error
location = /publish {
  content_by_lua_block {
    local cjson = require "cjson"
    local qr = require "qstash.resty"
    ngx.req.read_body()
    local p = cjson.decode(ngx.req.get_body_data())
    local config = { base_url = p.base_url, token = "t", timeout = 5,
                     retry = { attempts = 3, base_delay = 0.01, max_delay = 0.02 } }
    local first, ferr = qr.publish("https://example.com/pub_ok", "x", nil, config)
    local res, err = qr.publish(p.dest, ("b"):rep(p.size), p.opts, config)
    ngx.say(cjson.encode{ first = first, first_err = ferr and tostring(ferr), res = res,
      err = err and { kind = err.kind, attempts = err.attempts, ambiguous = err.ambiguous,
                      message = err.message } })
  }
}
# two request values, one after the other, without yielding in between
# for `spin` seconds (as a busy worker would)
location = /pair {
  content_by_lua_block {
    local cjson = require "cjson"
    local http = require "qstash.resty.http"
    ngx.req.read_body()
    local p = cjson.decode(ngx.req.get_body_data())
    http.check_pooled_by_read(p.by_read)
    local out = {}
    for i, v in ipairs{ p.first, p.second } do
      if i == 2 then
        ngx.update_time()
        local till = ngx.now() + p.spin
        repeat ngx.update_time() until ngx.now() >= till
      end
      local ok, a, b, c = http.request(v)
      out[i] = ok and { ok = true, status = a, body = c } or { ok = false, failure = a }
    end
    http.check_pooled_by_read(false)
    ngx.say(cjson.encode(out))
  }
}
]=]

describe("qstash.resty.http against hostile servers", function()
  local ng, raw_pid, raw_url, raw_log

  setup(function()
    local dir = E.tmpdir()
    E.write_file(dir .. "/script.json", cjson.encode(SCRIPT))
    raw_log = dir .. "/log.jsonl"
    local me = E.read_file("/proc/self/stat"):match("^(%d+)")
    assert(E.exec_ok(("python3 %s --script %s --log %s --port-file %s --watch-pid %s >%s 2>&1 </dev/null"
      .. " & echo $! >%s"):format(q(E.root .. "/spec/support/raw_http_server.py"), q(dir .. "/script.json"),
      q(raw_log), q(dir .. "/port"), me, q(dir .. "/stderr"), q(dir .. "/pid"))))
    raw_pid = tonumber(E.read_file(dir .. "/pid"):match("%d+"))
    local port = E.wait_for(function()
      return tonumber((E.read_file(dir .. "/port") or ""):match("^(%d+)\n"))
    end, 10)
    assert(port, "the raw server did not start: " .. tostring(E.read_file(dir .. "/stderr")))
    raw_url = "http://127.0.0.1:" .. port
    ng = N.start{ server = HANDLERS }
  end)

  teardown(function()
    if raw_pid then E.exec_ok("kill -TERM " .. raw_pid .. " 2>/dev/null") end
    if ng then ng:stop() end
  end)

  local function post(path, doc)
    local status, body = E.request(ng.url, "POST", path, { body = cjson.encode(doc) })
    assert.equal(200, status, body .. "\n" .. ng:error_log())
    return cjson.decode(body)
  end

  local function value(name, extra)
    local v = { method = "GET", url = raw_url .. "/" .. name, headers = {}, body = "", timeout = 5,
                connect_timeout = 2, max_response_bytes = 1048576 }
    for k, x in pairs(extra or {}) do v[k] = x end
    return v
  end

  -- The server's log: a list of records.
  local function log()
    local list = {}
    for line in (E.read_file(raw_log) or ""):gmatch("[^\n]+") do list[#list + 1] = cjson.decode(line) end
    return list
  end

  -- The connections that carried requests for `name`, in order.
  local function conns_of(name)
    local list = {}
    for _, r in ipairs(log()) do
      if r.event == "request" and r.name == name then list[#list + 1] = r.conn end
    end
    return list
  end

  -- Whether the client closed connection `conn`, waiting a little for it.
  local function closed(conn, wait)
    return E.wait_for(function()
      for _, r in ipairs(log()) do
        if r.conn == conn and r.event == "eof" then return true end
      end
      return nil
    end, wait or 3) == true
  end

  describe("a table of hostile responses", function()
    for _, row in ipairs(HOSTILE) do
      local name = row[1]
      it(name .. (row.err and (": refused, '" .. row.err .. "'") or ": read")
        .. (row.pooled and ", pooled" or ", not pooled"), function()
        local doc = post("/req", value(name))
        local conns = conns_of(name)
        assert.equal(1, #conns)
        if row.err then
          assert.is_false(doc.ok, cjson.encode(doc))
          assert.equal("network", doc.failure.failure)
          assert.is_true(doc.failure.sent)
          if not row.network then
            assert.matches("invalid response: ", doc.failure.message, 1, true)
          end
          assert.matches(row.err, doc.failure.message, 1, true)
          if row.fast then
            -- at once, not at the end of the 5 s timeout
            assert.is_true(doc.elapsed < 1, "took " .. doc.elapsed)
          end
        else
          assert.is_true(doc.ok, cjson.encode(doc))
          assert.equal(row.status or 200, doc.status)
          assert.equal(row.body, doc.body)
        end
        if row.pooled then
          -- the next request goes on the same connection
          local again = post("/req", value("good"))
          assert.is_true(again.ok, cjson.encode(again))
          local good = conns_of("good")
          assert.equal(conns[1], good[#good])
        elseif row.after ~= "close" then
          assert.is_true(closed(conns[1]), "connection " .. conns[1] .. " was not closed")
        end
      end)
    end
  end)
  -- the check through the descriptor, then the fallback's one-byte read
  for _, by_read in ipairs{ false, true } do
    describe("a connection taken from the pool" .. (by_read and " (checked by a read)" or ""), function()
      -- The first request leaves its connection in the pool; the server sends
      -- more on it; the handler does not yield before the second request.
      local function pair(name, spin)
        local before = #conns_of(name)
        local out = post("/pair", { first = value(name), second = value(name), spin = spin or 0.3,
                                    by_read = by_read })
        -- the next test starts once the server sent what it sends late
        if SCRIPT[name]["then"] then
          assert(E.wait_for(function()
            local n = 0
            for _, r in ipairs(log()) do
              if r.event == "then" and r.name == name then n = n + 1 end
            end
            return n == #conns_of(name) or nil
          end, 3))
        end
        -- the connections of this pair's two requests
        local conns = conns_of(name)
        return out, { (table.unpack or unpack)(conns, before + 1) }
      end

      it("is not used when an answer nobody asked for waits on it", function()
        local out, conns = pair("stale")
        assert.is_true(out[1].ok, cjson.encode(out))
        assert.equal("good", out[1].body)
        assert.is_true(out[2].ok, cjson.encode(out))
        assert.equal("good", out[2].body)
        assert.equal(2, #conns)
        assert.not_equal(conns[1], conns[2])
        assert.is_true(closed(conns[1]))
      end)

      it("is not used when a proxy sent 408 on it and closed it", function()
        local out, conns = pair("stale408")
        assert.is_true(out[1].ok, cjson.encode(out))
        assert.equal("good", out[1].body)
        assert.is_true(out[2].ok, cjson.encode(out))
        assert.equal(200, out[2].status)
        assert.equal("good", out[2].body)
        assert.equal(2, #conns)
        assert.not_equal(conns[1], conns[2])
      end)

      it("is not used when the server closed it", function()
        local out, conns = pair("closed")
        assert.is_true(out[1].ok, cjson.encode(out))
        assert.is_true(out[2].ok, cjson.encode(out))
        assert.equal("good", out[2].body)
        assert.equal(2, #conns)
        assert.not_equal(conns[1], conns[2])
      end)

      it("is used when nothing waits on it", function()
        local out, conns = pair("good")
        assert.is_true(out[2].ok, cjson.encode(out))
        assert.equal(2, #conns)
        assert.equal(conns[1], conns[2])
      end)
    end)
  end

  describe("an answer before the request was sent whole", function()
    local BIG = 8 * 1048576

    it("is the outcome when it came whole; never pooled", function()
      -- 8 MiB the server never reads: the send fails once the buffers are
      -- full and the server's reset comes; its 413 came before
      local doc = post("/req", value("early413", { method = "POST", body_size = BIG }))
      assert.is_true(doc.ok, cjson.encode(doc))
      assert.equal(413, doc.status)
      assert.equal("too large", doc.body)
      -- a server that shuts its side and reads on: the send ends, the answer is read
      doc = post("/req", value("early400", { method = "POST", body_size = BIG }))
      assert.is_true(doc.ok, cjson.encode(doc))
      assert.equal(400, doc.status)
      assert.equal("bad", doc.body)
      assert.is_true(closed(conns_of("early400")[1]))
    end)

    it("a publish on a pooled connection reset in the middle of its body: ambiguous, repeated only when safe",
      function()
      local base = { base_url = raw_url, dest = "https://example.com/mid_body", size = 2097152 }
      -- without a deduplication id: one attempt, ambiguous
      local doc = post("/publish", base)
      assert.equal("msg_1", doc.first and doc.first.messageId, cjson.encode(doc))
      assert.is_table(doc.err, cjson.encode(doc))
      assert.equal("network", doc.err.kind)
      assert.equal(1, doc.err.attempts, cjson.encode(doc))
      assert.is_true(doc.err.ambiguous)
      local pub, mid = conns_of("pub_ok"), conns_of("mid_body")
      assert.equal(1, #mid)
      assert.equal(pub[#pub], mid[1])
      -- with one: every attempt made (the later ones on new connections)
      base.opts = { deduplication_id = "d-1" }
      doc = post("/publish", base)
      assert.equal("network", doc.err.kind, cjson.encode(doc))
      assert.equal(3, doc.err.attempts)
      assert.is_true(doc.err.ambiguous)
      pub, mid = conns_of("pub_ok"), conns_of("mid_body")
      assert.equal(4, #mid)
      assert.equal(pub[#pub], mid[2])
    end)

    it("a pooled connection reset in the middle of the body: network, sent", function()
      local first = post("/req", value("good"))
      assert.is_true(first.ok)
      local doc = post("/req", value("mid_body", { method = "POST", body_size = BIG }))
      assert.is_false(doc.ok, cjson.encode(doc))
      assert.equal("network", doc.failure.failure)
      assert.is_true(doc.failure.sent)
      local good, mid = conns_of("good"), conns_of("mid_body")
      assert.equal(good[#good], mid[#mid])
    end)
  end)
  it("checked pooled connections without a read that times out but where asked to", function()
    local log_text = ng:error_log()
    local timeouts = select(2, log_text:gsub("lua tcp socket read timed out", ""))
    -- one for each clean pooled connection checked by a read: the first
    -- request of each pair but the first, and the second one of "good"
    assert.is_true(timeouts >= 1 and timeouts <= 4, log_text)
    assert.not_matches("timed out", log_text:gsub("[^\n]*lua tcp socket read timed out[^\n]*", ""), 1, true)
    assert.not_matches("%[alert%]", log_text)
    assert.not_matches("%[crit%]", log_text)
    assert.not_matches("lua entry thread aborted", log_text, 1, true)
  end)
end)
