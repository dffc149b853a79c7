-- Lua code that closes or re-enters the client at the worst moments: inside
-- a batch's callbacks, in an unrelated object's __gc or a debug hook while
-- completions are delivered, inside an options table's __index. None of it
-- may crash or send a request somewhere else; the call in progress returns
-- (results, or `cancelled` errors for what it could not finish) or says the
-- client is closed, and every later call raises "qstash: the client is closed".
--
-- The scenarios that could crash run in a child interpreter (see
-- spec/support/isolated.lua): the assertion is on its exit status and output.
local server = require "spec.support.server"
local isolated = require "spec.support.isolated"
local qstash = require "qstash"

-- Shared by the child scripts: finalizable objects on every Lua version, and
-- a collector that runs finalizers at almost every allocation.
local PRELUDE = [==[
local qstash = require "qstash"
local url = arg[1]

local function finalizable(fn)
  if newproxy then -- Lua 5.1 / LuaJIT: tables have no __gc
    local p = newproxy(true)
    getmetatable(p).__gc = fn
    return p
  end
  return setmetatable({}, { __gc = fn })
end

local function eager_gc()
  if _VERSION == "Lua 5.4" then collectgarbage("incremental", 1, 400, 0)
  else collectgarbage("setpause", 1); collectgarbage("setstepmul", 400) end
  collectgarbage("collect")
end

local function normal_gc()
  if _VERSION == "Lua 5.4" then collectgarbage("incremental", 200, 100, 13)
  else collectgarbage("setpause", 200); collectgarbage("setstepmul", 200) end
  collectgarbage("collect")
  collectgarbage("collect")
end

local function check(cond, msg) if not cond then error(msg, 2) end end

-- How a call on a closed client fails.
local function is_closed_error(e)
  return tostring(e):find("qstash: the client is closed", 1, true) ~= nil
end

-- How the call in progress may fail when the client closes under it (an
-- error object of any kind will do, as long as it says so).
local function says_closed(e)
  return tostring(e):find("client is closed", 1, true) ~= nil
end

local function assert_closed(c)
  for _, call in ipairs{
    function() return c:pending() end,
    function() return c:dlq_retry("after-close") end,
    function() return c:dlq_retry_each({ "after-close" }) end,
  } do
    local ok, e = pcall(call)
    check(not ok and is_closed_error(e), "a call after close: " .. tostring(e))
  end
end

local function ids_of(n)
  local ids = {}
  for i = 1, n do ids[i] = "id-" .. i end
  return ids
end

-- What a batch returned once the client closed under it: every distinct id
-- accounted for, each a result or an error; errors are `cancelled` (the
-- server answers every request with 201).
local function check_batch(out, ids)
  check(type(out) == "table" and type(out.results) == "table", "no result table: " .. tostring(out))
  check(out.ok + out.failed == #ids, "ok " .. out.ok .. " + failed " .. out.failed .. " ~= " .. #ids)
  local cancelled = 0
  for _, id in ipairs(ids) do
    local r = out.results[id]
    check(type(r) == "table", "no result for " .. id)
    if qstash.is_error(r) then
      check(r.kind == "cancelled", id .. ": " .. tostring(r))
      cancelled = cancelled + 1
    else
      check(r.messageId == "m", id .. ": unexpected result")
    end
  end
  check(cancelled == out.failed, "failed " .. out.failed .. " but " .. cancelled .. " cancelled")
  return cancelled
end
]==]

-- Runs PRELUDE .. body in a child against the server; expects "OK" and exit 0.
local function run_child(srv, body, timeout)
  local r = isolated.run(PRELUDE .. body, { args = { srv.url }, timeout = timeout or 60 })
  assert.is_true(r.ok and r.out:find("OK\n", 1, true) ~= nil, isolated.describe(r))
  return r
end

describe("hostile Lua code", function()
  local srv

  setup(function() srv = server.start() end)
  teardown(function() srv:stop() end)
  before_each(function()
    srv:reset()
    srv:default{ status = 201, json = { messageId = "m", deduplicated = false }, delay = 0.02 }
  end)

  describe("close() inside a dlq_retry_each callback, more ids than concurrency", function()
    for _, where in ipairs{ "on_result", "on_progress" } do
      it("in " .. where .. ": the batch returns, the rest are cancelled, no callback after #issue11", function()
        run_child(srv, ([==[
          local c = qstash.new{ token = "t", base_url = url, retry = { attempts = 2, base_delay = 0.01 } }
          local ids = ids_of(10)
          local calls, after = 0, 0
          local batch = { concurrency = 2 }
          batch[%q] = function()
            if calls >= 2 then after = after + 1 return end
            calls = calls + 1
            if calls == 2 then c:close() end
          end
          local out = c:dlq_retry_each(ids, nil, batch)
          local cancelled = check_batch(out, ids)
          check(after == 0, %q .. " ran " .. after .. " time(s) after close()")
          -- two completed before the close; with 2 in flight, 6 never started
          check(out.ok >= 2, "ok = " .. out.ok)
          check(cancelled >= 6, "cancelled = " .. cancelled)
          assert_closed(c)
          print("OK")
        ]==]):format(where, where))
      end)
    end
  end)

  -- An object's __gc (or a hook) runs wherever the collector (or the
  -- interpreter) happens to be: several rounds, each closing at another
  -- point while completions are delivered.
  local GC_ROUNDS = [==[
    for round = 1, 24 do
      local c = qstash.new{ token = "t", base_url = url, retry = { attempts = 2, base_delay = 0.01 } }
      local function close() pcall(c.close, c) end
      local function busy() local s = 0 for i = 1, 500 do s = s + i end return s end
      -- made now, dropped in a callback: their __gc runs at a later
      -- allocation, mostly inside the module while it delivers completions
      -- (debug hooks do not run inside __gc: a hook closes from a callback)
      local held = {}
      for i = 1, 16 do held[i] = finalizable(how == "gc" and close or busy) end
      local n, threshold = 0, round % 4 + 1
      local function cb()
        n = n + 1
        if n == threshold then
          held = nil
          if how == "hook" then
            -- every instruction counts: it closes inside this or a later callback
            local count, at = 0, (round * 7) % 40 + 1
            debug.sethook(function()
              count = count + 1
              if count == at then close() end
            end, "", 1)
          end
        end
      end
      eager_gc()
      local ok, out
      local ids = ids_of(12)
      if mode == "each" then
        ok, out = pcall(c.dlq_retry_each, c, ids, nil, { concurrency = 3, on_result = cb })
        if ok then check_batch(out, ids) end
      else
        for _, id in ipairs(ids) do c:dlq_retry_async(id, nil, cb) end
        ok, out = pcall(c.wait, c)
      end
      debug.sethook()
      check(ok or says_closed(out), "round " .. round .. ": " .. tostring(out))
      held = nil
      normal_gc()
      close() -- in case neither the __gc nor the hook ran during the call
      assert_closed(c)
    end
    print("OK")
  ]==]

  for _, case in ipairs{
    { "async", "gc", "an unrelated __gc closes the client while async completions are delivered" },
    { "each", "gc", "an unrelated __gc closes the client during dlq_retry_each" },
    { "async", "hook", "a debug hook closes the client while async completions are delivered" },
    { "each", "hook", "a debug hook closes the client during dlq_retry_each" },
  } do
    it(case[3] .. " #issue11", function()
      local body = ("local mode, how = %q, %q\n"):format(case[1], case[2]) .. GC_ROUNDS
      srv:default{ status = 201, json = { messageId = "m", deduplicated = false,
        padding = { "a", "b", "c", "d", "e", "f", "g", "h" } } }
      run_child(srv, body)
    end)
  end

  describe("an options table whose __index re-enters the client", function()
    local function upstash_headers(req)
      local out = {}
      for _, h in ipairs(req.headers) do
        local name = h[1]:lower()
        if name:find("^upstash%-") then out[name] = h[2] end
      end
      return out
    end

    it("a nested call: each request goes to its own id with its own headers #issue11", function()
      local c = qstash.new{ token = "t", base_url = srv.url, retry = false }
      local nested = false
      local opts = setmetatable({ retries = 5, headers = { ["X-Outer"] = "1" } }, {
        __index = function()
          if not nested then
            nested = true
            c:dlq_retry("inner", { retries = 1, headers = { ["X-Inner"] = "1" } })
          end
          return nil
        end,
      })
      local res = c:dlq_retry("outer", opts)
      c:close()
      assert.equal("m", res.messageId)
      assert.is_true(nested)
      local reqs = srv:requests()
      assert.equal(2, #reqs)
      local by_target = {}
      for _, r in ipairs(reqs) do by_target[r.target] = upstash_headers(r) end
      assert.same({ ["upstash-retries"] = "1", ["upstash-forward-x-inner"] = "1" },
        by_target["/v2/dlq/retry/inner"])
      assert.same({ ["upstash-retries"] = "5", ["upstash-forward-x-outer"] = "1" },
        by_target["/v2/dlq/retry/outer"])
    end)

    it("close() inside __index: the call says the client is closed and sends nothing #issue11", function()
      -- in a child: a closed client's memory is what the call would touch next
      run_child(srv, [==[
        local c = qstash.new{ token = "t", base_url = url, retry = false }
        local opts = setmetatable({ retries = 5 }, { __index = function() c:close() end })
        local ok, e = pcall(c.dlq_retry, c, "outer", opts)
        check(not ok, "the call succeeded on a client closed during it")
        check(says_closed(e), "expected 'the client is closed', got " ..
          (qstash.is_error(e) and (e.kind .. " error, message " .. string.format("%q", tostring(e.message)))
           or tostring(e)))
        assert_closed(c)
        print("OK")
      ]==])
      assert.same({}, srv:requests())
    end)
  end)
end)
