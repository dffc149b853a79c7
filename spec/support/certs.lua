--- Test certificates made with the openssl command: private CAs and server
-- certificates they sign (EC P-256, valid two days).
--
--   local certs = require "spec.support.certs"
--   certs.make(dir, { { name = "srv", ca = "ca1", san = "IP:127.0.0.1" } })
--   --> dir/ca1.pem (+ .key), dir/srv.pem, dir/srv.key
--
-- Each CA named by a `ca` field is made once; a server certificate is for
-- TLS servers (extendedKeyUsage serverAuth) with the given subjectAltName.
local E = require "spec.support.emulator"

local q = E.shell_quote

local M = {}

local function sh(cmd)
  assert(E.exec_ok(cmd .. " >/dev/null 2>&1"), "failed: " .. cmd)
end

local EC = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

function M.make(dir, list)
  local made = {}
  for _, c in ipairs(list) do
    if not made[c.ca] then
      made[c.ca] = true
      sh(("openssl req -x509 %s -days 2 -keyout %s/%s.key -out %s/%s.pem -subj /CN=spec-%s "
        .. "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign")
        :format(EC, q(dir), c.ca, q(dir), c.ca, c.ca))
    end
  end
  for _, c in ipairs(list) do
    local base = dir .. "/" .. c.name
    E.write_file(base .. ".ext", "subjectAltName=" .. c.san
      .. "\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    sh(("openssl req %s -keyout %s.key -out %s.csr -subj /CN=spec-server"):format(EC, q(base), q(base)))
    sh(("openssl x509 -req -in %s.csr -CA %s/%s.pem -CAkey %s/%s.key -CAcreateserial -days 2 "
      .. "-out %s.pem -extfile %s.ext"):format(q(base), q(dir), c.ca, q(dir), c.ca, q(base), q(base)))
  end
end

return M
