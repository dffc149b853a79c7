-- Writes a bench run's results into docs/benchmarks.md, keeping the page's
-- narrative: only the lines between the two marker comments are replaced.
-- Usage: lua5.4 bench/docs.lua RESULTS_MD DOCS_MD
-- RESULTS_MD is what bench/report.lua writes (its "## ..." title line is left
-- out: the page has its own headings). Exits 1, changing nothing, when the
-- page lacks its markers.
local results_path, docs_path = arg[1], arg[2]

local BEGIN = "^<!%-%- make bench: results begin"
local END = "^<!%-%- make bench: results end"

local function read(path)
  local fh = assert(io.open(path, "rb"))
  local text = fh:read("*a")
  fh:close()
  return text
end

local results = read(results_path):gsub("^##[^\n]*\n+", ""):gsub("\n+$", "")
local out, state = {}, "before"
for line in (read(docs_path):gsub("\n$", "") .. "\n"):gmatch("([^\n]*)\n") do
  if state == "before" then
    out[#out + 1] = line
    if line:match(BEGIN) then
      out[#out + 1] = ""
      out[#out + 1] = results
      out[#out + 1] = ""
      state = "inside"
    end
  elseif state == "inside" then
    if line:match(END) then
      out[#out + 1] = line
      state = "after"
    end
  else
    out[#out + 1] = line
  end
end
if state ~= "after" then
  io.stderr:write(("bench/docs.lua: %s has no results markers; left as it was\n"):format(docs_path))
  os.exit(1)
end
local tmp = docs_path .. ".tmp"
local fh = assert(io.open(tmp, "wb"))
fh:write(table.concat(out, "\n"), "\n")
fh:close()
assert(os.rename(tmp, docs_path))
print("(written to " .. docs_path .. ")")
