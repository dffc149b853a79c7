--- The checkable lines of design.md ("Architecture: a transport-neutral
-- core"), read from the sources: what each part of src/ may include, directly
-- or through the project's own headers.

local SRC = "src/"

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- Every header a file includes, following the project's own headers.
local function includes(file, seen)
  seen = seen or {}
  local text = assert(read(SRC .. file), "cannot read " .. SRC .. file)
  for name in text:gmatch('#%s*include%s*[<"]([^>"]+)[>"]') do
    if not seen[name] then
      seen[name] = true
      if read(SRC .. name) then includes(name, seen) end
    end
  end
  return seen
end

local function refuse(file, names)
  local got = includes(file)
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
    assert.is_true(includes("sync.c")["curl/curl.h"])
    assert.is_true(includes("async.c")["decide.h"])
  end)
end)
