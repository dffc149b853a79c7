--- Loopback ports for specs.
local socket = require "socket"

local M = {}

--- A loopback port that nothing listens on (bound, then released), for
-- "connection refused" cases: a fixed port such as 1 may be in use.
function M.closed()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

return M
