/* Client lifecycle: creation from a config, close/__gc/`<close>`, and the
 * seeds of the calls' jitter generators. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <lauxlib.h>
#include "client/client.h"
#include "base/compat.h"
#include "client/config.h"
#include "engine/engine.h"
#include "core/errors.h"

qs_client *qs_client_at(lua_State *L, int idx)
{
    return (qs_client *)luaL_checkudata(L, idx, QS_CLIENT_MT);
}

void qs_client_check_open(lua_State *L, const qs_client *c)
{
    if (c->closed) luaL_error(L, "qstash: the client is closed");
}

qs_client *qs_client_check(lua_State *L, int idx)
{
    qs_client *c = qs_client_at(L, idx);
    qs_client_check_open(L, c);
    return c;
}

static unsigned long long splitmix64(unsigned long long *x)
{
    unsigned long long z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

unsigned long long qs_client_seed(qs_client *c)
{
    return splitmix64(&c->rng);
}

/* Frees everything the client holds; idempotent. The hooked code goes
 * first: it gives back the handles its requests borrowed. */
static void client_release(lua_State *L, qs_client *c, int idx)
{
    if (c->closed) return;
    c->closed = 1;
    if (c->on_close) c->on_close(L, c, idx);
    c->on_close = NULL;
    c->ext = NULL;
    if (c->eng) {
        qs_engine_close(c->eng);
        free(c->eng);
        c->eng = NULL;
    }
    qs_conf_unref(c->conf);
    c->conf = NULL;
}

int qs_client_new(lua_State *L, int cfg_idx, int safe)
{
    qs_args a;
    struct timespec ts;
    qs_client *c;
    int ud;
    a.L = L;
    a.base = 1;
    a.fname = "new";
    if (cfg_idx && !lua_isnoneornil(L, cfg_idx) && lua_type(L, cfg_idx) != LUA_TTABLE)
        qs_argerror(&a, cfg_idx, "config must be a table, got %s", luaL_typename(L, cfg_idx));
    if (cfg_idx && lua_isnoneornil(L, cfg_idx)) cfg_idx = 0;
    if (qs_engine_global_init() != 0) return luaL_error(L, "qstash: curl_global_init failed");

    c = (qs_client *)qs_newudata_t(L, sizeof *c);
    memset(c, 0, sizeof *c);
    c->closed = 1; /* nothing to release until the configuration is loaded */
    ud = lua_gettop(L);
    lua_newtable(L);
    qs_setuv(L, ud);
    luaL_getmetatable(L, QS_CLIENT_MT);
    lua_setmetatable(L, ud);
    c->safe = safe;
    clock_gettime(CLOCK_REALTIME, &ts);
    c->rng = (unsigned long long)ts.tv_nsec ^ ((unsigned long long)ts.tv_sec << 20) ^
             ((unsigned long long)getpid() << 40) ^ (unsigned long long)(uintptr_t)c;
    if (!(c->conf = qs_conf_new())) return luaL_error(L, "not enough memory");
    c->closed = 0;
    if (qs_config_load(L, c->conf, cfg_idx, &a) != 0) {
        /* a config error table is at the top */
        lua_replace(L, ud);
        lua_settop(L, ud);
        qs_conf_unref(c->conf);
        c->conf = NULL;
        c->closed = 1;
        return qs_error_finish(L, safe);
    }
    lua_settop(L, ud);
    if (!(c->eng = (qs_engine *)malloc(sizeof *c->eng))) return luaL_error(L, "not enough memory");
    if (qs_engine_init(c->eng, c->conf) != 0) {
        qs_engine_close(c->eng);
        free(c->eng);
        c->eng = NULL;
        return luaL_error(L, "qstash: cannot create libcurl handles");
    }
    return 1;
}

static int client_close(lua_State *L)
{
    client_release(L, qs_client_at(L, 1), 1);
    return 0;
}

static int client_tostring(lua_State *L)
{
    qs_client *c = qs_client_at(L, 1);
    if (c->closed) lua_pushfstring(L, "qstash.client (closed): %p", (void *)c);
    else lua_pushfstring(L, "qstash.client (%s): %p", c->conf->base_url, (void *)c);
    return 1;
}

void qs_client_register(lua_State *L)
{
    /* The metatable; methods are added by the module entry into __index. */
    if (luaL_newmetatable(L, QS_CLIENT_MT)) {
        lua_pushcfunction(L, client_close);
        lua_setfield(L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
        lua_pushcfunction(L, client_close);
        lua_setfield(L, -2, "__close");
#endif
        lua_pushcfunction(L, client_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_newtable(L);
        lua_pushcfunction(L, client_close);
        lua_setfield(L, -2, "close");
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}
