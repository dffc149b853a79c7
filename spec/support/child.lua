--- Runs Lua code in a child interpreter with a chosen environment, for specs
-- about environment variables (Lua cannot set its own environment).
--
--   local child = require "spec.support.child"
--   local out, ok = child.run([[print(require("qstash").new{}:...)]], { QSTASH_TOKEN = "t" })
--   local out, ok = child.run(code, env, { clean = true })   -- nothing inherited but the harness's own
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
  "US_EAST_1_QSTASH_CURRENT_SIGNING_KEY", "US_EAST_1_QSTASH_NEXT_SIGNING_KEY",
  "EU_CENTRAL_1_QSTASH_CURRENT_SIGNING_KEY", "EU_CENTRAL_1_QSTASH_NEXT_SIGNING_KEY",
  -- libcurl's proxy variables: a child goes direct unless a spec says otherwise
  "http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "HTTP_PROXY",
  "no_proxy", "NO_PROXY",
}

-- What a clean child keeps: how to find programs and modules, and the
-- sanitizer runtime of `make asan` (the module cannot load without it).
local KEPT = { "PATH", "TMPDIR", "PYTHON", "QSTASH_SPEC_LUA", "LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS" }

--- Runs `code` (a Lua chunk) and returns its stdout+stderr and whether it exited 0.
-- opts.clean: start from an empty environment (`env -i`) instead of clearing
-- the variables the module reads; the child gets this process's module paths.
-- opts.timeout: seconds the child may run (coreutils' timeout); past them it
-- is killed and counts as failed (for work that must not take for ever).
function M.run(code, env, opts)
  env = env or {}
  local parts = { "env" }
  if opts and opts.timeout then
    table.insert(parts, 1, "timeout -k 2 " .. tostring(opts.timeout))
  end
  if opts and opts.clean then
    parts[#parts + 1] = "-i"
    for _, name in ipairs(KEPT) do
      local v = os.getenv(name)
      if v and env[name] == nil then parts[#parts + 1] = name .. "=" .. shquote(v) end
    end
    parts[#parts + 1] = "LUA_PATH=" .. shquote(package.path)
    parts[#parts + 1] = "LUA_CPATH=" .. shquote(package.cpath)
  else
    for _, name in ipairs(CLEARED) do
      if env[name] == nil then parts[#parts + 1] = "-u " .. name end
    end
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
