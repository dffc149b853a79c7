--- qstash.resty.tls: checks on a server certificate that nginx's own TLS
-- verification cannot make for one cosocket (lua-nginx-module 0.10.23).
--
-- nginx verifies a cosocket's peer against `lua_ssl_trusted_certificate`
-- (one store per location, fixed at configuration time) and checks the host
-- name only when a server name is given, which an IP literal must not be (no
-- SNI for IP addresses, RFC 6066). So, through LuaJIT's FFI into the OpenSSL
-- that nginx is linked with, on the session that `sslhandshake` returns:
--   * a per-call CA file: the peer certificate is verified against a store
--     loaded from that file (chain, validity dates, TLS server purpose, host
--     name or IP address); nginx's own verification is then off for that
--     handshake. Only the server's certificate is in the session, not the
--     intermediates it sent: every CA between it and a root must be in the file.
--   * an IP literal host: the address is checked against the certificate's
--     IP SANs (the chain was verified by nginx).
--   * TLS 1.2 or later, whatever lua_ssl_protocols allows.
-- Everything here runs once per new TLS connection, never on a reused one.

local ffi = require "ffi"

local C = ffi.C
local pcall = pcall
local ipairs = ipairs
local tostring = tostring

local M = {}

-- One declaration per pcall: another library (lua-resty-openssl) may have
-- declared some of these already, with its own pointer types; LuaJIT converts
-- void * to and from any pointer type on calls, so either declaration works.
local DECLS = {
  "void *SSL_SESSION_get0_peer(void *s);",
  "int SSL_SESSION_get_protocol_version(const void *s);",
  "void *X509_STORE_new(void);",
  "void X509_STORE_free(void *store);",
  "int X509_STORE_load_locations(void *store, const char *file, const char *dir);",
  "void *X509_STORE_CTX_new(void);",
  "void X509_STORE_CTX_free(void *ctx);",
  "int X509_STORE_CTX_init(void *ctx, void *store, void *target, void *untrusted);",
  "int X509_STORE_CTX_set_default(void *ctx, const char *name);",
  "void *X509_STORE_CTX_get0_param(void *ctx);",
  "int X509_STORE_CTX_get_error(void *ctx);",
  "int X509_verify_cert(void *ctx);",
  "const char *X509_verify_cert_error_string(long n);",
  "int X509_VERIFY_PARAM_set1_host(void *param, const char *name, size_t namelen);",
  "int X509_VERIFY_PARAM_set1_ip_asc(void *param, const char *ipasc);",
  "int X509_check_ip_asc(void *x, const char *address, unsigned int flags);",
  "unsigned long ERR_get_error(void);",
  "void ERR_clear_error(void);",
}
for _, d in ipairs(DECLS) do pcall(ffi.cdef, d) end

local TLS1_2_VERSION = 0x0303

-- path -> X509_STORE (collected with the worker's Lua VM)
local stores = {}

--- store, err = tls.store(path): the CA store of a PEM file, loaded once per
-- worker (a changed file is read again after `nginx -s reload`).
function M.store(path)
  local s = stores[path]
  if s then return s end
  s = C.X509_STORE_new()
  if s == nil then return nil, "out of memory" end
  s = ffi.gc(s, C.X509_STORE_free)
  if C.X509_STORE_load_locations(s, path, nil) ~= 1 then
    C.ERR_clear_error()
    return nil, "cannot load CA certificates from ca_file " .. tostring(path)
  end
  stores[path] = s
  return s
end

-- The session's protocol must be TLS 1.2 or later (0 if unknown: refused).
local function check_version(session)
  local v = C.SSL_SESSION_get_protocol_version(session)
  if v < TLS1_2_VERSION then
    return nil, ("TLS protocol 0x%04x negotiated, TLS 1.2 or later required"):format(v)
  end
  return true
end

--- ok, err = tls.check(session, host, is_ip, ca_file)
-- session: the cdata `sslhandshake` returned (nginx verified the chain
-- unless ca_file is set); host: the origin's host (an IPv6 literal without
-- brackets); is_ip: host is an IP literal.
function M.check(session, host, is_ip, ca_file)
  if session == nil then return nil, "no TLS session to check" end
  local ok, err = check_version(session)
  if not ok then return nil, err end
  local peer = C.SSL_SESSION_get0_peer(session)
  if peer == nil then return nil, "the server sent no certificate" end
  if not ca_file then
    -- nginx verified the chain; an IP literal had no name to check
    if is_ip and C.X509_check_ip_asc(peer, host, 0) ~= 1 then
      C.ERR_clear_error()
      return nil, "certificate verify failed: IP address mismatch (" .. host .. ")"
    end
    return true
  end
  local store, serr = M.store(ca_file)
  if not store then return nil, serr end
  local ctx = C.X509_STORE_CTX_new()
  if ctx == nil then return nil, "out of memory" end
  ctx = ffi.gc(ctx, C.X509_STORE_CTX_free)
  local res
  if C.X509_STORE_CTX_init(ctx, store, peer, nil) == 1
     and C.X509_STORE_CTX_set_default(ctx, "ssl_server") == 1 then
    local param = C.X509_STORE_CTX_get0_param(ctx)
    local set
    if is_ip then set = C.X509_VERIFY_PARAM_set1_ip_asc(param, host)
    else set = C.X509_VERIFY_PARAM_set1_host(param, host, #host) end
    if set == 1 then
      if C.X509_verify_cert(ctx) == 1 then
        res = true
      else
        local code = C.X509_STORE_CTX_get_error(ctx)
        err = ("certificate verify failed with ca_file: %d: %s"):format(code,
          ffi.string(C.X509_verify_cert_error_string(code)))
      end
    end
  end
  C.ERR_clear_error()
  ffi.gc(ctx, nil)
  C.X509_STORE_CTX_free(ctx)
  if res then return true end
  return nil, err or "cannot set up the certificate check"
end

return M
