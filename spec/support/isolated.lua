--- Runs a Lua chunk in a child interpreter bounded by `timeout`, for specs
-- whose subject may crash the interpreter (a segfault, a sanitizer abort) or
-- hang: the spec asserts on the child's exit status and output, and the
-- rest of the suite survives. The child inherits the environment of this
-- run (LUA_PATH, LUA_CPATH, and under `make asan` the preloaded runtime).
--
--   local isolated = require "spec.support.isolated"
--   local r = isolated.run([[ ... print("OK") ]], { timeout = 10 })
--   assert.is_true(r.ok, r.out)        -- exited 0
--   -- r.code: exit status (124: killed by the bound; 128 + n: signal n)
local M = {}

local function shquote(s)
  return "'" .. (tostring(s):gsub("'", "'\\''")) .. "'"
end

-- The interpreter of this run (the Makefile exports it), else lua5.4.
M.lua = os.getenv("QSTASH_SPEC_LUA") or "lua5.4"

--- Runs `code` and returns { out = stdout+stderr, code = exit status,
-- ok = exited 0, timed_out = killed by the bound }.
-- opts: timeout (seconds, default 20), lua (interpreter), args (array of
-- strings passed as `arg`), env ({NAME = value}), shell (commands run first
-- in the child's shell, e.g. "ulimit -n 32").
function M.run(code, opts)
  opts = opts or {}
  local file = os.tmpname()
  local f = assert(io.open(file, "wb"))
  f:write(code)
  f:close()
  local parts = {}
  if opts.shell then parts[#parts + 1] = opts.shell .. ";" end
  parts[#parts + 1] = "exec env"
  for name, value in pairs(opts.env or {}) do
    parts[#parts + 1] = name .. "=" .. shquote(value)
  end
  parts[#parts + 1] = "timeout -k 2 " .. (opts.timeout or 20)
  parts[#parts + 1] = opts.lua or M.lua
  parts[#parts + 1] = shquote(file)
  for _, a in ipairs(opts.args or {}) do parts[#parts + 1] = shquote(a) end
  local cmd = "(" .. table.concat(parts, " ") .. ") 2>&1; echo \"EXIT=$?\""
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  os.remove(file)
  local status = tonumber(out:match("EXIT=(%d+)%s*$"))
  out = out:gsub("EXIT=%d+%s*$", "")
  return { out = out, code = status, ok = status == 0, timed_out = status == 124 or status == 137 }
end

--- A one-line description of how a child ended, for assertion messages.
function M.describe(r)
  local how = "exit " .. tostring(r.code)
  if r.timed_out then how = "killed by its time bound"
  elseif r.code and r.code > 128 then how = "killed by signal " .. (r.code - 128) end
  return how .. "; output:\n" .. r.out
end

return M
