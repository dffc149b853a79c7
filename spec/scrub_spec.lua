-- The token never leaks through an error, whatever form a server or proxy
-- echoes it in: raw, cut by the 200-byte message or the 4 KiB body limit
-- (scrub first, then truncate), percent-encoded (token_in_query), or
-- JSON-escaped (`\/` for `/`).
local server = require "spec.support.server"
local qstash = require "qstash"
local cjson = require "cjson"

-- Base64-like, 44 characters, with '/' and '+'.
local TOKEN = "eyJVc2VySUQiOi/JkZWZhdWx0+IiwiUGFzc3dvcmQ/iOi"

-- Every way the text could still carry the token: as is, with JSON's `\/`
-- undone, with percent-escapes (either case) decoded.
local function readings(text)
  local unescaped = text:gsub("\\/", "/")
  local function decode(s)
    return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
  end
  return { text, unescaped, decode(text), decode(unescaped) }
end

-- The first 8-byte piece of the token found in text (in any reading), or nil.
local function leaked_piece(text)
  if type(text) ~= "string" then return nil end
  for _, t in ipairs(readings(text)) do
    for i = 1, #TOKEN - 7 do
      local piece = TOKEN:sub(i, i + 7)
      if t:find(piece, 1, true) then return piece end
    end
  end
  return nil
end

-- The end of a long text, for assertion messages.
local function tail(text)
  return #text > 120 and ("..." .. text:sub(-120)) or text
end

local function assert_no_leak(err)
  assert.is_true(qstash.is_error(err), tostring(err))
  for _, field in ipairs{ "message", "body", "path" } do
    local piece = leaked_piece(err[field])
    assert.is_nil(piece, ("err.%s carries %q of the token: %s"):format(field, tostring(piece), tail(tostring(err[field]))))
  end
  local piece = leaked_piece(tostring(err))
  assert.is_nil(piece, ("tostring(err) carries %q of the token: %s"):format(tostring(piece), tail(tostring(err))))
end

describe("token scrubbing", function()
  local srv

  setup(function() srv = server.start() end)
  teardown(function() srv:stop() end)
  before_each(function() srv:reset() end)

  local function fail(cfg)
    cfg = cfg or {}
    cfg.token = TOKEN
    cfg.base_url = srv.url
    cfg.retry = false
    local c = qstash.new(cfg)
    local ok, err = pcall(c.dlq_retry, c, "abc")
    c:close()
    assert.is_false(ok)
    return err
  end

  -- 8, 20 and 36 bytes of the token before the cut, the rest after it.
  for _, before in ipairs{ 8, 20, 36 } do
    it("a token straddling the 4 KiB body cut (" .. before .. " bytes before it) #issue11", function()
      srv:script{ { status = 500, body = ("x"):rep(4096 - before) .. TOKEN .. " trailing text" } }
      local err = fail()
      assert.equal("server", err.kind)
      assert.is_true(#err.body <= 4096)
      assert_no_leak(err)
    end)

    it("a token straddling the 200-byte message cut (" .. before .. " bytes before it) #issue11", function()
      srv:script{ { status = 500, headers = { ["Content-Type"] = "text/plain" },
        body = ("e"):rep(200 - before) .. TOKEN .. " is not valid" } }
      local err = fail()
      assert.equal("server", err.kind)
      assert_no_leak(err)
    end)
  end

  for _, case in ipairs{ "raw", "lower" } do
    it("the percent-encoded token echoed by a proxy (" .. case .. " hex) with token_in_query #issue11", function()
      srv:script{ { status = 502, body = "upstream error for ", echo_target = case } }
      local err = fail{ token_in_query = true }
      -- the server saw the encoded token: it is what is echoed back
      assert.matches("qstash_token=", srv:requests()[1].target, 1, true)
      assert.equal("server", err.kind)
      assert_no_leak(err)
    end)
  end

  it("the JSON-escaped token (\\/ for /) in a JSON error body #issue11", function()
    local body = cjson.encode{ error = "invalid token " .. TOKEN }
    assert.matches("\\/", body, 1, true) -- cjson escapes '/'
    srv:script{ { status = 401, headers = { ["Content-Type"] = "application/json" }, body = body } }
    local err = fail()
    assert.equal("unauthorized", err.kind)
    assert_no_leak(err)
  end)
end)
