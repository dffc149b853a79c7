-- LuaRocks: `luarocks make --deps-mode=none` into a temporary tree installs
-- the module, qstash.safe, qstash.resty, the CLI and the emulator (its launcher
-- and its Python package), which then run from there.
local E = require "spec.support.emulator"

local sh = require("spec.support.proc").sh

-- builds or installs the 5.4 module: elsewhere one pending test says why
local describe_54 = _VERSION == "Lua 5.4" and describe or function(name)
  describe(name, function() pending("runs under lua5.4 only") end)
end

describe_54("luarocks make", function()
  local dir, tree, emu

  setup(function()
    dir = E.tmpdir()
    tree = dir .. "/tree"
    -- a copy of the sources: luarocks builds in the source folder
    local out, code = sh(("mkdir -p %s/src && cp -r src lua bin tools qstash-scm-1.rockspec %s/src/ && cd %s/src && " ..
      "luarocks --lua-version 5.4 --tree %s make --deps-mode=none qstash-scm-1.rockspec"):format(dir, dir, dir, tree))
    assert(code == 0, out)
    emu = E.start{ time_scale = 0.001 }
  end)
  teardown(function()
    if emu then emu:stop() end
    os.execute("rm -rf '" .. dir .. "'")
  end)

  local function lua(code)
    return sh(("env -u LUA_PATH -u LUA_CPATH LUA_PATH='%s/share/lua/5.4/?.lua;;' LUA_CPATH='%s/lib/lua/5.4/?.so;;' lua5.4 -e %q")
      :format(tree, tree, code))
  end

  it("installs the module, qstash.safe and qstash.resty", function()
    local out, code = lua([[
      local q = require "qstash"
      local s = require "qstash.safe"
      local r = require "qstash.resty"
      assert(package.searchpath("qstash", package.cpath):find("/tree/lib/lua/5.4/", 1, true))
      print(q._VERSION, type(s.dlq_retry), type(r.dlq_retry), type(r.verify_request))
    ]])
    assert.equal(0, code, out)
    assert.matches("^%d+%.%d+%.%d+\tfunction\tfunction\tfunction", out)
  end)

  it("the installed module talks to the emulator", function()
    local out, code = lua(([[
      local c = require("qstash").new{ base_url = %q, token = %q }
      print(#c:dlq_list().messages)
    ]]):format(emu.url, emu.token))
    assert.equal(0, code, out)
    assert.equal("0\n", out)
  end)

  it("installs the CLI, which runs from the tree", function()
    -- a tree of one's own is put on the paths the LuaRocks way: `luarocks path`
    local env = ("eval \"$(luarocks --lua-version 5.4 --tree %s path)\" && "):format(tree)
    local out, code = sh(("%s QSTASH_TOKEN=%s %s/bin/qstash-dlq --base-url %s list --json")
      :format(env, emu.token, tree, emu.url))
    assert.equal(0, code, out)
    out, code = sh(env .. tree .. "/bin/qstash-dlq --help")
    assert.equal(0, code, out)
    assert.matches("Usage: qstash%-dlq", out)
  end)

  it("installs the emulator, which runs from the tree", function()
    -- the launcher finds its package under ../share/lua/5.4/ and nowhere
    -- else: the source tree's tools/ is not on its path
    assert.truthy(io.open(tree .. "/share/lua/5.4/qstash_dev/__init__.py"), "no package in the tree")
    local installed = E.start{ launcher = tree .. "/bin/qstash-dev" }
    local status, doc, raw = installed:json("GET", "/v2/dlq")
    installed:stop()
    assert.equal(200, status, raw)
    assert.same({}, doc.messages)
    -- nothing written into the tree (no __pycache__): luarocks remove leaves it empty
    local out = sh(("find %s/share/lua/5.4/qstash_dev -name __pycache__"):format(tree))
    assert.equal("", out)
  end)
end)

-- Every C source and every Lua module of the tree is in the rockspec: a
-- file added to src/ or lua/qstash/ and forgotten there builds with make
-- and breaks `luarocks make` (an undefined symbol at require time).
describe("the rockspec", function()
  local function read(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("*a")
    f:close()
    return s
  end

  local function files(cmd)
    local t = {}
    local p = assert(io.popen(cmd))
    for line in p:lines() do t[#t + 1] = line end
    p:close()
    table.sort(t)
    return t
  end

  it("lists every C source under src/ and every lua/qstash module", function()
    local spec = read("qstash-scm-1.rockspec")
    for _, f in ipairs(files("find src -name '*.c'")) do
      assert.truthy(spec:find('"' .. f .. '"', 1, true), f .. " is not in the rockspec's sources")
    end
    for _, f in ipairs(files("find lua/qstash -name '*.lua'")) do
      local mod = f:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/", ".")
      assert.truthy(spec:find('["' .. mod .. '"] = "' .. f .. '"', 1, true), f .. " is not in the rockspec's modules")
    end
  end)

  -- the emulator's package is installed file by file (build.install.lua):
  -- a module added to tools/qstash_dev/ and forgotten there would make the
  -- installed emulator fail at import
  it("installs every file of the emulator's package and its launcher", function()
    local spec = read("qstash-scm-1.rockspec")
    local found = files("ls tools/qstash_dev/*.py")
    assert.truthy(#found > 10, "no emulator package in tools/qstash_dev")
    for _, f in ipairs(found) do
      local mod = "qstash_dev." .. f:match("([^/]+)%.py$")
      assert.truthy(spec:find('["' .. mod .. '"] = "' .. f .. '"', 1, true), f .. " is not in the rockspec's install.lua")
    end
    assert.truthy(spec:find('["qstash-dev"] = "tools/qstash-dev"', 1, true), "the launcher is not in install.bin")
  end)
end)
