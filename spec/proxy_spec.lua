-- Proxies: the `proxy` option, and libcurl's proxy variables, which a client
-- reads when it is created. The test server stands in for an HTTP proxy: a
-- request through it carries the absolute URL as its request-target.
local server = require "spec.support.server"
local child = require "spec.support.child"
local ports = require "spec.support.ports"
local qstash = require "qstash"

local OK = { status = 201, json = { messageId = "msg_proxied" } }

describe("proxy", function()
  local proxy, origin

  setup(function()
    proxy = server.start()
    origin = server.start()
  end)
  teardown(function()
    proxy:stop()
    origin:stop()
  end)
  before_each(function()
    proxy:reset()
    origin:reset()
  end)

  -- Retries id "abc" in a child process with these variables (the others unset); its output.
  local function retry_in_child(base_url, env)
    local out, ok = child.run(([[
      local c = require("qstash").new{ token = "t", base_url = %q, retry = false, timeout = 2 }
      local res = c:dlq_retry("abc")
      print("messageId=" .. res.messageId)
    ]]):format(base_url), env)
    assert.is_true(ok, out)
    return out
  end

  it("the proxy option sends requests through that proxy, with the absolute URL", function()
    local target = "http://127.0.0.1:" .. ports.closed()
    proxy:script{ OK, OK }
    local c = qstash.new{ token = "t", base_url = target, proxy = proxy.url, retry = false, timeout = 2 }
    local res = c:dlq_retry("abc")
    c:dlq_retry("a/b ü")
    c:close()
    assert.equal("msg_proxied", res.messageId)
    local reqs = proxy:requests()
    assert.equal(2, #reqs)
    assert.equal("POST", reqs[1].method)
    assert.equal(target .. "/v2/dlq/retry/abc", reqs[1].target)
    assert.equal(target .. "/v2/dlq/retry/a%2Fb%20%C3%BC", reqs[2].target)
  end)

  for _, var in ipairs{ "http_proxy", "all_proxy", "ALL_PROXY" } do
    it("honours " .. var .. " from the environment when no proxy option is given", function()
      local target = "http://127.0.0.1:" .. ports.closed()
      proxy:script{ OK }
      local out = retry_in_child(target, { [var] = proxy.url })
      assert.matches("messageId=msg_proxied", out)
      assert.equal(target .. "/v2/dlq/retry/abc", proxy:requests()[1].target)
    end)
  end

  it("goes direct for a host in no_proxy", function()
    origin:script{ { status = 201, json = { messageId = "msg_direct" } } }
    local out = retry_in_child(origin.url, { http_proxy = proxy.url, no_proxy = "127.0.0.1" })
    assert.matches("messageId=msg_direct", out)
    assert.equal(0, #proxy:requests())
    assert.equal("/v2/dlq/retry/abc", origin:requests()[1].target)
  end)

  it("goes direct without proxy variables, and ignores upper-case HTTP_PROXY as libcurl does", function()
    origin:script{ { status = 201, json = { messageId = "msg_direct" } } }
    local out = retry_in_child(origin.url, { HTTP_PROXY = proxy.url })
    assert.matches("messageId=msg_direct", out)
    assert.equal(0, #proxy:requests())
    assert.equal(1, #origin:requests())
  end)
end)
