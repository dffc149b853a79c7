-- dlq_retry_each against a fast server (a plain nginx): results flow without
-- stalls. The engine used to wait out a whole poll period (1 s) whenever the
-- transfers it was about to wait for had just finished: a batch against a
-- fast server then stopped for a second, many times over.
local plain_nginx = require "spec.support.plain_nginx"
local socket = require "socket"
local qstash = require "qstash"

local why = plain_nginx.unavailable()
if why then
  describe("batch pace", function() pending(why) end)
  return
end

describe("batch pace #timing", function()
  local ngx

  setup(function() ngx = plain_nginx.start() end)
  teardown(function() if ngx then ngx:stop() end end)

  local function ids(n)
    local t = {}
    for i = 1, n do t[i] = "id-" .. i end
    return t
  end

  -- The longest time between two results of a batch, in seconds.
  local function longest_gap(url, n, concurrency)
    local c = qstash.new{ token = "tok-pace", base_url = url, ca_file = ngx.ca_file }
    local last, gap = socket.gettime(), 0
    local out = c:dlq_retry_each(ids(n), nil, {
      concurrency = concurrency,
      on_progress = function()
        local now = socket.gettime()
        if now - last > gap then gap = now - last end
        last = now
      end,
    })
    c:close()
    assert.equal(n, out.ok)
    return gap
  end

  for _, case in ipairs({ { "HTTP", "http_url", 8 }, { "HTTP", "http_url", 64 }, { "HTTPS", "https_url", 8 } }) do
    it(("never waits for results that are already in, over %s at concurrency %d"):format(case[1], case[3]), function()
      local gap = longest_gap(ngx[case[2]], 2000, case[3])
      -- every answer comes within milliseconds; a stall is a whole second
      assert.is_true(gap < 0.5, ("the longest wait between two results: %.3f s"):format(gap))
    end)
  end
end)
