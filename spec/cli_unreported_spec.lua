-- qstash-dlq retry of given ids when the module gives no result for an id
-- (a client that loses it): the id is looked up, and one that left the DLQ
-- is reported as of unknown outcome, never as "not attempted"; one still in
-- the DLQ stays not attempted. Run in-process with a stand-in module.

local cli = require "qstash.cli"
local cjson = require "cjson"

describe("qstash-dlq retry and an id without a result", function()
  local tmp = os.tmpname()

  teardown(function() os.remove(tmp) end)

  local function buffer()
    local b = { parts = {} }
    function b:write(...)
      for i = 1, select("#", ...) do self.parts[#self.parts + 1] = tostring((select(i, ...))) end
      return self
    end
    function b:text() return table.concat(self.parts) end
    return b
  end

  -- A module whose dlq_retry_each reports only the first id; `left`: the ids
  -- still in the DLQ afterwards.
  local function module(left)
    local M = {}
    function M.is_error(v) return type(v) == "table" and v.kind ~= nil and v.fake == true end
    function M.new()
      local c = {}
      function c.prepare() return {} end
      function c.dlq_retry_each(_, ids, _, cb)
        cb.on_result(ids[1], { messageId = "msg_shared" })
        return { ok = 1, failed = 0 }
      end
      function c.dlq_list(_, p)
        local out = {}
        for _, id in ipairs(p.dlq_ids or {}) do
          if left[id] then out[#out + 1] = { dlqId = id, url = "https://x.example/" } end
        end
        return { messages = out }
      end
      function c.dlq_get(_, id)
        if left[id] then return { dlqId = id } end
        error({ kind = "not_found", fake = true, message = "gone" }, 0)
      end
      function c.close() end
      return c
    end
    return M
  end

  local function run(left)
    os.remove(tmp)
    local out, err = buffer(), buffer()
    local status = cli.main({ "retry", "1-0", "2-0", "--report", tmp },
      { stdout = out, stderr = err, is_tty = false, qstash = module(left), sleep = function() end })
    local lines = {}
    for line in io.lines(tmp) do lines[#lines + 1] = cjson.decode(line) end
    return status, out:text(), err:text(), lines
  end

  it("reports an id that left the DLQ as of unknown outcome, and exits 1", function()
    local status, out, err, lines = run{}
    assert.are.equal(1, status)
    assert.are.equal("1-0 -> msg_shared\n", out)
    assert.matches("2-0: left the DLQ, but no result was reported for it", err, 1, true)
    assert.matches("retried 1 of 2 messages: 0 failed, 1 of unknown outcome", err, 1, true)
    assert.matches("0 not attempted", err, 1, true)
    assert.are.equal("ambiguous", lines[2].type)
    assert.are.equal("2-0", lines[2].dlqId)
    assert.are.equal("unreported", lines[2].error.kind)
    assert.are.equal(1, lines[3].ambiguous)
    assert.are.equal(0, lines[3].not_attempted)
  end)

  it("exits 130 for an interrupt that lands between two calls (here: while writing stdout)", function()
    local out = { write = function() error("interrupted!", 0) end }
    local err = buffer()
    local status = cli.main({ "list" }, { stdout = out, stderr = err, is_tty = false,
      qstash = module({ ["1-0"] = true }), sleep = function() end })
    assert.are.equal(130, status)
    assert.matches("interrupted", err:text(), 1, true)
  end)

  it("leaves an id still in the DLQ not attempted", function()
    local status, _, err, lines = run{ ["2-0"] = true }
    assert.are.equal(1, status)
    assert.matches("retried 1 of 2 messages: 0 failed, 1 not attempted", err, 1, true)
    assert.are.equal(2, #lines)
    assert.are.equal(1, lines[2].not_attempted)
    assert.are.equal(0, lines[2].ambiguous)
  end)
end)
