-- qstash-dlq sources: which queues, URL groups, flow-control keys (and
-- schedules) the (filtered) DLQ's entries came from, with counts, the newest
-- entry and each source's live state; a source that is gone shown as gone.

local E = require "spec.support.emulator"
local H = require "spec.support.cli"
local cjson = require "cjson"

describe("qstash-dlq sources", function()
  local cx = H.fixture{ time_scale = 0.001, quiet = false } -- a request log
  local emu, sink, h

  setup(function() emu, sink, h = cx.emu, cx.sink, cx.h end)

  local function ok_json(method, path, body)
    local status, doc, raw = emu:json(method, path, { body = body and cjson.encode(body),
      headers = body and { ["Content-Type"] = "application/json" } or nil })
    assert(status >= 200 and status < 300, method .. " " .. path .. ": " .. tostring(raw))
    return doc
  end

  -- Messages that failed into the DLQ through queue `queue`: one per path.
  local function dead_in_queue(queue, paths)
    sink:set_status(500)
    local ids = {}
    for i, path in ipairs(paths) do
      local doc = ok_json("POST", "/v2/enqueue/" .. queue .. "/" .. sink.url .. path, nil)
      ids[i] = doc.messageId
    end
    for _, id in ipairs(ids) do
      assert(E.wait_for(function() return h:in_dlq(id) end, 10), "message did not reach the DLQ")
    end
  end

  -- A DLQ of: 3 entries of queue "orders", 2 of flow-control key "tenant-1",
  -- 1 of URL group "fanout" (one endpoint), 1 of no source at all.
  local function fill()
    ok_json("POST", "/v2/queues", { queueName = "orders", parallelism = 2 })
    local headers = { ["Upstash-Retries"] = "0" }
    sink:set_status(500)
    for i = 1, 3 do
      local code, doc, r = emu:json("POST", "/v2/enqueue/orders/" .. sink.url .. "/q" .. i,
        { headers = headers, body = "q" .. i })
      assert(code == 200 or code == 201, r)
      assert(E.wait_for(function() return h:in_dlq(doc.messageId) end, 10), "queue message not in the DLQ")
    end
    h:dead({ "/f1", "/f2" }, { ["Upstash-Flow-Control-Key"] = "tenant-1",
      ["Upstash-Flow-Control-Value"] = "parallelism=2, rate=5, period=10" })
    ok_json("POST", "/v2/topics/fanout/endpoints", { endpoints = { { url = sink.url .. "/g" } } })
    sink:set_status(500)
    local code, doc, r = emu:json("POST", "/v2/publish/fanout", { headers = headers, body = "g" })
    assert(code == 200 or code == 201, r)
    assert(E.wait_for(function() return h:in_dlq(doc[1].messageId) end, 10), "group message not in the DLQ")
    h:dead{ "/plain" }
  end

  local function by_kind(list)
    local out = {}
    for _, s in ipairs(list) do out[s.kind .. ":" .. (s.id or s.name)] = s end
    return out
  end

  it("counts each source's entries, the newest, and its live state (table and --json)", function()
    fill()
    ok_json("POST", "/v2/queues/orders/pause")
    local all = h:dlq()
    local newest_queue = 0
    for _, m in ipairs(all) do
      if m.queueName == "orders" and m.createdAt > newest_queue then newest_queue = m.createdAt end
    end

    local status, out, err = h:run{ "sources", "--json" }
    assert.are.equal(0, status, err)
    local list = cjson.decode(out)
    assert.are.equal(3, #list)
    local s = by_kind(list)
    local q = s["queue:orders"]
    assert.are.same({ kind = "queue", name = "orders", count = 3, newest = newest_queue,
      state = { paused = true, lag = 0, parallelism = 2 } }, q)
    local f = s["flow_control_key:tenant-1"]
    assert.are.equal(2, f.count)
    assert.are.equal("tenant-1", f.name)
    assert.is_false(f.state.paused)
    assert.are.equal(2, f.state.parallelism)
    assert.are.equal(5, f.state.rate)
    assert.are.equal(10, f.state.period)
    assert.are.same({ endpoints = 1 }, s["url_group:fanout"].state)
    assert.are.equal(1, s["url_group:fanout"].count)
    -- the order: schedules, queues, URL groups, flow-control keys
    assert.are.same({ "queue", "url_group", "flow_control_key" }, { list[1].kind, list[2].kind, list[3].kind })

    status, out, err = h:run{ "sources" }
    assert.are.equal(0, status, err)
    local l = H.lines(out)
    assert.are.equal("6 of the 7 DLQ entries scanned came from 3 sources", l[1])
    assert.matches("^KIND +SOURCE +ENTRIES +NEWEST +STATE$", l[2])
    assert.matches("^queue +orders +3  %d%d%d%d%-%d%d%-%d%dT[%d:]+Z  paused, lag 0, parallelism 2$", l[3])
    assert.matches("^url group +fanout +1  %S+  1 endpoint$", l[4])
    assert.matches("^flow%-control key +tenant%-1 +2  %S+  active, parallelism 2, rate 5/10s$", l[5])
  end)

  it("shows a schedule firing into the DLQ: its entries, paused or its next run", function()
    sink:set_status(500)
    local code, doc, raw = emu:json("POST", "/v2/schedules/" .. sink.url .. "/tick", { body = "tick",
      headers = { ["Upstash-Cron"] = "* * * * *", ["Upstash-Retries"] = "0", ["Upstash-Schedule-Id"] = "ticker" } })
    assert(code == 200, raw)
    assert.are.equal("ticker", doc.scheduleId)
    local status, out, err
    assert(E.wait_for(function()
      status, out, err = h:run{ "sources", "--json" }
      local list = status == 0 and cjson.decode(out)
      return list and list[1] and list[1].count >= 2
    end, 10), "the schedule's runs did not reach the DLQ: " .. out .. err)
    local s = cjson.decode(out)[1]
    assert.are.equal("schedule", s.kind)
    assert.are.equal("ticker", s.id)
    assert.is_false(s.state.paused)
    assert.are.equal("number", type(s.state.nextScheduleTime))
    assert.are.equal("* * * * *", s.state.cron)
    status, out = h:run{ "sources", "--schedule-id", "ticker" }
    assert.are.equal(0, status)
    assert.matches("\nschedule +ticker +%d+  %S+  active, next run %d%d%d%d%-%d%d%-%d%dT[%d:]+Z\n", out)

    ok_json("PATCH", "/v2/schedules/ticker/pause")
    E.sleep(0.3) -- a run in flight lands
    local entries = 0
    for _, m in ipairs(h:dlq()) do if m.scheduleId == "ticker" then entries = entries + 1 end end
    status, out, err = h:run{ "sources", "--json" }
    assert.are.equal(0, status, err)
    s = cjson.decode(out)[1]
    assert.are.equal(entries, s.count)
    assert.is_true(s.state.paused)
    status, out = h:run{ "sources" }
    assert.matches("\nschedule +ticker +%d+  %S+  paused\n", out)
  end)

  it("takes the filters of list and stats, and reads each source's state once", function()
    fill()
    local offset = #emu:log()
    local status, out, err = h:run{ "sources", "--queue", "orders", "--json" }
    assert.are.equal(0, status, err)
    assert.are.same({ { kind = "queue", name = "orders", count = 3, newest = cjson.decode(out)[1].newest,
      state = { paused = false, lag = 0, parallelism = 2 } } }, cjson.decode(out))
    E.sleep(0.2) -- the log line of the last request
    local gets = {}
    for line in emu:log():sub(offset + 1):gmatch("[^\n]+") do
      local method, target = line:match('"(%u+) (/v2/%S*) HTTP/1%.1"')
      if method then
        assert.are.equal("GET", method, target)
        gets[#gets + 1] = target:match("^[^?]*")
      end
    end
    assert.are.same({ "/v2/dlq", "/v2/queues/orders" }, gets)

    status, out, err = h:run{ "sources", "--flow-control-key", "tenant-1" }
    assert.are.equal(0, status, err)
    assert.matches("2 of the 2 DLQ entries scanned came from 1 source\n", out, 1, true)
  end)

  it("shows a source that no longer exists as gone, not as an error", function()
    fill()
    ok_json("DELETE", "/v2/topics/fanout")
    local status, out, err = h:run{ "sources", "--json" }
    assert.are.equal(0, status, err)
    local g = by_kind(cjson.decode(out))["url_group:fanout"]
    assert.are.same({ gone = true }, g.state)
    status, out = h:run{ "sources", "--url-group", "fanout" }
    assert.are.equal(0, status)
    assert.matches("url group +fanout +1  %S+  gone %(no longer exists%)\n", out)
  end)

  it("says so when no entry came from a source; --json gives an empty array", function()
    local status, out, err = h:run{ "sources" }
    assert.are.equal(0, status, err)
    assert.are.equal("no sources: none of the 0 DLQ entries scanned came from a schedule, queue, URL group " ..
      "or flow-control key\n", out)
    h:dead{ "/plain" }
    status, out = h:run{ "sources", "--json" }
    assert.are.equal(0, status)
    assert.are.equal("[]\n", out)
  end)

  it("refuses a filter value that selects nothing, like every command", function()
    local status, out, err = h:run{ "sources", "--label", " , " }
    assert.are.equal(2, status)
    assert.are.equal("", out)
    assert.matches("--label ' , ' selects nothing", err, 1, true)
  end)

  it("stops at its page cap, prints what it counted and exits 1 saying why", function()
    dead_in_queue("orders", { "/a", "/b", "/c" })
    local sources = require "qstash.cli.sources"
    local cli = require "qstash.cli"
    local qstash = require "qstash"
    local page, max = sources.PAGE, sources.MAX_PAGES
    sources.PAGE, sources.MAX_PAGES = 1, 2
    local function buffer()
      local b = { parts = {} }
      function b.write(self, ...) for i = 1, select("#", ...) do self.parts[#self.parts + 1] = select(i, ...) end end
      function b.text(self) return table.concat(self.parts) end
      return b
    end
    local out, err = buffer(), buffer()
    local module = setmetatable({ new = function(config)
      config.token = emu.token
      return qstash.new(config)
    end }, { __index = qstash })
    local ok, status = pcall(cli.main, { "--api-url", emu.url, "sources", "--json" },
      { stdout = out, stderr = err, is_tty = false, qstash = module })
    sources.PAGE, sources.MAX_PAGES = page, max
    assert(ok, status)
    assert.are.equal(1, status)
    assert.matches("cap of 2 pages (2 entries)", err:text(), 1, true)
    local list = cjson.decode(out:text())
    assert.are.equal(2, list[1].count)
  end)
end)
