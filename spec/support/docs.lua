-- Reading the Markdown docs as the specs need them: headings and their
-- GitHub anchors, relative links, and the names a reference page documents.
-- Text inside ``` fences and `code spans` is neither a heading nor a link.
local M = {}

function M.read(path)
  local fh = io.open(path, "rb")
  if not fh then return nil end
  local text = fh:read("*a")
  fh:close()
  return text
end

-- The lines of a file outside ``` fences, each with its line number.
local function prose_lines(text)
  local out, fence = {}, false
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if line:match("^%s*```") then
      fence = not fence
    elseif not fence then
      out[#out + 1] = { n = n, line = line }
    end
  end
  return out
end

-- GitHub's anchor of a heading: lower case, markup and punctuation dropped,
-- spaces to '-' (letters, digits, '-' and '_' kept; bytes of UTF-8 kept).
function M.slug(heading)
  local s = heading:gsub("%[([^%]]*)%]%b()", "%1")   -- a link keeps its text
  s = s:lower():gsub("[^%w%s%-_\128-\255]", ""):gsub(" ", "-")
  return s
end

-- The headings of a text, in order: { level, text, anchor, n }. A repeated
-- anchor gets -1, -2, ... as on GitHub.
function M.headings(text)
  local out, seen = {}, {}
  for _, l in ipairs(prose_lines(text)) do
    local hashes, title = l.line:match("^(#+)%s+(.-)%s*#*%s*$")
    if hashes and #hashes <= 6 then
      local base = M.slug(title)
      local anchor = base
      if seen[base] then anchor = base .. "-" .. seen[base] end
      seen[base] = (seen[base] or 0) + 1
      out[#out + 1] = { level = #hashes, text = title, anchor = anchor, n = l.n }
    end
  end
  return out
end

function M.anchors(text)
  local set = {}
  for _, h in ipairs(M.headings(text)) do set[h.anchor] = true end
  return set
end

-- The relative links of a text: { target, n } for every [text](target) outside
-- code, absolute URLs (scheme:) left out.
function M.links(text)
  local out = {}
  for _, l in ipairs(prose_lines(text)) do
    local line = l.line:gsub("``.-``", ""):gsub("`[^`]*`", "")
    for target in line:gmatch("%]%(([^%)%s]+)%)") do
      if not target:match("^%a[%w+.-]*:") then out[#out + 1] = { target = target, n = l.n } end
    end
  end
  return out
end

-- Every relative link of the files that does not resolve: "file:line: why".
-- root: the repository; files: paths relative to it.
function M.broken_links(root, files)
  local bad, cache = {}, {}
  local function anchors_of(path)
    if cache[path] == nil then
      local text = M.read(root .. "/" .. path)
      cache[path] = text and M.anchors(text) or false
    end
    return cache[path]
  end
  local function normalise(path)
    local parts = {}
    for p in path:gmatch("[^/]+") do
      if p == ".." then parts[#parts] = nil elseif p ~= "." then parts[#parts + 1] = p end
    end
    return table.concat(parts, "/")
  end
  for _, file in ipairs(files) do
    local text = assert(M.read(root .. "/" .. file), file)
    local dir = file:match("^(.*)/[^/]*$")
    for _, link in ipairs(M.links(text)) do
      local path, anchor = link.target:match("^([^#]*)#?(.*)$")
      local target = path == "" and file or normalise((dir and dir .. "/" or "") .. path)
      local where = ("%s:%d: %s"):format(file, link.n, link.target)
      if not M.read(root .. "/" .. target) and not os.rename(root .. "/" .. target, root .. "/" .. target) then
        bad[#bad + 1] = where .. " (no such file)"
      elseif anchor ~= "" then
        local set = target:match("%.md$") and anchors_of(target)
        if not set then
          bad[#bad + 1] = where .. " (an anchor into a file that is not Markdown)"
        elseif not set[anchor] then
          bad[#bad + 1] = where .. " (no heading with that anchor)"
        end
      end
    end
  end
  return bad
end

-- Whether a reference page documents `name`: a heading naming it, or a
-- `syntax:` line naming it (as a whole word; `a_b` is not `b`).
function M.documents(text, name)
  local pat = "%f[%w_]" .. name:gsub("%p", "%%%0") .. "%f[^%w_]"
  for _, l in ipairs(prose_lines(text)) do
    local line = l.line
    if (line:match("^#+%s") or line:match("^syntax:")) and line:match(pat) then return true end
  end
  return false
end

return M
