-- The emulator answers on a keep-alive connection without Nagle's 40 ms
-- stall: a response written in two pieces (headers, then body) waits for the
-- client's delayed ACK of the first before the second goes out. The figure
-- itself (about a millisecond) is `make bench`'s; this only catches a stall.
local E = require("spec.support.emulator")
local socket = require("socket")

-- One client, one connection, a plain HTTP/1.1 exchange per request: the
-- request in one write, the answer read by its Content-Length.
local function keepalive_client(port, token)
  local c = assert(socket.tcp())
  c:settimeout(5)
  assert(c:connect("127.0.0.1", port))
  local request = "GET /v2/dlq HTTP/1.1\r\nHost: 127.0.0.1:" .. port ..
    "\r\nAuthorization: Bearer " .. token .. "\r\n\r\n"
  local function get()
    assert(c:send(request))
    local status = tonumber(assert(c:receive("*l")):match("^HTTP/1%.1 (%d+)"))
    local length
    repeat
      local line = assert(c:receive("*l"))
      length = length or tonumber(line:lower():match("^content%-length:%s*(%d+)"))
      assert.is_nil(line:lower():match("^connection:%s*close"), "the emulator closed the connection")
    until line == ""
    return status, assert(c:receive(length))
  end
  return get, function() c:close() end
end

describe("qstash-dev on a keep-alive connection #timing", function()
  local emu

  setup(function() emu = E.start{ time_scale = 0.001 } end)
  teardown(function() if emu then emu:stop() end end)

  it("answers 20 sequential requests far faster than 20 x 40 ms", function()
    local get, close = keepalive_client(emu.port, emu.token)
    get() -- the connection is up, the handler thread started
    local t0 = E.now()
    for _ = 1, 20 do
      local status, body = get()
      assert.are.equal(200, status)
      assert.are.equal('{"messages": []}', body)
    end
    local elapsed = E.now() - t0
    close()
    -- a stall costs 40 ms a request (0.8 s in all); unstalled it is about
    -- 5 ms: the bound leaves a loaded machine ample room and still fails at
    -- half the stalls
    assert.is_true(elapsed < 0.4, string.format("20 keep-alive requests took %.3f s", elapsed))
  end)
end)
