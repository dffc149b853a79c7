--- A caller-driven transport for specs: runs a call made by client:prepare
-- through its step() loop, sending each request with a plain luasocket
-- HTTP/1.1 client (one connection per request, Connection: close). It is
-- what any host with its own HTTP stack would write, kept small on purpose.
--
--   local step_http = require "spec.support.step_http"
--   local res, err = step_http.run(client:prepare("dlq_retry", id, opts))

local socket = require "socket"

local M = {}

--- Sends one request table (as step() hands it out). Returns
-- true, status, headers, body   or   false, failure-table.
function M.send(req)
  local scheme, host, port, target = req.url:match("^(https?)://([^/:]+):?(%d*)(.*)$")
  assert(scheme == "http", "this spec transport speaks http only")
  port = tonumber(port) or 80
  if target == "" then target = "/" end
  local lines = { req.method .. " " .. target .. " HTTP/1.1", "Host: " .. host .. ":" .. port }
  for _, h in ipairs(req.headers) do lines[#lines + 1] = h[1] .. ": " .. h[2] end
  if #req.body > 0 or req.method == "POST" then lines[#lines + 1] = "Content-Length: " .. #req.body end
  lines[#lines + 1] = "Connection: close"
  local c = socket.tcp()
  c:settimeout(req.timeout)
  local ok, err = c:connect(host, port)
  if not ok then
    c:close()
    return false, { failure = "network", sent = false, message = "connect: " .. tostring(err) }
  end
  ok, err = c:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. req.body)
  if not ok then
    c:close()
    return false, { failure = err == "timeout" and "timeout" or "network", sent = true, message = tostring(err) }
  end
  local status_line, rerr = c:receive("*l")
  if not status_line then
    c:close()
    return false, { failure = rerr == "timeout" and "timeout" or "network", sent = true,
                    message = "no answer: " .. tostring(rerr) }
  end
  local status = tonumber(status_line:match("^HTTP/1%.%d (%d%d%d)"))
  local headers, length = {}, nil
  while true do
    local line = c:receive("*l")
    if not line or line == "" then break end
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then
      local list = headers[name] or {}
      list[#list + 1] = value
      headers[name] = list
      if name:lower() == "content-length" then length = tonumber(value) end
    end
  end
  local body, berr, partial
  if length == 0 then body = "" -- luasocket reads 0 bytes of a closed socket as an error
  elseif length then body, berr, partial = c:receive(length)
  else body, berr, partial = c:receive("*a") end
  c:close()
  if not body then
    return false, { failure = berr == "timeout" and "timeout" or "network", sent = true,
                    message = "body: " .. tostring(berr) .. " after " .. #(partial or "") .. " bytes" }
  end
  if #body > req.max_response_bytes then
    return false, { failure = "too_large", status = status }
  end
  return true, status, headers, body
end

--- Runs a call to its end: result, or nil and the error. `log` (optional)
-- collects the verbs seen, for specs that compare decisions.
function M.run(call, log)
  local what, v, why = call:step()
  while true do
    if log then log[#log + 1] = what end
    if what == "send" then
      local ok, a, b, c = M.send(v)
      if ok then what, v, why = call:step{ status = a, headers = b, body = c }
      else what, v, why = call:step(a) end
    elseif what == "wait" then
      if log then log[#log] = "wait:" .. why end
      socket.sleep(v)
      what, v, why = call:step()
    elseif what == "done" then
      return v
    else
      return nil, v
    end
  end
end

return M
