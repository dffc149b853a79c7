# lua-qstash: build, test and tooling. `make` builds build/$(LUA)/qstash.so.
# LUA selects the Lua ABI: lua5.4 (default), lua5.3, lua5.1 or luajit.

LUA        ?= lua5.4
PKG_CONFIG ?= pkg-config
CC         ?= cc
CFLAGS     ?= -O2 -g
BUILD      ?= build/$(LUA)
PREFIX     ?= /usr/local
DESTDIR    ?=

# The interpreter that runs specs for each ABI.
LUA_BIN_lua5.4 = lua5.4
LUA_BIN_lua5.3 = lua5.3
LUA_BIN_lua5.1 = lua5.1
LUA_BIN_luajit = luajit
LUA_BIN        = $(LUA_BIN_$(LUA))
LUA_ABI_lua5.4 = 5.4
LUA_ABI_lua5.3 = 5.3
LUA_ABI_lua5.1 = 5.1
LUA_ABI_luajit = 5.1
LUA_ABI        = $(LUA_ABI_$(LUA))

LUA_CFLAGS  := $(shell $(PKG_CONFIG) --cflags $(LUA) 2>/dev/null)
CURL_CFLAGS := $(shell $(PKG_CONFIG) --cflags libcurl 2>/dev/null)
CURL_LIBS   := $(shell $(PKG_CONFIG) --libs libcurl 2>/dev/null || echo -lcurl)
SSL_LIBS    := $(shell $(PKG_CONFIG) --libs libcrypto 2>/dev/null || echo -lcrypto)

WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
ALL_CFLAGS = -std=c99 -fPIC -fvisibility=hidden -D_POSIX_C_SOURCE=200809L $(WARN) -Isrc \
             $(LUA_CFLAGS) $(CURL_CFLAGS) $(CFLAGS) $(EXTRA_CFLAGS)
# The module never links liblua: the host (lua, luajit, nginx) provides it.
LIBS     = $(CURL_LIBS) $(SSL_LIBS) -lm -lpthread

# src/ has one folder per part of the architecture (docs/architecture.md);
# includes name the folder ("core/errors.h"), from -Isrc.
SRCS = $(wildcard src/*.c src/*/*.c)
OBJS = $(SRCS:src/%.c=$(BUILD)/obj/%.o)
HDRS = $(wildcard src/*.h src/*/*.h)

# Specs that are the same under every interpreter and with or without
# sanitizers, so a run of the spec folder takes them under lua5.4 only, and
# `make asan` never (a file named in SPECS always runs):
# - those that load no build of the module (the emulator, the test servers,
#   the TypeScript SDK against the emulator, the source layout, these lists;
#   spec/spec_lists_spec.lua checks that none of them reaches the module),
MODULE_FREE_SPECS = spec/emulator_spec.lua spec/emulator_logs_spec.lua spec/emulator_endpoints_spec.lua \
  spec/emulator_keepalive_spec.lua spec/server_spec.lua spec/layering_spec.lua spec/ts_sdk_tests_spec.lua \
  spec/spec_lists_spec.lua
# - those that build and load a Lua 5.4 module of their own (luarocks make,
#   make install, the embedding host), whatever the interpreter running them.
OWN_BUILD_SPECS = spec/luarocks_spec.lua spec/install_spec.lua spec/embed_spec.lua
SPEC_SKIP = $(if $(filter lua5.4,$(LUA)),,$(MODULE_FREE_SPECS) $(OWN_BUILD_SPECS))

SPEC_ENV = LUA_CPATH="$(CURDIR)/$(BUILD)/?.so;;" \
           LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/?.lua;;" \
           QSTASH_SPEC_LUA="$(LUA_BIN)"
BUSTED  ?= /usr/bin/busted
SPECS   ?= spec

.PHONY: all deps test test-all demo clean install static asan valgrind bench soak fuzz lint dist man

# The packages compiling needs are checked first (installed as root, or
# named), then a fresh make reads their pkg-config flags.
all:
	@sh tools/ensure-deps build $(LUA)
	@$(MAKE) --no-print-directory $(BUILD)/qstash.so

$(BUILD)/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/qstash.so: $(OBJS)
	@echo "LD $@"
	@$(CC) -shared $(CFLAGS) $(EXTRA_LDFLAGS) -o $@ $(OBJS) $(LIBS)

deps:
	@sh tools/ensure-deps

# `make test` installs (as root) or names the Debian packages it needs, then
# runs every spec under $(LUA) and ends with "N passed, N failed".
test: deps
	@$(MAKE) --no-print-directory all
	@$(SPEC_ENV) SPEC_SKIP="$(SPEC_SKIP)" bash tools/run-specs $(LUA_BIN) $(BUSTED) $(SPECS)

# The main job on the local emulator: fail, find, retry with overrides, deliver.
demo: deps
	@$(MAKE) --no-print-directory all
	@$(SPEC_ENV) $(LUA_BIN) examples/demo.lua

test-all: deps
	@for l in lua5.4 lua5.3 lua5.1 luajit; do $(MAKE) --no-print-directory LUA=$$l test || exit 1; done

static: $(OBJS)
	@rm -f $(BUILD)/libqstash.a
	ar rcs $(BUILD)/libqstash.a $(OBJS)

# examples/embed: a C program that embeds Lua and links the module statically.
LUA_LIBS    := $(shell $(PKG_CONFIG) --libs $(LUA) 2>/dev/null)
EMBED_CFLAGS = -std=c99 $(WARN) -Isrc $(LUA_CFLAGS) $(CFLAGS) $(EXTRA_CFLAGS)

.PHONY: embed
embed: static
	@echo "LD $(BUILD)/embed-host"
	@$(CC) $(EMBED_CFLAGS) $(EXTRA_LDFLAGS) -o $(BUILD)/embed-host examples/embed/host.c \
	  $(BUILD)/libqstash.a $(LUA_LIBS) $(LIBS)

install: all
	install -d $(DESTDIR)$(PREFIX)/lib/lua/$(LUA_ABI) $(DESTDIR)$(PREFIX)/share/lua/$(LUA_ABI)/qstash
	install -m 0755 $(BUILD)/qstash.so $(DESTDIR)$(PREFIX)/lib/lua/$(LUA_ABI)/qstash.so
	for f in lua/qstash/*.lua; do [ -e "$$f" ] || continue; \
	  install -m 0644 $$f $(DESTDIR)$(PREFIX)/share/lua/$(LUA_ABI)/qstash/; done
	install -d $(DESTDIR)$(PREFIX)/share/lua/$(LUA_ABI)/qstash/cli
	for f in lua/qstash/cli/*.lua; do [ -e "$$f" ] || continue; \
	  install -m 0644 $$f $(DESTDIR)$(PREFIX)/share/lua/$(LUA_ABI)/qstash/cli/; done
	install -d $(DESTDIR)$(PREFIX)/share/lua/$(LUA_ABI)/qstash/resty
	for f in lua/qstash/resty/*.lua; do [ -e "$$f" ] || continue; \
	  install -m 0644 $$f $(DESTDIR)$(PREFIX)/share/lua/$(LUA_ABI)/qstash/resty/; done
	install -d $(DESTDIR)$(PREFIX)/share/lua/$(LUA_ABI)/qstash/loop
	for f in lua/qstash/loop/*.lua; do [ -e "$$f" ] || continue; \
	  install -m 0644 $$f $(DESTDIR)$(PREFIX)/share/lua/$(LUA_ABI)/qstash/loop/; done
	if [ -e bin/qstash-dlq ]; then install -d $(DESTDIR)$(PREFIX)/bin && \
	  install -m 0755 bin/qstash-dlq $(DESTDIR)$(PREFIX)/bin/qstash-dlq; fi
	# the emulator: its launcher in bin, its Python package beside the Lua
	# modules (share/lua/<version>/qstash_dev/), where the launcher looks
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/lua/$(LUA_ABI)/qstash_dev
	install -m 0755 tools/qstash-dev $(DESTDIR)$(PREFIX)/bin/qstash-dev
	install -m 0644 tools/qstash_dev/*.py $(DESTDIR)$(PREFIX)/share/lua/$(LUA_ABI)/qstash_dev/
	install -d $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0644 docs/qstash-dlq.1 $(DESTDIR)$(PREFIX)/share/man/man1/qstash-dlq.1

# The suite (but MODULE_FREE_SPECS and OWN_BUILD_SPECS, where the build
# does not run) against an ASan+UBSan build of the module (with
# float-cast-overflow, which -fsanitize=undefined leaves out: converting a
# double such as 1e300 to an integer is undefined). The interpreter
# is not instrumented, so the ASan runtime is preloaded; leaks are left to
# `make valgrind` (the runtime would also report the helper processes').
ASAN_BUILD = build/asan-$(LUA)
ASAN_LIB  := $(shell $(CC) -print-file-name=libasan.so)
asan: deps
	@$(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) \
	  EXTRA_CFLAGS="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=undefined,float-cast-overflow" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined,float-cast-overflow" all
	@LD_PRELOAD=$(ASAN_LIB) ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LUA_CPATH="$(CURDIR)/$(ASAN_BUILD)/?.so;;" \
	  LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/?.lua;;" QSTASH_SPEC_LUA="$(LUA_BIN)" \
	  SPEC_SKIP="$(MODULE_FREE_SPECS) $(OWN_BUILD_SPECS)" SPEC_TIMES_KEY=asan-$(LUA) \
	  bash tools/run-specs $(LUA_BIN) $(BUSTED) $(SPECS)

# The specs that reach C under valgrind (not the slow or timing ones,
# tagged #timing): any error or definite/indirect leak fails.
# QSTASH_SPEC_VALGRIND tells the specs that run thousands of rounds (verify_spec,
# logs_spec) to run a tenth of them.
VALGRIND = valgrind --quiet --error-exitcode=1 --leak-check=full \
  --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
  --suppressions=$(CURDIR)/tools/valgrind.supp --child-silent-after-fork=yes
VALGRIND_SPECS ?= spec/dlq_retry_spec.lua spec/errors_spec.lua spec/dlq_api_spec.lua \
  spec/publish_spec.lua spec/config_spec.lua spec/verify_spec.lua spec/async_spec.lua spec/engine_spec.lua \
  spec/faults_spec.lua spec/proxy_spec.lua spec/target_spec.lua spec/resend_spec.lua spec/scrub_spec.lua \
  spec/cursor_cycle_spec.lua spec/edges_spec.lua spec/http_version_spec.lua spec/follow_spec.lua spec/logs_spec.lua \
  spec/follow_leaks_spec.lua spec/queues_spec.lua spec/signing_keys_spec.lua spec/schedules_spec.lua \
  spec/async_any_spec.lua spec/async_every_spec.lua spec/async_spare_spec.lua spec/loop_luv_spec.lua spec/loop_cqueues_spec.lua spec/io_hooks_spec.lua spec/io_fd_spec.lua
valgrind: deps all
	@$(SPEC_ENV) QSTASH_SPEC_VALGRIND=1 bash tools/run-specs "$(VALGRIND) $(LUA_BIN)" $(BUSTED) --exclude-tags=timing $(VALGRIND_SPECS)

# Benchmarks against raw libcurl loops, the TypeScript SDK, luasocket and wrk,
# on a local nginx; prints one table and writes build/bench/results.md, and after
# a full run its tables into docs/benchmarks.md (BENCH_DOCS: see bench/run).
bench: deps all
	@LUA=$(LUA) bash bench/run

# libFuzzer harnesses (fuzz/), FUZZ_SECONDS each, on copies of the seed corpus.
FUZZ_SECONDS ?= 60
fuzz: deps
	@bash tools/fuzz $(FUZZ_SECONDS)

# 100,000 sequential calls against a local server; RSS growth after warm-up
# must stay under 1 MiB. Not part of `make test`.
SOAK_CALLS ?= 100000
soak: deps all
	@$(SPEC_ENV) $(LUA_BIN) bench/soak.lua $(SOAK_CALLS)

# The qstash-dlq(1) man page, rendered from the parser that `qstash-dlq --help`
# prints (lua/qstash/cli/flags.lua); spec/docs_spec.lua checks it is current.
man:
	@LUA_PATH="$(CURDIR)/lua/?.lua;;" lua5.4 tools/gen-man.lua docs/qstash-dlq.1
	@echo "docs/qstash-dlq.1 written"

# luacheck (.luacheckrc) over the Lua code, the CLI script, the specs and the examples.
lint: deps
	@luacheck --no-color --formatter plain lua bin/qstash-dlq spec examples tools/gen-man.lua bench/docs.lua
	@echo "luacheck: clean"

# The release of src/base/version.h's version: build/dist/lua-qstash-<v>.tar.gz and
# qstash-<v>-1.src.rock (`luarocks install` takes the rock offline).
dist:
	@bash tools/dist

clean:
	rm -rf build
