-- qstash-dlq export: the (filtered) messages whole, as JSON Lines.

local E = require "spec.support.emulator"
local H = require "spec.support.cli"

describe("qstash-dlq export", function()
  local cx = H.fixture{ time_scale = 0.001 }
  local emu, sink, tmp, h

  setup(function() emu, sink, tmp, h = cx.emu, cx.sink, cx.tmp, cx.h end)

  -- The message as GET /v2/dlq/{id} gives it.
  local function stored(id)
    local status, doc, raw = emu:json("GET", "/v2/dlq/" .. id)
    assert.are.equal(200, status, raw)
    return doc
  end

  it("writes every message whole to stdout: body, headers and the last response", function()
    local e = h:dead({ "/x/1", "/x/2" }, { ["Upstash-Forward-X-Tenant"] = "t-42" }, false,
      { status = 500, body = "upstream says no", headers = { ["X-Why"] = "down" } })
    local status, out, err = h:run{ "export" }
    assert.are.equal(0, status, err)
    local got = H.decode_lines(out)
    assert.are.equal(2, #got)
    for i, m in ipairs(got) do
      assert.are.same(stored(e[i].dlqId), m)
      assert.are.equal("body " .. i, m.body)
      local tenant
      for k, v in pairs(m.header) do
        if k:lower() == "x-tenant" then tenant = v end
      end
      assert.are.same({ "t-42" }, tenant)
      assert.are.equal(500, m.responseStatus)
      assert.are.equal("upstream says no", m.responseBody)
      assert.are.same({ "down" }, m.responseHeader["X-Why"])
    end
    assert.matches("exported 2 messages\n$", err)
  end)

  it("writes to a file of its own, never over an existing one", function()
    local e = h:dead{ "/x/f", "/x/g" }
    local path = tmp .. "/export.jsonl"
    local status, out, err = h:run{ "export", "--url", sink.url .. "/x/g", "--output", path }
    assert.are.equal(0, status, err)
    assert.are.equal("", out)
    assert.matches("exported 1 message to " .. path, err, 1, true)
    local got = H.read_jsonl(path)
    assert.are.equal(1, #got)
    assert.are.same(stored(e[2].dlqId), got[1])
    local p = io.popen("stat -c %a " .. E.shell_quote(path))
    assert.are.equal("600", p:read("*l"))   -- bodies and headers: the owner's only
    p:close()

    local before = E.read_file(path)
    status, out, err = h:run{ "export", "-o", path }
    assert.are.equal(2, status)
    assert.are.equal("", out)
    assert.matches("exists and is not empty", err, 1, true)
    assert.are.equal(before, E.read_file(path))
  end)

  it("exports given ids and exits 1 for one not in the DLQ", function()
    local e = h:dead{ "/x/i1", "/x/i2", "/x/i3" }
    local status, out, err = h:run{ "export", e[3].dlqId, "1-404", e[1].dlqId }
    assert.are.equal(1, status)
    local got = H.decode_lines(out)
    assert.are.equal(2, #got)
    assert.are.equal(e[3].dlqId, got[1].dlqId)
    assert.are.equal(e[1].dlqId, got[2].dlqId)
    assert.matches("1-404: not in the DLQ", err, 1, true)
    assert.are.equal(2, (h:run{ "export", e[1].dlqId, "--url", sink.url }))
  end)

  it("follows the cursor through every page, changing nothing", function()
    local paths = {}
    for i = 1, 150 do paths[i] = "/x/many" end
    h:dead(paths, nil, true)
    local status, out, err = h:run{ "export" }
    assert.are.equal(0, status, err)
    local seen, n = {}, 0
    for _, m in ipairs(H.decode_lines(out)) do
      assert.is_nil(seen[m.dlqId])
      seen[m.dlqId], n = true, n + 1
    end
    assert.are.equal(150, n)
    local _, left = h:dlq_ids()
    assert.are.equal(150, left)
  end)
end)
