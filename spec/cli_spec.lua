-- bin/qstash-dlq (lua/qstash/cli.lua), run as a process against the local
-- emulator (tools/qstash-dev) with a sink destination that answers 500, so that
-- messages published with Upstash-Retries: 0 land in the DLQ at once.

local E = require "spec.support.emulator"
local cjson = require "cjson"

local q = E.shell_quote
local LUA = os.getenv("QSTASH_SPEC_LUA") or "lua5.4"
local ROOT = E.root
local CLI = ROOT .. "/bin/qstash-dlq"
local LUA_PATH = os.getenv("LUA_PATH") or
  (ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;" .. ROOT .. "/?.lua;;")
local LUA_CPATH = os.getenv("LUA_CPATH") or (ROOT .. "/build/lua5.4/?.so;;")

local function lines(s)
  local out = {}
  for line in (s or ""):gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

local function decode_lines(s)
  local out = {}
  for _, line in ipairs(lines(s)) do out[#out + 1] = cjson.decode(line) end
  return out
end

describe("qstash-dlq", function()
  local emu, sink, tmp

  -- Runs the CLI; env: extra variables (false unsets); tty: run it on a pseudo
  -- terminal (util-linux script), stdout and stderr then both go to stdout.
  -- Returns status, stdout, stderr.
  local function cli(args, env, tty)
    local vars = {
      LUA_PATH = LUA_PATH, LUA_CPATH = LUA_CPATH,
      QSTASH_URL = emu and emu.url or false, QSTASH_TOKEN = emu and emu.token or false,
      QSTASH_DEV = false, QSTASH_DEV_PORT = false, QSTASH_REGION = false,
    }
    for k, v in pairs(env or {}) do vars[k] = v end
    local parts = { "env" }
    for k, v in pairs(vars) do
      if v == false then
        parts[#parts + 1] = "-u " .. k
      end
    end
    for k, v in pairs(vars) do
      if v ~= false then parts[#parts + 1] = k .. "=" .. q(v) end
    end
    parts[#parts + 1] = q(LUA) .. " " .. q(CLI)
    for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
    local out, err = tmp .. "/out", tmp .. "/err"
    local cmd = table.concat(parts, " ")
    if tty then cmd = "script -qec " .. q(cmd) .. " /dev/null" end
    cmd = cmd .. " >" .. q(out) .. " 2>" .. q(err) .. " </dev/null; echo $?"
    local p = assert(io.popen(cmd))
    local status = tonumber(p:read("*a"):match("%d+"))
    p:close()
    return status, E.read_file(out) or "", E.read_file(err) or ""
  end

  -- Every DLQ entry, following the cursor.
  local function dlq()
    local all, cursor = {}, nil
    repeat
      local status, doc, raw = emu:json("GET", "/v2/dlq?count=100" .. (cursor and ("&cursor=" .. cursor) or ""))
      assert.are.equal(200, status, raw)
      for _, m in ipairs(doc.messages) do all[#all + 1] = m end
      cursor = doc.cursor
    until cursor == nil or cursor == ""
    return all
  end

  local function esc(s)
    return (s:gsub("%p", "%%%0"))
  end

  local function dlq_ids()
    local set, n = {}, 0
    for _, m in ipairs(dlq()) do set[m.dlqId], n = true, n + 1 end
    return set, n
  end

  local function in_dlq(message_id)
    local status, doc = emu:json("GET", "/v2/dlq?messageId=" .. message_id)
    return status == 200 and doc.messages[1] or nil
  end

  -- Publishes one message per path to the sink (answering 500) with no retries;
  -- returns the DLQ entries, in the order of paths. Deliveries run concurrently,
  -- so unless `unordered` each message is waited for before the next is
  -- published: the DLQ then lists them in the order of paths.
  local function dead(paths, headers, unordered)
    sink:set_status(500)
    local want = {}
    for i, path in ipairs(paths) do
      local h = { ["Upstash-Retries"] = "0", ["Content-Type"] = "text/plain" }
      for k, v in pairs(headers or {}) do h[k] = v end
      local status, doc, raw = emu:json("POST", "/v2/publish/" .. sink.url .. path,
        { headers = h, body = "body " .. i })
      assert(status == 200 or status == 201, raw)
      want[i] = doc.messageId
      if not unordered then
        assert(E.wait_for(function() return in_dlq(doc.messageId) end, 10), "message did not reach the DLQ")
      end
    end
    local entries = E.wait_for(function()
      local by_msg = {}
      for _, m in ipairs(dlq()) do by_msg[m.messageId] = m end
      local out = {}
      for i, id in ipairs(want) do
        if not by_msg[id] then return nil end
        out[i] = by_msg[id]
      end
      return out
    end, 10)
    assert(entries, "messages did not reach the DLQ")
    sink:clear() -- forget the failed deliveries; answer 200 from now on
    return entries
  end

  -- Requests the sink received for path, waiting until there are at least n.
  local function received(path, n)
    return E.wait_for(function()
      local got = {}
      for _, r in ipairs(sink:received()) do
        if r.target == path then got[#got + 1] = r end
      end
      if #got >= (n or 1) then return got end
    end, 10) or {}
  end

  setup(function()
    tmp = E.tmpdir()
    emu = E.start{ time_scale = 0.001 }
    sink = E.start_sink()
  end)

  teardown(function()
    if emu then emu:stop() end
    if sink then sink:stop() end
    if tmp then os.execute("rm -rf " .. q(tmp)) end
  end)

  before_each(function()
    emu:reset()
    sink:clear()
  end)

  describe("usage", function()
    it("exits 2 without a command", function()
      local status, out, err = cli{}
      assert.are.equal(2, status)
      assert.are.equal("", out)
      assert.matches("a command is required", err, 1, true)
    end)

    it("exits 2 for retry and delete without ids, --all or filters", function()
      for _, verb in ipairs { "retry", "delete" } do
        local status, _, err = cli{ verb }
        assert.are.equal(2, status, verb)
        assert.matches("nothing to " .. verb, err, 1, true)
      end
    end)

    it("exits 2 for ids together with --all or a filter", function()
      assert.are.equal(2, (cli{ "retry", "--all", "1-0" }))
      assert.are.equal(2, (cli{ "delete", "--status", "500", "1-0" }))
      assert.are.equal(2, (cli{ "delete", "--all", "--status", "500" }))
    end)

    it("exits 2 for an unknown flag", function()
      local status, _, err = cli{ "list", "--bogus" }
      assert.are.equal(2, status)
      assert.matches("unknown option '--bogus'", err, 1, true)
      assert.matches("qstash-dlq list --help", err, 1, true)
      assert.are.equal(2, (cli{ "frobnicate" }))
    end)

    it("exits 2 for malformed numbers, times and headers", function()
      local status, _, err = cli{ "retry", "1-0", "--set-retries", "abc" }
      assert.are.equal(2, status)
      assert.matches("--set-retries must be a non-negative integer", err, 1, true)
      assert.are.equal(2, (cli{ "retry", "1-0", "--set-retries", "-1" }))
      assert.are.equal(2, (cli{ "retry", "1-0", "--set-flow-rate", "1.5" }))
      assert.are.equal(2, (cli{ "list", "--count", "0" }))
      assert.are.equal(2, (cli{ "list", "--count", "101" }))
      assert.are.equal(2, (cli{ "list", "--status", "abc" }))
      assert.are.equal(2, (cli{ "list", "--from", "yesterday" }))
      assert.are.equal(2, (cli{ "list", "--from", "1769860800" }))   -- seconds, not ms
      assert.are.equal(2, (cli{ "list", "--to", "2026-02-30" }))
      assert.are.equal(2, (cli{ "retry", "1-0", "--set-header", "no colon" }))
      assert.are.equal(2, (cli{ "--http-timeout", "soon", "list" }))
      assert.are.equal(2, (cli{ "get" }))
    end)

    it("exits 2 for retry options that do not go together", function()
      local status, _, err = cli{ "retry", "1-0", "--set-flow-rate", "3" }
      assert.are.equal(2, status)
      assert.matches("need --set-flow-key", err, 1, true)
      assert.are.equal(2, (cli{ "retry", "1-0", "--set-content-dedup", "--set-no-content-dedup" }))
    end)

    it("exits 2 for an option the module rejects, before sending anything", function()
      local e = dead{ "/keep" }
      for _, args in ipairs {
        { "retry", e[1].dlqId, "--set-method", "FETCH" },
        { "retry", "--all", "--set-method", "FETCH" },
        { "retry", "--all", "--set-method", "FETCH", "--dry-run" },
      } do
        local status, out, err = cli(args)
        assert.are.equal(2, status)
        assert.are.equal("", out)
        assert.matches("invalid --set-* settings", err, 1, true)
        assert.matches("'method' must be GET, POST, PUT, PATCH or DELETE", err, 1, true)
      end
      assert.is_true(dlq_ids()[e[1].dlqId])
    end)

    it("prints help and exits 0", function()
      local status, out = cli{ "--help" }
      assert.are.equal(0, status)
      assert.matches("Usage: qstash%-dlq", out)
      for _, cmd in ipairs { "list", "get", "retry", "delete" } do
        assert.matches(cmd, out, 1, true)
      end
      status, out = cli{ "retry", "--help" }
      assert.are.equal(0, status)
      assert.matches("--set-flow-parallelism", out, 1, true)
      assert.matches("--label <label>       Only messages with this label.", out, 1, true)
      assert.matches("--set-label <label>", out, 1, true)
    end)
  end)

  describe("list", function()
    it("prints a table", function()
      local e = dead{ "/t/a", "/t/b" }
      local status, out, err = cli{ "list" }
      assert.are.equal(0, status, err)
      local l = lines(out)
      assert.are.equal(3, #l)
      assert.matches("^DLQ ID%s+MESSAGE ID%s+STATUS%s+URL%s+CREATED$", l[1])
      for i, m in ipairs(e) do
        local row = l[i + 1]
        assert.matches(m.dlqId, row, 1, true)
        assert.matches(m.messageId, row, 1, true)
        assert.matches(" 500 ", row, 1, true)
        assert.matches(sink.url .. "/t/", row, 1, true)
        assert.are.equal(os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(m.createdAt / 1000)), row:match("(%S+)$"))
      end
      assert.are.equal("", err)
    end)

    it("prints one JSON object per line with --json and the next cursor on stderr", function()
      local e = dead{ "/j/1", "/j/2", "/j/3" }
      local status, out, err = cli{ "list", "--json" }
      assert.are.equal(0, status, err)
      local msgs = decode_lines(out)
      assert.are.equal(3, #msgs)
      for i, m in ipairs(msgs) do
        assert.are.equal(e[i].dlqId, m.dlqId)
        assert.are.equal(500, m.responseStatus)
        assert.are.equal(sink.url .. "/j/" .. i, m.url)
      end

      status, out, err = cli{ "list", "--json", "--count", "2" }
      assert.are.equal(0, status, err)
      assert.are.equal(2, #decode_lines(out))
      local cursor = err:match("next cursor: (%S+)")
      assert.is_not_nil(cursor, err)

      status, out, err = cli{ "list", "--json", "--cursor", cursor }
      assert.are.equal(0, status, err)
      msgs = decode_lines(out)
      assert.are.equal(1, #msgs)
      assert.are.equal(e[3].dlqId, msgs[1].dlqId)
      assert.are.equal("", err)

      status, out, err = cli{ "list", "--json", "--count", "1", "--all-pages" }
      assert.are.equal(0, status, err)
      assert.are.equal(3, #decode_lines(out))
      assert.are.equal("", err)
    end)

    it("applies filters", function()
      local e = dead({ "/f/a", "/f/b", "/f/a" }, { ["Upstash-Label"] = "nightly" })
      local function listed(args)
        local a = { "list", "--json" }
        for _, x in ipairs(args) do a[#a + 1] = x end
        local status, out, err = cli(a)
        assert.are.equal(0, status, err)
        local ids = {}
        for _, m in ipairs(decode_lines(out)) do ids[#ids + 1] = m.dlqId end
        return ids
      end
      assert.are.same({ e[1].dlqId, e[3].dlqId }, listed{ "--url", sink.url .. "/f/a" })
      assert.are.same({ e[1].dlqId, e[2].dlqId, e[3].dlqId },
        listed{ "--url", sink.url .. "/f/a", "--url", sink.url .. "/f/b" })
      assert.are.same({ e[2].dlqId }, listed{ "--message-id", e[2].messageId })
      assert.are.same({}, listed{ "--status", "404" })
      assert.are.equal(3, #listed{ "--status", "404", "--status", "500", "--label", "nightly" })
      assert.are.same({}, listed{ "--label", "daily" })
      assert.are.equal(3, #listed{ "--from", "2020-01-01T00:00:00Z", "--to", ("%d"):format(e[3].createdAt) })
      assert.are.same({}, listed{ "--from", "2999-01-01" })
      assert.are.same({}, listed{ "--to", "2020-01-01T00:00:00+02:00" })
    end)

    it("targets the emulator with --dev on QSTASH_DEV_PORT", function()
      local e = dead{ "/dev" }
      local env = { QSTASH_DEV_PORT = tostring(emu.port), QSTASH_URL = false, QSTASH_TOKEN = false }
      local status, out, err = cli({ "--dev", "list", "--json" }, env)
      assert.are.equal(0, status, err)
      assert.are.equal(e[1].dlqId, decode_lines(out)[1].dlqId)
    end)

    it("takes the base URL from --api-url (or its alias --base-url) before or after the command", function()
      local e = dead{ "/base" }
      local env = { QSTASH_URL = "http://127.0.0.1:1" }
      local status, out, err = cli({ "--api-url", emu.url, "list", "--json" }, env)
      assert.are.equal(0, status, err)
      assert.are.equal(e[1].dlqId, decode_lines(out)[1].dlqId)
      for _, flag in ipairs { "--api-url", "--base-url" } do
        status, out, err = cli({ "list", "--json", flag, emu.url }, env)
        assert.are.equal(0, status, err)
        assert.are.equal(1, #decode_lines(out))
      end
    end)

    it("exits 1 when the server cannot be reached or refuses the token", function()
      local status, out, err = cli({ "--http-timeout", "1", "list" }, { QSTASH_URL = "http://127.0.0.1:1" })
      assert.are.equal(1, status)
      assert.are.equal("", out)
      assert.matches("qstash: network", err, 1, true)
      status, out, err = cli({ "list" }, { QSTASH_TOKEN = "tok-SECRET-42" })
      assert.are.equal(1, status)
      assert.are.equal("", out)
      assert.matches("unauthorized", err, 1, true)
      assert.not_matches("tok-SECRET-42", err, 1, true)
    end)
  end)

  describe("get", function()
    it("prints the message as JSON", function()
      local e = dead{ "/get" }
      local status, out, err = cli{ "get", e[1].dlqId }
      assert.are.equal(0, status, err)
      assert.matches("^{\n  \"", out)
      local m = cjson.decode(out)
      assert.are.equal(e[1].dlqId, m.dlqId)
      assert.are.equal(e[1].messageId, m.messageId)
      assert.are.equal(500, m.responseStatus)
      assert.are.equal("body 1", m.body)
      assert.are.equal(sink.url .. "/get", m.url)
    end)

    it("exits 1 on a missing id", function()
      local status, out, err = cli{ "get", "1-404" }
      assert.are.equal(1, status)
      assert.are.equal("", out)
      assert.matches("1-404: qstash: not_found (404)", err, 1, true)
    end)
  end)

  describe("retry", function()
    it("retries one message with overrides and forwards headers", function()
      local e = dead{ "/r/one" }
      local status, out, err = cli{ "retry", e[1].dlqId, "--set-header", "X-Trace: 1", "--set-retries", "0" }
      assert.are.equal(0, status, err)
      local id, new_id = out:match("^(%S+) %-> (msg_%S+)\n$")
      assert.are.equal(e[1].dlqId, id)
      assert.are_not.equal(e[1].messageId, new_id)
      local got = received("/r/one")
      assert.are.equal(1, #got)
      assert.are.equal("1", sink:header(got[1], "X-Trace"))
      assert.are.equal("body 1", got[1].body)
      assert.is_nil(dlq_ids()[e[1].dlqId])
    end)

    it("sends every override option", function()
      local e = dead{ "/r/opts" }
      local status, out, err = cli{ "retry", e[1].dlqId,
        "--set-retries", "2", "--set-delay", "1d", "--set-retry-delay", "1000 * retried", "--set-timeout", "30",
        "--set-method", "put", "--set-callback", sink.url .. "/cb", "--set-failure-callback", sink.url .. "/fcb",
        "--set-label", "a", "--set-label", "b", "--set-header", "X-One: 1", "--set-header", "X-Two:two words ",
        "--set-flow-key", "fk", "--set-flow-parallelism", "2", "--set-flow-rate", "10", "--set-flow-period", "1m",
        "--set-dedup-id", "d-1", "--set-redact-header", "X-One" }
      assert.are.equal(0, status, err)
      local new_id = out:match("%-> (msg_%S+)")
      local code, m, raw = emu:json("GET", "/v2/messages/" .. new_id)
      assert.are.equal(200, code, raw)
      assert.are.equal("PUT", m.method)
      assert.are.equal(2, m.maxRetries)
      assert.are.equal("1000 * retried", m.retryDelayExpression)
      assert.are.equal(sink.url .. "/cb", m.callback)
      assert.are.equal(sink.url .. "/fcb", m.failureCallback)
      assert.are.same({ "a", "b" }, m.labels)
      assert.are.equal("fk", m.flowControlKey)
      assert.are.equal(2, m.parallelism)
      assert.are.equal(10, m.rate)
      assert.are.equal(60, m.period)
      local function hget(name)
        for k, v in pairs(m.header) do
          if k:lower() == name:lower() then return v[1] end
        end
      end
      assert.are.equal("two words", hget("X-Two"))
      assert.matches("^REDACTED:", hget("X-One"))
      assert.is_true(m.notBefore > m.createdAt + 60 * 1000)

      -- the same deduplication id again is reported as deduplicated
      e = dead{ "/r/opts" }
      status, out, err = cli{ "retry", e[1].dlqId, "--set-dedup-id", "d-1", "--set-delay", "1d" }
      assert.are.equal(0, status, err)
      assert.are.equal(e[1].dlqId .. " -> " .. new_id .. " (deduplicated)\n", out)
    end)

    it("retries several ids once each, reports a missing one and exits 1", function()
      local e = dead{ "/r/m1", "/r/m2" }
      local status, out, err = cli{ "retry", e[1].dlqId, "1-404", e[2].dlqId, e[1].dlqId }
      assert.are.equal(1, status)
      local l = lines(out)
      assert.are.equal(2, #l)
      table.sort(l) -- concurrent: lines come in completion order
      local want = { e[1].dlqId, e[2].dlqId }
      table.sort(want)
      assert.matches("^" .. esc(want[1]) .. " %-> msg_", l[1])
      assert.matches("^" .. esc(want[2]) .. " %-> msg_", l[2])
      assert.matches("1-404: qstash: not_found (404)", err, 1, true)
      assert.are.equal(1, #received("/r/m1"))
      assert.are.equal(1, #received("/r/m2"))
      local _, n = dlq_ids()
      assert.are.equal(0, n)
    end)

    it("retries the ids of --file with --concurrency", function()
      local e = dead{ "/r/file1", "/r/file2", "/r/file3" }
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write("# ids to replay\n", e[1].dlqId, "\n\n", e[2].dlqId, "\n", e[3].dlqId, "\n")
      f:close()
      local status, out, err = cli{ "retry", "--file", path, "--concurrency", "2", "--set-header", "X-From: file" }
      os.remove(path)
      assert.are.equal(0, status, err)
      assert.are.equal(3, #lines(out))
      assert.matches("retried 3 messages", err, 1, true)
      assert.are.equal(1, #received("/r/file1"))
      assert.are.equal(1, #received("/r/file3"))
      local _, n = dlq_ids()
      assert.are.equal(0, n)
      status = cli{ "retry", "--file", "/nonexistent/ids.txt" }
      assert.are.equal(2, status)
      status = cli{ "retry", "x", "--concurrency", "0" }
      assert.are.equal(2, status)
    end)

    it("retries the messages matching a filter", function()
      local e = dead({ "/r/f/a", "/r/f/b", "/r/f/a" }, { ["Upstash-Label"] = "x" })
      local status, out, err = cli{ "retry", "--url", sink.url .. "/r/f/a", "--label", "x",
        "--set-label", "retried" }
      assert.are.equal(0, status, err)
      local l = lines(out)
      assert.are.equal(2, #l)
      assert.matches("^" .. esc(e[1].dlqId) .. " %-> msg_", l[1])
      assert.matches("^" .. esc(e[3].dlqId) .. " %-> msg_", l[2])
      assert.matches("retried 2 messages", err, 1, true)
      assert.not_matches("\r", err, 1, true) -- no progress bar: stderr is no terminal
      assert.are.equal(2, #received("/r/f/a", 2))
      local left, n = dlq_ids()
      assert.are.equal(1, n)
      assert.is_true(left[e[2].dlqId])

      -- a filter matching nothing retries nothing
      status, out, err = cli{ "retry", "--status", "404" }
      assert.are.equal(0, status, err)
      assert.are.equal("", out)
      assert.matches("retried 0 messages", err, 1, true)
    end)

    it("retries everything with --all, across pages", function()
      local paths = {}
      for i = 1, 105 do paths[i] = "/r/all" end
      dead(paths, nil, true)
      -- 105 deliveries at once can overflow the sink's listen queue: let the
      -- emulator retry those
      local status, out, err = cli{ "retry", "--all", "--set-retries", "5" }
      assert.are.equal(0, status, err)
      assert.are.equal(105, #lines(out))
      assert.matches("retried 105 messages", err, 1, true)
      local _, n = dlq_ids()
      assert.are.equal(0, n)
      local bodies = E.wait_for(function()
        local set, count = {}, 0
        for _, r in ipairs(received("/r/all")) do
          if not set[r.body] then set[r.body], count = true, count + 1 end
        end
        if count == 105 then return set end
      end, 10)
      assert.is_truthy(bodies, "not every retried message was delivered")
    end)
  end)

  describe("delete", function()
    it("deletes ids and exits 1 for a missing one", function()
      local e = dead{ "/d/1", "/d/2" }
      local status, out, err = cli{ "delete", e[1].dlqId }
      assert.are.equal(0, status, err)
      assert.are.equal("deleted " .. e[1].dlqId .. "\n", out)
      local left, n = dlq_ids()
      assert.are.equal(1, n)
      assert.is_true(left[e[2].dlqId])

      status, out, err = cli{ "delete", "1-404", e[2].dlqId }
      assert.are.equal(1, status)
      assert.are.equal("deleted " .. e[2].dlqId .. "\n", out)
      assert.matches("1-404: not in the DLQ", err, 1, true)
      left, n = dlq_ids()
      assert.are.equal(0, n)
      assert.is_nil(next(left))
      assert.are.equal(0, #sink:received())
    end)

    it("deletes the messages matching a filter", function()
      local e = dead{ "/d/f/a", "/d/f/b" }
      local status, out, err = cli{ "delete", "--url", sink.url .. "/d/f/b" }
      assert.are.equal(0, status, err)
      assert.are.equal("deleted " .. e[2].dlqId .. "\n", out)
      assert.matches("deleted 1 message\n", err, 1, true)
      local left, n = dlq_ids()
      assert.are.equal(1, n)
      assert.is_true(left[e[1].dlqId])
    end)

    it("deletes everything with --all", function()
      local paths = {}
      for i = 1, 103 do paths[i] = "/d/all" end
      dead(paths, nil, true)
      local status, _, err = cli{ "delete", "--all" }
      assert.are.equal(0, status, err)
      assert.matches("deleted 103 messages", err, 1, true)
      local _, n = dlq_ids()
      assert.are.equal(0, n)
      assert.are.equal(0, #sink:received())
    end)
  end)

  describe("progress", function()
    it("draws a progress bar when stderr is a terminal", function()
      dead{ "/p/1", "/p/2" }
      local status, out = cli({ "retry", "--all" }, nil, true)
      assert.are.equal(0, status, out)
      assert.matches("\rretrying [" .. ("#"):rep(30) .. "] 2/2", out, 1, true)
      assert.matches("\r\27%[Kretried 2 messages\r?\n$", out)
    end)

    it("prints only a summary otherwise", function()
      local e = dead{ "/p/3" }
      local status, out, err = cli{ "delete", "--all" }
      assert.are.equal(0, status, err)
      assert.are.equal("deleted " .. e[1].dlqId .. "\n", out)
      assert.are.equal("deleted 1 message\n", err)
    end)
  end)

  describe("module", function()
    local cli_mod = require "qstash.cli"

    it("converts ISO-8601 times to unix milliseconds", function()
      assert.are.equal(0, cli_mod.iso_to_ms("1970-01-01"))
      assert.are.equal(1769860800000, cli_mod.iso_to_ms("2026-01-31T12:00:00Z"))
      assert.are.equal(1769860800250, cli_mod.iso_to_ms("2026-01-31T12:00:00.25Z"))
      assert.are.equal(1769853600000, cli_mod.iso_to_ms("2026-01-31T12:00:00+02:00"))
      assert.are.equal(1709251199000, cli_mod.iso_to_ms("2024-02-29 23:59:59"))
      assert.is_nil(cli_mod.iso_to_ms("2023-02-29"))
      assert.is_nil(cli_mod.iso_to_ms("2026-01-31T25:00"))
      assert.is_nil(cli_mod.iso_to_ms("2026-01-31T12:00:00 UTC"))
    end)

    it("maps command-line options to client options", function()
      local o = cli_mod.retry_opts{
        set_retries = 0, set_delay = 10, set_timeout = "30s", set_label = { "one" },
        set_header = { { "A", "1" }, { "A", "2" } }, set_flow_key = "k", set_flow_rate = 5,
        set_content_dedup = true, set_redact_body = true,
        set_callback_method = "PUT", set_callback_header = { { "B", "x" } },
      }
      assert.are.same({
        retries = 0, delay = 10, timeout = "30s", label = "one", headers = { A = "1, 2" },
        flow_control = { key = "k", rate = 5 }, content_based_deduplication = true,
        redact = { body = true }, callback_options = { method = "PUT", headers = { B = "x" } },
      }, o)
      if math.type then assert.are.equal("integer", math.type(o.retries)) end
    end)
  end)
end)
