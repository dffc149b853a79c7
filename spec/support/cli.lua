-- Helpers for the specs that run bin/qstash-dlq as a process against the
-- local emulator (spec.support.emulator) and a sink destination.
--
--   local H = require "spec.support.cli"
--   local cx = H.fixture{ time_scale = 0.001 }  -- in a describe: E.fixture, a tmpdir
--   -- and cx.h = H.new(cx.emu, cx.sink, cx.tmp), all set once setup ran
--   local h = H.new(emu, sink, tmpdir)
--   h:run(args, env, tty)      --> status, stdout, stderr
--   h:spawn(args, env)         --> pid (running in the background), stdout and stderr paths
--   h:dlq()                    --> every DLQ entry, following the cursor
--   h:dead(paths, headers, unordered, status) --> DLQ entries of new messages that failed
--   h:lines(s), h:decode_lines(s)

local E = require "spec.support.emulator"
local cjson = require "cjson"

local q = E.shell_quote
local LUA = os.getenv("QSTASH_SPEC_LUA") or "lua5.4"
local ROOT = E.root
local CLI = ROOT .. "/bin/qstash-dlq"
local LUA_PATH = os.getenv("LUA_PATH") or
  (ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;" .. ROOT .. "/?.lua;;")
local LUA_CPATH = os.getenv("LUA_CPATH") or (ROOT .. "/build/lua5.4/?.so;;")

local H = {}
H.__index = H

function H.new(emu, sink, tmp)
  return setmetatable({ emu = emu, sink = sink, tmp = tmp, n = 0 }, H)
end

-- E.fixture(opts) in the calling describe, plus a temporary folder and a
-- helper over the fixture's emulator and sink: cx.emu, cx.sink, cx.tmp and
-- cx.h, set once setup ran; the folder goes in teardown.
function H.fixture(opts)
  local env = E.spec_env(2)
  local fx = E.fixture(opts, env)
  local cx = {}
  env.setup(function()
    cx.emu, cx.sink, cx.tmp = fx.emu, fx.sink, E.tmpdir()
    cx.h = H.new(cx.emu, cx.sink, cx.tmp)
  end)
  env.teardown(function()
    if cx.tmp then os.execute("rm -rf " .. q(cx.tmp)) end
  end)
  return cx
end

function H.lines(s)
  local out = {}
  for line in (s or ""):gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

function H.decode_lines(s)
  local out = {}
  for _, line in ipairs(H.lines(s)) do out[#out + 1] = cjson.decode(line) end
  return out
end

function H.read_jsonl(path)
  return H.decode_lines(E.read_file(path) or "")
end

-- The shell command running the CLI with args; env: extra variables (false unsets).
function H:command(args, env)
  local emu = self.emu
  local vars = {
    LUA_PATH = LUA_PATH, LUA_CPATH = LUA_CPATH,
    QSTASH_URL = emu and emu.url or false, QSTASH_TOKEN = emu and emu.token or false,
    QSTASH_DEV = false, QSTASH_DEV_PORT = false, QSTASH_REGION = false,
  }
  for k, v in pairs(env or {}) do vars[k] = v end
  local parts = { "env" }
  for k, v in pairs(vars) do
    if v == false then parts[#parts + 1] = "-u " .. k end
  end
  for k, v in pairs(vars) do
    if v ~= false then parts[#parts + 1] = k .. "=" .. q(v) end
  end
  parts[#parts + 1] = q(LUA) .. " " .. q(CLI)
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  return table.concat(parts, " ")
end

-- Runs the CLI; tty: on a pseudo terminal (util-linux script), stdout and
-- stderr then both go to stdout. Returns status, stdout, stderr.
function H:run(args, env, tty)
  local out, err = self.tmp .. "/out", self.tmp .. "/err"
  local cmd = self:command(args, env)
  if tty then cmd = "script -qec " .. q(cmd) .. " /dev/null" end
  cmd = cmd .. " >" .. q(out) .. " 2>" .. q(err) .. " </dev/null; echo $?"
  local p = assert(io.popen(cmd))
  local status = tonumber(p:read("*a"):match("%d+"))
  p:close()
  return status, E.read_file(out) or "", E.read_file(err) or ""
end

-- Starts the CLI in the background (exec'd by the shell, so the pid is the
-- interpreter's own). Returns pid, stdout path, stderr path.
function H:spawn(args, env)
  self.n = self.n + 1
  local base = self.tmp .. "/bg" .. self.n
  local cmd = "exec " .. self:command(args, env)
  assert(E.exec_ok("sh -c " .. q(cmd) .. " >" .. q(base .. ".out") .. " 2>" .. q(base .. ".err") ..
    " </dev/null & echo $! >" .. q(base .. ".pid")))
  local pid = tonumber((E.read_file(base .. ".pid") or ""):match("%d+"))
  assert(pid, "no pid")
  return pid, base .. ".out", base .. ".err"
end

-- GET path, waiting out the 429s of an emulator started with a burst limit.
function H:get(path)
  local status, doc, raw
  for _ = 1, 100 do
    status, doc, raw = self.emu:json("GET", path)
    if status ~= 429 then break end
    E.sleep(0.25)
  end
  return status, doc, raw
end

-- Every DLQ entry, following the cursor.
function H:dlq()
  local all, cursor = {}, nil
  repeat
    local status, doc, raw = self:get("/v2/dlq?count=100" .. (cursor and ("&cursor=" .. cursor) or ""))
    assert(status == 200, raw)
    for _, m in ipairs(doc.messages) do all[#all + 1] = m end
    cursor = doc.cursor
  until cursor == nil or cursor == ""
  return all
end

function H:dlq_ids()
  local set, n = {}, 0
  for _, m in ipairs(self:dlq()) do set[m.dlqId], n = true, n + 1 end
  return set, n
end

function H:in_dlq(message_id)
  local status, doc = self:get("/v2/dlq?messageId=" .. message_id)
  return status == 200 and doc.messages[1] or nil
end

-- Publishes one message per path to the sink (answering 500) with no retries;
-- returns the DLQ entries, in the order of paths. Unless `unordered` each
-- message is waited for before the next is published: the DLQ then lists
-- them in the order of paths. headers: extra publish headers, or a function
-- of the index returning them. status: what the sink answers (500), or a
-- whole sink mode ({status = 500, body = "...", headers = {...}}).
function H:dead(paths, headers, unordered, status)
  local emu, sink = self.emu, self.sink
  if type(status) == "table" then sink:set_mode(status) else sink:set_status(status or 500) end
  local want = {}
  for i, path in ipairs(paths) do
    local h = { ["Upstash-Retries"] = "0", ["Content-Type"] = "text/plain" }
    local extra = type(headers) == "function" and headers(i) or headers
    for k, v in pairs(extra or {}) do h[k] = v end
    local code, doc, raw = emu:json("POST", "/v2/publish/" .. sink.url .. path,
      { headers = h, body = (self.prefix or "body ") .. i })
    assert(code == 200 or code == 201, raw)
    want[i] = doc.messageId
    if not unordered then
      assert(E.wait_for(function() return self:in_dlq(doc.messageId) end, 10), "message did not reach the DLQ")
    end
  end
  local entries = E.wait_for(function()
    local by_msg = {}
    for _, m in ipairs(self:dlq()) do by_msg[m.messageId] = m end
    local out = {}
    for i, id in ipairs(want) do
      if not by_msg[id] then return nil end
      out[i] = by_msg[id]
    end
    return out
  end, 30)
  assert(entries, "messages did not reach the DLQ")
  sink:clear() -- forget the failed deliveries; answer 200 from now on
  return entries
end

return H
