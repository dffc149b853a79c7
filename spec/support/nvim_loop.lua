-- luacheck: globals vim
-- Run inside `nvim --headless` by spec/nvim_loop_spec.lua: the LuaJIT build
-- of the module, driven by qstash.loop.luv on Neovim's own loop while a
-- Neovim timer keeps firing. Writes its results, one `key=value` a line, to
-- the file QSTASH_NVIM_OUT, then quits.
local env = os.getenv
package.cpath = env("QSTASH_NVIM_CPATH") .. ";" .. package.cpath
package.path = env("QSTASH_NVIM_PATH") .. ";" .. package.path

local out = {}
local function finish()
  local f = assert(io.open(env("QSTASH_NVIM_OUT"), "w"))
  for k, v in pairs(out) do f:write(k, "=", tostring(v), "\n") end
  f:close()
  vim.cmd("qa!")
end

local ok, err = pcall(function()
  local uv = vim.uv or vim.loop
  local qstash = require "qstash"
  local QL = require "qstash.loop.luv"
  local FAST = { timeout = 10, interval = 0.02 }

  local ticks = 0
  local timer = vim.fn.timer_start(5, function() ticks = ticks + 1 end, { ["repeat"] = -1 })

  local client = qstash.new{ base_url = env("QSTASH_URL"), token = env("QSTASH_TOKEN"),
                             retry = { attempts = 2, base_delay = 0.01 } }
  QL.attach(client, { uv = uv, on_error = function(e) out.callback_error = e end })
  local left = 2
  client:async("dlq_retry", env("QSTASH_NVIM_DLQ"), { follow = FAST }, function(res, e)
    out.retry = res and res.delivery.state or tostring(e)
    left = left - 1
  end)
  client:async("publish", env("QSTASH_NVIM_SINK") .. "/nvim", "hi", nil, function(res, e)
    if not res then
      out.publish = tostring(e)
      left = left - 1
      return
    end
    client:async("follow", res.messageId, FAST, function(f, fe)
      out.publish = f and f.state or tostring(fe)
      left = left - 1
    end)
  end)
  local ticks_before = ticks
  out.waited = vim.wait(10000, function() return left == 0 end, 10)
  out.ticks = ticks - ticks_before
  vim.fn.timer_stop(timer)
  out.loop_waits = client:_stats().loop_waits
  client:close()
  local fds, armed = QL.watched(client)
  out.watched = fds
  out.armed = armed
  out.jit = jit and jit.version or "no"
end)
if not ok then out.error = err end
finish()
