-- A busted output handler: busted's utfTerminal output, plus each spec file's
-- wall time appended to the file named by $QSTASH_SPEC_TIMES as
-- "<seconds>\t<spec file>\t<CPU seconds of this process>" lines, and each test's to $QSTASH_SPEC_TEST_TIMES
-- as "<seconds>\t<spec file>\t<test name>" lines (tools/run-specs prints the
-- slowest of both).
-- usage: busted --output=spec/support/timed_output.lua ...
local socket = require "socket"

local function append(path, line)
  local f = io.open(path, "a")
  if f then
    f:write(line)
    f:close()
  end
end

return function(options)
  local busted = require "busted"
  local handler = require("busted.outputHandlers.utfTerminal")(options)
  local path = os.getenv("QSTASH_SPEC_TIMES")
  local test_path = os.getenv("QSTASH_SPEC_TEST_TIMES")

  if path and path ~= "" then
    -- the CPU time is the interpreter's own (not the servers' it started):
    -- what a wrapper such as valgrind slows down
    local started, cpu = {}, {}
    busted.subscribe({ "file", "start" }, function(file)
      started[file.name], cpu[file.name] = socket.gettime(), os.clock()
      return nil, true
    end)
    busted.subscribe({ "file", "end" }, function(file)
      local t0 = started[file.name]
      if t0 then
        append(path, string.format("%.1f\t%s\t%.2f\n", socket.gettime() - t0, file.name, os.clock() - cpu[file.name]))
      end
      return nil, true
    end)
  end

  if test_path and test_path ~= "" then
    -- busted sets a test's duration (monotonic seconds) before "test end"
    busted.subscribe({ "test", "end" }, function(test)
      if test.duration then
        local file = test.trace and test.trace.short_src or "?"
        local name = handler.getFullName(test):gsub("[\t\n]", " ")
        append(test_path, string.format("%.2f\t%s\t%s\n", test.duration, file, name))
      end
      return nil, true
    end)
  end
  return handler
end
