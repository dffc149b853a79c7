--- This Lua process's file descriptors (Linux: /proc/<pid>/fd), for specs
-- that check what a client opens and closes.
local M = {}

-- this process's pid (the first field of /proc/self/stat)
local pid = io.open("/proc/self/stat"):read("*l"):match("^(%d+)")

--- count(kind) -> how many descriptors this process has open whose target
-- names `kind` ("socket:", "eventpoll"; nil: all of them).
function M.count(kind)
  local n = 0
  local p = io.popen("ls -l /proc/" .. pid .. "/fd 2>/dev/null")
  for line in p:lines() do
    if line:find(" -> ", 1, true) and (not kind or line:find(kind, 1, true)) then n = n + 1 end
  end
  p:close()
  return n
end

--- cloexec(fd) -> whether fd is close-on-exec (the O_CLOEXEC bit, 02000000,
-- of the octal "flags:" in /proc/<pid>/fdinfo/<fd>). Raises when fd is not open.
function M.cloexec(fd)
  local f = assert(io.open("/proc/" .. pid .. "/fdinfo/" .. fd))
  local flags = f:read("*a"):match("flags:%s*(%d+)")
  f:close()
  assert(flags, "no flags for fd " .. fd)
  return math.floor(tonumber(flags, 8) / 2 ^ 19) % 2 == 1
end

return M
