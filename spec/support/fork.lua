--- An interpreter that can fork, for specs that fork a process holding a
-- client: { lua = command, env = { ... } } for isolated.run.
--
-- It is the suite's own interpreter (so the module under test is the build
-- being tested: ASan's under `make asan`). lua-posix is used where Debian
-- builds it (Lua 5.1 to 5.3, LuaJIT); for Lua 5.4 the few calls the specs
-- need come from spec/support/spec_posix.c, built here into build/spec-posix
-- with the same names (posix.unistd, posix.sys.wait).
local proc = require "spec.support.proc"
local isolated = require "spec.support.isolated"

local M = {}

local function has_posix(lua)
  local _, code = proc.sh(lua .. [[ -e 'require "posix.unistd"' >/dev/null]])
  return code == 0
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- Builds the stand-in for the interpreter's ABI; returns its env.
local function stand_in(lua)
  local abi = proc.sh(lua .. [[ -e 'io.write(_VERSION:match("%d+%.%d+"))']])
  local pc = ({ ["5.4"] = "lua5.4", ["5.3"] = "lua5.3", ["5.1"] = "lua5.1" })[abi]
  if not pc then error("no Lua headers known for " .. lua .. " (" .. abi .. ")", 3) end
  local dir = proc.sh("pwd"):gsub("%s+$", "") .. "/build/spec-posix/" .. abi
  local out, code = proc.sh(table.concat({
    "mkdir -p", dir .. "/posix/sys", "&&",
    "env -u LD_PRELOAD cc -std=c99 -D_POSIX_C_SOURCE=200809L -shared -fPIC -Wall -Werror",
    "$(pkg-config --cflags " .. pc .. ")", "-o", dir .. "/spec_posix.so", "spec/support/spec_posix.c",
  }, " "))
  if code ~= 0 then error("building spec/support/spec_posix.c failed:\n" .. out, 3) end
  write(dir .. "/posix/unistd.lua", 'return require("spec_posix").unistd\n')
  write(dir .. "/posix/sys/wait.lua", 'return require("spec_posix").wait\n')
  return {
    LUA_CPATH = dir .. "/?.so;" .. (os.getenv("LUA_CPATH") or ";"),
    LUA_PATH = dir .. "/?.lua;" .. (os.getenv("LUA_PATH") or ";"),
  }
end

local cached

--- Returns { lua = ..., env = {...} }, or raises naming what is missing.
function M.interpreter()
  if cached then return cached end
  if has_posix(isolated.lua) then
    cached = { lua = isolated.lua, env = {} }
  else
    cached = { lua = isolated.lua, env = stand_in(isolated.lua) }
  end
  return cached
end

return M
