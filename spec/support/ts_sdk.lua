-- The official TypeScript SDK (@upstash/qstash from npm) for the specs that
-- drive it: spec/ts-sdk/package.json pins its version and package-lock.json
-- every dependency's, and `npm ci` installs exactly those into build/ts-sdk,
-- next to a copy of spec/ts-sdk's test files (Node resolves packages from the
-- importing file's folder). npm's cache is preferred, the registry asked only
-- for what is missing from it; the install is redone only when the lock file
-- changed.
--
-- Node.js and npm are required, as any other dependency of the suite
-- (tools/ensure-deps installs them): without them these specs fail, saying
-- so; they are never skipped.
--
--   local sdk = require "spec.support.ts_sdk"
--   local dir = sdk.install()      --> "build/ts-sdk" (raises on failure)
local E = require "spec.support.emulator"

local M = {}

local q = E.shell_quote

-- absolute paths: commands below change directory
local root = assert(io.popen("cd " .. q(E.root) .. " && pwd")):read("*l")
M.source = root .. "/spec/ts-sdk"
M.dir = root .. "/build/ts-sdk"

local function run(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1; echo \"EXIT=$?\""))
  local out = p:read("*a")
  p:close()
  local code = tonumber(out:match("EXIT=(%d+)%s*$"))
  return code == 0, (out:gsub("EXIT=%d+%s*$", ""))
end
M.run = run

function M.install()
  for _, tool in ipairs({ "node", "npm" }) do
    assert(run("command -v " .. tool), tool .. " is not installed: the TypeScript SDK specs need Node.js " ..
      "and npm (tools/ensure-deps installs Debian's nodejs and npm)")
  end
  -- a copy of the lock file, written once `npm ci` succeeded, says what is installed
  local stamp = M.dir .. "/node_modules/.installed-lock.json"
  if E.read_file(stamp) ~= E.read_file(M.source .. "/package-lock.json") then
    local ok, out = run("rm -rf " .. q(M.dir) .. " && mkdir -p " .. q(M.dir) ..
      " && cp " .. q(M.source .. "/package.json") .. " " .. q(M.source .. "/package-lock.json") .. " " .. q(M.dir) ..
      " && cd " .. q(M.dir) .. " && npm ci --prefer-offline --no-audit --no-fund --ignore-scripts" ..
      " && cp package-lock.json " .. q(stamp))
    assert(ok, "npm ci in " .. M.dir .. " failed:\n" .. out)
  end
  -- the test files, fresh every run
  local ok, out = run("cp -R " .. q(M.source) .. "/. " .. q(M.dir) .. "/")
  assert(ok, "cannot copy spec/ts-sdk to " .. M.dir .. ":\n" .. out)
  return M.dir
end

return M
