-- Leaks over 10,000 follows: each ends at once on a DELIVERED entry (the
-- chaos server's follow part with no chaos: spec/support/chaos_follow.py).
-- Run by `make valgrind` (VALGRIND_SPECS), where any definite or indirect
-- leak of C memory fails; here, what valgrind cannot see: nothing is left
-- in the Lua registry (a reference never released) and the Lua heap does
-- not grow once the results are dropped.
local server = require "spec.support.server"
local step_http = require "spec.support.step_http"
local qstash = require "qstash"

local FOLLOW = { timeout = 5, interval = 0.01 }

local function full_gc()
  collectgarbage("collect")
  collectgarbage("collect")
end

-- Values held in the registry (a slot that luaL_unref freed holds a number:
-- the free list; it is reused, not a leak).
local function registry_size()
  local n = 0
  for _, v in pairs(debug.getregistry()) do
    if type(v) ~= "number" then n = n + 1 end
  end
  return n
end

describe("10,000 follows #issue24", function()
  local srv, client

  setup(function()
    srv = server.start()
    srv:chaos{ seed = "leaks-24", weights = { ok = 1 },
               follow = { outcomes = { ok = 1 }, fates = { delivered = 1 }, late = 0 } }
    client = qstash.new{ token = "tok-leaks", base_url = srv.url, timeout = 10,
                         retry = { attempts = 2, base_delay = 0.01, max_delay = 0.05 } }
  end)
  teardown(function()
    client:close()
    srv:stop()
  end)

  local function ids(prefix, from, to)
    local list = {}
    for i = from, to do list[#list + 1] = "msg_" .. prefix .. "_" .. i end
    return list
  end

  local function check_delivered(mid, res)
    assert(type(res) == "table" and res.messageId == mid, "no result for " .. mid)
    assert(res.done == true and res.state == "DELIVERED", mid .. ": " .. tostring(res.state))
    assert(res.history[#res.history].state == "DELIVERED", mid .. ": the history")
  end

  -- `batches` follow_many calls of `size` ids (a logs request per 100),
  -- `sync` follow calls, `stepped` follows through prepare/step. Under
  -- valgrind a follow costs about 2 ms in a follow_many and 15 ms alone.
  local function run(tag, batches, size, sync, stepped)
    for b = 1, batches do
      local list = ids(tag .. "_many" .. b, 1, size)
      local res = client:follow_many(list, FOLLOW)
      for _, mid in ipairs(list) do check_delivered(mid, res[mid]) end
    end
    for _, mid in ipairs(ids(tag .. "_sync", 1, sync)) do
      check_delivered(mid, client:follow(mid, FOLLOW))
    end
    for _, mid in ipairs(ids(tag .. "_step", 1, stepped)) do
      check_delivered(mid, (assert(step_http.run(client:prepare("follow", mid, FOLLOW)))))
    end
  end

  it("9,600 through follow_many, 300 sync, 100 through prepare/step: nothing kept", function()
    -- warm-up: the module's one-time state, libcurl's, cjson's
    run("warm", 1, 200, 20, 5)
    full_gc()
    local reg, heap = registry_size(), collectgarbage("count")
    run("run", 8, 1200, 300, 100)
    full_gc()
    assert.are.equal(reg, registry_size())
    -- the Lua heap: results dropped, nothing of 10,000 follows stays (a
    -- result with its history is about 1 KiB: a leak of each would be MiBs)
    local grown = collectgarbage("count") - heap
    assert.is_true(grown < 256, ("the Lua heap grew by %.0f KiB"):format(grown))
  end)
end)
