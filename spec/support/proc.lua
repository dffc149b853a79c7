--- Shell commands for specs that run the project as a user would.
local M = {}

--- Runs cmd through the shell; returns its stdout+stderr and exit code.
function M.sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"EXIT=$?\""))
  local out = p:read("*a")
  p:close()
  local code = tonumber(out:match("EXIT=(%d+)%s*$"))
  return (out:gsub("EXIT=%d+%s*$", "")), code
end

return M
