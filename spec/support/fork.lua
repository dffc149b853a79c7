--- An interpreter that can fork (lua-posix), for specs that fork a process
-- holding a client: { lua = command, env = { LUA_CPATH = ... } } for
-- isolated.run.
--
-- Debian 12's lua-posix is built for Lua 5.1, 5.2 and 5.3 (LuaJIT loads the
-- 5.1 one), not 5.4: under lua5.4 the fork scenarios run under lua5.3, with
-- the module built for it from the same sources (`make LUA=lua5.3`, which
-- does nothing when it is up to date).
local proc = require "spec.support.proc"
local isolated = require "spec.support.isolated"

local M = {}

local function has_posix(lua)
  local _, code = proc.sh(lua .. [[ -e 'require "posix.unistd"' >/dev/null]])
  return code == 0
end

local cached

--- Returns { lua = ..., env = {...} }, or raises naming what is missing.
function M.interpreter()
  if cached then return cached end
  if has_posix(isolated.lua) then
    cached = { lua = isolated.lua, env = {} }
    return cached
  end
  if not has_posix("lua5.3") then
    error("no interpreter with lua-posix (Debian package lua-posix, for Lua 5.1 to 5.3)", 2)
  end
  -- (without the sanitizer runtime `make asan` preloads for the module)
  local out, code = proc.sh("env -u LD_PRELOAD make --no-print-directory LUA=lua5.3 all")
  if code ~= 0 then error("building the module for lua5.3 failed:\n" .. out, 2) end
  local dir = proc.sh("pwd"):gsub("%s+$", "")
  cached = { lua = "lua5.3", env = { LUA_CPATH = dir .. "/build/lua5.3/?.so;;" } }
  return cached
end

return M
