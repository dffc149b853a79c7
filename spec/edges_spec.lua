-- Smaller edges: the real cause when file descriptors run out, keys with a
-- NUL byte, numbers no C integer can hold, and a batch id list with other keys.
local server = require "spec.support.server"
local isolated = require "spec.support.isolated"
local qstash = require "qstash"

describe("edges", function()
  local srv

  setup(function() srv = server.start() end)
  teardown(function() srv:stop() end)
  before_each(function() srv:reset() end)

  it("out of file descriptors: the error names the cause #issue11", function()
    local r = isolated.run([==[
      local qstash = require "qstash"
      local c = qstash.new{ token = "t", base_url = arg[1], retry = false }
      local files = {}
      while true do
        local f = io.open("/dev/null")
        if not f then break end
        files[#files + 1] = f
      end
      local ok, err = pcall(c.dlq_retry, c, "x")
      for _, f in ipairs(files) do f:close() end
      assert(not ok, "the call succeeded without a free descriptor")
      print("ERROR: " .. tostring(err))
    ]==], { args = { srv.url }, shell = "ulimit -n 32", timeout = 20 })
    assert.is_true(r.ok, isolated.describe(r))
    local msg = r.out:match("ERROR: ([^\n]*)") or ""
    assert.is_truthy(msg:find("Too many open files", 1, true) or msg:find("EMFILE", 1, true),
      "the error does not name the cause: " .. msg)
  end)

  describe("a key with a NUL byte is not taken for the key before it", function()
    -- the key in the message, escaped, or a word about the NUL byte
    local function names_the_nul(err)
      local m = tostring(err)
      return m:find("retries\\0", 1, true) or m:find("\\x00", 1, true) or m:find("\\000", 1, true) or
        m:lower():find("nul", 1, true)
    end
    local cases = {
      { "an option", function(c) return c:dlq_retry("x", { ["retries\0x"] = 1 }) end },
      { "a batch option", function(c) return c:dlq_retry_each({ "x" }, nil, { ["concurrency\0x"] = 1 }) end },
      { "a config key", function() return qstash.new{ token = "t", ["retry\0x"] = false } end },
    }
    for _, case in ipairs(cases) do
      it(case[1] .. " #issue11", function()
        local c = qstash.new{ token = "t", base_url = srv.url, retry = false }
        local ok, err = pcall(case[2], c)
        c:close()
        assert.is_false(ok)
        assert.is_string(err)
        assert.is_nil(err:find("did you mean", 1, true), err)
        assert.is_truthy(names_the_nul(err), "the key is not shown escaped: " .. err)
        assert.is_nil(err:find("\0", 1, true), "a raw NUL byte in the message")
        assert.same({}, srv:requests())
      end)
    end
  end)

  -- Each in a child: under `make asan` the undefined conversion of such a
  -- number to an integer aborts the process.
  describe("numbers out of every integer's range in qstash.new", function()
    local cases = {
      "retry = { attempts = 1e300 }", "retry = { attempts = -1e300 }", "retry = { attempts = math.huge }",
      "retry = { attempts = -math.huge }", "retry = { attempts = 0/0 }",
      "retry = { attempts = math.maxinteger or 2^63 }",
      "retry = { base_delay = math.huge }", "retry = { max_delay = 0/0 }",
      "timeout = 0/0", "timeout = math.huge", "timeout = 1e300",
      "connect_timeout = 0/0", "connect_timeout = math.huge",
      "max_response_bytes = 1e300", "max_response_bytes = 0/0", "max_response_bytes = math.huge",
      "max_response_bytes = -math.huge",
    }
    for _, case in ipairs(cases) do
      it("{ " .. case .. " } is a clean argument error #issue11", function()
        local r = isolated.run(([==[
          local qstash = require "qstash"
          local ok, err = pcall(qstash.new, { token = "t", base_url = "http://127.0.0.1:9", %s })
          assert(not ok, "accepted")
          assert(type(err) == "string" and err:find("^bad argument #1 to 'new' %%("), tostring(err))
          print("OK")
        ]==]):format(case), { timeout = 20 })
        assert.is_true(r.ok, isolated.describe(r))
        assert.equal("OK\n", r.out, "more than the result was printed (a sanitizer report?)")
      end)
    end
  end)

  it("dlq_retry_each refuses an id list with other keys, as the bulk calls do #issue11", function()
    local c = qstash.new{ token = "t", base_url = srv.url, retry = false }
    local ok, err = pcall(c.dlq_retry_each, c, { "a", "b", x = 1 })
    c:close()
    assert.is_false(ok)
    assert.matches("^bad argument #1 to 'dlq_retry_each' %(an array of ids must not have other keys%)", err)
    assert.same({}, srv:requests())
  end)
end)
