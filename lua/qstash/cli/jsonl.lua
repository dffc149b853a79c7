-- qstash.cli.jsonl: the JSON Lines files the command line writes (export,
-- --backup, --report), and making them durable.
--
-- Lua has no fsync(2). `sync FILE` (GNU coreutils, Essential on Debian) opens
-- FILE and calls fsync on it, which writes the file's data (whatever
-- descriptor wrote it) to disk; the process' own buffer is flushed first.

local json = require "qstash.cli.json"

local M = {}

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function exec_ok(cmd)
  local a, _, c = os.execute(cmd)
  if type(a) == "number" then return a == 0 end
  return a == true and (c == nil or c == 0)
end

local function fsync(path)
  return exec_ok("sync -- " .. q(path) .. " 2>/dev/null")
end
M.fsync = fsync

local function dir_of(path)
  local d = path:match("^(.*)/[^/]*$")
  if d == nil then return "." end
  if d == "" then return "/" end
  return d
end

-- What path is (following symlinks): its permission bits (a number) and
-- kind ("regular file", "regular empty file", "directory", "character
-- special file", ...), or nil
-- when it does not exist. `stat` is GNU coreutils, as `sync` above.
local function stat(path)
  local p = io.popen("stat -L -c '%a %F' -- " .. q(path) .. " 2>/dev/null")
  if not p then return nil end
  local line = p:read("*l")
  p:close()
  local mode, kind = (line or ""):match("^(%d+) (.+)$")
  if not mode then return nil end
  return tonumber(mode, 8), kind
end
M.stat = stat

-- Why a private file (bodies and headers) cannot be path: a regular file
-- that others may read or write. Devices and pipes (/dev/null, a FIFO) are
-- not stored, and go through.
local function exposed(path)
  local mode, kind = stat(path)
  if mode and kind:find("^regular") and mode % 64 ~= 0 then -- "regular file", "regular empty file"
    return ("%s can be read or written by others (mode %03o): it would hold message bodies and headers; " ..
      "chmod 600 it, or choose another file"):format(path, mode % 512)
  end
end

local W = {}
W.__index = W

-- opts.fresh: refuse a file that exists and is not empty (export);
-- opts.private: create it readable by its owner only (mode 0600: messages
-- carry bodies and headers), and refuse an existing regular file that
-- others may read or write (its mode is never changed behind the owner's
-- back); opts.durable: sync() makes it durable, and a new file's directory
-- entry is made durable too. A directory is refused.
-- Returns a writer, or nil and a message.
function M.open(path, opts)
  opts = opts or {}
  if path == "-" then return setmetatable({ f = io.stdout, path = "-", stdout = true, lines = 0 }, W) end
  local _, kind = stat(path)
  if kind == "directory" then return nil, ("%s is a directory: give a file name"):format(path) end
  local existing = io.open(path, "rb")
  local size = existing and existing:seek("end")
  if existing then existing:close() end
  if existing and opts.fresh and size and size > 0 then
    return nil, ("%s exists and is not empty: choose another file (it is never overwritten)"):format(path)
  end
  if opts.private then
    local why = existing and exposed(path)
    if why then return nil, why end
    if not existing then exec_ok("umask 077 && : >> " .. q(path) .. " 2>/dev/null") end
  end
  local f, err = io.open(path, "ab")
  if not f then return nil, ("cannot open %s: %s"):format(path, tostring(err)) end
  -- checked again once open: the file may have been replaced meanwhile
  local why = opts.private and exposed(path)
  if why then
    f:close()
    return nil, why
  end
  -- a device or a pipe (/dev/null, a FIFO) holds nothing to make durable
  local _, now = stat(path)
  local w = setmetatable({ f = f, path = path, durable = opts.durable, lines = 0,
    stored = now == nil or now:find("^regular") ~= nil }, W)
  if opts.durable and not existing then
    if not (fsync(path) and fsync(dir_of(path))) then
      f:close()
      return nil, ("cannot sync %s to disk (sync FILE failed)"):format(path)
    end
  end
  return w
end

-- Appends one JSON line per value, in one write, then hands them to the
-- kernel (flush): a process killed after this loses none of them.
function W:write(values)
  if #values == 0 then return true end
  local parts = {}
  for i, v in ipairs(values) do parts[i] = json.encode(v) end
  parts[#parts + 1] = ""
  local ok, err = self.f:write(table.concat(parts, "\n"))
  if ok then ok, err = self.f:flush() end
  if not ok then return nil, ("cannot write %s: %s"):format(self.path, tostring(err)) end
  self.lines = self.lines + #values
  return true
end

-- Makes everything written so far survive a crash of the machine (fsync).
function W:sync()
  if self.stdout then return true end
  local ok, err = self.f:flush()
  if not ok then return nil, ("cannot write %s: %s"):format(self.path, tostring(err)) end
  if self.stored and not fsync(self.path) then
    return nil, ("cannot sync %s to disk (sync FILE failed)"):format(self.path)
  end
  return true
end

function W:close()
  if self.stdout or self.closed then return true end
  self.closed = true
  return self.f:close()
end

return M
