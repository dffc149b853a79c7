-- The incident runbook of docs/cli.md ("Runbook: a schedule fills the DLQ")
-- runs as written: its sh block is read from the doc, each line run in one
-- bash session from the repository's root, with `qstash-dlq` on PATH as this
-- checkout's bin/qstash-dlq; each line's output and exit status are checked.

local E = require "spec.support.emulator"
local D = require "spec.support.docs"

local q = E.shell_quote
local LUA = os.getenv("QSTASH_SPEC_LUA") or "lua5.4"
local ROOT = E.root
local HEADING = "### Runbook: a schedule fills the DLQ"

-- The lines of the first ```sh block after the heading.
local function runbook_lines(text)
  local at = assert(text:find(HEADING, 1, true), "docs/cli.md has no " .. HEADING)
  local block = assert(text:match("\n```sh\n(.-)\n```", at), "no sh block after " .. HEADING)
  local out = {}
  for line in (block .. "\n"):gmatch("([^\n]*)\n") do
    if line:match("%S") and not line:match("^%s*#") then out[#out + 1] = line end
  end
  return out
end

describe("the incident runbook of docs/cli.md", function()
  local tmp

  setup(function() tmp = E.tmpdir() end)
  teardown(function() if tmp then os.execute("rm -rf " .. q(tmp)) end end)

  it("runs as written: the schedule is seen, paused, its entries delivered, resumed, and the DLQ emptied", function()
    local lines = runbook_lines(assert(D.read(ROOT .. "/docs/cli.md")))
    assert.is_true(#lines >= 10)

    -- qstash-dlq on PATH: this checkout's, under the interpreter the suite runs
    local bin = tmp .. "/bin"
    os.execute("mkdir -p " .. q(bin))
    -- `make asan` preloads the ASan runtime for the interpreter (the module
    -- needs it): qstash-dlq keeps it, the rest of the runbook (curl, the
    -- servers) runs without it (curl hung under it)
    local preload = os.getenv("LD_PRELOAD")
    E.write_file(bin .. "/qstash-dlq", ("#!/bin/sh\n%sexec %s %s \"$@\"\n"):format(
      preload and ("LD_PRELOAD=%s; export LD_PRELOAD\n"):format(q(preload)) or "", q(LUA), q(ROOT .. "/bin/qstash-dlq")))
    os.execute("chmod +x " .. q(bin .. "/qstash-dlq"))

    -- Each line between markers on both streams, its status after it; the
    -- background processes go whatever happens (a hang guard of 120 s).
    local script = { "cd " .. q(ROOT), "export PATH=" .. q(bin) .. ":$PATH",
      "unset QSTASH_DEV QSTASH_DEV_PORT QSTASH_REGION LD_PRELOAD",
      "trap 'kill $(jobs -p) 2>/dev/null' EXIT" }
    for i, line in ipairs(lines) do
      script[#script + 1] = ("printf '\\n@@step %d\\n'; printf '\\n@@step %d\\n' >&2"):format(i, i)
      script[#script + 1] = line
      script[#script + 1] = ("printf '\\n@@rc %d %%s\\n' $?"):format(i) -- after output without a newline too
    end
    E.write_file(tmp .. "/runbook.sh", table.concat(script, "\n") .. "\n")
    local out_path, err_path = tmp .. "/out", tmp .. "/err"
    os.execute(("timeout 120 bash %s >%s 2>%s </dev/null"):format(q(tmp .. "/runbook.sh"), q(out_path),
      q(err_path)))
    local out, err = E.read_file(out_path) or "", E.read_file(err_path) or ""

    local steps = {}
    local function split(text, field)
      local i = 0
      for line in text:gmatch("[^\n]*") do
        local n = tonumber(line:match("^@@step (%d+)$"))
        local rc_n, rc = line:match("^@@rc (%d+) (%d+)$")
        if n then
          i = n
          steps[i] = steps[i] or { line = lines[i], out = "", err = "" }
        elseif rc_n then
          steps[tonumber(rc_n)].rc = tonumber(rc)
        elseif i > 0 and line ~= "" then
          steps[i][field] = steps[i][field] .. line .. "\n"
        end
      end
    end
    split(out, "out")
    split(err, "err")

    local find = {}
    for i = 1, #lines do
      local s = steps[i]
      assert(s and s.rc, ("line %d did not run: %s\nstdout:\n%s\nstderr:\n%s"):format(i, lines[i], out, err))
      assert(s.rc == 0, ("line %d exited %d: %s\n%s%s"):format(i, s.rc, s.line, s.out, s.err))
      local cmd = s.line:match("^qstash%-dlq (%a+)")
      if cmd then
        find[cmd] = find[cmd] or {}
        table.insert(find[cmd], s)
      end
    end

    local sources, pause, retry, resume = find.sources, find.pause, find.retry, find.resume
    assert.are.equal(3, #sources)
    assert.matches("\nschedule +nightly%-sync +%d+  %S+  active", sources[1].out)
    assert.matches("paused schedule nightly-sync\n", pause[1].out, 1, true)
    assert.matches("\nschedule +nightly%-sync +%d+  %S+  paused\n", sources[2].out)
    local n = tonumber(sources[2].out:match("^(%d+) of the"))
    assert.is_true(n ~= nil and n > 0, sources[2].out)
    local delivered = select(2, retry[1].out:gsub("  delivered\n", ""))
    assert.is_true(delivered >= n, retry[1].out .. retry[1].err) -- exit 0: every one delivered
    assert.matches("resumed schedule nightly-sync\n", resume[1].out, 1, true)
    assert.matches("^no sources: none of the 0 DLQ entries", sources[3].out)
  end)
end)
