-- qstash-dlq logs with hostile message ids: each id reaches the server as
-- one percent-encoded query value naming exactly that id, or is refused
-- (exit 2) before anything is sent. A sink stands in for the API and records
-- the request targets.

local E = require "spec.support.emulator"
local H = require "spec.support.cli"

describe("qstash-dlq logs with hostile ids", function()
  local sink, tmp, h

  setup(function()
    tmp = E.tmpdir()
    sink = E.start_sink()
    h = H.new({ url = sink.url, token = "t" }, sink, tmp)
  end)
  teardown(function()
    if sink then sink:stop() end
    if tmp then os.execute("rm -rf " .. E.shell_quote(tmp)) end
  end)

  local function unescape(s)
    return (s:gsub("%%(%x%x)", function(x) return string.char(tonumber(x, 16)) end))
  end

  -- The query of target as (key, decoded value) pairs, in order.
  local function pairs_of(target)
    local out = {}
    for part in (target:match("%?(.*)$") or ""):gmatch("[^&]+") do
      local k, v = part:match("^([^=]*)=(.*)$")
      out[#out + 1] = { unescape(k or part), unescape(v or "") }
    end
    return out
  end

  it("sends each id as one percent-encoded messageId naming exactly it", function()
    local ids = { "msg/../../v2/dlq", "msg?all=true", "msg&messageId=other", "msg#frag", "msg%2Cother",
      "msg%", "msg with spaces", "msg;x", "msg+plus", "msg=eq", "\226\130\172uro", "msg\"'<>\\", ("m"):rep(512) }
    for _, id in ipairs(ids) do
      sink:clear()
      sink:set_status(200, { headers = { ["Content-Type"] = "application/json" }, body = '{"logs":[]}' })
      local status, _, err = h:run{ "logs", id }
      assert.are.equal(1, status, err) -- "no log entries": the request went out
      assert.matches("no log entries", err, 1, true)
      local got = sink:received()
      assert.are.equal(1, #got, id)
      local target = got[1].target
      assert.matches("^/v2/logs%?", target)
      assert.not_matches("#", target, 1, true)
      local ps, seen = pairs_of(target), 0
      for _, p in ipairs(ps) do
        if p[1] == "messageId" then
          seen = seen + 1
          assert.are.equal(id, p[2])
        else
          assert.are.equal("count", p[1]) -- nothing else a hostile id could add
        end
      end
      assert.are.equal(1, seen, target)
    end
  end)

  it("refuses ids that would name no message, several, or another one (exit 2, nothing sent)", function()
    sink:clear()
    local cases = {
      { ",", "without ','" }, { "msg_a,msg_b", "without ','" }, { " ", "spaces" }, { " msg_a", "spaces" },
      { "msg_a\t", "control bytes" }, { "msg\r\nX-Evil: 1", "control bytes" },
      { "msg\127", "control bytes" }, { ("m"):rep(513), "1 to 512 bytes" }, { ("m"):rep(100000), "1 to 512 bytes" },
      { "", "1 to 512 bytes" },
    }
    for _, c in ipairs(cases) do
      local status, out, err = h:run{ "logs", "--", c[1] }
      assert.are.equal(2, status, ("%q"):format(c[1]) .. err)
      assert.are.equal("", out)
      assert.matches(c[2], err, 1, true)
    end
    assert.are.equal(0, #sink:received())
  end)
end)
