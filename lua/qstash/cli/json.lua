-- qstash.cli.json: JSON for the command line's output files and lines.

local cjson = require "cjson"

local M = {}

local json = cjson.new()             -- private instance: never touch the shared settings

-- cjson (2.1.0) writes "/" as "\/": valid but noisy for URLs. Outside a string a
-- "/" cannot occur and inside one cjson always escapes it, so every "\/" in the
-- output is such an escape and can be turned back safely.
function M.encode(v)
  return (json.encode(v):gsub("\\/", "/"))
end

-- A JSON object with one sorted top-level key per line; every key and value is
-- encoded by cjson.
function M.pretty(v)
  if type(v) ~= "table" then return M.encode(v) end
  local keys = {}
  for k in pairs(v) do
    if type(k) ~= "string" then return M.encode(v) end
    keys[#keys + 1] = k
  end
  if #keys == 0 then return "{}" end
  table.sort(keys)
  local lines = {}
  for i, k in ipairs(keys) do
    lines[i] = "  " .. M.encode(k) .. ": " .. M.encode(v[k]) .. (i < #keys and "," or "")
  end
  return "{\n" .. table.concat(lines, "\n") .. "\n}"
end

return M
