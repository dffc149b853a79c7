-- An error raised by a hook while the client decodes or encodes JSON (the
-- interpreter's Ctrl-C "interrupted!" is one) comes out as itself: only the
-- JSON coder's own errors become `decode` (or an argument error), so an
-- interrupted call is never reported as a plain, non-ambiguous failure.
local server = require "spec.support.server"
local qstash = require "qstash"
local qsafe = require "qstash.safe"

-- Every answer is decoded by lua-cjson, called from C: a hook may raise
-- inside it. The answers below carry a nested value, as real ones may.
describe("an error raised by a hook inside the JSON coder", function()
  local srv, client, safe_client

  setup(function()
    srv = server.start()
    local cfg = { token = "t", base_url = srv.url, retry = false, timeout = 2 }
    client = qstash.new(cfg)
    safe_client = qsafe.new(cfg)
  end)
  teardown(function()
    debug.sethook()
    client:close()
    safe_client:close()
    srv:stop()
  end)
  before_each(function() srv:reset() end)

  -- Calls c[method](c, ...) with a call hook that raises `raised` at the
  -- first call of a C function other than pcall and the method (as lua.c's
  -- SIGINT hook does, it removes itself first). Returns pcall's results.
  local function hooked(raised, c, method, ...)
    local fn = c[method]
    debug.sethook(function()
      local info = debug.getinfo(2, "Sf")
      if info and info.what == "C" and info.func ~= fn and info.func ~= pcall and info.func ~= debug.sethook then
        debug.sethook()
        error(raised, 0)
      end
    end, "c")
    local ok, err = pcall(fn, c, ...)
    debug.sethook()
    return ok, err
  end

  it("passes a table raised while a 200 answer is decoded through unchanged", function()
    srv:script{ { status = 200, json = { deleted = 2, via = { coder = true } } } }
    local mine = { "raised by the hook" }
    local ok, err = hooked(mine, client, "dlq_delete_many", { "1-0", "2-0" })
    assert.is_false(ok)
    assert.are.equal(mine, err) -- not a `decode` error
    assert.are.equal(1, #srv:requests()) -- the request went out: its outcome is the caller's to judge
  end)

  it("passes an interrupt through qstash.safe too (never returned as nil, err)", function()
    srv:script{ { status = 200, json = { deleted = 1, via = { coder = true } } } }
    local ok, err = hooked("interrupted!", safe_client, "dlq_delete_many", { "1-0" })
    assert.is_false(ok)
    assert.are.equal("interrupted!", err)
  end)

  it("passes it through while an error answer's message is decoded", function()
    srv:script{ { status = 500, json = { error = "boom", via = { coder = true } } } }
    local ok, err = hooked("interrupted!", client, "dlq_get", "1-0")
    assert.is_false(ok)
    assert.are.equal("interrupted!", err)
  end)

  it("passes it through while a body is encoded (never an argument error)", function()
    srv:script{ { status = 201, json = { messageId = "msg_1" } } }
    local ok, err = hooked("interrupted!", client, "publish_json", "https://example.com/x", { a = 1 })
    assert.is_false(ok)
    assert.are.equal("interrupted!", err)
    assert.are.equal(0, #srv:requests())
  end)

  it("passes it out of dlq_retry_each with requests in flight, and the client still works", function()
    -- the first request to arrive waits for its answer: it is in flight
    -- when the other's answer is decoded, and the server has both before
    -- it is reset (a request arriving after the reset would take the
    -- answer scripted for the call below)
    srv:script{ { status = 201, json = { messageId = "msg_a", via = { coder = true } }, delay = 0.3 },
      { status = 201, json = { messageId = "msg_b", via = { coder = true } } } }
    local ok, err = hooked("interrupted!", client, "dlq_retry_each", { "1-0", "2-0" }, {}, {
      concurrency = 2, on_result = function() end })
    assert.is_false(ok)
    assert.are.equal("interrupted!", err)
    srv:wait_requests(2)
    srv:reset()
    srv:script{ { status = 200, json = { deleted = 1 } } }
    assert.are.same({ deleted = 1 }, client:dlq_delete_many{ "3-0" })
  end)

  it("ends dlq_retry_each when what a hook raises comes at the batch's own callback", function()
    -- answers without a body: no coder runs, the hook's first C call is the
    -- batch's callback, which raises before counting its id
    local c = qstash.new{ token = "t", base_url = srv.url, retry = false, timeout = 2 }
    srv:script{ { status = 404, body = "" }, { status = 404, body = "" } }
    local ok, err = hooked("interrupted!", c, "dlq_retry_each", { "1-0", "2-0" }, {}, { concurrency = 2 })
    assert.is_false(ok)
    assert.matches("interrupted!", err, 1, true) -- as a callback's error
    srv:reset()
    srv:script{ { status = 200, json = { deleted = 1 } } }
    assert.are.same({ deleted = 1 }, c:dlq_delete_many{ "3-0" })
    c:close()
  end)

  it("still reports the coder's own errors as decode and as argument errors", function()
    srv:script{ { status = 200, body = "{not json", headers = { ["Content-Type"] = "application/json" } } }
    local ok, err = pcall(client.dlq_delete_many, client, { "1-0" })
    assert.is_false(ok)
    assert.is_true(qstash.is_error(err), tostring(err))
    assert.are.equal("decode", err.kind)
    assert.matches("Expected", err.message, 1, true)
    ok, err = pcall(client.publish_json, client, "https://example.com/x", { a = 0 / 0 })
    assert.is_false(ok)
    assert.matches("cannot encode as JSON: Cannot serialise", tostring(err), 1, true)
  end)
end)
