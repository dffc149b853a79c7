-- dlq_retry_each against a fast server (a plain nginx): results flow without
-- stalls. The engine used to wait out a whole poll period (1 s) whenever the
-- transfers it was about to wait for had just finished: a batch against a
-- fast server then stopped for a second, many times over. The engine counts
-- such waits (a wait that ran out while results were already in), and
-- client:_stats() reports the count: no wall clock is needed to see a stall.
local plain_nginx = require "spec.support.plain_nginx"
local qstash = require "qstash"

local why = plain_nginx.unavailable()
if why then
  describe("batch pace", function() pending(why) end)
  return
end

describe("batch pace", function()
  local ngx

  setup(function() ngx = plain_nginx.start() end)
  teardown(function() if ngx then ngx:stop() end end)

  local function ids(n)
    local t = {}
    for i = 1, n do t[i] = "id-" .. i end
    return t
  end

  -- How many of the engine's waits ran out while results were already in,
  -- over one batch of n ids.
  local function stalls(url, n, concurrency)
    local c = qstash.new{ token = "tok-pace", base_url = url, ca_file = ngx.ca_file }
    assert.equal(0, c:_stats().stalled_waits)
    local progress = 0
    local out = c:dlq_retry_each(ids(n), nil, {
      concurrency = concurrency,
      on_progress = function() progress = progress + 1 end,
    })
    local count = c:_stats().stalled_waits
    c:close()
    assert.equal(n, out.ok)
    assert.is_true(progress > 0)
    return count
  end

  for _, case in ipairs({ { "HTTP", "http_url", 1 }, { "HTTP", "http_url", 8 }, { "HTTP", "http_url", 64 }, { "HTTPS", "https_url", 8 } }) do
    it(("never waits for results that are already in, over %s at concurrency %d"):format(case[1], case[3]), function()
      assert.equal(0, stalls(ngx[case[2]], 2000, case[3]))
    end)
  end
end)
