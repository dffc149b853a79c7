--- The checkable lines of design.md ("Architecture: a transport-neutral
-- core"), read from the sources: what each part of src/ may include, directly
-- or through the project's own headers; and the folders of src/, each of which
-- includes only itself and the folders below it.

local SRC = "src/"

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- Every header a file includes, following the project's own headers; the
-- project's by their names without the folder ("core/decide.h" counts as
-- "decide.h"), the system's as written ("curl/curl.h").
local function includes(file, seen)
  seen = seen or {}
  local text = assert(read(SRC .. file), "cannot read " .. SRC .. file)
  for name in text:gmatch('#%s*include%s*[<"]([^>"]+)[>"]') do
    local own = read(SRC .. name) ~= nil
    local key = own and name:match("[^/]+$") or name
    if not seen[key] then
      seen[key] = true
      if own then includes(name, seen) end
    end
  end
  return seen
end

-- Where a file of src/ lives, by its name (the folders are the parts).
local function files_by_name()
  local t = {}
  local p = assert(io.popen("cd " .. SRC .. " && find . -name '*.[ch]'"))
  for line in p:lines() do
    local path = line:gsub("^%./", "")
    t[path:match("[^/]+$")] = path
  end
  p:close()
  return t
end
local WHERE = files_by_name()

local function refuse(file, names)
  local got = includes((assert(WHERE[file], file .. " not found under " .. SRC)))
  for _, n in ipairs(names) do
    assert.is_nil(got[n], file .. " reaches " .. n)
  end
end

local DECIDING = {
  "options.c", "filters.c", "decide.c", "result.c", "errors.c", "response.c", "request.c", "url.c",
  "conf.c", "call.c", "step.c", "dlq.c", "publish.c", "args.c", "logs.c", "messages.c", "pages.c",
  "plan.c",
}
local API = { "api.h", "dlq.h", "publish.h", "call.h", "step.h", "async.h", "logs.h", "messages.h", "pages.h",
  "plan.h", "each_follow.h" }
local DECISIONS = { "decide.h", "result.h", "options.h", "filters.h", "response.h" }

describe("layering of src/", function()
  it("the files that decide include neither libcurl nor the engine", function()
    for _, f in ipairs(DECIDING) do refuse(f, { "curl/curl.h", "engine.h" }) end
  end)

  it("the client includes nothing of the async code or the API functions", function()
    refuse("client.c", API)
    refuse("client.h", API)
  end)

  it("the engine includes nothing of the API or the decisions", function()
    local banned = {}
    for _, n in ipairs(API) do banned[#banned + 1] = n end
    for _, n in ipairs(DECISIONS) do banned[#banned + 1] = n end
    refuse("engine.c", banned)
    refuse("engine.h", banned)
  end)

  it("follows includes through headers (the check itself can fail)", function()
    assert.is_true(includes(WHERE["sync.c"])["curl/curl.h"])
    assert.is_true(includes(WHERE["async.c"])["decide.h"])
  end)
end)

-- The folders of src/ from the bottom up (docs/architecture.md): a file
-- includes the project's headers of its own folder and of lower folders
-- only, each by its folder ("core/errors.h"). Two folders of one rank know
-- nothing of each other. src/qstash.c, the module's entry, is on top.
local RANK = { base = 1, core = 2, engine = 3, client = 4, verify = 5, call = 5, api = 6, drive = 7, [""] = 8 }

describe("the folders of src/", function()
  local function folder(path) return path:match("^(.*)/") or "" end

  local function violations()
    local bad = {}
    for _, path in pairs(WHERE) do
      local from = folder(path)
      local text = read(SRC .. path)
      for name in text:gmatch('#%s*include%s*"([^"]+)"') do
        local to = folder(name)
        if not RANK[from] then bad[#bad + 1] = path .. ": a folder of no rank"
        elseif WHERE[name:match("[^/]+$")] ~= name then
          bad[#bad + 1] = path .. ' includes "' .. name .. '": not a path under src/'
        elseif to ~= from and RANK[to] >= RANK[from] then
          bad[#bad + 1] = path .. ' includes "' .. name .. '": ' .. to .. " is not below " .. (from ~= "" and from or "the top")
        end
      end
    end
    table.sort(bad)
    return bad
  end

  it("every folder includes only itself and the folders below it", function()
    assert.same({}, violations())
  end)

  it("every C file is in a folder of the architecture (only the entry on top)", function()
    for name, path in pairs(WHERE) do
      if folder(path) == "" then assert.truthy(name == "qstash.c" or name == "qstash.h", path) end
    end
  end)

  it("the check itself can fail: an include back up is seen", function()
    WHERE["fake.c"] = "core/fake.c"
    local orig = read
    read = function(p)
      if p == SRC .. "core/fake.c" then return '#include "api/api.h"\n' end
      return orig(p)
    end
    local bad = violations()
    read = orig
    WHERE["fake.c"] = nil
    assert.same({ 'core/fake.c includes "api/api.h": api is not below core' }, bad)
  end)
end)
