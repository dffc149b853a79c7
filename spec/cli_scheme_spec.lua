-- qstash-dlq's flag scheme: one flag, one meaning, in every position and
-- every command; exit codes from the parser and the error kinds.

local E = require "spec.support.emulator"
local H = require "spec.support.cli"

describe("qstash-dlq flag scheme", function()
  local cx = H.fixture{ time_scale = 0.001 }
  local emu, sink, tmp, h

  setup(function() emu, sink, tmp, h = cx.emu, cx.sink, cx.tmp, cx.h end)

  local function sorted(t)
    table.sort(t)
    return t
  end

  -- The DLQ ids each command picks with the same filter flags.
  local function picked(filter)
    local got = {}
    local function run(args)
      for _, f in ipairs(filter) do args[#args + 1] = f end
      local status, out, err = h:run(args)
      assert.are.equal(0, status, table.concat(args, " ") .. ": " .. err)
      return out
    end
    local ids = {}
    for _, m in ipairs(H.decode_lines(run{ "list", "--json", "--all-pages" })) do ids[#ids + 1] = m.dlqId end
    got.list = sorted(ids)
    ids = {}
    for _, m in ipairs(H.decode_lines(run{ "export" })) do ids[#ids + 1] = m.dlqId end
    got.export = sorted(ids)
    got.stats = H.decode_lines(run{ "stats", "--json" })[1].total
    for _, verb in ipairs { "retry", "delete" } do
      ids = {}
      local out = run{ verb, "--dry-run" }
      for id in out:gmatch("\n(%d+%-%d+)%s") do ids[#ids + 1] = id end
      got[verb] = sorted(ids)
      got[verb .. "_count"] = tonumber(out:match("^dry run: (%d+) message"))
    end
    return got
  end

  it("filters select the same entries in list, export, stats, retry and delete", function()
    local a = h:dead({ "/s/a", "/s/b" }, { ["Upstash-Label"] = "red" })
    local b = h:dead({ "/s/a" }, { ["Upstash-Label"] = "blue" }, false, 404)
    local all = { a[1], a[2], b[1] }
    local cases = {
      { { "--url", sink.url .. "/s/a" }, { a[1], b[1] } },
      { { "--label", "red" }, { a[1], a[2] } },
      { { "--filter-label", "red" }, { a[1], a[2] } },  -- the old spelling, same meaning
      { { "--status", "404" }, { b[1] } },
      { { "--status", "500", "--url", sink.url .. "/s/a" }, { a[1] } },
      { { "--label", "red", "--label", "blue" }, all },
      { { "--message-id", a[2].messageId }, { a[2] } },
      { { "--from", ("%d"):format(b[1].createdAt) }, { b[1] } },
      { { "--to", ("%d"):format(a[2].createdAt) }, { a[1], a[2] } },
      { { "--caller-ip", "203.0.113.9" }, {} },
    }
    for _, c in ipairs(cases) do
      local want = {}
      for _, e in ipairs(c[2]) do want[#want + 1] = e.dlqId end
      sorted(want)
      local got = picked(c[1])
      local what = table.concat(c[1], " ")
      assert.are.same(want, got.list, what)
      assert.are.same(want, got.export, what)
      assert.are.equal(#want, got.stats, what)
      assert.are.same(want, got.retry, what)
      assert.are.same(want, got.delete, what)
      assert.are.equal(#want, got.retry_count, what)
      assert.are.equal(#want, got.delete_count, what)
    end
    local _, n = h:dlq_ids()
    assert.are.equal(3, n) -- the dry runs changed nothing
  end)

  it("--label filters and --set-label sets, in the same retry", function()
    local e = h:dead({ "/s/l", "/s/l" }, function(i) return { ["Upstash-Label"] = i == 1 and "old" or "other" } end)
    local status, out, err = h:run{ "retry", "--label", "old", "--set-label", "new", "--set-delay", "1d" }
    assert.are.equal(0, status, err)
    local id, new_id = out:match("^(%S+) %-> (msg_%S+)\n$")
    assert.are.equal(e[1].dlqId, id)
    local code, m, raw = emu:json("GET", "/v2/messages/" .. new_id)
    assert.are.equal(200, code, raw)
    assert.are.same({ "new" }, m.labels)
    local left = h:dlq_ids()
    assert.is_true(left[e[2].dlqId])
  end)

  it("sends each --set- flag as its header, and nothing for a setting left out", function()
    -- the sink stands in for the API: it records the request and answers 201
    sink:set_status(201, { body = '{"messageId":"msg_new"}', headers = { ["Content-Type"] = "application/json" } })
    local status, out, err = h:run{ "--api-url", sink.url, "retry", "1-0",
      "--set-retries", "2", "--set-delay", "10", "--set-retry-delay", "1000 * retried",
      "--set-not-before", "1900000000", "--set-timeout", "1m", "--set-method", "put",
      "--set-callback", "https://example.com/cb", "--set-failure-callback", "https://example.com/fcb",
      "--set-callback-method", "PATCH", "--set-callback-timeout", "5", "--set-callback-retries", "1",
      "--set-callback-retry-delay", "500", "--set-callback-header", "X-Cb: c",
      "--set-failure-callback-method", "POST", "--set-failure-callback-timeout", "6s",
      "--set-failure-callback-retries", "0", "--set-failure-callback-retry-delay", "700",
      "--set-failure-callback-header", "X-Fcb: f",
      "--set-dedup-id", "d-1", "--set-content-dedup", "--set-label", "a", "--set-label", "b",
      "--set-header", "X-One: 1", "--set-flow-key", "fk", "--set-flow-parallelism", "2",
      "--set-flow-rate", "10", "--set-flow-period", "1m", "--set-redact-body", "--set-redact-all-headers" }
    assert.are.equal(0, status, err)
    assert.are.equal("1-0 -> msg_new\n", out)
    local got = sink:received()
    assert.are.equal(1, #got)
    local req = got[1]
    assert.are.equal("POST", req.method)
    assert.are.equal("/v2/dlq/retry/1-0", req.target)
    local want = {
      ["Upstash-Retries"] = "2", ["Upstash-Delay"] = "10s", ["Upstash-Retry-Delay"] = "1000 * retried",
      ["Upstash-Not-Before"] = "1900000000", ["Upstash-Timeout"] = "1m", ["Upstash-Method"] = "PUT",
      ["Upstash-Callback"] = "https://example.com/cb", ["Upstash-Failure-Callback"] = "https://example.com/fcb",
      ["Upstash-Callback-Method"] = "PATCH", ["Upstash-Callback-Timeout"] = "5s",
      ["Upstash-Callback-Retries"] = "1", ["Upstash-Callback-Retry-Delay"] = "500",
      ["Upstash-Callback-Forward-X-Cb"] = "c",
      ["Upstash-Failure-Callback-Method"] = "POST", ["Upstash-Failure-Callback-Timeout"] = "6s",
      ["Upstash-Failure-Callback-Retries"] = "0", ["Upstash-Failure-Callback-Retry-Delay"] = "700",
      ["Upstash-Failure-Callback-Forward-X-Fcb"] = "f",
      ["Upstash-Deduplication-Id"] = "d-1", ["Upstash-Content-Based-Deduplication"] = "true",
      ["Upstash-Label"] = "a,b", ["Upstash-Forward-X-One"] = "1",
      ["Upstash-Flow-Control-Key"] = "fk", ["Upstash-Flow-Control-Value"] = "parallelism=2, rate=10, period=1m",
      ["Upstash-Redact-Fields"] = "body,header",
    }
    for name, value in pairs(want) do
      assert.are.equal(value, sink:header(req, name), name)
    end
    local upstash = 0
    for _, hv in ipairs(req.headers) do
      if hv[1]:lower():match("^upstash%-") then upstash = upstash + 1 end
    end
    local n = 0
    for _ in pairs(want) do n = n + 1 end
    assert.are.equal(n, upstash)

    sink:clear()
    sink:set_status(201, { body = '{"messageId":"msg_new"}', headers = { ["Content-Type"] = "application/json" } })
    local code, _, why = h:run{ "--api-url", sink.url, "retry", "1-0", "--set-no-content-dedup" }
    assert.are.equal(0, code, why)
    req = sink:received()[1]
    assert.are.equal("false", sink:header(req, "Upstash-Content-Based-Deduplication"))
    for _, hv in ipairs(req.headers) do
      if hv[1]:lower():match("^upstash%-") then
        assert.are.equal("upstash-content-based-deduplication", hv[1]:lower())
      end
    end
  end)

  it("ends a scan whose server repeats a cursor, as a decode failure", function()
    -- the sink stands in for the API and answers every page with cursor "7"
    sink:set_status(200, { headers = { ["Content-Type"] = "application/json" },
      body = '{"messages":[{"dlqId":"1-0","url":"https://example.com/a","responseStatus":500}],"cursor":"7"}' })
    for _, args in ipairs { { "stats" }, { "retry", "--all", "--report", tmp .. "/cursor.jsonl" },
                            { "export" }, { "list", "--all-pages" } } do
      table.insert(args, 1, sink.url)
      table.insert(args, 1, "--api-url")
      local status, _, err = h:run(args)
      assert.are.equal(1, status, table.concat(args, " "))
      assert.matches("decode: the server repeated the cursor 7: paging stopped", err, 1, true)
    end
    for _, r in ipairs(sink:received()) do
      assert.are.equal("GET", r.method) -- nothing was retried
    end
    local summary = H.read_jsonl(tmp .. "/cursor.jsonl")[1]
    assert.are.equal("decode", summary.error.kind)
  end)

  it("keeps the old unambiguous spellings as hidden aliases", function()
    local e = h:dead{ "/s/alias" }
    local status, out, err = h:run{ "retry", e[1].dlqId, "--retries", "0", "--header", "X-Old: yes",
      "--base-url", emu.url }
    assert.are.equal(0, status, err)
    assert.matches("^" .. e[1].dlqId:gsub("%p", "%%%0") .. " %-> msg_", out)
    local got = E.wait_for(function()
      for _, r in ipairs(sink:received()) do
        if r.target == "/s/alias" then return r end
      end
    end, 10)
    assert.are.equal("yes", sink:header(got, "X-Old"))
    local _, help = h:run{ "retry", "--help" }
    for _, old in ipairs { "--filter-label", "--base-url", " --retries", " --header", " --method" } do
      assert.not_matches(old, help, 1, true)
    end
  end)

  it("refuses the spellings that meant two things, saying what to use", function()
    local status, out, err = h:run{ "--timeout", "5", "list" }
    assert.are.equal(2, status)
    assert.are.equal("", out)
    assert.matches("--http-timeout is the limit of one HTTP attempt; retry's delivery timeout is --set-timeout",
      err, 1, true)
    status, out, err = h:run{ "retry", "1-0", "--timeout", "5" }
    assert.are.equal(2, status)
    assert.are.equal("", out)
    assert.matches("--set-timeout", err, 1, true)
    status, out, err = h:run{ "--url", emu.url, "list" }
    assert.are.equal(2, status)
    assert.are.equal("", out)
    assert.matches("the API base URL is --api-url", err, 1, true)
  end)

  it("takes the connection flags before or after the command", function()
    h:dead{ "/s/conn" }
    local env = { QSTASH_URL = "http://127.0.0.1:1" }
    for _, args in ipairs {
      { "--api-url", emu.url, "--http-timeout", "5", "stats", "--json" },
      { "stats", "--json", "--api-url", emu.url, "--http-timeout", "5" },
      { "--http-timeout", "5", "stats", "--api-url", emu.url, "--json" },
    } do
      local status, out, err = h:run(args, env)
      assert.are.equal(0, status, err)
      assert.are.equal(1, H.decode_lines(out)[1].total)
    end
  end)

  it("shows the scheme in --help", function()
    local status, out = h:run{ "--help" }
    assert.are.equal(0, status)
    assert.matches("Flags mean the same in every command and position", out, 1, true)
    assert.matches("what retry sets on the new message: --set-*", out, 1, true)
    assert.matches("connection (before or after the command): --api-url --http-timeout --dev", out, 1, true)
    for _, cmd in ipairs { "list", "stats", "export", "retry", "delete", "sources" } do
      status, out = h:run{ cmd, "--help" }
      assert.are.equal(0, status)
      assert.matches("Filters (the same in list, stats, export, retry, delete and sources):", out, 1, true)
      assert.matches("--label <label>       Only messages with this label.", out, 1, true)
    end
  end)

  describe("exit status", function()
    it("is 2 for what the parser refuses and for what the module refuses before sending", function()
      assert.are.equal(2, (h:run{ "list", "--status", "5xx" }))
      assert.are.equal(2, (h:run{ "delete" }))
      assert.are.equal(2, (h:run{ "retry", "--all", "--dry-run", "--set-retries", "1", "--set-method", "FETCH" }))
      assert.are.equal(2, (h:run{ "retry", "1-0", "--set-callback", "ftp://example.com/cb" }))
      assert.are.equal(0, #sink:received())
    end)

    it("is 2 for an id the module refuses, shown without its control bytes", function()
      local status, out, err = h:run{ "get", "a\27[31mb" }
      assert.are.equal(2, status)
      assert.are.equal("", out)
      assert.not_matches("\27", err, 1, true)
      assert.matches("a?[31mb: ", err, 1, true)
      assert.are.equal(2, (h:run{ "delete", "a\27b", "--dry-run" }))
    end)

    it("is 1 when a request fails, whatever its message", function()
      assert.are.equal(1, (h:run{ "get", "1-404" }))
      assert.are.equal(1, (h:run({ "list" }, { QSTASH_TOKEN = "wrong" })))
      assert.are.equal(1, (h:run({ "--http-timeout", "2", "stats" }, { QSTASH_URL = "http://127.0.0.1:1" })))
    end)

    it("comes from the type of what was raised, not from its text", function()
      local context = require "qstash.cli.context"
      local ctx = context.new{}
      local qstash = require "qstash"
      local client = qstash.new{ base_url = "http://127.0.0.1:1", token = "t", retry = false }
      local ok, err = pcall(client.dlq_get, client, "1-0")
      assert.is_false(ok)
      assert.is_true(qstash.is_error(err))
      assert.are.equal(1, ctx:exit_for(err))
      assert.are.equal(1, ctx:exit_for(context.failure("decode", "bad argument in a message is still a failure")))
      assert.are.equal(2, ctx:exit_for("any plain string the module raises is an argument error"))
    end)
  end)
end)
