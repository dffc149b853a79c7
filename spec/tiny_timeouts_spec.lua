-- Every positive timeout bounds the call, however small: a value under a
-- millisecond must not round to 0, which libcurl reads as "no limit".
-- Each case runs in a child killed after 20 s (the bug is a hang); inside, the
-- call must end within 2.5 s.
local server = require "spec.support.server"
local isolated = require "spec.support.isolated"

local PRELUDE = [==[
local qstash = require "qstash"
local socket = require "socket"
local url = arg[1]

-- One call, which must fail with one of `kinds` within 2.5 s.
local function expect(c, kinds)
  local t0 = socket.gettime()
  local ok, err = pcall(c.dlq_retry, c, "x")
  local took = socket.gettime() - t0
  assert(not ok, "the call succeeded")
  assert(kinds[err.kind], "kind " .. tostring(err.kind) .. ": " .. tostring(err))
  assert(took < 2.5, ("took %.2f s"):format(took))
  print("OK")
end
]==]

describe("timeouts under a millisecond", function()
  local srv

  setup(function() srv = server.start() end)
  teardown(function() srv:stop() end)
  before_each(function() srv:reset() end)

  local function run(body, args)
    local r = isolated.run(PRELUDE .. body, { args = args, timeout = 20 })
    assert.is_true(r.ok and r.out:find("OK\n", 1, true) ~= nil, isolated.describe(r))
  end

  it("timeout = 0.0004 against a server that never answers -> timeout #issue11", function()
    srv:default{ fault = "hang", hold = 30 }
    run([==[
      local c = qstash.new{ token = "t", base_url = url, retry = false, timeout = 0.0004 }
      expect(c, { timeout = true })
    ]==], { srv.url })
  end)

  it("connect_timeout = 0.0001 against a listener that never accepts -> timeout or network #issue11", function()
    -- a listener whose accept queue is full: the kernel drops further SYNs,
    -- so a connect never completes
    run([==[
      local l = assert(socket.bind("127.0.0.1", 0, 0))
      local _, port = l:getsockname()
      local held = {}
      for _ = 1, 64 do
        local s = socket.tcp()
        s:settimeout(0.2)
        held[#held + 1] = s
        if not s:connect("127.0.0.1", port) then break end
      end
      local probe = socket.tcp()
      probe:settimeout(0.3)
      assert(not probe:connect("127.0.0.1", port), "the listener still completes connections")
      probe:close()
      local c = qstash.new{ token = "t", base_url = "http://127.0.0.1:" .. port, retry = false,
        connect_timeout = 0.0001 }
      expect(c, { timeout = true, network = true })
    ]==], {})
  end)
end)
