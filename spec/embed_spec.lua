-- examples/embed: a C program that embeds Lua 5.4 and links the module
-- statically (`make embed` -> build/lua5.4/embed-host), running
-- examples/embed/frame_loop.lua against the test server.
local server = require "spec.support.server"

local function shquote(s)
  return "'" .. (tostring(s):gsub("'", "'\\''")) .. "'"
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local ROOT = (function()
  local src = debug.getinfo(1, "S").source
  local dir = src:sub(1, 1) == "@" and src:sub(2):match("^(.*)/spec/[^/]*$")
  return dir or "."
end)()
local HOST = ROOT .. "/build/lua5.4/embed-host"
local FRAME_LOOP = ROOT .. "/examples/embed/frame_loop.lua"

-- Runs a shell command; returns exit status, stdout, stderr.
local function run(cmd)
  local out, err = os.tmpname(), os.tmpname()
  local p = assert(io.popen(cmd .. " >" .. shquote(out) .. " 2>" .. shquote(err) ..
    " </dev/null; echo $?"))
  local status = tonumber(p:read("*a"):match("%d+"))
  p:close()
  local o, e = read_file(out) or "", read_file(err) or ""
  os.remove(out)
  os.remove(err)
  return status, o, e
end

-- Runs the host with a clean environment: no LUA_CPATH (so nothing could come
-- from build/lua5.4/qstash.so), none of the module's QSTASH_* variables, and
-- no LD_PRELOAD (`make asan` preloads the ASan runtime for the interpreter;
-- the host is not an ASan build, and p11-kit's exit handler deadlocks under it).
local function host(args)
  local parts = {
    "env -u LD_PRELOAD -u LUA_PATH -u LUA_PATH_5_4 -u LUA_CPATH -u LUA_CPATH_5_4",
    "-u QSTASH_URL -u QSTASH_TOKEN -u QSTASH_DEV -u QSTASH_DEV_PORT -u QSTASH_REGION",
    shquote(HOST),
  }
  for _, a in ipairs(args) do parts[#parts + 1] = shquote(a) end
  return run(table.concat(parts, " "))
end

-- The frame loop's "summary: key=value ..." line as a table of numbers.
local function summary(out)
  local line = assert(out:match("\nsummary: ([^\n]*)"), "no summary line in:\n" .. out)
  local t = {}
  for k, v in line:gmatch("(%w[%w_]*)=(%S+)") do t[k] = tonumber(v) end
  return t
end

describe("embedding in a C host (examples/embed)", function()
  local srv

  setup(function()
    -- LUA=lua5.4 wins over the ABI this suite may run under (MAKEFLAGS).
    local status, out, err = run("make -s -C " .. shquote(ROOT) .. " embed LUA=lua5.4")
    assert(status == 0, "make embed failed:\n" .. out .. err)
    srv = server.start()
  end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  local function frame_loop(extra)
    local args = { FRAME_LOOP, "--url", srv.url, "--token", "tok-embed" }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    return host(args)
  end

  it("registers qstash and qstash.safe from the program, and finds Debian's cjson", function()
    local script = os.tmpname()
    write_file(script, [[
      local q = require "qstash"
      local s = require "qstash.safe"
      print("preload", type(package.preload["qstash.safe"]))
      print("on cpath", package.searchpath("qstash", package.cpath) or "none")
      print("cjson", (package.searchpath("cjson", package.cpath)))
      print("variants", q ~= s, type(q.dlq_retry), type(s.dlq_retry), q._VERSION == s._VERSION)
      local c = s.new{ base_url = "http://127.0.0.1:1", token = "x", retry = false }
      local res, err = c:dlq_retry("a")
      print("safe", res, q.is_error(err), err.kind)
      c:close()
      return 0
    ]])
    local status, out, err = host{ script }
    os.remove(script)
    assert.equal(0, status, out .. err)
    assert.matches("preload\tfunction\n", out, 1, true)
    assert.matches("on cpath\tnone\n", out, 1, true)
    assert.matches("cjson\t[^\n]*/lua/5%.4/cjson%.so\n", out)
    assert.matches("variants\ttrue\tfunction\tfunction\ttrue\n", out, 1, true)
    assert.matches("safe\tnil\ttrue\tnetwork\n", out, 1, true)
  end)

  it("passes the script's arguments and returns its exit status", function()
    local script = os.tmpname()
    write_file(script, [[
      local a, b = ...
      print(arg[0] ~= nil, arg[1], arg[2], a, b)
      return tonumber(a)
    ]])
    local status, out = host{ script, "7", "x y" }
    os.remove(script)
    assert.equal(7, status)
    assert.equal("true\t7\tx y\t7\tx y\n", out)
  end)

  it("reports a Lua error with a traceback and exits 1", function()
    local script = os.tmpname()
    write_file(script, [[
      local function deep() error("boom in the script") end
      deep()
    ]])
    local status, out, err = host{ script }
    os.remove(script)
    assert.equal(1, status, out .. err)
    assert.matches("boom in the script", err, 1, true)
    assert.matches("stack traceback:", err, 1, true)
    assert.matches("in local 'deep'", err, 1, true)
  end)

  it("prints a qstash error raised by the script through its __tostring", function()
    local script = os.tmpname()
    write_file(script, [[
      local c = require("qstash").new{ base_url = "http://127.0.0.1:1", token = "x", retry = false }
      c:dlq_retry("abc")
    ]])
    local status, out, err = host{ script }
    os.remove(script)
    assert.equal(1, status, out .. err)
    assert.matches("qstash: network POST /v2/dlq/retry/abc", err, 1, true)
    assert.matches("stack traceback:", err, 1, true)
  end)

  -- A behaviour check, not a speed target: client:poll(0) must never block a
  -- frame. With the server answering after 0.3 s and 16 ms frames, a loop whose
  -- poll returned at once runs ~18 frames before the first answer; one that
  -- blocked in poll would run ~1. The bounds are generous for a shared machine.
  it("keeps frames running while retries are in flight, and completes them all", function()
    srv:default{ status = 201, json = { messageId = "m" }, delay = 0.3 }
    local status, out, err = frame_loop{ "--requests", "5" }
    assert.equal(0, status, out .. err)
    local s = summary(out)
    assert.equal(5, s.requests)
    assert.equal(5, s.completed)
    assert.equal(5, s.ok)
    assert.equal(0, s.failed)
    assert.is_true(s.in_flight_frames >= 10, "frames while in flight: " .. s.in_flight_frames)
    assert.is_true(s.longest_frame_ms < 100, "longest frame: " .. s.longest_frame_ms .. " ms")
    -- The first request, started in frame 1, was answered 0.3 s later, from
    -- a frame well after it: the frames in between did not wait for it.
    local first_frame = tonumber(out:match("request 1 %([^)]*%): ok messageId=m in frame (%d+)"))
    assert.is_true(first_frame and first_frame >= 10, out)

    local reqs = srv:requests()
    assert.equal(5, #reqs)
    local paths = {}
    for _, r in ipairs(reqs) do
      assert.equal("POST", r.method)
      assert.equal("Bearer tok-embed", srv:header(r, "Authorization"))
      assert.equal("3", srv:header(r, "Upstash-Retries"))
      paths[r.path] = true
    end
    for i = 1, 5 do assert.is_true(paths["/v2/dlq/retry/1725323658779-" .. i], out) end
  end)

  it("gives a failed request's error to its callback (404)", function()
    srv:script{ { status = 404, json = { error = "message not found" }, delay = 0.3 } }
    srv:default{ status = 201, json = { messageId = "m" }, delay = 0.3 }
    local status, out, err = frame_loop{ "--requests", "3" }
    -- Every request completed (one of them with an error): exit 0.
    assert.equal(0, status, out .. err)
    local s = summary(out)
    assert.equal(3, s.completed)
    assert.equal(2, s.ok)
    assert.equal(1, s.failed)
    assert.matches(
      "request %d %([^)]*%): error qstash: not_found %(404%) POST /v2/dlq/retry/[^:]+: message not found in frame %d+",
      out)
    assert.is_true(s.longest_frame_ms < 100, "longest frame: " .. s.longest_frame_ms .. " ms")
  end)

  it("exits non-zero when requests have not completed after the last frame", function()
    srv:default{ status = 201, json = { messageId = "m" }, delay = 2 }
    local status, out, err = frame_loop{ "--requests", "2", "--frames", "5" }
    assert.equal(2, status, out .. err)
    local s = summary(out)
    assert.equal(5, s.frames)
    assert.equal(0, s.completed)
    assert.matches("request 1 %([^)]*%): still in flight after 5 frames", out)
  end)

  it("exits 64 on bad arguments", function()
    local status, _, err = frame_loop{ "--requests" }
    assert.equal(64, status)
    assert.matches("usage: frame_loop.lua", err, 1, true)
  end)
end)
