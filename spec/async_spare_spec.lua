-- A DLQ retry through client:async or dlq_retry_async builds its request
-- in a call whose request then moves into a plain job; the client keeps
-- that call for the next retry instead of making one per retry
-- (docs/architecture.md, "Async"). Nothing of one retry may reach the
-- next, a retry made from a metamethod while another builds gets a call
-- of its own, and an argument error leaves the client working.
local server = require "spec.support.server"
local qstash = require "qstash"

describe("async retries reusing their call", function()
  local srv

  setup(function() srv = server.start() end)
  teardown(function() srv:stop() end)
  before_each(function()
    srv:reset()
    srv:default{ status = 201, json = { messageId = "m" } }
  end)

  local function new(cfg)
    cfg = cfg or {}
    cfg.token = cfg.token == nil and "tok-spare" or cfg.token or nil
    cfg.base_url = srv.url
    cfg.retry = { attempts = 1 }
    return qstash.new(cfg)
  end

  -- the Upstash-* headers of a request, as "name=value" in name order
  local function upstash(req)
    local t = {}
    for k, v in pairs(req.h) do
      if k:find("^upstash%-") then t[#t + 1] = k .. "=" .. v end
    end
    table.sort(t)
    return table.concat(t, " ")
  end

  -- a client, a callback noting each message id (or error) in `got`, and
  -- `drain(n)`: polls until n callbacks ran, then gives the requests the
  -- server had as target -> their Upstash-* headers, and their count
  local function fixture()
    local c, got = new(), {}
    local function cb(res, err) got[#got + 1] = res and res.messageId or tostring(err) end
    local function drain(n)
      for _ = 1, 100 do
        if #got >= n then break end
        c:poll(0.2)
      end
      local by, count = {}, 0
      for _, r in ipairs(srv:requests()) do
        count = count + 1
        by[r.target] = upstash(r)
      end
      return by, count
    end
    return c, got, cb, drain
  end

  it("sends nothing of one retry's options with the next, through async and dlq_retry_async", function()
    local c, got, cb, drain = fixture()
    local full = { retries = 2, delay = "10s", label = "x", headers = { ["X-A"] = "1" },
                   callback = "https://cb.example.com/a" }
    c:async("dlq_retry", "r1", full, cb)
    c:async("dlq_retry", "r2", nil, cb)
    c:dlq_retry_async("r3", full, cb)
    c:dlq_retry_async("r4", nil, cb)
    c:async("dlq_retry", "r5", { retries = 0 }, cb)
    c:dlq_retry_async("r6", nil, cb)
    local by = drain(6)
    assert.same({ "m", "m", "m", "m", "m", "m" }, got)
    local opts_sent = "upstash-callback=https://cb.example.com/a upstash-delay=10s upstash-forward-x-a=1 "
      .. "upstash-label=x upstash-retries=2"
    assert.same({
      ["/v2/dlq/retry/r1"] = opts_sent,
      ["/v2/dlq/retry/r2"] = "",
      ["/v2/dlq/retry/r3"] = opts_sent,
      ["/v2/dlq/retry/r4"] = "",
      ["/v2/dlq/retry/r5"] = "upstash-retries=0",
      ["/v2/dlq/retry/r6"] = "",
    }, by)
    c:close()
  end)

  it("a retry made from a metamethod while another builds has its own call; both go, each once", function()
    local c, got, cb, drain = fixture()
    -- warm: the client has a call kept from this one
    c:async("dlq_retry", "warm", nil, cb)
    local inner = 0
    local opts = setmetatable({}, {
      __index = function(_, k)
        if k == "retries" and inner == 0 then
          inner = inner + 1
          c:async("dlq_retry", "inner", { delay = "5s" }, cb)
          c:dlq_retry_async("inner2", nil, cb)
        end
        return nil
      end,
    })
    c:async("dlq_retry", "outer", opts, cb)
    c:dlq_retry_async("after", nil, cb)
    local by, n = drain(5)
    assert.equal(5, #got)
    assert.equal(1, inner)
    assert.equal(5, n)
    assert.same({
      ["/v2/dlq/retry/warm"] = "",
      ["/v2/dlq/retry/inner"] = "upstash-delay=5s",
      ["/v2/dlq/retry/inner2"] = "",
      ["/v2/dlq/retry/outer"] = "",
      ["/v2/dlq/retry/after"] = "",
    }, by)
    c:close()
  end)

  it("a metamethod that collects garbage or closes the client while the kept call builds: no crash, nothing more sent", function()
    local c, _, cb, drain = fixture()
    c:async("dlq_retry", "warm", nil, cb) -- the client keeps a call from this one
    -- a full collection while the kept call is out of the client's table
    local gc_opts = setmetatable({}, { __index = function() collectgarbage("collect") end })
    c:async("dlq_retry", "gc", gc_opts, cb)
    c:dlq_retry_async("gc2", gc_opts, cb)
    local by, n = drain(3)
    assert.equal(3, n)
    assert.same({ ["/v2/dlq/retry/warm"] = "", ["/v2/dlq/retry/gc"] = "", ["/v2/dlq/retry/gc2"] = "" }, by)
    -- the client closed from inside the build: the call raises, nothing goes
    local close_opts = setmetatable({}, { __index = function() c:close() end })
    local ok, err = pcall(c.async, c, "dlq_retry", "closing", close_opts, cb)
    assert.is_false(ok)
    assert.matches("closed", tostring(err))
    assert.equal(3, #srv:requests())
    for _ = 1, 3 do collectgarbage("collect") end
    local c2 = new()
    local res
    c2:async("dlq_retry", "fresh", nil, function(r) res = r end)
    for _ = 1, 50 do
      if res then break end
      c2:poll(0.2)
    end
    assert.equal("m", res.messageId)
    c2:close()
  end)

  it("an argument error sends nothing and the next retry goes as asked", function()
    local c, got, cb, drain = fixture()
    c:async("dlq_retry", "first", { delay = "1s" }, cb)
    assert.has_error(function() c:async("dlq_retry", "bad", { retries = -1 }, cb) end)
    assert.has_error(function() c:dlq_retry_async("bad2", { delay = "soon" }, cb) end)
    assert.has_error(function() c:dlq_retry_async("", nil, cb) end)
    c:async("dlq_retry", "second", nil, cb)
    local by, n = drain(2)
    assert.same({ "m", "m" }, got)
    assert.equal(2, n)
    assert.same({ ["/v2/dlq/retry/first"] = "upstash-delay=1s", ["/v2/dlq/retry/second"] = "" }, by)
    c:close()
  end)

  it("a follow between plain retries, and a client without a token, still run their call", function()
    srv:script{
      { status = 201, json = { messageId = "p1" } },
      { status = 201, json = { messageId = "f1" } },
    }
    local c = new()
    local got = {}
    local function cb(res, err) got[#got + 1] = { res, err } end
    c:async("dlq_retry", "p1", nil, cb)
    -- a follow whose message is gone at once ends with its lookups, bounded
    c:async("dlq_retry", "f1", { follow = { timeout = 0.2, interval = 0.05 } }, cb)
    c:async("dlq_retry", "p2", nil, cb)
    for _ = 1, 100 do
      if #got == 3 then break end
      c:poll(0.2)
    end
    assert.equal(3, #got)
    local targets = {}
    for _, r in ipairs(srv:requests()) do targets[r.target] = (targets[r.target] or 0) + 1 end
    assert.equal(1, targets["/v2/dlq/retry/p1"])
    assert.equal(1, targets["/v2/dlq/retry/f1"])
    assert.equal(1, targets["/v2/dlq/retry/p2"])
    c:close()
    -- without a token: the callback gets the config error, nothing is sent
    srv:reset()
    local nt = new{ token = false }
    local res, err
    nt:async("dlq_retry", "x", nil, function(r, e) res, err = r, e end)
    nt:async("dlq_retry", "y", nil, function() end)
    for _ = 1, 20 do
      if err then break end
      nt:poll(0.1)
    end
    assert.is_nil(res)
    assert.equal("config", err.kind)
    assert.equal(0, #srv:requests())
    nt:close()
  end)
end)
