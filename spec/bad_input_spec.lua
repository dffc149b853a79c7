-- Bad input of the batch, queue, URL-group and flow-control functions (the
-- rows of spec/support/bad_input.lua: an empty batch, an item without
-- destination, a queue name with '/', parallelism 0 and 1e9, a pin without a
-- limit) raises a clear argument error and sends nothing: through a client
-- over libcurl, prepare, async, qstash.safe and the module functions of both,
-- against the emulator, whose request log shows that no request reached it.
-- spec/resty_bad_input_spec.lua runs the same rows through qstash.resty.
local qstash = require "qstash"
local qsafe = require "qstash.safe"
local E = require "spec.support.emulator"
local child = require "spec.support.child"
local ROWS = require "spec.support.bad_input"

local unpack = table.unpack or unpack

-- "bad argument #N to 'fn' (want": the start of the error a row must raise.
local function expected(row)
  return ("bad argument #%d to '%s' (%s"):format(row[4], row[1], row[5])
end

describe("bad input of batch, queues, URL groups and flow control", function()
  local emu

  setup(function() emu = E.start{ time_scale = 0.001, quiet = false } end)
  teardown(function() if emu then emu:stop() end end)

  it("is seen by the request log when a request is sent (the check below can fail)", function()
    local c = qstash.new{ token = emu.token, base_url = emu.url, retry = false }
    local offset = #emu:log()
    c:queue_upsert("q-sent", { parallelism = 1 })
    c:close()
    assert.same({ "POST /v2/queues" }, emu:api_requests_since(offset))
  end)

  it("raises an argument error through libcurl, prepare, async and qstash.safe", function()
    local c = qstash.new{ token = emu.token, base_url = emu.url, retry = false }
    local sc = qsafe.new{ token = emu.token, base_url = emu.url, retry = false }
    local offset = #emu:log()
    for _, row in ipairs(ROWS) do
      local fn, n, want = row[1], row[2], expected(row)
      local args = { unpack(row[3], 1, n) }
      local ways = {
        libcurl = function() return c[fn](c, unpack(args, 1, n)) end,
        safe = function() return sc[fn](sc, unpack(args, 1, n)) end,
        prepare = function() return c:prepare(fn, unpack(args, 1, n)) end,
        async = function()
          local a = { unpack(args, 1, n) }
          a[n + 1] = function() error("the callback of a call that raised ran") end
          return c:async(fn, unpack(a, 1, n + 1))
        end,
      }
      for way, call in pairs(ways) do
        local ok, err = pcall(call)
        assert.is_false(ok, way .. ": " .. fn .. " did not raise")
        assert.is_string(err, way .. ": " .. fn)
        assert.truthy(err:find(want, 1, true), way .. ": " .. err .. "\nwanted: " .. want)
      end
    end
    c:poll(0) -- nothing in flight: no callback runs
    assert.equal(0, c:pending())
    c:close()
    sc:close()
    assert.same({}, emu:api_requests_since(offset))
  end)

  it("raises an argument error through the module functions of qstash and qstash.safe", function()
    local offset = #emu:log()
    local out, exited_ok = child.run([==[
      local unpack = table.unpack or unpack
      local ROWS = require "spec.support.bad_input"
      for _, mod in ipairs{ "qstash", "qstash.safe" } do
        local m = require(mod)
        for i, row in ipairs(ROWS) do
          local want = ("bad argument #%d to '%s' (%s"):format(row[4], row[1], row[5])
          local ok, err = pcall(m[row[1]], unpack(row[3], 1, row[2]))
          if ok or type(err) ~= "string" or not err:find(want, 1, true) then
            print(("FAIL %s row %d %s: %s"):format(mod, i, row[1], tostring(err)))
          end
        end
      end
      print("ROWS " .. #ROWS)
    ]==], { QSTASH_URL = emu.url, QSTASH_TOKEN = emu.token })
    assert.matches("ROWS " .. #ROWS .. "\n", out, 1, true)
    assert.is_nil(out:find("FAIL", 1, true), out)
    assert.is_true(exited_ok, out)
    assert.same({}, emu:api_requests_since(offset))
  end)
end)
