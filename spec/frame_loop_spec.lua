-- examples/frame_loop.lua against the emulator: a frame loop that publishes
-- and follows messages through client:async, calling poll(0) once a frame.
local E = require "spec.support.emulator"

describe("examples/frame_loop.lua", function()
  local fx = E.fixture{ time_scale = 0.001 }

  it("publishes and follows every message to DELIVERED, frame by frame", function()
    local lua = os.getenv("QSTASH_SPEC_LUA") or "lua5.4"
    local cmd = table.concat({
      "QSTASH_URL=" .. E.shell_quote(fx.emu.url), "QSTASH_TOKEN=" .. E.shell_quote(fx.emu.token),
      lua, E.shell_quote(E.root .. "/examples/frame_loop.lua"), E.shell_quote(fx.sink.url), "3", "600", "2>&1",
    }, " ")
    local p = io.popen(cmd)
    local out = p:read("*a")
    local ok, _, code = p:close()
    assert.is_true(ok == true or ok == 0, out)
    assert.is_true(code == nil or code == 0, out)
    for i = 1, 3 do assert.matches("message " .. i .. ": DELIVERED", out, 1, true) end
    assert.matches("ended=3", out, 1, true)
  end)
end)
