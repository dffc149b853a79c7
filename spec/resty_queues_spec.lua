-- qstash.resty's queue calls (enqueue, enqueue_json, queue_upsert, queue_get,
-- queue_list, queue_delete, queue_pause, queue_resume) from content handlers
-- over cosockets, against the emulator: what the C module's libcurl path
-- returns, and a slow answer does not block the worker. Needs LuaJIT and
-- nginx (`make test LUA=luajit SPECS=spec/resty_queues_spec.lua`).

local RC = require "spec.support.resty_calls"
local E = require "spec.support.emulator"
local cjson = require "cjson"

local skip = RC.skip_reason()
if skip then
  describe("qstash.resty queues under nginx", function() pending(skip) end)
  return
end

describe("qstash.resty queues under nginx", function()
  local env
  setup(function() env = RC.start() end)
  teardown(function() if env then env:stop() end end)
  before_each(function() env:reset() end)

  it("runs every queue call from a handler, with the C module's results", function()
    local c = env:call("queue_upsert", 2, "rq", { parallelism = 1, paused = true })
    assert.equal("content", c.phase)
    assert.is_true(c.res)
    c = env:call("enqueue", 4, "rq", env.sink.url .. "/a", "one", { retries = 0 })
    assert.is_string(c.res.messageId)
    c = env:call("enqueue_json", 4, "rq", env.sink.url .. "/a", { n = 2 }, nil)
    assert.is_string(c.res.messageId)
    local got = env:call("queue_get", 1, "rq").res
    local want = env.client:queue_get("rq")
    assert.same(cjson.decode(cjson.encode(want)), got)
    assert.equal(2, got.lag)
    assert.is_true(got.paused)
    assert.same(cjson.decode(cjson.encode(env.client:queue_list())), env:call("queue_list", 0).res)
    assert.is_true(env:call("queue_pause", 1, "rq").res)
    assert.is_true(env:call("queue_resume", 1, "rq").res)
    local bodies = E.wait_for(function()
      local r = env.sink:received()
      if #r >= 2 then return { r[1].body, r[2].body } end
    end, 5, 0.02)
    assert.same({ "one", '{"n":2}' }, bodies)
    assert.is_true(env:call("queue_delete", 1, "rq").res)
    c = env:call("queue_get", 1, "rq")
    assert.is_false(c.ok)
    assert.equal("not_found", c.err.kind)
  end)

  it("raises an argument error for a bad queue name before sending anything", function()
    local c = env:call("queue_get", 1, "a/b")
    assert.matches("bad argument #1 to 'queue_get' (queue name may hold only", c.raised, 1, true)
    c = env:call("queue_upsert", 2, "q", { parallelism = 0 })
    assert.matches("bad argument #2 to 'queue_upsert' (parallelism", c.raised, 1, true)
    assert.same({}, env.client:queue_list())
  end)

  it("does not block the worker while an answer is slow", function()
    local doc = env:slow_call("queue_get", 1, "slow", { name = "slow", parallelism = 1, lag = 0,
      paused = false, createdAt = 1, updatedAt = 1 })
    assert.equal("slow", doc.res.name)
  end)
end)
