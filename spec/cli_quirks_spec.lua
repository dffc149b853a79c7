-- qstash-dlq facing answers it cannot take at face value. A sink stands in for
-- the API and gives every request the same JSON body, which carries the
-- fields of each answer the command reads.

local E = require "spec.support.emulator"
local H = require "spec.support.cli"

describe("qstash-dlq and odd server answers", function()
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

  before_each(function() sink:clear() end)

  local function answer(body)
    sink:set_status(200, { headers = { ["Content-Type"] = "application/json" }, body = body })
  end

  local function requests()
    local out = {}
    for _, r in ipairs(sink:received()) do out[#out + 1] = r.method .. " " .. r.target end
    return out
  end

  it("retries id by id when a bulk retry answers fewer new ids than ids sent", function()
    -- two entries listed, one answer to the bulk retry: which id it belongs to is unknown
    answer('{"messages":[{"dlqId":"1-0"},{"dlqId":"2-0"}],"responses":[{"messageId":"msg_bulk"}],' ..
      '"messageId":"msg_one"}')
    local report = tmp .. "/fewer.jsonl"
    local status, out, err = h:run{ "retry", "--all", "--report", report }
    assert.are.equal(0, status, err)
    local reqs = requests()
    assert.are.same({ "GET /v2/dlq?count=100", "POST /v2/dlq/retry?dlqIds=1-0&dlqIds=2-0",
      "GET /v2/dlq?dlqIds=1-0&dlqIds=2-0&count=100" }, { reqs[1], reqs[2], reqs[3] })
    table.sort(reqs)
    assert.are.same({ "GET /v2/dlq?count=100", "GET /v2/dlq?dlqIds=1-0&dlqIds=2-0&count=100",
      "POST /v2/dlq/retry/1-0", "POST /v2/dlq/retry/2-0", "POST /v2/dlq/retry?dlqIds=1-0&dlqIds=2-0" }, reqs)
    local l = H.lines(out)
    table.sort(l)
    assert.are.same({ "1-0 -> msg_one", "2-0 -> msg_one" }, l)
    local lines = H.read_jsonl(report)
    assert.are.equal(3, #lines)
    for i = 1, 2 do assert.are.equal("msg_one", lines[i].messageId) end -- never msg_bulk
  end)

  it("reports ids a bulk delete left in place as failed", function()
    answer('{"messages":[{"dlqId":"1-0"},{"dlqId":"2-0"}],"deleted":1}')
    local report = tmp .. "/kept.jsonl"
    local status, out, err = h:run{ "delete", "1-0", "2-0", "--report", report }
    assert.are.equal(1, status)
    assert.are.equal("", out)
    assert.matches("1-0: the server did not delete it", err, 1, true)
    assert.matches("deleted 0 of 2 messages: 2 failed, 0 not attempted", err, 1, true)
    assert.are.same({ "GET /v2/dlq?dlqIds=1-0&dlqIds=2-0&count=100", "DELETE /v2/dlq?dlqIds=1-0&dlqIds=2-0",
      "GET /v2/dlq?dlqIds=1-0&dlqIds=2-0&count=100" }, requests())
    local lines = H.read_jsonl(report)
    assert.are.equal("failed", lines[1].type)
    assert.are.equal("http", lines[1].error.kind)
    assert.are.equal(0, lines[3].deleted)
  end)

  it("takes a listed message only for the id it carries", function()
    -- asked for 3-0, the server lists 1-0 (as one that ignored dlqIds would):
    -- 3-0 is confirmed with GET /v2/dlq/3-0, and 1-0 is neither written nor deleted
    answer('{"messages":[{"dlqId":"1-0","body":"not 3-0"}],"deleted":1}')
    local backup = tmp .. "/only.jsonl"
    local status, _, err = h:run{ "delete", "3-0", "--backup", backup }
    assert.are.equal(0, status, err) -- GET /v2/dlq/3-0 answered 200: 3-0 is there
    local reqs = requests()
    assert.are.same({ "GET /v2/dlq?dlqIds=3-0&count=100", "GET /v2/dlq/3-0", "DELETE /v2/dlq?dlqIds=3-0" }, reqs)
    local saved = H.read_jsonl(backup)
    assert.are.equal(1, #saved)
    -- the line is what GET /v2/dlq/3-0 answered, never the listed 1-0
    assert.are_not.equal("1-0", saved[1].dlqId)
    assert.is_table(saved[1].messages)
  end)
end)
