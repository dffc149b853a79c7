-- The files qstash-dlq writes, at their edges: export of an empty DLQ and of
-- binary bodies; an existing file that others can read (export and --backup
-- hold message bodies: refused), a directory, a full device; and a --report
-- that cannot be written: the work goes on and the exit status is not 0.

local E = require "spec.support.emulator"
local H = require "spec.support.cli"
local mime = require "mime"

local q = E.shell_quote

describe("qstash-dlq files", function()
  local cx = H.fixture{ time_scale = 0.001 }

  local function mode(path)
    local p = io.popen("stat -c %a " .. q(path))
    local m = p:read("*l")
    p:close()
    return m
  end

  local function make_file(path, content, perm)
    E.write_file(path, content)
    assert(E.exec_ok("chmod " .. perm .. " " .. q(path)))
  end

  it("exports an empty DLQ: no lines, exit 0, a private file", function()
    local path = cx.tmp .. "/empty.jsonl"
    local status, out, err = cx.h:run{ "export", "-o", path }
    assert.are.equal(0, status, err)
    assert.are.equal("", out)
    assert.matches("exported 0 messages to " .. path, err, 1, true)
    assert.are.equal("", E.read_file(path))
    assert.are.equal("600", mode(path))
    status, out, err = cx.h:run{ "export" }
    assert.are.equal(0, status, err)
    assert.are.equal("", out)
  end)

  it("exports a binary body as bodyBase64, byte for byte", function()
    local h = cx.h
    h.prefix = "\255\0\254\n\r binary "
    local e = h:dead{ "/bin/1" }
    h.prefix = nil
    local path = cx.tmp .. "/binary.jsonl"
    local status, _, err = h:run{ "export", "-o", path }
    assert.are.equal(0, status, err)
    local got = H.read_jsonl(path)
    assert.are.equal(1, #got)
    assert.are.equal(e[1].dlqId, got[1].dlqId)
    assert.is_nil(got[1].body)
    assert.are.equal("\255\0\254\n\r binary 1", (mime.unb64(got[1].bodyBase64)))
  end)

  it("refuses an existing file others can read, for export and --backup, and changes nothing", function()
    local h = cx.h
    local e = h:dead{ "/m/1" }
    for _, perm in ipairs{ "644", "640", "604", "622" } do
      local path = cx.tmp .. "/open-" .. perm .. ".jsonl"
      make_file(path, "", perm)
      local status, out, err = h:run{ "export", "-o", path }
      assert.are.equal(2, status, perm .. ": " .. err)
      assert.are.equal("", out)
      assert.matches("can be read or written by others (mode " .. perm .. ")", err, 1, true)
      make_file(path, '{"earlier":1}\n', perm)
      status, _, err = h:run{ "delete", e[1].dlqId, "--backup", path }
      assert.are.equal(2, status, err)
      assert.matches("can be read or written by others", err, 1, true)
      assert.are.equal('{"earlier":1}\n', E.read_file(path)) -- nothing written
      assert.are.equal(perm, mode(path)) -- and its mode left as the owner set it
    end
    assert.is_true(h:dlq_ids()[e[1].dlqId])
    -- the owner's own file is appended to
    local path = cx.tmp .. "/own.jsonl"
    make_file(path, '{"earlier":1}\n', "600")
    local status, _, err = h:run{ "delete", e[1].dlqId, "--backup", path }
    assert.are.equal(0, status, err)
    local lines = H.read_jsonl(path)
    assert.are.equal(2, #lines)
    assert.are.equal(e[1].dlqId, lines[2].dlqId)
  end)

  it("refuses a directory for export, --backup and --report, sending nothing that changes state", function()
    local h = cx.h
    local e = h:dead{ "/dir/1" }
    local dir = cx.tmp .. "/adir"
    assert(E.exec_ok("mkdir " .. q(dir)))
    for _, args in ipairs{ { "export", "-o", dir }, { "delete", "--all", "--backup", dir },
      { "delete", "--all", "--report", dir }, { "retry", "--all", "--report", dir } } do
      local status, out, err = h:run(args)
      assert.are.equal(2, status, table.concat(args, " ") .. ": " .. err)
      assert.are.equal("", out)
      assert.matches(dir .. " is a directory", err, 1, true)
    end
    assert.is_true(h:dlq_ids()[e[1].dlqId])
  end)

  it("fails an export to a full device, and takes a device such as /dev/null", function()
    cx.h:dead{ "/full/1" }
    local status, _, err = cx.h:run{ "export", "-o", "/dev/full" }
    assert.are.equal(1, status)
    assert.matches("cannot write /dev/full", err, 1, true)
    status, _, err = cx.h:run{ "export", "-o", "/dev/null" }
    assert.are.equal(0, status, err)
    assert.matches("exported 1 message", err, 1, true)
  end)

  for _, verb in ipairs{ "delete", "retry" } do
    it(verb .. " goes on when --report cannot be written, and exits 1 saying so", function()
      local h = cx.h
      local e = h:dead{ "/rep/1", "/rep/2" }
      local status, out, err = h:run{ verb, e[1].dlqId, e[2].dlqId, "--report", "/dev/full" }
      assert.are.equal(1, status, err)
      assert.matches("the --report file is incomplete: cannot write /dev/full", err, 1, true)
      assert.are.equal(2, #H.lines(out)) -- both ids handled, and said on stdout
      local left = h:dlq_ids()
      for _, m in ipairs(e) do assert.is_nil(left[m.dlqId]) end
      -- nothing to do at all: still not 0 when the summary is lost
      status, _, err = h:run{ verb, "--all", "--report", "/dev/full" }
      assert.are.equal(1, status, err)
    end)
  end
end)
