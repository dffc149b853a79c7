-- qstash-dlq stats: counts of the (filtered) DLQ by URL, status, label and
-- age, from one pass over the pages.

local H = require "spec.support.cli"

describe("qstash-dlq stats", function()
  local cx = H.fixture{ time_scale = 0.001 }
  local sink, h

  setup(function() sink, h = cx.sink, cx.h end)

  -- 3 x /st/a (500, labels red / red+blue / none), 1 x /st/b (500), 2 x /st/a (503, label blue)
  local function fill()
    local labels = { "red", "red,blue", nil, nil }
    h:dead({ "/st/a", "/st/a", "/st/a", "/st/b" }, function(i)
      return labels[i] and { ["Upstash-Label"] = labels[i] } or {}
    end)
    h:dead({ "/st/a", "/st/a" }, { ["Upstash-Label"] = "blue" }, true, 503)
  end

  it("counts by URL, status, label and age band, as a table", function()
    fill()
    local status, out, err = h:run{ "stats" }
    assert.are.equal(0, status, err)
    local l = H.lines(out)
    assert.matches("^6 messages, created %d%d%d%d%-%d%d%-%d%dT[%d:]+Z to ", l[1])
    local a, b = sink.url .. "/st/a", sink.url .. "/st/b"
    local want = {
      "^URL +COUNT +SHARE$",
      "^" .. a:gsub("%p", "%%%0") .. " +5 +83%.3%%$",
      "^" .. b:gsub("%p", "%%%0") .. " +1 +16%.7%%$",
      "^STATUS +COUNT +SHARE$", "^500 +4 +66%.7%%$", "^503 +2 +33%.3%%$",
      "^LABEL +COUNT +SHARE$", "^blue +3 +50%.0%%$", "^%(none%) +2 +33%.3%%$", "^red +2 +33%.3%%$",
      "^AGE +COUNT +SHARE$", "^< 1h +6 +100%.0%%$",
    }
    for i, pattern in ipairs(want) do
      assert.matches(pattern, l[i + 1], nil, false)
    end
    assert.are.equal(#want + 1, #l)
  end)

  it("prints one JSON object with --json, and applies the filters", function()
    fill()
    local status, out, err = h:run{ "stats", "--json" }
    assert.are.equal(0, status, err)
    local doc = H.decode_lines(out)[1]
    assert.are.equal(6, doc.total)
    assert.are.same({ [sink.url .. "/st/a"] = 5, [sink.url .. "/st/b"] = 1 }, doc.url)
    assert.are.same({ ["500"] = 4, ["503"] = 2 }, doc.status)
    assert.are.same({ red = 2, blue = 3, ["(none)"] = 2 }, doc.label)
    assert.are.same({ ["< 1h"] = 6 }, doc.age)
    assert.is_true(doc.oldest <= doc.newest)

    status, out, err = h:run{ "stats", "--json", "--status", "503", "--url", sink.url .. "/st/a" }
    assert.are.equal(0, status, err)
    doc = H.decode_lines(out)[1]
    assert.are.equal(2, doc.total)
    assert.are.same({ blue = 2 }, doc.label)
  end)

  it("goes through every page", function()
    local paths = {}
    for i = 1, 230 do paths[i] = "/st/many" .. (i % 3) end
    h:dead(paths, nil, true)
    local status, out, err = h:run{ "stats", "--json" }
    assert.are.equal(0, status, err)
    local doc = H.decode_lines(out)[1]
    assert.are.equal(230, doc.total)
    assert.are.equal(77, doc.url[sink.url .. "/st/many1"])
    assert.are.equal(76, doc.url[sink.url .. "/st/many0"])
  end)

  it("says so for an empty DLQ", function()
    local status, out, err = h:run{ "stats" }
    assert.are.equal(0, status, err)
    assert.are.equal("0 messages\n", out)
    status, out = h:run{ "stats", "--json" }
    assert.are.equal(0, status)
    assert.matches('"total":0', out, 1, true)
    assert.matches('"url":{}', out, 1, true)
  end)

  it("exits 1 when a page fails", function()
    local status, out, err = h:run({ "--http-timeout", "2", "stats" }, { QSTASH_URL = "http://127.0.0.1:1" })
    assert.are.equal(1, status)
    assert.are.equal("", out)
    assert.matches("qstash: network", err, 1, true)
  end)

  it("puts ages into bands", function()
    local stats = require "qstash.cli.stats"
    local H1, D = 3600 * 1000, 24 * 3600 * 1000
    assert.are.equal("< 1h", stats.band(0))
    assert.are.equal("< 1h", stats.band(H1 - 1))
    assert.are.equal("1h-6h", stats.band(H1))
    assert.are.equal("6h-1d", stats.band(6 * H1))
    assert.are.equal("1d-3d", stats.band(D))
    assert.are.equal("3d-7d", stats.band(3 * D))
    assert.are.equal(">= 7d", stats.band(7 * D))
    assert.are.equal("unknown", stats.band(nil))
    local s = stats.new(10 * D)
    s:add{ url = "u", responseStatus = 500, createdAt = 10 * D - 2 * H1 }
    s:add{ url = "u", responseStatus = 500, createdAt = 0, labels = { "a", "b" } }
    s:add{ topicName = "group" }
    local doc = s:to_json()
    assert.are.same({ ["1h-6h"] = 1, [">= 7d"] = 1, unknown = 1 }, doc.age)
    assert.are.same({ u = 2, group = 1 }, doc.url)
    assert.are.same({ a = 1, b = 1, ["(none)"] = 2 }, doc.label)
    assert.are.same({ ["500"] = 2, ["(none)"] = 1 }, doc.status)
  end)
end)
