-- qstash-dlq interrupted (SIGINT, as Ctrl-C sends it) while the server is
-- carrying out its request: the ids in flight are reported as ambiguous
-- (they may have been acted on, and here they were), never as failed, and
-- the command exits 130.

local E = require "spec.support.emulator"
local H = require "spec.support.cli"
local server = require "spec.support.server"

local q = E.shell_quote

describe("qstash-dlq interrupted while a request is in flight", function()
  local srv, tmp, h

  setup(function()
    srv = server.start()
    tmp = E.tmpdir()
    h = H.new({ url = srv.url, token = "t" }, nil, tmp)
  end)
  teardown(function()
    srv:stop()
    if tmp then os.execute("rm -rf " .. q(tmp)) end
  end)
  before_each(function() srv:reset() end)

  -- Starts the CLI in the background; returns its pid (the interpreter's own:
  -- the shell execs it) and a function waiting for its exit status, stdout, stderr.
  local n = 0
  local function start(args)
    n = n + 1
    local base = tmp .. "/run" .. n
    local inner = "echo $$ >" .. q(base .. ".pid") .. "; exec " .. h:command(args)
    assert(E.exec_ok("(sh -c " .. q(inner) .. " >" .. q(base .. ".out") .. " 2>" .. q(base .. ".err") ..
      " </dev/null; echo $? >" .. q(base .. ".rc") .. ") >/dev/null 2>&1 &"))
    local pid = E.wait_for(function() return tonumber((E.read_file(base .. ".pid") or ""):match("%d+")) end, 10)
    assert(pid, "no pid")
    return pid, function()
      local rc = E.wait_for(function() return tonumber((E.read_file(base .. ".rc") or ""):match("%d+")) end, 15)
      return rc, E.read_file(base .. ".out") or "", E.read_file(base .. ".err") or ""
    end
  end

  -- Waits until the server got a request whose method is `method`, then sends SIGINT.
  local function interrupt_during(pid, method)
    assert(E.wait_for(function()
      for _, r in ipairs(srv:requests()) do
        if r.method == method then return true end
      end
    end, 10), "no " .. method .. " request")
    assert(E.exec_ok("kill -INT " .. pid))
  end

  local LISTED = { status = 200, json = { messages = { { dlqId = "1-0", url = "https://x.example/" },
    { dlqId = "2-0", url = "https://x.example/" } } } }

  local function check_report(report, verb)
    local lines = H.read_jsonl(report)
    assert.are.equal(3, #lines, E.read_file(report))
    for i = 1, 2 do
      assert.are.equal("ambiguous", lines[i].type) -- never "failed"
      assert.are.equal("interrupted", lines[i].error.kind)
      assert.is_true(lines[i].error.ambiguous)
    end
    local s = lines[3]
    assert.are.equal("summary", s.type)
    assert.are.equal(0, s[verb])
    assert.are.equal(0, s.failed)
    assert.are.equal(2, s.ambiguous)
    assert.are.equal(0, s.not_attempted)
    assert.are.equal(130, s.exit_status)
  end

  it("delete: the DELETE the server carried out is ambiguous, exit 130", function()
    srv:script{ LISTED, { status = 200, json = { deleted = 2 }, delay = 1.5 } }
    local report = tmp .. "/delete.jsonl"
    local pid, wait = start{ "delete", "1-0", "2-0", "--report", report }
    interrupt_during(pid, "DELETE")
    local rc, out, err = wait()
    assert.are.equal(130, rc, err)
    assert.are.equal("", out)
    assert.matches("interrupted", err, 1, true)
    assert.matches("deleted 0 of 2 messages: 0 failed, 2 of unknown outcome (may have taken effect", err, 1, true)
    check_report(report, "deleted")
  end)

  it("retry --all: the bulk retry the server carried out is ambiguous, exit 130", function()
    srv:script{ LISTED, { status = 200, json = { { messageId = "msg_a" }, { messageId = "msg_b" } }, delay = 1.5 } }
    local report = tmp .. "/retry.jsonl"
    local pid, wait = start{ "retry", "--all", "--report", report }
    interrupt_during(pid, "POST")
    local rc, _, err = wait()
    assert.are.equal(130, rc, err)
    assert.matches("retried 0 of 2 messages: 0 failed, 2 of unknown outcome", err, 1, true)
    check_report(report, "retried")
  end)

  it("retry of given ids: the retries in flight are ambiguous, exit 130", function()
    local slow = { status = 201, json = { messageId = "msg_a" }, delay = 1.5 }
    srv:script{ slow, slow }
    local report = tmp .. "/each.jsonl"
    local pid, wait = start{ "retry", "1-0", "2-0", "--report", report }
    interrupt_during(pid, "POST")
    local rc, _, err = wait()
    assert.are.equal(130, rc, err)
    local lines = H.read_jsonl(report)
    local s = lines[#lines]
    assert.are.equal("summary", s.type)
    assert.are.equal(0, s.failed)
    assert.are.equal(2, s.ambiguous + s.retried) -- each id either answered or in flight
    for i = 1, #lines - 1 do assert.are_not.equal("failed", lines[i].type) end
  end)
end)
