-- batch and batch_json: POST /v2/batch, against the emulator (per-item queue,
-- URL-group fan-out, a refused item beside the others) and against the test
-- server (the exact body, the answers' shapes, resend safety, bad input that
-- sends nothing).
local E = require "spec.support.emulator"
local server = require "spec.support.server"
local qstash = require "qstash"
local cjson = require "cjson"

describe("batch against the emulator", function()
  local fx = E.fixture{ time_scale = 0.001 }
  local emu, sink, client

  setup(function()
    emu, sink = fx.emu, fx.sink
    client = qstash.new{ token = emu.token, base_url = emu.url, retry = { base_delay = 0.01 }, timeout = 5 }
  end)
  teardown(function() if client then client:close() end end)

  local function add_group(name, urls)
    local eps = {}
    for i, u in ipairs(urls) do eps[i] = { url = u, name = "ep" .. i } end
    local status = emu:request("POST", "/v2/topics/" .. name .. "/endpoints",
      { body = cjson.encode{ endpoints = eps }, headers = { ["Content-Type"] = "application/json" } })
    assert.equal(200, status)
  end

  it("answers one slot per item in order: a URL, a URL group's array, a refused item's error", function()
    add_group("fanout", { sink.url .. "/g1", sink.url .. "/g2" })
    local res = client:batch{
      { destination = sink.url .. "/one", body = "first", opts = { headers = { ["X-Seq"] = "1" } } },
      { destination = "fanout", body = "to the group" },
      { destination = "no-such-group", body = "refused" },
      { destination = sink.url .. "/four", body = "last", queue = "q-batch" },
      { destination = sink.url .. "/later", queue = "q-later", opts = { delay = "1d" } },
    }
    assert.equal(5, #res)
    assert.matches("^msg_", res[1].messageId)
    assert.is_false(res[1].deduplicated)
    assert.equal(2, #res[2])
    assert.matches("^msg_", res[2][1].messageId)
    assert.equal(sink.url .. "/g1", res[2][1].url)
    assert.equal(sink.url .. "/g2", res[2][2].url)
    assert.is_string(res[3].error)
    assert.is_nil(res[3].messageId)
    assert.matches("^msg_", res[4].messageId)
    -- the item's queue and options reached QStash's message
    local m5 = client:message(res[5].messageId)
    assert.equal("q-later", m5.queueName)
    client:cancel(res[5].messageId)
    -- every item QStash accepted is delivered, the refused one hides none
    assert.is_true(E.wait_for(function() return #sink:received() >= 4 end, 5))
    local bodies = {}
    for _, r in ipairs(sink:received()) do
      bodies[r.target] = r.body
      if r.target == "/one" then assert.equal("1", sink:header(r, "X-Seq")) end
    end
    assert.same({ ["/one"] = "first", ["/g1"] = "to the group", ["/g2"] = "to the group", ["/four"] = "last" },
      bodies)
  end)

  it("batch_json encodes each body and sends it as application/json", function()
    local res = client:batch_json{
      -- delayed: still pending (not yet delivered and gone) when it is read
      { destination = sink.url .. "/j", body = { n = 1, s = "é" }, opts = { delay = "1d" } },
      { destination = sink.url .. "/k" },
    }
    assert.equal(2, #res)
    local m = client:message(res[1].messageId)
    assert.same({ n = 1, s = "é" }, cjson.decode(m.body))
    assert.same({ "application/json" }, m.header["Content-Type"])
    client:cancel(res[1].messageId)
  end)

  it("answers deduplicated = true for an item QStash has seen", function()
    local item = { destination = sink.url .. "/d", body = "x", opts = { deduplication_id = "dup-1" } }
    local first = client:batch{ item }
    local again = client:batch{ item }
    assert.is_false(first[1].deduplicated)
    assert.is_true(again[1].deduplicated)
    assert.equal(first[1].messageId, again[1].messageId)
  end)

  it("gives each item its own slot when QStash deduplicates items of the same request", function()
    local res = client:batch{
      { destination = sink.url .. "/d1", body = "same", opts = { deduplication_id = "dup-in-1" } },
      { destination = sink.url .. "/d2", body = "other" },
      { destination = sink.url .. "/d1", body = "same", opts = { deduplication_id = "dup-in-1" } },
      { destination = sink.url .. "/d3", body = "c", opts = { content_based_deduplication = true } },
      { destination = sink.url .. "/d3", body = "c", opts = { content_based_deduplication = true } },
    }
    assert.equal(5, #res)
    assert.is_false(res[1].deduplicated)
    assert.is_true(res[3].deduplicated)
    assert.equal(res[1].messageId, res[3].messageId)
    assert.is_false(res[2].deduplicated)
    assert.not_equal(res[1].messageId, res[2].messageId)
    assert.is_false(res[4].deduplicated)
    assert.is_true(res[5].deduplicated)
    assert.equal(res[4].messageId, res[5].messageId)
    -- three messages, each delivered once (only this test's paths: a late
    -- delivery of an earlier test may reach the sink)
    local function mine()
      local paths = {}
      for _, r in ipairs(sink:received()) do
        if r.target:match("^/d%d$") then paths[#paths + 1] = r.target end
      end
      return paths
    end
    local got = E.wait_for(function()
      local paths = mine()
      if #paths >= 3 then return paths end
    end, 10)
    assert.is_table(got, "the three messages were not delivered")
    E.sleep(0.2) -- a duplicate delivery would come now
    local paths = mine()
    table.sort(paths)
    assert.same({ "/d1", "/d2", "/d3" }, paths)
  end)

  it("runs through qstash.safe, prepare/step and the module-level functions alike", function()
    local safe = require "qstash.safe"
    local sc = safe.new{ token = emu.token, base_url = emu.url }
    local res = sc:batch{ { destination = sink.url .. "/s" } }
    assert.matches("^msg_", res[1].messageId)
    sc:close()
    local call = client:prepare("batch", { { destination = sink.url .. "/p" } })
    local what, req = call:step()
    assert.equal("send", what)
    assert.equal("POST", req.method)
    assert.equal(emu.url .. "/v2/batch", req.url)
  end)
end)

describe("batch on the wire", function()
  local srv, client

  setup(function()
    srv = server.start()
    client = qstash.new{ token = "tok-batch", base_url = srv.url, retry = { attempts = 4, base_delay = 0.01 },
      timeout = 2 }
  end)
  teardown(function()
    client:close()
    srv:stop()
  end)
  before_each(function() srv:reset() end)

  it("sends one JSON array: destination, the options as headers, body, queue", function()
    srv:script{ { status = 200, json = { { messageId = "m1" }, { { messageId = "m2", url = "u" } } } } }
    local res = client:batch{
      { destination = "https://example.com/a?x=1", body = 'say "hi"\n', queue = "q.1",
        opts = { retries = 2, method = "put", flow_control = { key = "k", parallelism = 5 },
                 headers = { ["X-T"] = "t" }, content_type = "text/plain" } },
      { destination = "grp" },
    }
    assert.same({ { messageId = "m1", deduplicated = false },
                  { { messageId = "m2", url = "u", deduplicated = false } } }, res)
    local req = srv:requests()[1]
    assert.equal("POST", req.method)
    assert.equal("/v2/batch", req.target)
    assert.equal("application/json", srv:header(req, "Content-Type"))
    assert.is_nil(srv:header(req, "Upstash-Retries"), "config headers go in each item, never outside")
    local sent = cjson.decode(req.body)
    assert.same({
      { destination = "https://example.com/a?x=1", body = 'say "hi"\n', queue = "q.1",
        headers = { ["Upstash-Retries"] = "2", ["Upstash-Method"] = "PUT",
                    ["Upstash-Flow-Control-Key"] = "k", ["Upstash-Flow-Control-Value"] = "parallelism=5",
                    ["Upstash-Forward-X-T"] = "t", ["Content-Type"] = "text/plain" } },
      { destination = "grp" },
    }, sent)
  end)

  it("takes a lone object as the answer of a one-item batch", function()
    local res = client:batch{ { destination = "https://example.com" } }
    assert.same({ { messageId = "msg_test", deduplicated = false } }, res)
  end)

  it("refuses an answer that does not give one slot per item", function()
    srv:script{ { status = 200, json = { { messageId = "m1" } } } }
    local ok, err = pcall(client.batch, client, { { destination = "https://e.com/1" }, { destination = "https://e.com/2" } })
    assert.is_false(ok)
    assert.equal("decode", err.kind)
    srv:script{ { status = 200, json = { { messageId = "m1" }, { nope = 1 } } } }
    ok, err = pcall(client.batch, client, { { destination = "https://e.com/1" }, { destination = "https://e.com/2" } })
    assert.is_false(ok)
    assert.equal("decode", err.kind)
  end)

  it("is not sent again after an unknown outcome unless every item has a deduplication_id", function()
    local items = { { destination = "https://e.com/1", opts = { deduplication_id = "a" } },
                    { destination = "https://e.com/2" } }
    srv:script{ { fault = "close", ["repeat"] = 5 } }
    local ok, err = pcall(client.batch, client, items)
    assert.is_false(ok)
    assert.is_true(err.ambiguous)
    assert.equal(1, #srv:requests())
    srv:reset()
    items[2].opts = { deduplication_id = "b" }
    srv:script{ { fault = "close", ["repeat"] = 2 }, { status = 200, json = { { messageId = "m1" }, { messageId = "m2" } } } }
    local res = client:batch(items)
    assert.equal("m2", res[2].messageId)
    assert.equal(3, #srv:requests())
  end)

  it("raises an argument error naming the item, and sends nothing, for bad input", function()
    local bad = {
      { {}, "items must not be empty" },
      { "x", "items must be a list" },
      { { { destination = "https://e.com" }, extra = 1 }, "items must be a list" },
      { { { destination = "https://e.com" }, { body = "b" } }, "item 2: destination must be" },
      { { { destination = "not a url" } }, "item 1: destination must be an http%(s%) URL" },
      { { { destination = "https://e.com", queue = "a/b" } }, "item 1: queue name must be of" },
      { { { destination = "https://e.com", queue = "" } }, "item 1: queue name must be 1 to 256 bytes" },
      { { { destination = "https://e.com", body = 5 } }, "item 1: body must be a string" },
      { { { destination = "https://e.com", body = "\255" } }, "item 1: body is not UTF%-8" },
      { { { destination = "https://e.com", opts = { retries = -1 } } }, "item 1: option 'retries'" },
      { { { destination = "https://e.com", opts = { headers = { X = "\192" } } } }, "item 1: a header value" },
      { { { destination = "https://e.com", opts = { follow = true } } }, "item 1: option 'follow'" },
      { { { destination = "https://e.com", bodyy = "b" } }, "item 1: unknown item key 'bodyy'; did you mean 'body'" },
      { { "https://e.com" }, "item 1: must be a table" },
    }
    for _, case in ipairs(bad) do
      local ok, err = pcall(client.batch, client, case[1])
      assert.is_false(ok)
      assert.is_string(err)
      assert.matches("bad argument #1 to 'batch'", err, 1, true)
      assert.matches(case[2], err)
    end
    local ok, err = pcall(client.batch_json, client, { { destination = "https://e.com", body = { f = print } } })
    assert.is_false(ok)
    assert.matches("item 1: body cannot be encoded as JSON", err)
    ok, err = pcall(client.batch_json, client, { { destination = "https://e.com", opts = { content_type = "text/plain" } } })
    assert.is_false(ok)
    assert.matches("item 1:", err)
    assert.equal(0, #srv:requests())
  end)
end)
