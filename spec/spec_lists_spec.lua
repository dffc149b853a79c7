-- The Makefile's lists of specs that run under lua5.4 only and never under
-- ASan (MODULE_FREE_SPECS, OWN_BUILD_SPECS): each file exists, and none of
-- MODULE_FREE_SPECS reaches the module, directly or through the support
-- modules it requires: were one to, the other interpreters and ASan would
-- skip a spec of the module.

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- The words of a Makefile variable, its continuation lines joined.
local function make_list(name)
  local text = assert(read("Makefile"), "no Makefile here"):gsub("\\\n", " ")
  local value = text:match("\n" .. name .. "%s*=%s*([^\n]*)")
  assert(value, "the Makefile defines no " .. name)
  local out = {}
  for w in value:gmatch("%S+") do out[#out + 1] = w end
  return out
end

-- What running a file means loading the module: requiring it, or starting
-- something that does (the CLI, an example, an interpreter of the suite's).
-- Each pattern escapes a character, so that this file does not match it.
local REACHES = {
  { "requires the module", "require%s*%(?%s*[\"']qstash[\"'.]" },
  { "runs the CLI", "qstash%-dlq" },
  { "runs an example", "examples%/" },
  { "starts the suite's interpreter", "QSTASH_SPEC_LU[A]" },
  { "loads a build", "build%/lua" },
}

-- Why `path` reaches the module (following spec.support requires), or nil.
local function reaches(path, seen)
  seen = seen or {}
  if seen[path] then return nil end
  seen[path] = true
  local src = assert(read(path), "cannot read " .. path)
  for _, row in ipairs(REACHES) do
    if src:find(row[2]) then return path .. " " .. row[1] end
  end
  for mod in src:gmatch("require%s*%(?%s*[\"'](spec%.support%.[%w_]+)[\"']") do
    local why = reaches(mod:gsub("%.", "/") .. ".lua", seen)
    if why then return why end
  end
  return nil
end

describe("the Makefile's lists of specs", function()
  it("name files that exist", function()
    for _, name in ipairs({ "MODULE_FREE_SPECS", "OWN_BUILD_SPECS" }) do
      local list = make_list(name)
      assert.is_true(#list > 0, name .. " is empty")
      for _, f in ipairs(list) do
        assert.is_truthy(read(f), name .. " names " .. f .. ", which is not there")
      end
    end
  end)

  it("hold in MODULE_FREE_SPECS only specs that never load the module", function()
    for _, f in ipairs(make_list("MODULE_FREE_SPECS")) do
      assert.is_nil(reaches(f))
    end
  end)

  it("see the module where a spec loads it", function()
    assert.is_truthy(reaches("spec/dlq_retry_spec.lua"))
    assert.is_truthy(reaches("spec/cli_spec.lua"))
    assert.is_truthy(reaches("spec/frame_loop_spec.lua"))
  end)
end)
