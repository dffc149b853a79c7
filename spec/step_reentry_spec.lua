-- call:step re-entered from Lua code that runs inside it: the __index of the
-- table that says how the request ended, an unrelated object's __gc run by
-- the collector while step works, the call's own __gc called by hand, and a
-- metamethod that closes the client. SECURITY.md: no C memory is reached
-- after it is freed, even when Lua runs in metamethods. A re-entrant step
-- raises a clear error and leaves the call as it was; every scenario runs in
-- a child interpreter (a use-after-free aborts it under `make asan`).
-- No server: step() hands out requests and takes made-up answers.
local isolated = require "spec.support.isolated"

local PRELUDE = [==[
local qstash = require "qstash"
local client = qstash.new{ token = "tok_reentry", base_url = "http://127.0.0.1:9",
                           retry = { attempts = 2, base_delay = 0.01, max_delay = 0.01 } }
local ANSWER = { status = 201, headers = {}, body = '{"messageId":"msg_ok"}' }

local function check(cond, msg) if not cond then error(msg, 2) end end

local function is_reentry(e)
  return tostring(e):find("step() re-entered", 1, true) ~= nil
end

-- A prepared dlq_retry whose request is in flight.
local function in_flight()
  local call = client:prepare("dlq_retry", "1-0")
  check(call:step() == "send", "the first step sends")
  return call
end

-- The call still works: it takes a plain answer and ends with the result.
local function check_intact(call)
  local what, res = call:step(ANSWER)
  check(what == "done", "the call ends after a plain answer: " .. tostring(what) .. " " .. tostring(res))
  check(res.messageId == "msg_ok", "the result: " .. tostring(res.messageId))
end

local function finalizable(fn)
  if newproxy then -- Lua 5.1 / LuaJIT: tables have no __gc
    local p = newproxy(true)
    getmetatable(p).__gc = fn
    return p
  end
  return setmetatable({}, { __gc = fn })
end
]==]

local function run_child(body)
  local r = isolated.run(PRELUDE .. body .. '\nprint("OK")\n', { timeout = 30 })
  assert.is_true(r.ok and r.out:find("OK\n", 1, true) ~= nil, isolated.describe(r))
end

describe("call:step re-entered #issue29", function()
  for _, field in ipairs{ "failure", "status", "headers", "body" } do
    it("from the answer's __index on '" .. field .. "': raises, and the call stays usable", function()
      run_child(([==[
        local field = %q
        local call = in_flight()
        local inner_ok, inner_err
        local answer = setmetatable({}, { __index = function(_, k)
          if k == field then
            inner_ok, inner_err = pcall(call.step, call, ANSWER)
          end
          return ANSWER[k]
        end })
        -- the inner step is refused; the outer one goes on with the answer
        local what, res = call:step(answer)
        check(inner_ok == false and is_reentry(inner_err), "the inner step: " .. tostring(inner_err))
        check(what == "done" and res.messageId == "msg_ok", "the outer step: " .. tostring(what))
        -- asked again past its end, it says done again
        check(call:step() == "done", "done again")
      ]==]):format(field))
    end)

    it("from the answer's __index on '" .. field .. "', the error let through: the call stays usable", function()
      run_child(([==[
        local field = %q
        local call = in_flight()
        local answer = setmetatable({}, { __index = function(_, k)
          if k == field then call:step(ANSWER) end
          return ANSWER[k]
        end })
        local ok, err = pcall(call.step, call, answer)
        check(not ok and is_reentry(err), "the outer step raises the inner's error: " .. tostring(err))
        check_intact(call)
      ]==]):format(field))
    end)
  end

  it("from a failure answer's 'message' and 'sent'", function()
    run_child([==[
      for _, field in ipairs{ "sent", "message", "retryable" } do
        local call = in_flight()
        local answer = setmetatable({}, { __index = function(_, k)
          if k == field then call:step{ failure = "network", sent = false } end
          if k == "failure" then return "network" end
          if k == "sent" then return false end
        end })
        local ok, err = pcall(call.step, call, answer)
        check(not ok and is_reentry(err), field .. ": " .. tostring(err))
        check_intact(call)
      end
    ]==])
  end)

  it("from an unrelated object's __gc run by the collector while step works", function()
    run_child([==[
      if _VERSION == "Lua 5.4" then collectgarbage("incremental", 1, 400, 0)
      else collectgarbage("setpause", 1); collectgarbage("setstepmul", 400) end
      local refused, ran = 0, 0
      for _ = 1, 200 do
        local call = in_flight()
        -- garbage with finalizers, collected at some allocation inside step
        for _ = 1, 20 do
          finalizable(function()
            ran = ran + 1
            local ok, err = pcall(call.step, call, ANSWER)
            if not ok and is_reentry(err) then refused = refused + 1 end
          end)
        end
        -- a finalizer may have ended the call before step began: then step
        -- says no request is in flight; else it ends with the result
        local ok, what, res = pcall(call.step, call, ANSWER)
        if ok then
          check(what == "done" and res.messageId == "msg_ok", "step: " .. tostring(what))
        else
          check(tostring(what):find("no request is in flight", 1, true), "step: " .. tostring(what))
        end
        check(call:step() == "done", "the call ended with its result")
      end
      collectgarbage("collect")
      check(ran > 0, "finalizers ran")
      -- some ran inside a step (the collector is eager): those were refused
      check(refused > 0, "no finalizer ran inside a step")
    ]==])
  end)

  it("from the answer's __index calling the call's own __gc: refused, the call intact", function()
    run_child([==[
      local call = in_flight()
      local gc = debug.getmetatable(call).__gc
      local gc_ok, gc_err
      local answer = setmetatable({}, { __index = function(_, k)
        if k == "status" then gc_ok, gc_err = pcall(gc, call) end
        return ANSWER[k]
      end })
      local what, res = call:step(answer)
      check(gc_ok == false and tostring(gc_err):find("in use", 1, true), "__gc: " .. tostring(gc_err))
      check(what == "done" and res.messageId == "msg_ok", "the outer step: " .. tostring(what))
    ]==])
  end)

  it("after its own __gc called by hand: step raises, never touches freed memory", function()
    run_child([==[
      local call = in_flight()
      debug.getmetatable(call).__gc(call)
      local ok, err = pcall(call.step, call, ANSWER)
      check(not ok and tostring(err):find("collected", 1, true), "step after __gc: " .. tostring(err))
      check(tostring(call):find("qstash.call", 1, true), "tostring still works")
      debug.getmetatable(call).__gc(call) -- twice is harmless
      local fresh = client:prepare("dlq_retry", "1-0")
      debug.getmetatable(fresh).__gc(fresh)
      ok, err = pcall(fresh.step, fresh)
      check(not ok and tostring(err):find("collected", 1, true), "a fresh call after __gc: " .. tostring(err))
    ]==])
  end)

  it("from the answer's __index closing the client: the call ends as if nothing happened", function()
    run_child([==[
      local call = in_flight()
      local answer = setmetatable({}, { __index = function(_, k)
        if k == "status" then client:close() end
        return ANSWER[k]
      end })
      local what, res = call:step(answer)
      check(what == "done" and res.messageId == "msg_ok", "the outer step: " .. tostring(what))
      check(not pcall(client.dlq_retry, client, "1-0"), "the client is closed")
    ]==])
  end)

  it("in a follow, from __index while the logs answer is read: raises, and the follow goes on", function()
    run_child([==[
      local call = client:prepare("follow", "msg_1", { interval = 0.01, timeout = 5 })
      check(call:step() == "send", "the first poll")
      local logs = { status = 200, headers = {},
                     body = '{"logs":[{"time":1,"state":"DELIVERED","messageId":"msg_1"}]}' }
      local answer = setmetatable({}, { __index = function(_, k)
        if k == "body" then call:step(logs) end
        return logs[k]
      end })
      local ok, err = pcall(call.step, call, answer)
      check(not ok and is_reentry(err), "re-entry: " .. tostring(err))
      local what, res = call:step(logs)
      check(what == "done" and res.state == "DELIVERED" and res.done == true, "the follow: " .. tostring(what))
    ]==])
  end)
end)
