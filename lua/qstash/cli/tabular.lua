-- qstash.cli.tabular: plain-text tables for a terminal.

local M = {}

-- Control bytes from the server never reach the terminal.
function M.cell(v)
  if v == nil then return "" end
  return (tostring(v):gsub("%c", "?"))
end

-- Writes rows (arrays of strings) under header, columns padded to their widest
-- cell; right lists the columns aligned right (numbers).
function M.write(out, header, rows, right)
  right = right or {}
  local all = { header }
  for _, r in ipairs(rows) do all[#all + 1] = r end
  local widths = {}
  for _, r in ipairs(all) do
    for i, c in ipairs(r) do
      if not widths[i] or #c > widths[i] then widths[i] = #c end
    end
  end
  for _, r in ipairs(all) do
    local cells = {}
    for i, c in ipairs(r) do
      local pad = (" "):rep(widths[i] - #c)
      if right[i] then
        cells[i] = pad .. c
      else
        cells[i] = i < #r and c .. pad or c
      end
    end
    out:write(table.concat(cells, "  "), "\n")
  end
end

return M
