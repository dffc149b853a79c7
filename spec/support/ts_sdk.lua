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
  -- a copy of the lock file, written once `npm ci` succeeded, says what is
  -- installed; the check and the install hold a lock, as two spec files that
  -- run at once (tools/run-specs) may both find nothing installed
  local stamp = M.dir .. "/node_modules/.installed-lock.json"
  local lock = q(M.source .. "/package-lock.json")
  local ok, out = run("mkdir -p " .. q(root .. "/build") .. " && flock " .. q(root .. "/build/ts-sdk.lock") ..
    " sh -c " .. q("cmp -s " .. q(stamp) .. " " .. lock .. " || { rm -rf " .. q(M.dir) .. " && mkdir -p " .. q(M.dir) ..
      " && cp " .. q(M.source .. "/package.json") .. " " .. lock .. " " .. q(M.dir) ..
      " && cd " .. q(M.dir) .. " && npm ci --prefer-offline --no-audit --no-fund --ignore-scripts" ..
      " && cp package-lock.json " .. q(stamp) .. "; }"))
  assert(ok, "npm ci in " .. M.dir .. " failed:\n" .. out)
  -- the test files, those newer than the copies (-u: a file another spec
  -- file's node is reading is not rewritten), under the same lock
  local copied, why = run("flock " .. q(root .. "/build/ts-sdk.lock") .. " cp -R -u " .. q(M.source) .. "/. " ..
    q(M.dir) .. "/")
  assert(copied, "cannot copy spec/ts-sdk to " .. M.dir .. ":\n" .. why)
  return M.dir
end

return M
