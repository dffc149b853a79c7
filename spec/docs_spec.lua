-- The documentation holds together: every relative link and anchor resolves,
-- every public function has its entry in docs/api.md (docs/openresty.md for
-- qstash.resty), every CLI flag and command is in docs/cli.md, and the man
-- page is the one tools/gen-man.lua renders from the parser.
local D = require "spec.support.docs"
local qstash = require "qstash"

local ROOT = "."

local function ls(pattern)
  local out = {}
  local p = io.popen("ls " .. pattern .. " 2>/dev/null")
  for f in p:lines() do out[#out + 1] = f end
  p:close()
  return out
end

local function doc_files()
  local files = { "README.md", "SECURITY.md" }
  if D.read(ROOT .. "/CHANGELOG.md") then files[#files + 1] = "CHANGELOG.md" end
  for _, f in ipairs(ls("docs/*.md")) do files[#files + 1] = f end
  return files
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- The documented names of a module table: its functions, private ones
-- (leading '_') and metamethods left out.
local function public_functions(t, into)
  for k, v in pairs(t) do
    if type(k) == "string" and type(v) == "function" and not k:match("^_") then into[k] = true end
  end
  return into
end

-- Names missing from a page's headings and syntax: lines.
local function undocumented(text, names)
  local missing = {}
  for _, name in ipairs(sorted_keys(names)) do
    if not D.documents(text, name) then missing[#missing + 1] = name end
  end
  return missing
end

describe("docs: links", function()
  it("finds the pages to check", function()
    local files = doc_files()
    assert.is_true(#files >= 10, table.concat(files, " "))
    for _, f in ipairs { "docs/api.md", "docs/cli.md", "docs/openresty.md", "docs/architecture.md" } do
      assert.is_truthy(D.read(f), f)
    end
  end)

  it("resolves every relative link and #anchor of README.md, SECURITY.md and docs/", function()
    local bad = D.broken_links(ROOT, doc_files())
    assert.are.same({}, bad)
  end)

  it("makes GitHub's anchors", function()
    assert.equal("receiving-verify-upstash-signature", D.slug("Receiving: verify `Upstash-Signature`"))
    assert.equal("qstash-dlq-over-10000-entries", D.slug("qstash-dlq over 10,000 entries"))
    assert.equal("the-local-emulator-toolsqstash-dev", D.slug("The local emulator: tools/qstash-dev"))
    assert.equal("qstashnew", D.slug("qstash.new"))
    assert.equal("prepare-step-your-own-http", D.slug("prepare, step: your own HTTP"))
    local a = D.anchors("# A\n## Options\n```\n# not a heading\n```\n## Options\n")
    assert.are.same({ a = true, options = true, ["options-1"] = true }, a)
  end)

  it("reports a missing file, a missing anchor and an anchor in a fenced block", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p '" .. dir .. "/docs'"))
    local function write(path, text)
      local fh = assert(io.open(dir .. "/" .. path, "w"))
      fh:write(text)
      fh:close()
    end
    write("README.md", "# Top\n\n[ok](docs/a.md#real) [gone](docs/none.md) [no](docs/a.md#fenced)\n" ..
      "`[code](docs/none.md)` [self](#top) [web](https://example.com/x)\n")
    write("docs/a.md", "# A\n\n## Real\n\n```\n## Fenced\n```\n[up](../README.md#top)\n")
    local bad = D.broken_links(dir, { "README.md", "docs/a.md" })
    os.execute("rm -rf '" .. dir .. "'")
    assert.are.same({
      "README.md:3: docs/none.md (no such file)",
      "README.md:3: docs/a.md#fenced (no heading with that anchor)",
    }, bad)
  end)
end)

describe("docs: every public function has an entry", function()
  it("in docs/api.md: the module's functions and a client's methods", function()
    local names = public_functions(qstash, {})
    local client = qstash.new { token = "t", base_url = "http://127.0.0.1:9" }
    local mt = getmetatable(client)
    assert.equal("table", type(mt.__index))
    public_functions(mt.__index, names)
    -- a prepared call's step, an async handle's cancel
    local call = client:prepare("dlq_get", "1")
    public_functions(getmetatable(call).__index, names)
    client:close()
    assert.is_truthy(names.dlq_retry and names.close and names.step and names.new and names.verify)
    assert.are.same({}, undocumented(assert(D.read("docs/api.md")), names))
  end)

  it("in docs/openresty.md: qstash.resty's functions", function()
    local names = public_functions(require "qstash.resty", {})
    assert.is_truthy(names.dlq_retry and names.verify_request and names.read_body)
    assert.are.same({}, undocumented(assert(D.read("docs/openresty.md")), names))
  end)

  it("fails for a function without one", function()
    local text = "### dlq_retry\n\nsyntax: `client:dlq_get(id)`\n\nprose naming dlq_list\n" ..
      "```\n### dlq_delete\n```\n### dlq_retry_many\n"
    assert.are.same({ "dlq_delete", "dlq_list", "publish" },
      undocumented(text, { dlq_retry = true, dlq_get = true, dlq_list = true, dlq_delete = true,
                           dlq_retry_many = true, publish = true }))
  end)
end)

-- The CLI's flags and commands, from the parser `qstash-dlq --help` prints.
local function cli_names()
  local flags = require "qstash.cli.flags"
  local parser = flags.build({})
  local names = {}
  local function options(cmd)
    for _, opt in ipairs(cmd._options) do
      if not opt._hidden then
        for _, n in ipairs(opt._public_aliases) do names[n] = true end
      end
    end
  end
  options(parser)
  for _, cmd in ipairs(parser._commands) do
    for _, n in ipairs(cmd._public_aliases) do names[n] = true end
    options(cmd)
  end
  return names
end

-- The words of a Markdown text's code (spans and fenced blocks): flags and
-- commands are written as code.
local function code_words(text)
  local words, fence = {}, false
  local function add(code)
    for w in code:gmatch("[%w%-]+") do words[w] = true end
  end
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    if line:match("^%s*```") then
      fence = not fence
    elseif fence then
      add(line)
    else
      for code in line:gmatch("`([^`]+)`") do add(code) end
    end
  end
  return words
end

local function cli_missing(text, names)
  local words, missing = code_words(text), {}
  for _, n in ipairs(sorted_keys(names)) do
    if not words[n] then missing[#missing + 1] = n end
  end
  return missing
end

describe("docs: the CLI", function()
  it("has every flag and command of the parser in docs/cli.md", function()
    local names = cli_names()
    assert.is_truthy(names["--set-callback-retry-delay"] and names["--api-url"] and names.rm and names["-o"])
    assert.are.same({}, cli_missing(assert(D.read("docs/cli.md")), names))
  end)

  it("fails for a flag or command without one", function()
    assert.are.same({ "--set-label", "rm" },
      cli_missing("`delete` and `--set-label-x`\n```sh\nqstash-dlq --dev list\n```\nrm --dev --set-label\n",
        { delete = true, ["--dev"] = true, list = true, ["--set-label"] = true, rm = true }))
  end)

  it("ships the man page tools/gen-man.lua renders from the parser (make man)", function()
    local gen = dofile("tools/gen-man.lua")
    local fresh = gen.render(require("qstash.cli.flags").build({}))
    local committed = D.read("docs/qstash-dlq.1")
    assert.is_truthy(committed, "docs/qstash-dlq.1 is missing: run make man")
    assert(committed == fresh, "docs/qstash-dlq.1 differs from the parser: run make man")
    -- every flag and command is in it, as roff writes them
    for name in pairs(cli_names()) do
      assert.is_truthy(fresh:find(name:gsub("%-", "\\-"), 1, true), name)
    end
  end)
end)

describe("docs: docs/benchmarks.md", function()
  local lua = os.getenv("QSTASH_SPEC_LUA") or "lua5.4"

  it("has the markers between which make bench writes its results", function()
    local text = assert(D.read("docs/benchmarks.md"))
    local b = text:find("\n<!%-%- make bench: results begin")
    local e = text:find("\n<!%-%- make bench: results end")
    assert.is_truthy(b and e and b < e, "the results markers of bench/docs.lua")
    assert.matches("make bench", text:sub(1, 200))
  end)

  it("bench/docs.lua replaces the results and keeps the narrative", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p '" .. dir .. "'"))
    local function write(name, text)
      local fh = assert(io.open(dir .. "/" .. name, "w"))
      fh:write(text)
      fh:close()
    end
    local page = "# Benchmarks\n\nHow it runs.\n\n<!-- make bench: results begin -->\n\nold table\n\n" ..
      "<!-- make bench: results end -->\n\nWhat it shows.\n"
    write("page.md", page)
    write("results.md", "## Benchmark results (`make bench`)\n\nRun: today.\n\n| a |\n|--|\n| 1 |\n")
    local ok = os.execute(("%s bench/docs.lua '%s/results.md' '%s/page.md' >/dev/null"):format(lua, dir, dir))
    local got = D.read(dir .. "/page.md")
    write("bad.md", "# no markers\n")
    local refused = os.execute(("%s bench/docs.lua '%s/results.md' '%s/bad.md' 2>/dev/null"):format(lua, dir, dir))
    local bad = D.read(dir .. "/bad.md")
    os.execute("rm -rf '" .. dir .. "'")
    assert.is_truthy(ok == true or ok == 0)
    assert.equal("# Benchmarks\n\nHow it runs.\n\n<!-- make bench: results begin -->\n\nRun: today.\n\n" ..
      "| a |\n|--|\n| 1 |\n\n<!-- make bench: results end -->\n\nWhat it shows.\n", got)
    assert.is_falsy(refused == true or refused == 0)
    assert.equal("# no markers\n", bad)
  end)
end)
