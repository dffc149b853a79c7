--- Runs Lua code in a child interpreter with a chosen environment, for specs
-- about environment variables (Lua cannot set its own environment).
--
--   local child = require "spec.support.child"
--   local out, ok = child.run([[print(require("qstash").new{}:...)]], { QSTASH_TOKEN = "t" })
local M = {}

local function shquote(s)
  return "'" .. (tostring(s):gsub("'", "'\\''")) .. "'"
end

-- The interpreter of this run (the Makefile exports it), else lua5.4.
M.lua = os.getenv("QSTASH_SPEC_LUA") or "lua5.4"

-- Variables the module reads: cleared in the child unless given.
local CLEARED = {
  "QSTASH_TOKEN", "QSTASH_URL", "QSTASH_DEV", "QSTASH_DEV_PORT", "QSTASH_REGION",
  "US_EAST_1_QSTASH_TOKEN", "US_EAST_1_QSTASH_URL", "EU_CENTRAL_1_QSTASH_TOKEN",
  "EU_CENTRAL_1_QSTASH_URL", "QSTASH_CURRENT_SIGNING_KEY", "QSTASH_NEXT_SIGNING_KEY",
  -- libcurl's proxy variables: a child goes direct unless a spec says otherwise
  "http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "HTTP_PROXY",
  "no_proxy", "NO_PROXY",
}

--- Runs `code` (a Lua chunk) and returns its stdout+stderr and whether it exited 0.
function M.run(code, env)
  env = env or {}
  local parts = { "env" }
  for _, name in ipairs(CLEARED) do
    if env[name] == nil then parts[#parts + 1] = "-u " .. name end
  end
  for name, value in pairs(env) do
    parts[#parts + 1] = name .. "=" .. shquote(value)
  end
  local file = os.tmpname()
  local f = assert(io.open(file, "wb"))
  f:write(code)
  f:close()
  parts[#parts + 1] = shquote(M.lua) .. " " .. shquote(file) .. " 2>&1; echo \"EXIT=$?\""
  local p = assert(io.popen(table.concat(parts, " ")))
  local out = p:read("*a")
  p:close()
  os.remove(file)
  local status = tonumber(out:match("EXIT=(%d+)%s*$"))
  out = out:gsub("EXIT=%d+%s*$", "")
  return out, status == 0
end

return M
