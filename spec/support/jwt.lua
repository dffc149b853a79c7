--- Upstash-Signature tokens for specs, signed by spec/support/jwt_vectors.py
-- (an implementation independent of the C code), with keys and claims chosen
-- by the spec.
--
--   local jwt = require "spec.support.jwt"
--   local tokens = jwt.sign{ { key = "us-current-key", body = "x", url = "https://a/b" }, ... }
--   local token = jwt.sign1{ key = "k", body = "x", claims = { exp = os.time() }, pad_body = false }
local cjson = require "cjson"

local M = {}

local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Signs each request ({key, body?, url?, claims?, drop?, pad_body?}, see
-- jwt_vectors.py) and returns the tokens in order.
function M.sign(requests)
  local file = os.tmpname()
  local f = assert(io.open(file, "wb"))
  f:write(cjson.encode(requests))
  f:close()
  local python = os.getenv("PYTHON") or "python3"
  local p = assert(io.popen(python .. " " .. shell_quote(here .. "jwt_vectors.py") .. " sign <"
    .. shell_quote(file), "r"))
  local out = p:read("*a")
  p:close()
  os.remove(file)
  assert(out:sub(1, 1) == "[", "jwt_vectors.py sign failed: " .. out)
  local tokens = cjson.decode(out)
  assert(#tokens == #requests, "jwt_vectors.py sign: wrong number of tokens")
  return tokens
end

function M.sign1(request)
  return M.sign({ request })[1]
end

return M
