-- qstash-dlq retry/delete --dry-run: what would be touched, and nothing that
-- changes state is sent (the emulator's state and its request log say so).

local E = require "spec.support.emulator"
local H = require "spec.support.cli"

describe("qstash-dlq --dry-run", function()
  local cx = H.fixture{ time_scale = 0.001, quiet = false } -- a request log
  local emu, sink, tmp, h

  setup(function() emu, sink, tmp, h = cx.emu, cx.sink, cx.tmp, cx.h end)

  -- The API requests (method, path) the emulator logged after offset.
  local function requests_since(offset)
    local out = {}
    for line in emu:log():sub(offset + 1):gmatch("[^\n]+") do
      local method, target = line:match('"(%u+) (/v2/%S*) HTTP/1%.1"')
      if method then out[#out + 1] = { method, target } end
    end
    return out
  end

  -- Runs args with the DLQ's whole content checked before and after, and
  -- every request the run made checked to be a GET. Returns status, out, err.
  local function rehearse(args)
    local before, delivered = h:dlq(), #emu:deliveries()
    local offset = #emu:log()
    local status, out, err = h:run(args)
    E.sleep(0.2) -- the log line of the last request
    local reqs = requests_since(offset)
    assert.is_true(#reqs > 0, "no request logged")
    for _, r in ipairs(reqs) do
      assert.are.equal("GET", r[1], r[1] .. " " .. r[2] .. " sent by a dry run")
      assert.matches("^/v2/dlq", r[2])
    end
    assert.are.same(before, h:dlq())
    assert.are.equal(0, #sink:received())
    assert.are.equal(delivered, #emu:deliveries())
    return status, out, err
  end

  it("lists the count and the first ids with URL and status, and changes nothing", function()
    local paths = {}
    for i = 1, 12 do paths[i] = "/d/r" .. i end
    local e = h:dead(paths)
    local report = tmp .. "/report.jsonl"
    local done = { retry = "retried", delete = "deleted" }
    for _, verb in ipairs { "retry", "delete" } do
      local args = { verb, "--all", "--dry-run", "--report", report }
      if verb == "delete" then args[#args + 1] = "--backup"; args[#args + 1] = tmp .. "/backup.jsonl" end
      local status, out, err = rehearse(args)
      assert.are.equal(0, status, err)
      local l = H.lines(out)
      assert.are.equal(("dry run: 12 messages would be %s; nothing was changed"):format(done[verb]), l[1])
      assert.matches("^DLQ ID +STATUS +URL$", l[2])
      for i = 1, 10 do
        assert.matches("^" .. e[i].dlqId:gsub("%p", "%%%0") .. " +500 +" .. (sink.url .. paths[i]):gsub("%p", "%%%0") .. "$",
          l[i + 2])
      end
      assert.are.equal("... and 2 more", l[13])
      assert.matches("would append results to " .. report, out, 1, true)
      assert.is_nil(io.open(report), "a dry run wrote the report")
      assert.is_nil(io.open(tmp .. "/backup.jsonl"), "a dry run wrote the backup")
    end
  end)

  it("rehearses filters and given ids alike", function()
    local e = h:dead({ "/d/f", "/d/g", "/d/f" }, nil, false)
    local status, out, err = rehearse{ "retry", "--url", sink.url .. "/d/f", "--set-retries", "3", "--dry-run" }
    assert.are.equal(0, status, err)
    assert.matches("^dry run: 2 messages would be retried", out)
    assert.matches(e[1].dlqId, out, 1, true)
    assert.matches(e[3].dlqId, out, 1, true)
    assert.not_matches(e[2].dlqId, out, 1, true)

    status, out, err = rehearse{ "delete", e[2].dlqId, "--dry-run" }
    assert.are.equal(0, status, err)
    assert.matches("^dry run: 1 message would be deleted", out)
    assert.matches((e[2].dlqId .. " +500 +" .. sink.url .. "/d/g"):gsub("[^%w +]", "%%%0"), out)
  end)

  it("exits 1 when given ids are not in the DLQ", function()
    local e = h:dead{ "/d/m" }
    local status, out, err = rehearse{ "retry", e[1].dlqId, "1-404", "--dry-run" }
    assert.are.equal(1, status)
    assert.matches("^dry run: 1 message would be retried", out)
    assert.matches("1-404: not in the DLQ", err, 1, true)
  end)

  it("checks the settings as a real run would", function()
    h:dead{ "/d/s" }
    local before = h:dlq()
    local status, out, err = h:run{ "retry", "--all", "--dry-run", "--set-delay", "soon" }
    assert.are.equal(2, status)
    assert.are.equal("", out)
    assert.matches("invalid --set-* settings", err, 1, true)
    assert.are.same(before, h:dlq())
  end)
end)
