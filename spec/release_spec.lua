-- The version is written once (src/base/version.h); the module's _VERSION, the
-- user agent, `qstash-dlq --version`, the release rockspec and CHANGELOG.md
-- all agree with it, and the release rockspec is what tools/rockspec makes
-- of qstash-scm-1.rockspec (the two are never edited apart).
local sh = require("spec.support.proc").sh

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

describe("the release", function()
  local version = read("src/base/version.h"):match('#define QS_VERSION "([^"]+)"')

  it("has a semantic version in src/base/version.h, and only there", function()
    assert.matches("^%d+%.%d+%.%d+$", version)
    local out = sh("grep -rn 'define QS_VERSION ' src")
    local n = select(2, out:gsub("\n", "\n"))
    assert.equal(1, n, out)
  end)

  it("is the module's _VERSION, in qstash and qstash.safe", function()
    assert.equal(version, require("qstash")._VERSION)
    assert.equal(version, require("qstash.safe")._VERSION)
  end)

  it("is in the default User-Agent", function()
    local c = require("qstash").new{ token = "t", base_url = "http://127.0.0.1:1" }
    local _, req = c:prepare("dlq_get", "x"):step()
    local ua
    for _, h in ipairs(req.headers) do
      if h[1] == "User-Agent" then ua = h[2] end
    end
    c:close()
    assert.matches("^lua%-qstash/" .. version:gsub("%.", "%%.") .. " libcurl/", ua)
  end)

  it("is what qstash-dlq --version prints", function()
    local lua = os.getenv("QSTASH_SPEC_LUA") or "lua5.4"
    local out, code = sh(lua .. " bin/qstash-dlq --version")
    assert.equal(0, code, out)
    assert.equal("qstash-dlq " .. version .. "\n", out)
  end)

  it("has its rockspec, made by tools/rockspec from the scm one", function()
    local file = "qstash-" .. version .. "-1.rockspec"
    local committed = read(file)
    assert.equal(sh("sh tools/rockspec"), committed)
    assert.truthy(committed:find('\nversion = "' .. version .. '-1"\n', 1, true))
    assert.truthy(committed:find('file = "lua-qstash-' .. version .. '.tar.gz"', 1, true))
    -- luarocks test runs the suite
    assert.truthy(read("qstash-scm-1.rockspec"):find('test = {\n  type = "command",\n  script = "tools/luarocks-test.lua",\n}', 1, true))
  end)

  it("has a CHANGELOG.md section, dated, in Keep a Changelog form", function()
    local log = read("CHANGELOG.md")
    assert.truthy(log:find("keepachangelog.com", 1, true))
    assert.truthy(log:find("\n## %[Unreleased%]\n"))
    assert.matches("\n## %[" .. version:gsub("%.", "%%.") .. "%] %- %d%d%d%d%-%d%d%-%d%d\n", log)
  end)

  it("has one rockspec per release, none stale", function()
    local out = sh("ls qstash-*.rockspec")
    for name in out:gmatch("[^\n]+") do
      if name ~= "qstash-scm-1.rockspec" then assert.equal("qstash-" .. version .. "-1.rockspec", name) end
    end
  end)
end)
