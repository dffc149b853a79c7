-- Neovim: the LuaJIT build of the module inside `nvim --headless`, retries
-- and follows through qstash.loop.luv on Neovim's own loop while a Neovim
-- timer keeps firing (the editor's loop keeps running meanwhile).
local E = require "spec.support.emulator"
local qstash = require "qstash"

local function has_nvim()
  return os.execute("command -v nvim >/dev/null 2>&1") == true or
         os.execute("command -v nvim >/dev/null 2>&1") == 0
end

if not has_nvim() then
  describe("Neovim", function()
    pending("needs nvim (Debian neovim, LuaJIT with luv: tools/ensure-deps installs it)")
  end)
  return
end

describe("Neovim", function()
  local fx = E.fixture{ time_scale = 0.001 }

  it("retries and follows through qstash.loop.luv on Neovim's loop", function()
    local emu, sink = fx.emu, fx.sink
    local root = E.root
    assert.is_true(E.exec_ok("make -s -C " .. E.shell_quote(root) .. " LUA=luajit >/dev/null"))
    -- a DLQ entry to retry, made with this process's client
    local c = qstash.new{ token = emu.token, base_url = emu.url }
    sink:set_status(500)
    local f = c:follow(c:publish(sink.url .. "/f", "body", { retries = 0 }).messageId,
                       { timeout = 5, interval = 0.02 })
    assert.equal("FAILED", f.state)
    sink:set_status(200)
    c:close()

    local outfile = os.tmpname()
    local cmd = table.concat({
      "QSTASH_URL=" .. E.shell_quote(emu.url),
      "QSTASH_TOKEN=" .. E.shell_quote(emu.token),
      "QSTASH_NVIM_DLQ=" .. E.shell_quote(f.dlqId),
      "QSTASH_NVIM_SINK=" .. E.shell_quote(sink.url),
      "QSTASH_NVIM_OUT=" .. E.shell_quote(outfile),
      "QSTASH_NVIM_CPATH=" .. E.shell_quote(root .. "/build/luajit/?.so"),
      "QSTASH_NVIM_PATH=" .. E.shell_quote(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua"),
      "timeout 30 nvim --headless -u NONE -i NONE -n",
      "-c", E.shell_quote("luafile " .. root .. "/spec/support/nvim_loop.lua"),
      "</dev/null >/dev/null 2>&1",
    }, " ")
    os.execute(cmd)
    local res = {}
    local fh = io.open(outfile)
    local text = fh and fh:read("*a") or ""
    if fh then fh:close() end
    os.remove(outfile)
    for k, v in text:gmatch("([%w_]+)=([^\n]*)") do res[k] = v end
    assert.is_nil(res.error, text)
    assert.is_nil(res.callback_error, text)
    assert.equal("true", res.waited, text)
    assert.equal("DELIVERED", res.retry, text)
    assert.equal("DELIVERED", res.publish, text)
    assert.is_true(tonumber(res.ticks) > 0, text)
    assert.equal("0", res.loop_waits, text)
    assert.equal("0", res.watched, text)
    assert.equal("false", res.armed, text)
    assert.matches("LuaJIT", res.jit, 1, true)
  end)
end)
