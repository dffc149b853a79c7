-- The short path for flat JSON answers (src/core/json_flat.c) gives the
-- very result lua-cjson gives (nulls dropped, integral numbers as integers),
-- and leaves every body it does not take whole to lua-cjson, errors included.
local server = require "spec.support.server"
local qstash = require "qstash"
local cjson = require "cjson"

-- a decoder set as the client's own (response.c): no invalid numbers
local coder = cjson.new()
coder.decode_invalid_numbers(false)

-- lua-cjson's result as the client shapes it: JSON nulls dropped, integral
-- floats made integers (Lua 5.3+)
local function expected(body)
  local function norm(v)
    if v == cjson.null then return nil end
    if type(v) == "table" then
      local t = {}
      for k, x in pairs(v) do t[k] = norm(x) end
      return t
    end
    if math.type and math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2 ^ 53 then
      return math.tointeger(v)
    end
    return v
  end
  return norm(coder.decode(body))
end

describe("flat JSON answers", function()
  local srv, c
  setup(function()
    srv = server.start()
    c = qstash.new{ token = "t", base_url = srv.url, retry = false }
  end)
  teardown(function() c:close(); srv:stop() end)
  before_each(function() srv:reset() end)

  -- queue_get checks only that the answer has a name: the rest comes as decoded
  local bodies = {
    '{"name":"q","deleted":2}', ' { "name" : "q" , "deleted" : 0 , "a":"b" }\r\n', '{"name":"q"}',
    '{"name":"q","a":true,"b":false,"a":"last"}',
    '{"name":"q","n":123456789012345}', '{"name":"q","n":1234567890123456}', '{"name":"q","n":1.5}',
    '{"name":"q","n":1e2}', '{"name":"q","n":-3}', '{"name":"q","n":0}',
    '{"name":"q","s":"caf\\u00e9"}', '{"name":"q","s":"a\\"b"}', '{"name":"q","x":null,"y":1}',
    '{"name":"q","o":{"p":1}}', '{"name":"q","l":[1,2]}', '{"name":"q","k":"\xc3\xa9"}', '{"name":"q","":""}',
  }
  for _, body in ipairs(bodies) do
    it("decodes " .. body .. " as lua-cjson does", function()
      srv:script{ { status = 200, body = body, headers = { ["Content-Type"] = "application/json" } } }
      local res = c:queue_get("q")
      -- (queue_get adds the fields a queue lacks: the body's own are compared)
      for k, v in pairs(expected(body)) do
        assert.are.same(v, res[k], k)
        if math.type then assert.equal(math.type(v), math.type(res[k]), k) end
      end
      if body:find("null", 1, true) then assert.is_nil(res.x) end
    end)
  end

  for _, body in ipairs{ '{"a":1,}', '{"a":01}', '{"a":truex}', '{"a" 1}', '{"a":1}x', '{a:1}' } do
    it("leaves " .. body .. " to lua-cjson, which refuses it", function()
      srv:script{ { status = 200, body = body, headers = { ["Content-Type"] = "application/json" } } }
      local ok, err = pcall(c.queue_get, c, "q")
      assert.is_false(ok)
      assert.equal("decode", err.kind)
      assert.is_false(pcall(coder.decode, body))
    end)
  end
end)
