--- A throwaway self-signed certificate for 127.0.0.1, made with the openssl
-- command, for specs that run the test server behind TLS.
--
--   local tls = require "spec.support.tls"
--   local cert = tls.self_signed()      -- { cert = path, key = path }
--   local srv = server.start{ tls = cert }
--   local c = qstash.new{ base_url = srv.tls_url, ca_file = cert.cert, ... }
--   cert:remove()
local proc = require "spec.support.proc"

local M = {}

local function shquote(s)
  return "'" .. (tostring(s):gsub("'", "'\\''")) .. "'"
end

local Cert = {}
Cert.__index = Cert

function Cert:remove()
  os.remove(self.cert)
  os.remove(self.key)
  os.remove(self.base)
end

--- Makes a P-256 key and a one-day certificate for CN and IP SAN 127.0.0.1.
function M.self_signed()
  local base = os.tmpname()
  local self = setmetatable({ base = base, cert = base .. ".crt", key = base .. ".key" }, Cert)
  local out, code = proc.sh(table.concat({
    "env -u LD_PRELOAD openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1",
    "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1",
    "-keyout", shquote(self.key), "-out", shquote(self.cert),
  }, " "))
  if code ~= 0 then
    self:remove()
    error("openssl could not make a test certificate: " .. out, 2)
  end
  return self
end

return M
