rockspec_format = "3.0"
package = "qstash"
version = "0.1.0-1"
source = {
  url = "https://github.com/lua-qstash/lua-qstash/archive/v0.1.0.tar.gz",
  file = "lua-qstash-0.1.0.tar.gz",
  dir = "lua-qstash-0.1.0",
}
description = {
  summary = "QStash client for Lua in C over libcurl: dead-letter queue, publish, signature verification",
  detailed = [[
    require "qstash" is a C module over libcurl: retry QStash dead-letter-queue
    messages with overridden settings, list/get/delete them, publish, and verify
    Upstash-Signature on the receiving side. Failures are structured errors;
    "qstash.safe" returns nil, err instead.
  ]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1, < 5.5",
  "lua-cjson",
}
external_dependencies = {
  -- library only: Debian's multiarch curl/curl.h is not found by a header check
  CURL = { library = "curl" },
  CRYPTO = { library = "crypto" },
}
build = {
  type = "builtin",
  modules = {
    ["qstash.cli"] = "lua/qstash/cli.lua",
    ["qstash.cli.context"] = "lua/qstash/cli/context.lua",
    ["qstash.cli.convert"] = "lua/qstash/cli/convert.lua",
    ["qstash.cli.delete"] = "lua/qstash/cli/delete.lua",
    ["qstash.cli.flags"] = "lua/qstash/cli/flags.lua",
    ["qstash.cli.json"] = "lua/qstash/cli/json.lua",
    ["qstash.cli.jsonl"] = "lua/qstash/cli/jsonl.lua",
    ["qstash.cli.kinds"] = "lua/qstash/cli/kinds.lua",
    ["qstash.cli.logs"] = "lua/qstash/cli/logs.lua",
    ["qstash.cli.match"] = "lua/qstash/cli/match.lua",
    ["qstash.cli.pause"] = "lua/qstash/cli/pause.lua",
    ["qstash.cli.plan"] = "lua/qstash/cli/plan.lua",
    ["qstash.cli.read"] = "lua/qstash/cli/read.lua",
    ["qstash.cli.report"] = "lua/qstash/cli/report.lua",
    ["qstash.cli.retry"] = "lua/qstash/cli/retry.lua",
    ["qstash.cli.scan"] = "lua/qstash/cli/scan.lua",
    ["qstash.cli.sources"] = "lua/qstash/cli/sources.lua",
    ["qstash.cli.stats"] = "lua/qstash/cli/stats.lua",
    ["qstash.cli.tabular"] = "lua/qstash/cli/tabular.lua",
    ["qstash.resty"] = "lua/qstash/resty.lua",
    ["qstash.resty.http"] = "lua/qstash/resty/http.lua",
    ["qstash.resty.tls"] = "lua/qstash/resty/tls.lua",
    ["qstash.resty.driver"] = "lua/qstash/resty/driver.lua",
    ["qstash.loop.luv"] = "lua/qstash/loop/luv.lua",
    ["qstash.loop.cqueues"] = "lua/qstash/loop/cqueues.lua",
    qstash = {
      sources = {
        "src/api/api.c", "src/api/batch.c", "src/api/dlq.c", "src/api/flow_control.c",
        "src/api/follow.c", "src/api/follow_lookup.c", "src/api/follow_track.c", "src/api/logs.c",
        "src/api/messages.c", "src/api/pages.c", "src/api/plan.c", "src/api/publish.c",
        "src/api/queues.c", "src/api/schedules.c", "src/api/signing_keys.c", "src/api/url_groups.c",
        "src/base/buf.c", "src/base/clock.c", "src/base/grow.c",
        "src/base/json_str.c", "src/call/call.c", "src/call/result.c", "src/call/sync.c",
        "src/client/client.c", "src/client/config.c", "src/core/args.c", "src/core/conf.c",
        "src/core/cron.c", "src/core/decide.c", "src/core/errors.c", "src/core/filters.c", "src/core/options.c",
        "src/core/request.c", "src/core/response.c", "src/core/url.c", "src/drive/async.c",
        "src/drive/each_async.c", "src/drive/each_follow.c", "src/drive/loop_hooks.c", "src/drive/step.c",
        "src/engine/engine.c", "src/engine/io_fd.c", "src/qstash.c",
        "src/verify/verify.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L" },
      libraries = { "curl", "crypto", "m", "pthread" },
      incdirs = { "src", "$(CURL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(CRYPTO_LIBDIR)" },
    },
  },
  install = {
    bin = { ["qstash-dlq"] = "bin/qstash-dlq", ["qstash-dev"] = "tools/qstash-dev" },
    -- the emulator's Python package goes beside the Lua modules
    -- (share/lua/<version>/qstash_dev/), where bin/qstash-dev looks for it
    lua = {
      ["qstash_dev.__init__"] = "tools/qstash_dev/__init__.py",
      ["qstash_dev.__main__"] = "tools/qstash_dev/__main__.py",
      ["qstash_dev.auth"] = "tools/qstash_dev/auth.py",
      ["qstash_dev.cli"] = "tools/qstash_dev/cli.py",
      ["qstash_dev.common"] = "tools/qstash_dev/common.py",
      ["qstash_dev.config"] = "tools/qstash_dev/config.py",
      ["qstash_dev.cron"] = "tools/qstash_dev/cron.py",
      ["qstash_dev.delivery"] = "tools/qstash_dev/delivery.py",
      ["qstash_dev.dev"] = "tools/qstash_dev/dev.py",
      ["qstash_dev.dlq"] = "tools/qstash_dev/dlq.py",
      ["qstash_dev.emulator"] = "tools/qstash_dev/emulator.py",
      ["qstash_dev.errors"] = "tools/qstash_dev/errors.py",
      ["qstash_dev.flow_control"] = "tools/qstash_dev/flow_control.py",
      ["qstash_dev.http_front"] = "tools/qstash_dev/http_front.py",
      ["qstash_dev.logs"] = "tools/qstash_dev/logs.py",
      ["qstash_dev.messages"] = "tools/qstash_dev/messages.py",
      ["qstash_dev.params"] = "tools/qstash_dev/params.py",
      ["qstash_dev.queues"] = "tools/qstash_dev/queues.py",
      ["qstash_dev.routes"] = "tools/qstash_dev/routes.py",
      ["qstash_dev.scheduler"] = "tools/qstash_dev/scheduler.py",
      ["qstash_dev.schedules"] = "tools/qstash_dev/schedules.py",
      ["qstash_dev.signing"] = "tools/qstash_dev/signing.py",
      ["qstash_dev.store"] = "tools/qstash_dev/store.py",
      ["qstash_dev.url_groups"] = "tools/qstash_dev/url_groups.py",
    },
  },
}
-- `luarocks test`: the busted suite (the specs start their own servers); see
-- tools/luarocks-test.lua for why it is a command and not LuaRocks's busted type
test = {
  type = "command",
  script = "tools/luarocks-test.lua",
}
