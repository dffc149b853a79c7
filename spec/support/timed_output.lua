-- A busted output handler: busted's utfTerminal output, plus each spec file's
-- wall time appended to the file named by $QSTASH_SPEC_TIMES as
-- "<seconds>\t<spec file>" lines (tools/run-specs prints the slowest).
-- usage: busted --output=spec/support/timed_output.lua ...
local socket = require "socket"

return function(options)
  local busted = require "busted"
  local handler = require("busted.outputHandlers.utfTerminal")(options)
  local path = os.getenv("QSTASH_SPEC_TIMES")
  if not path or path == "" then return handler end

  local started = {}
  busted.subscribe({ "file", "start" }, function(file)
    started[file.name] = socket.gettime()
    return nil, true
  end)
  busted.subscribe({ "file", "end" }, function(file)
    local t0 = started[file.name]
    if t0 then
      local f = io.open(path, "a")
      if f then
        f:write(string.format("%.1f\t%s\n", socket.gettime() - t0, file.name))
        f:close()
      end
    end
    return nil, true
  end)
  return handler
end
