-- `luarocks test`: the busted suite through tools/run-specs, with the
-- module that `luarocks make` just built in this folder (./qstash.so) or,
-- failing that, the one `make` built (build/<abi>/qstash.so). Arguments are
-- busted's (spec files, --tags...); none means every spec.
--
-- The rockspec says `type = "command"` rather than "busted": LuaRocks's
-- busted type insists on busted installed as a rock, fetched from the
-- network even where Debian's lua-busted is installed; this runs whichever
-- busted is on the PATH, offline.
local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local lua = arg[-1] or "lua"
local abi = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
local so = io.open("qstash.so") and "./?.so" or ("build/" .. abi .. "/?.so")
-- run-specs runs busted's script with the interpreter: its path, not its name
local busted = os.getenv("BUSTED") and q(os.getenv("BUSTED")) or '"$(command -v busted)"'
local args = {}
for i = 1, #arg do args[#args + 1] = q(arg[i]) end
if #args == 0 then args[1] = "spec" end

local cmd = table.concat({
  "LUA_CPATH=" .. q(so .. ";;"),
  "LUA_PATH=" .. q("./lua/?.lua;./lua/?/init.lua;./?.lua;;"),
  "QSTASH_SPEC_LUA=" .. q(lua),
  "bash tools/run-specs", q(lua), busted, table.concat(args, " "),
}, " ")
local ok, how, code = os.execute(cmd)
if type(ok) == "number" then code = ok ~= 0 and 1 or 0 -- Lua 5.1: one status number
elseif how ~= "exit" then code = 1 end
os.exit(code == 0 and ok and 0 or 1)
