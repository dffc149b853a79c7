--- qstash.resty.http: one HTTP/1.1 exchange over an nginx cosocket.
--
--   local http = require "qstash.resty.http"
--   local ok, status, headers, body = http.request{
--     method = "POST", url = "https://qstash.upstash.io/v2/dlq/retry/abc",
--     headers = { {"Authorization", "Bearer ..."}, ... }, body = "",
--     timeout = 30, connect_timeout = 10, max_response_bytes = 8388608,
--     ca_file = nil, proxy = nil }
--   -- ok: status (number), headers (lower-case name -> string, or an array of
--   --     strings for a repeated header), body (string)
--   -- not ok: status is the failure: { failure = "timeout"|"network"|"too_large",
--   --     sent = bool, message = "...", status = n (too_large only),
--   --     retryable = false (only for what repeating cannot mend) }
--
-- The request value is the one the core's caller-driven transport hands out
-- ("send"): headers go out exactly as given, in order, after Host; this
-- module adds Host and Content-Length only. Runs wherever cosockets do
-- (rewrite, access, content, ngx.timer, ssl_* phases).
--
-- Time: `timeout` bounds the whole exchange (connect, proxy tunnel, TLS,
-- send, every read); `connect_timeout` bounds the connect phase (TCP, the
-- proxy's CONNECT, the TLS handshake) within it. `sent` is false only when
-- nothing of the request can have reached the origin: failures while
-- connecting; from the first byte written on, and on any reused connection,
-- it is true.
--
-- Connections: a keepalive pool per origin and configuration (scheme, host,
-- port, ca_file, proxy), through `setkeepalive` only after a response was read
-- whole, delimited by Content-Length or chunked, with nothing unread, and
-- the server allowed it (HTTP/1.1 without `Connection: close`; HTTP/1.0 only
-- with `keep-alive`). Pool sizes are nginx's (`lua_socket_pool_size`).
--
-- TLS: `sslhandshake` with SNI (not for IP literals) and verification:
-- nginx's (`lua_ssl_trusted_certificate`) for the chain, or with `ca_file` a
-- check against that file; see qstash.resty.tls.

local tls = require "qstash.resty.tls"

local type = type
local error = error
local tostring = tostring
local tonumber = tonumber
local rawget = rawget
local pcall = pcall
local require = require
local setmetatable = setmetatable
local string_char = string.char
local _G = _G
local ipairs = ipairs
local math_ceil = math.ceil
local string_find = string.find
local string_sub = string.sub
local string_match = string.match
local string_gmatch = string.gmatch
local string_lower = string.lower
local string_byte = string.byte
local table_concat = table.concat

local M = {}

-- bytes asked of each receiveany: the read buffer beyond max_response_bytes
local READ_SIZE = 16384
-- status line and header fields together (libcurl allows 100 KiB)
local MAX_HEAD = 102400
-- a chunk-size line
local MAX_LINE = 4096
-- idle time of a pooled connection, ms: under the 60 s idle limit of common
-- servers and load balancers, like the C module's CURLOPT_MAXAGE_CONN (30 s)
local KEEPALIVE_MS = 30000
-- most parsed origins and proxies kept (emptied past it)
local MAX_CACHED = 64

local ngx_api, clock

local function init()
  local ngx = rawget(_G, "ngx")
  if type(ngx) ~= "table" or type(ngx.socket) ~= "table" then
    error("qstash.resty.http needs OpenResty (ngx.socket.tcp)", 3)
  end
  ngx_api = ngx
  local ok, t = pcall(require, "resty.core.time")
  if ok and type(t) == "table" and t.monotonic_msec then
    local msec = t.monotonic_msec
    clock = function() return msec() / 1000 end
  else
    clock = ngx.now
  end
end

---------------------------------------------------------------- URLs

local origins, norigins = {}, 0
local proxies, nproxies = {}, 0

local DEFAULT_PORT = { http = 80, https = 443 }

-- host, port of an authority ("h", "h:p", "[v6]", "[v6]:p"), or nil
local function split_authority(authority)
  local host, port = string_match(authority, "^(%[[%x:.]+%])(.*)$")
  if not host then host, port = string_match(authority, "^([%w.%-_~!$&'()*+,;=%%]+)(.*)$") end
  if not host then return nil end
  if port == "" then return host, nil end
  port = string_match(port, "^:(%d%d?%d?%d?%d?)$")
  port = tonumber(port)
  if not port or port < 1 or port > 65535 then return nil end
  return host, port
end

local function is_ip(host)
  return string_byte(host, 1) == 91 -- "["
    or string_match(host, "^%d+%.%d+%.%d+%.%d+$") ~= nil
end

-- Parses `key` ("scheme://authority") into an origin, cached under it.
local function origin_of(key, scheme, authority)
  local host, port = split_authority(authority)
  if not host then return nil end
  local default = DEFAULT_PORT[scheme]
  port = port or default
  local ip = is_ip(host)
  local o = {
    scheme = scheme,
    tls = scheme == "https",
    host = host,                                   -- for connect ("[::1]" bracketed)
    name = ip and string_match(host, "^%[(.*)%]$") or host, -- certificate checks
    is_ip = ip,
    port = port,
    -- Host: the port only when it is not the scheme's (as libcurl)
    hostport = port == default and host or (host .. ":" .. port),
    authority = host .. ":" .. port,               -- CONNECT target
  }
  o.pool = "qstash|" .. key .. "|" .. o.authority
  if norigins >= MAX_CACHED then origins, norigins = {}, 0 end
  origins[key] = o
  norigins = norigins + 1
  return o
end

-- "%41" -> "A" (userinfo of a proxy URL)
local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string_char(tonumber(h, 16)) end))
end

-- http://[user[:password]@]host[:port][/]; libcurl's default port is 1080.
local function proxy_of(url)
  if type(url) ~= "string" then error("qstash.resty.http: proxy must be a string", 4) end
  local p = proxies[url]
  if p ~= nil then return p end
  local scheme, rest = string_match(url, "^(%a[%w+.%-]*)://(.*)$")
  if not scheme then return nil, "proxy URL " .. url .. " has no scheme" end
  if string_lower(scheme) ~= "http" then
    return nil, "proxy scheme " .. scheme .. ":// is not supported over cosockets (http:// only)"
  end
  rest = string_match(rest, "^([^/?#]*)/?$")
  if not rest then return nil, "proxy URL has a path" end
  local userinfo, authority = string_match(rest, "^(.*)@(.*)$")
  authority = authority or rest
  local host, port = split_authority(authority)
  if not host then return nil, "proxy URL has an invalid host or port" end
  p = { host = host, port = port or 1080 }
  if userinfo then
    local user, pass = string_match(userinfo, "^([^:]*):(.*)$")
    user = unescape(user or userinfo)
    pass = unescape(pass or "")
    p.auth = "Basic " .. ngx_api.encode_base64(user .. ":" .. pass)
  end
  if nproxies >= MAX_CACHED then proxies, nproxies = {}, 0 end
  proxies[url] = p
  nproxies = nproxies + 1
  return p
end

---------------------------------------------------------------- failures

local function fail(kind, sent, message, status)
  return { failure = kind, sent = sent, message = message, status = status }
end

-- A failure that repeating cannot mend (TLS verification, an unusable
-- ca_file or proxy URL): the core makes no further attempt, as it does for
-- libcurl's CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE and
-- CURLE_UNSUPPORTED_PROTOCOL.
local function permanent(message)
  return { failure = "network", sent = false, message = message, retryable = false }
end

local function io_fail(err, sent, what)
  return fail(err == "timeout" and "timeout" or "network", sent, what .. ": " .. tostring(err))
end

-- milliseconds for settimeout: at least 1 (0 would mean nginx's default)
local function ms(seconds)
  local m = math_ceil(seconds * 1000)
  if m < 1 then return 1 end
  return m
end

-- Keeps a socket's send and read timeouts at what is left until `deadline`.
-- `armed`: when they were last set to that. Each settimeout is a call into
-- nginx, so they are set again only once more than 1 ms went by. Returns
-- the new `armed`, or nil when no time is left.
local function rearm(sock, deadline, armed)
  local now = clock()
  if now >= deadline then return nil end
  if now - armed > 0.001 then
    sock:settimeout(ms(deadline - now))
    return now
  end
  return armed
end

---------------------------------------------------------------- reading

-- A response reader over one socket: `buf` from `pos` on is unread.
local Reader = {}
Reader.__index = Reader

-- `armed`: when the socket's timeouts were set for `deadline` (0: not yet).
-- `max`: max_response_bytes (read by the body readers).
local function new_reader(sock, deadline, armed, max)
  return setmetatable({ sock = sock, buf = "", pos = 1, deadline = deadline, armed = armed, max = max },
    Reader)
end

-- The socket's read timeout at what is left; false when nothing is left.
function Reader:arm()
  local armed = rearm(self.sock, self.deadline, self.armed)
  if not armed then return false end
  self.armed = armed
  return true
end

-- Reads more (at most `want` bytes); nil, err on failure.
function Reader:fill(want)
  if not self:arm() then return nil, "timeout" end
  local sock = self.sock
  local data, err = sock:receiveany(want or READ_SIZE)
  if not data then return nil, err end
  local buf, pos = self.buf, self.pos
  if pos > #buf then self.buf = data
  else self.buf = string_sub(buf, pos) .. data end
  self.pos = 1
  return true
end

function Reader:unread()
  return #self.buf - self.pos + 1
end

-- Why the unread bytes of a CRLF-delimited part can never end well: a bare
-- CR or LF (or, `head` set, a start that is not "HTTP/1."), so that a
-- broken server fails the attempt at once instead of holding it to the
-- deadline; nil when they still may.
local HTTP_PREFIX = "HTTP/1."

-- `from`: where bytes not looked at yet begin (>= pos).
local function hopeless(buf, pos, from, head)
  if from > pos then from = from - 1 end -- a pair across the reads
  if string_byte(buf, pos) == 10 or string_find(buf, "[^\r]\n", from) then return "bare LF" end
  if string_find(buf, "\r[^\n]", from) then return "bare CR" end
  if head then
    local start = string_sub(buf, pos, pos + 6)
    if start ~= string_sub(HTTP_PREFIX, 1, #start) then
      return "the version is not HTTP/1.0 or HTTP/1.1"
    end
  end
  return nil
end

-- The text up to `sep` (CRLF or CRLF CRLF; consumed, not returned), at most
-- `limit` bytes; nil, err, why: why is "too long", or "invalid" (err then
-- says what was wrong), or nil for a read that failed (err is the socket's).
local function until_sep_loop(self, sep, limit, head)
  local from = self.pos
  while true do
    local buf, pos = self.buf, self.pos
    local s, e = string_find(buf, sep, from, true)
    if s then
      if s - pos > limit then return nil, "too long", "too long" end
      self.pos = e + 1
      return string_sub(buf, pos, s - 1)
    end
    local unread = #buf - pos + 1
    if unread > limit then return nil, "too long", "too long" end
    local bad = unread > 0 and hopeless(buf, pos, from, head)
    if bad then return nil, bad, "invalid" end
    local ok, err = self:fill()
    if not ok then return nil, err end
    -- fill() moved the unread bytes to the start: a separator can only
    -- begin in the last #sep - 1 of them, or after
    from = unread - #sep + 2
    if from < 1 then from = 1 end
  end
end

-- The same, straight through when one read brings the whole of it (the
-- usual answer), so that the JIT compiles the caller.
function Reader:until_sep(sep, limit, head)
  if self.pos > #self.buf then
    local ok, err = self:fill()
    if not ok then return nil, err end
  end
  local buf, pos = self.buf, self.pos
  local s, e = string_find(buf, sep, pos, true)
  if s and s - pos <= limit then
    self.pos = e + 1
    return string_sub(buf, pos, s - 1)
  end
  return until_sep_loop(self, sep, limit, head)
end

-- Exactly n bytes. Read with receiveany, one timer per call: nginx re-arms
-- a read's timer whenever bytes arrive, so a single receive(n) from a server
-- that drips would outlive the deadline. Whatever comes past the n bytes
-- stays in the buffer: a connection with bytes after the end of its answer
-- is never pooled (see stale).
function Reader:exact(n)
  local buf, pos = self.buf, self.pos
  local have = #buf - pos + 1
  if have >= n then
    self.pos = pos + n
    return string_sub(buf, pos, pos + n - 1)
  end
  local parts = { have > 0 and string_sub(buf, pos) or nil }
  local sock = self.sock
  self.buf, self.pos = "", 1
  while have < n do
    if not self:arm() then return nil, "timeout" end
    local data, err = sock:receiveany(READ_SIZE)
    if not data then return nil, err end
    parts[#parts + 1] = data
    have = have + #data
  end
  local all = table_concat(parts)
  if have > n then
    self.buf = string_sub(all, n + 1)
    return string_sub(all, 1, n)
  end
  return all
end

-- A header name: an RFC 9110 token.
local NOT_TOKEN = "[^!#$%%&'*+%-.^_`|~%w]"
local TOKEN_AT = "^[!#$%%&'*+%-.^_`|~%w]+"
-- Control bytes no head may hold (all but HTAB, and CR and LF, which are
-- checked as pairs): RFC 9110 5.5 lets a recipient refuse them.
local CTL = "[%z\1-\8\11\12\14-\31\127]"

-- Response header names seen before -> their lower case (each checked as a
-- token once); emptied past MAX_CACHED * 4 names.
local lower_names, nlower = {}, 0

local function lower_name(name)
  local l = lower_names[name]
  if l then return l end
  if name == "" or string_find(name, NOT_TOKEN) then return nil end
  l = string_lower(name)
  if nlower >= MAX_CACHED * 4 then lower_names, nlower = {}, 0 end
  lower_names[name] = l
  nlower = nlower + 1
  return l
end

-- The field line of `s` from i to j (without its CRLF), RFC 9112 5:
-- name, colon (its position); or nil, what is wrong with it.
local function field_line(s, i, j)
  local b = string_byte(s, i)
  if b == 32 or b == 9 then return nil, "obs-fold (a line starting with whitespace)" end
  local colon = string_find(s, ":", i, true)
  if not colon or colon > j then return nil, "a field line without a colon" end
  b = string_byte(s, colon - 1)
  if colon > i and (b == 32 or b == 9) then return nil, "whitespace before a field's colon" end
  local name = lower_name(string_sub(s, i, colon - 1))
  if not name then return nil, "a field name that is not a token" end
  return name, colon
end

-- Reads "HTTP/1.x" SP 3DIGIT [SP reason] at the start of a head: status,
-- minor; or nil, what is wrong. The status is 100-599 (RFC 9110 15); a
-- line without the SP before an empty reason is read too, as most clients
-- do.
local function status_line(head)
  local minor, sp, d1, d2, d3, after = string_byte(head, 8, 13)
  if string_sub(head, 1, 7) ~= HTTP_PREFIX or (minor ~= 48 and minor ~= 49) then
    return nil, "the version is not HTTP/1.0 or HTTP/1.1"
  end
  if sp ~= 32 or not (d1 and d1 >= 48 and d1 <= 57 and d2 and d2 >= 48 and d2 <= 57
                      and d3 and d3 >= 48 and d3 <= 57)
     or (after ~= nil and after ~= 32 and after ~= 13) then
    return nil, "invalid status line (not version SP 3DIGIT SP reason)"
  end
  local status = (d1 - 48) * 100 + (d2 - 48) * 10 + d3 - 48
  if status < 100 or status > 599 then
    return nil, "status code " .. string_sub(head, 10, 12) .. " is outside 100-599"
  end
  return status, minor - 48
end

-- Parses a header block (without its final CRLF CRLF): status, version
-- minor, headers; or nil, what is wrong. Plain finds and byte tests: a
-- pattern with a lazy value capture costs more than the rest of a request.
local function parse_head(head)
  local status, minor = status_line(head)
  if not status then return nil, minor end
  -- no control byte but HTAB, CR and LF: a byte loop the JIT compiles
  -- (a pattern with a class costs a few microseconds a head)
  for k = 1, #head do
    local c = string_byte(head, k)
    if c < 32 and c ~= 9 and c ~= 10 and c ~= 13 or c == 127 then
      return nil, "a control character in the head"
    end
  end
  local headers = {}
  local n = #head
  -- each line, the status line first, ends at its first CR, which an LF
  -- follows; no LF comes before it
  local i = 1
  while true do
    local cr = string_find(head, "\r", i, true) or (n + 1)
    local lf = string_find(head, "\n", i, true) or (n + 2)
    if lf ~= cr + 1 then return nil, lf < cr and "bare LF" or "bare CR" end
    if i > 1 then
      local name, colon = field_line(head, i, cr - 1)
      if not name then return nil, colon end
      -- the value without the whitespace around it (SP, HTAB)
      local vs, ve = colon + 1, cr - 1
      local b = string_byte(head, vs)
      while vs <= ve and (b == 32 or b == 9) do
        vs = vs + 1
        b = string_byte(head, vs)
      end
      b = string_byte(head, ve)
      while ve >= vs and (b == 32 or b == 9) do
        ve = ve - 1
        b = string_byte(head, ve)
      end
      local value = string_sub(head, vs, ve)
      local old = headers[name]
      if old == nil then headers[name] = value
      elseif type(old) == "table" then old[#old + 1] = value
      else headers[name] = { old, value } end
    end
    if cr > n then break end
    i = cr + 2
  end
  return status, minor, headers
end

-- A header's values as one comma-joined string (or nil).
local function joined(v)
  if type(v) == "table" then return table_concat(v, ",") end
  return v
end

-- The Content-Length (nil when absent), or nil, message when invalid.
local function content_length(headers)
  local v = headers["content-length"]
  if v == nil then return nil end
  -- one plain value: the usual case
  if type(v) == "string" and #v <= 15 and not string_find(v, "%D") and v ~= "" then
    return tonumber(v)
  end
  local len
  for part in (joined(v) .. ","):gmatch("[ \t]*([^,]-)[ \t]*,") do
    if not string_match(part, "^%d+$") or #part > 15 then return nil, "invalid Content-Length" end
    local n = tonumber(part)
    if len and n ~= len then return nil, "conflicting Content-Length values" end
    len = n
  end
  if not len then return nil, "invalid Content-Length" end
  return len
end

-- The usual Connection values, read without splitting them.
local CONNECTION = { ["keep-alive"] = "keep-alive", ["Keep-Alive"] = "keep-alive", close = "close",
                     Close = "close" }

-- true when the response lets the connection be reused: no `close` among
-- the Connection options; HTTP/1.0 only with `keep-alive` among them.
local function keep_alive(minor, headers)
  local conn = headers["connection"]
  if conn == nil then return minor == 1 end
  local usual = CONNECTION[conn]
  if usual then return usual == "keep-alive" end
  local keep = minor == 1
  for option in string_gmatch(string_lower(joined(conn)), "[^,]+") do
    option = string_match(option, "^[ \t]*(.-)[ \t]*$")
    if option == "close" then return false end
    if option == "keep-alive" then keep = true end
  end
  return keep
end

-- How the body of a final response is delimited (RFC 9112 6.3): "none",
-- "length" (and the length), "chunked" or "close"; or nil, what is wrong.
-- Transfer-Encoding is read only as exactly `chunked`: any other coding
-- would hand back bytes nobody decoded.
local function framing(status, minor, headers, method)
  local te, cl = headers["transfer-encoding"], headers["content-length"]
  if te ~= nil then
    if cl ~= nil then return nil, "both Transfer-Encoding and Content-Length" end
    if minor == 0 then return nil, "Transfer-Encoding in an HTTP/1.0 response" end
    te = joined(te)
    if te ~= "chunked" and string_lower(string_match(te, "^[ \t]*(.-)[ \t]*$")) ~= "chunked" then
      return nil, "Transfer-Encoding other than chunked"
    end
  end
  local len, lerr = content_length(headers)
  if lerr then return nil, lerr end
  if status == 204 or status == 304 or method == "HEAD" then return "none" end
  if te ~= nil then return "chunked" end
  if len then return "length", len end
  return "close"
end

-- The index after a quoted-string that starts at s[i], or nil.
local function quoted_end(s, i)
  local j = i + 1
  while true do
    local b = string_byte(s, j)
    if b == 34 then return j + 1 end
    if b == 92 then
      j = j + 1
      b = string_byte(s, j)
    end
    if not b or (b < 32 and b ~= 9) or b == 127 then return nil end
    j = j + 1
  end
end

-- Whether `s` is a list of chunk extensions (RFC 9112 7.1.1):
-- *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ).
local function chunk_ext(s)
  local i, n = 1, #s
  while i <= n do
    local _, e = string_find(s, "^[ \t]*;[ \t]*", i)
    if not e then return false end
    _, e = string_find(s, TOKEN_AT, e + 1)
    if not e then return false end
    i = e + 1
    _, e = string_find(s, "^[ \t]*=[ \t]*", i)
    if e then
      if string_byte(s, e + 1) == 34 then
        i = quoted_end(s, e + 1)
        if not i then return false end
      else
        _, e = string_find(s, TOKEN_AT, e + 1)
        if not e then return false end
        i = e + 1
      end
    end
  end
  return true
end

-- The size of a chunk-size line, or nil, what is wrong.
local function chunk_size(line)
  if string_find(line, "\n", 1, true) then return nil, "bare LF" end
  if string_find(line, "\r", 1, true) then return nil, "bare CR" end
  local hex, ext = string_match(line, "^0*(%x*)(.*)$")
  if #line == #ext then return nil, "invalid chunk size line (no hex size)" end
  -- up to 2^48 - 1: an exact number, far past any max_response_bytes
  if #hex > 12 then return nil, "chunk size over 12 hex digits" end
  if ext ~= "" and not chunk_ext(ext) then return nil, "invalid chunk size line (its extension)" end
  return tonumber(hex, 16) or 0
end

-- A failed read of a CRLF-delimited part (see until_sep) in read_chunked's
-- returns: the socket's error, or a refusal.
local function part_fail(err, why, too_long)
  if why == "invalid" then return nil, err, false, true end
  if why then return nil, too_long, false, true end
  return nil, err
end

-- The body of a chunked response; body, or nil, err, too_large, invalid
-- (err says what is wrong with the response when `invalid`).
local function read_chunked(r, max)
  local parts, total = {}, 0
  while true do
    local line, err, why = r:until_sep("\r\n", MAX_LINE)
    if not line then
      return part_fail(err, why, "chunk size line over " .. MAX_LINE .. " bytes")
    end
    local size, serr = chunk_size(line)
    if not size then return nil, serr, false, true end
    if size == 0 then break end
    if total + size > max then return nil, nil, true end
    local data
    data, err = r:exact(size + 2)
    if not data then return nil, err end
    if string_sub(data, -2) ~= "\r\n" then return nil, "missing CRLF after chunk data", false, true end
    parts[#parts + 1] = string_sub(data, 1, -3)
    total = total + size
  end
  -- the trailer section: field lines, read and dropped, up to the empty line
  local seen = 0
  while true do
    local line, err, why = r:until_sep("\r\n", MAX_LINE)
    if not line then
      return part_fail(err, why, "trailer line over " .. MAX_LINE .. " bytes")
    end
    if line == "" then break end
    seen = seen + #line
    if seen > MAX_HEAD then return nil, "trailer section over " .. MAX_HEAD .. " bytes", false, true end
    if string_find(line, CTL) then return nil, "trailer: a control character", false, true end
    if string_find(line, "[\r\n]") then return nil, "trailer: bare CR or LF", false, true end
    local name, colon = field_line(line, 1, #line)
    if not name then return nil, "trailer: " .. colon, false, true end
  end
  return table_concat(parts)
end

-- A body delimited by the end of the connection; nil, err, too_large.
local function read_to_close(r, max)
  local parts = {}
  local total = r:unread()
  if total > max then return nil, nil, true end
  if total > 0 then parts[1] = string_sub(r.buf, r.pos) end
  r.buf, r.pos = "", 1
  while true do
    if not r:arm() then return nil, "timeout" end
    -- never more than one byte past the cap
    local want = max - total + 1
    if want > READ_SIZE then want = READ_SIZE end
    local data, err = r.sock:receiveany(want)
    if not data then
      if err == "closed" then return table_concat(parts) end
      return nil, err
    end
    total = total + #data
    if total > max then return nil, nil, true end
    parts[#parts + 1] = data
  end
end

---------------------------------------------------------------- connecting

local connect_opts = {}

-- The pool name: origin plus what makes a connection differ.
local function pool_name(o, ca_file, proxy)
  if not ca_file and not proxy then return o.pool end
  return o.pool .. "|ca=" .. (ca_file or "") .. "|proxy=" .. (proxy or "")
end

-- CONNECT host:port through the proxy; true or nil, message.
local function tunnel(sock, o, px, deadline)
  local lines = { "CONNECT ", o.authority, " HTTP/1.1\r\nHost: ", o.authority, "\r\n" }
  if px.auth then
    lines[#lines + 1] = "Proxy-Authorization: "
    lines[#lines + 1] = px.auth
    lines[#lines + 1] = "\r\n"
  end
  lines[#lines + 1] = "\r\n"
  local left = deadline - clock()
  if left <= 0 then return nil, "timeout", "timeout" end
  sock:settimeout(ms(left))
  local n, err = sock:send(lines)
  if not n then return nil, "sending CONNECT to the proxy failed: " .. tostring(err), err end
  local r = new_reader(sock, deadline, 0)
  while true do
    local head
    head, err = r:until_sep("\r\n\r\n", MAX_HEAD)
    if not head then
      return nil, "reading the proxy's CONNECT answer failed: " .. tostring(err), err
    end
    local status, why = status_line(head)
    if not status then return nil, "the proxy answered CONNECT with an invalid status line: " .. why end
    if status >= 200 and status < 300 then
      -- the tunnel starts right after the header block
      if r:unread() > 0 then return nil, "the proxy sent data after its CONNECT answer" end
      return true
    end
    if status >= 200 or status == 101 then
      return nil, "the proxy answered CONNECT " .. o.authority .. " with " .. status
    end
    -- 1xx: the final answer follows
  end
end

-- Whether a connection taken from the pool is unfit to send on: bytes are
-- waiting on it (an answer nobody asked for, a proxy's 408 before it closed
-- an idle connection) or its peer closed it, as libcurl checks a connection
-- before reuse. nginx closes a pooled connection that turns readable, but
-- only once its event loop runs: a worker that did not yield since would
-- send on it and read the waiting bytes as its answer.
--
-- The check is a non-blocking recv(MSG_PEEK) on the socket, through
-- LuaJIT's FFI: it costs one system call, never yields and logs nothing.
-- lua-nginx-module hands out the descriptor through
-- ngx_http_lua_ffi_socket_tcp_hack_fd, which with a negative fd only
-- returns it (v0.10.18 and later). Without it (another OS, an older
-- module), a one-byte receiveany with a 1 ms timeout does the same through
-- the cosocket: it comes back at once when anything waits, but a clean
-- connection waits the 1 ms out, and nginx logs each such timeout at the
-- error level (lua_socket_log_errors), so it is only the fallback.
-- Nothing the response reader could still have taken in is left out of
-- either: it reads past the end of a body into its own buffer, and a
-- connection with anything there is never pooled.
local peek_fd -- function(sock) -> true (stale), false (clean), nil (cannot tell)

local function init_peek()
  peek_fd = function() return nil end
  if not rawget(_G, "jit") then return end
  local ok, ffi = pcall(require, "ffi")
  if not ok or ffi.os ~= "Linux" then return end
  for _, d in ipairs{
    "typedef struct ngx_http_lua_socket_tcp_upstream_s ngx_http_lua_socket_tcp_upstream_t;",
    "int ngx_http_lua_ffi_socket_tcp_hack_fd(ngx_http_lua_socket_tcp_upstream_t *u, int fd,"
      .. " unsigned char *err, size_t *errlen);",
    "long recv(int sockfd, void *buf, size_t len, int flags);",
  } do pcall(ffi.cdef, d) end
  local C = ffi.C
  local found = pcall(function() return C.ngx_http_lua_ffi_socket_tcp_hack_fd and C.recv end)
  if not found then return end
  local MSG_PEEK, MSG_DONTWAIT, EAGAIN, EINTR = 2, 64, 11, 4
  local byte = ffi.new("unsigned char[1]")
  local err = ffi.new("unsigned char[64]")
  local errlen = ffi.new("size_t[1]")
  peek_fd = function(sock)
    -- the cosocket's connection: its first slot (SOCKET_CTX_INDEX)
    local u = rawget(sock, 1)
    if type(u) ~= "userdata" then return nil end
    errlen[0] = 64
    local fd = C.ngx_http_lua_ffi_socket_tcp_hack_fd(u, -1, err, errlen)
    if fd < 0 then return nil end
    local n
    repeat
      n = C.recv(fd, byte, 1, MSG_PEEK + MSG_DONTWAIT)
    until n >= 0 or ffi.errno() ~= EINTR
    if n < 0 then return ffi.errno() ~= EAGAIN end
    -- 1: bytes waiting; 0: the peer closed
    return true
  end
end

-- true: the cosocket read only (for specs of the fallback)
local read_only = false

local function stale(sock)
  if not peek_fd then init_peek() end
  local bad
  if not read_only then bad = peek_fd(sock) end
  if bad ~= nil then return bad, false end
  sock:settimeouts(1000, 1000, 1)
  local data, err = sock:receiveany(1)
  -- the probe changed the timeouts
  return data ~= nil or err ~= "timeout", true
end

-- Pooled connections found unfit in a row before giving up (each one found
-- is closed, so the pool runs out of them long before).
local MAX_STALE = 256

-- Opens (or takes from the pool) a connection ready for the request.
-- Returns sock, reused, armed (see rearm) | nil, failure.
local function open(o, v, deadline, px)
  local pool = pool_name(o, v.ca_file, v.proxy)
  local opts = connect_opts[pool]
  if not opts then
    opts = { pool = pool }
    connect_opts[pool] = opts
  end

  local sock, ok, err, now, connect_deadline
  for _ = 1, MAX_STALE do
    now = clock()
    connect_deadline = now + (tonumber(v.connect_timeout) or (deadline - now))
    if connect_deadline > deadline then connect_deadline = deadline end
    local left = connect_deadline - now
    if left <= 0 then return nil, fail("timeout", false, "no time left to connect") end

    sock = ngx_api.socket.tcp()
    -- connecting within its own limit; sending and reading within the
    -- whole deadline (set again once time went by: see rearm)
    local whole = ms(deadline - now)
    sock:settimeouts(ms(left), whole, whole)
    local host, port = o.host, o.port
    if px then host, port = px.host, px.port end
    ok, err = sock:connect(host, port, opts)
    if not ok then
      return nil, io_fail(err, false, "connect to " .. (px and "proxy " or "") .. host .. ":" .. port .. " failed")
    end
    if sock:getreusedtimes() == 0 then break end
    local bad, probed = stale(sock)
    -- armed = 0: the probe changed the timeouts, set them again
    if not bad then return sock, true, probed and 0 or now end
    sock:close()
    sock = nil
  end
  if not sock then
    return nil, fail("network", false, MAX_STALE .. " pooled connections in a row had bytes waiting or were closed")
  end

  if px and o.tls then
    local why
    ok, err, why = tunnel(sock, o, px, connect_deadline)
    if not ok then
      sock:close()
      return nil, fail(why == "timeout" and "timeout" or "network", false, err)
    end
  end
  if o.tls then
    local dl = connect_deadline - clock()
    if dl <= 0 then
      sock:close()
      return nil, fail("timeout", false, "no time left for the TLS handshake")
    end
    sock:settimeout(ms(dl))
    -- nil: ask for the session, whose certificate tls.check reads
    local session
    session, err = sock:sslhandshake(nil, not o.is_ip and o.name or nil, not v.ca_file)
    if not session then
      sock:close()
      local what = "TLS handshake with " .. o.authority .. " failed"
      -- nginx's verification failed: "<X509 error code>: <text>", or
      -- "certificate host mismatch"
      if type(err) == "string" and (string_find(err, "^%d+: ") or string_find(err, "certificate", 1, true)) then
        if not v.ca_file then what = what .. " (nginx verifies against lua_ssl_trusted_certificate)" end
        return nil, permanent(what .. ": " .. err)
      end
      return nil, io_fail(err, false, what)
    end
    ok, err = tls.check(session, o.name, o.is_ip, v.ca_file)
    if not ok then
      sock:close()
      return nil, permanent("TLS with " .. o.authority .. ": " .. err)
    end
    -- the handshake's timeouts were the connect phase's
    return sock, false, 0
  end
  return sock, false, px and 0 or now
end

---------------------------------------------------------------- the request

local function check_field(s, what)
  if type(s) ~= "string" or string_find(s, "[\r\n%z]") then
    error("qstash.resty.http: " .. what .. " must be a string without CR, LF or NUL", 4)
  end
end

-- Header values checked already (the token, the user agent and the options
-- of a client repeat on every call); emptied past MAX_CACHED * 4.
local good_values, ngoodv = {}, 0

local function check_value(value)
  if good_values[value] then return end
  check_field(value, "a header value")
  if ngoodv >= MAX_CACHED * 4 then good_values, ngoodv = {}, 0 end
  good_values[value] = true
  ngoodv = ngoodv + 1
end

-- Headers that belong to the transport: never taken from the request value.
local TRANSPORT_HEADERS = {
  host = true, ["content-length"] = true, ["transfer-encoding"] = true, connection = true,
}

-- Header names checked already (a request repeats the same few); emptied
-- past MAX_CACHED * 4.
local good_names, ngood = {}, 0

local function check_name(name)
  if good_names[name] then return end
  check_field(name, "a header name")
  if TRANSPORT_HEADERS[string_lower(name)] or name == "" or string_find(name, NOT_TOKEN) then
    error("qstash.resty.http: header name '" .. name .. "' cannot be sent as given", 4)
  end
  if ngood >= MAX_CACHED * 4 then good_names, ngood = {}, 0 end
  good_names[name] = true
  ngood = ngood + 1
end

-- Bodies over this go out in pieces after the head.
local SEND_PIECE = 65536

-- Methods that carry Content-Length even when empty (as libcurl's POST).
local BODY_METHODS = { POST = true, PUT = true, PATCH = true }

-- The request bytes: the head, with the body when it is small; and the body
-- when it is large (sent in pieces after the head). One string: nginx
-- sends a string with less work than a table of pieces.
-- The pieces of the bytes being made: one table for every request (filled
-- and joined without yielding), joined up to its count each time.
local PARTS = {}
local METHODS = { GET = true, POST = true, PUT = true, PATCH = true, DELETE = true, HEAD = true }

local function request_bytes(v, o, target, px)
  local method, body = v.method, v.body or ""
  if not METHODS[method] and (type(method) ~= "string" or not string_match(method, "^%u+$")) then
    error("qstash.resty.http: invalid method " .. tostring(method), 3)
  end
  if type(body) ~= "string" then error("qstash.resty.http: body must be a string", 3) end
  -- through a proxy without a tunnel: the absolute form (RFC 9112 3.2.2)
  if px and not o.tls then target = o.scheme .. "://" .. o.hostport .. target end
  local p = PARTS
  p[1], p[2], p[3], p[4], p[5], p[6] = method, " ", target, " HTTP/1.1\r\nHost: ", o.hostport, "\r\n"
  local n = 6
  local headers = v.headers
  if headers ~= nil then
    if type(headers) ~= "table" then error("qstash.resty.http: headers must be a list", 3) end
    for _, h in ipairs(headers) do
      local name, value = h[1], h[2]
      check_name(name)
      check_value(value)
      p[n + 1], p[n + 2], p[n + 3], p[n + 4] = name, ": ", value, "\r\n"
      n = n + 4
    end
  end
  if px and px.auth and not o.tls then
    p[n + 1], p[n + 2], p[n + 3] = "Proxy-Authorization: ", px.auth, "\r\n"
    n = n + 3
  end
  if body ~= "" or BODY_METHODS[method] then
    p[n + 1], p[n + 2], p[n + 3] = "Content-Length: ", tostring(#body), "\r\n"
    n = n + 3
  end
  p[n + 1] = "\r\n"
  if #body > SEND_PIECE then return table_concat(p, "", 1, n + 1), body end
  p[n + 2] = body
  local bytes = table_concat(p, "", 1, n + 2)
  p[n + 2] = nil -- a body is not kept alive by this table
  return bytes, nil
end

-- Sends the request bytes, then a large body in pieces, each with what is
-- left of the deadline (nginx re-arms a send's timer whenever bytes go out).
-- Returns `armed` (see rearm), or nil, err.
local function send_all(sock, data, big, deadline, armed)
  armed = rearm(sock, deadline, armed)
  if not armed then return nil, "no time" end
  local n, err = sock:send(data)
  if not n then return nil, err end
  if not big then return armed end
  for i = 1, #big, SEND_PIECE do
    armed = rearm(sock, deadline, armed)
    if not armed then return nil, "timeout" end
    n, err = sock:send(string_sub(big, i, i + SEND_PIECE - 1))
    if not n then return nil, err end
  end
  return armed
end

local function split_url(url)
  if type(url) ~= "string" then error("qstash.resty.http: url must be a string", 3) end
  -- "http://" or "https://", then no space, control byte or fragment; the
  -- authority runs to the first / or ?
  local _, e = string_find(url, "^https?://")
  local n = #url
  if e then
    for i = e + 1, n do
      local b = string_byte(url, i)
      if b <= 32 or b == 127 or b == 35 then
        e = nil
        break
      end
    end
  end
  if not e then error("qstash.resty.http: unsupported URL " .. url, 3) end
  local scheme, from = e == 7 and "http" or "https", e + 1
  local cut = string_find(url, "/", from, true) or (n + 1)
  local q = string_find(url, "?", from, true)
  if q and q < cut then cut = q end
  local key = string_sub(url, 1, cut - 1)
  local o = origins[key] or origin_of(key, scheme, string_sub(url, from, cut - 1))
  if not o then error("qstash.resty.http: invalid host or port in " .. url, 3) end
  local target = string_sub(url, cut)
  if target == "" then target = "/"
  elseif string_byte(target, 1) == 63 then target = "/" .. target end -- "?"
  return o, target
end

-- A refusal of the response (RFC 9112 parsed strictly): the attempt fails,
-- `sent`, and the connection is closed.
local function invalid(what)
  return fail("network", true, "invalid response: " .. what)
end

-- At most this many informational (1xx) answers before the final one.
local MAX_INTERIM = 16

-- The next response head: status, minor, headers; or nil, failure.
local function read_head(r, reused)
  local head, herr, why = r:until_sep("\r\n\r\n", MAX_HEAD, true)
  if not head then
    if why == "too long" then return nil, invalid("head over " .. MAX_HEAD .. " bytes") end
    if why == "invalid" then return nil, invalid(herr) end
    local what = "reading the response failed"
    if herr == "closed" and r:unread() == 0 then
      what = "the server closed the connection before answering" .. (reused and " (a reused connection)" or "")
    end
    return nil, io_fail(herr, true, what)
  end
  local status, minor, headers = parse_head(head)
  if not status then return nil, invalid(minor) end
  if status == 101 then return nil, invalid("101 Switching Protocols, never asked for") end
  return status, minor, headers
end

-- Readers of a body by its framing: body, or nil, err, too_large, invalid.
local BODY = {
  none = function() return "" end,
  length = function(r, _, len)
    if len > r.max then return nil, nil, true end
    return r:exact(len)
  end,
  chunked = function(r) return read_chunked(r, r.max) end,
  close = function(r) return read_to_close(r, r.max) end,
}

-- Reads the final response: true, status, headers, body, reusable; or
-- false, failure. Reusable only when the body was delimited and read whole,
-- nothing came after it, and the server allowed it.
local function read_response(r, method, reused)
  local status, minor, headers
  for _ = 0, MAX_INTERIM do
    status, minor, headers = read_head(r, reused)
    -- informational answers (1xx) first: the final one follows
    if not status or status >= 200 then break end
  end
  if not status then return false, minor end
  if status < 200 then return false, invalid("more than " .. MAX_INTERIM .. " informational (1xx) answers") end
  local kind, len = framing(status, minor, headers, method)
  if not kind then return false, invalid(len) end
  local body, err, too_large, bad = BODY[kind](r, method, len)
  if too_large then
    return false, fail("too_large", true, "response body over max_response_bytes ("
      .. r.max .. " bytes)", status)
  end
  if not body then
    if bad then return false, invalid(err) end
    return false, io_fail(err, true, "reading the response body failed")
  end
  return true, status, headers, body,
    kind ~= "close" and r:unread() == 0 and keep_alive(minor, headers)
end

--- ok, status, headers, body = http.request(v) | false, failure
function M.request(v)
  if not ngx_api then init() end
  if type(v) ~= "table" then error("qstash.resty.http: expected a request table", 2) end
  local o, target = split_url(v.url)
  local timeout = tonumber(v.timeout) or 30
  local max = tonumber(v.max_response_bytes) or 8388608
  local deadline = clock() + timeout

  local px
  if v.proxy ~= nil then
    local perr
    px, perr = proxy_of(v.proxy)
    if not px then return false, permanent(perr) end
  end
  local data, big = request_bytes(v, o, target, px)

  local sock, reused, armed = open(o, v, deadline, px)
  if not sock then return false, reused end

  local err
  armed, err = send_all(sock, data, big, deadline, armed)
  if not armed then
    if err == "no time" then
      sock:close()
      return false, fail("timeout", false, "no time left to send the request")
    end
    -- A server may answer before it read the whole request (a 413, a 400)
    -- and close: when that answer came whole, it is the outcome, as with
    -- libcurl. The connection is never reused.
    if err ~= "timeout" then
      local r = new_reader(sock, deadline, 0, max)
      local ok, status, headers, body = read_response(r, v.method, reused)
      if ok then
        sock:close()
        return true, status, headers, body
      end
    end
    sock:close()
    return false, io_fail(err, true, "sending the request failed")
  end

  local r = new_reader(sock, deadline, armed, max)
  local ok, status, headers, body, reusable = read_response(r, v.method, reused)
  if ok and reusable and sock:setkeepalive(KEEPALIVE_MS) then
    return true, status, headers, body
  end
  sock:close()
  if not ok then return false, status end
  return true, status, headers, body
end

-- For specs: check pooled connections with the fallback's one-byte read
-- (on = true) or, where it can, with the descriptor (the default).
function M.check_pooled_by_read(on)
  read_only = on == true
end

-- For specs and the bench: the pool name of a request value.
function M.pool_name(v)
  local o = split_url(v.url)
  return pool_name(o, v.ca_file, v.proxy)
end

return M
