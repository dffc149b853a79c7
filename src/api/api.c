/* The API layer (see api.h). */
#include <string.h>
#include <lauxlib.h>
#include "api/api.h"
#include "base/compat.h"
#include "core/errors.h"
#include "call/sync.h"

#define DEFAULT_KEY "qstash.default"
#define DEFAULT_SAFE_KEY "qstash.default.safe"
#define PLANS_KEY "qstash.plans"
#define SCRATCH_MT "qstash.buf"

static int scratch_gc(lua_State *L)
{
    qs_buf_free((qs_buf *)luaL_checkudata(L, 1, SCRATCH_MT));
    return 0;
}

void qs_api_init(lua_State *L)
{
    if (luaL_newmetatable(L, SCRATCH_MT)) {
        lua_pushcfunction(L, scratch_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
}

qs_buf *qs_api_scratch(lua_State *L)
{
    qs_buf *b = (qs_buf *)qs_newudata(L, sizeof *b);
    memset(b, 0, sizeof *b);
    luaL_getmetatable(L, SCRATCH_MT);
    lua_setmetatable(L, -2);
    return b;
}

int qs_api_finish(lua_State *L, int safe, int ok)
{
    if (ok) return 1;
    return qs_error_finish(L, safe);
}

/* Runs an API row with the client at a->base - 1. */
static int run(lua_State *L, const qs_api *api, qs_client *c, const qs_args *a)
{
    int ok;
    if (api->fn) return api->fn(L, c, a);
    {
        qs_call *k = qs_call_new(L, c, api->plan, a);
        ok = qs_sync_run(L, c, k, lua_gettop(L));
    }
    return qs_api_finish(L, c->safe, ok);
}

static int method_wrapper(lua_State *L)
{
    const qs_api *api = (const qs_api *)lua_touserdata(L, lua_upvalueindex(1));
    qs_client *c = qs_client_check(L, 1);
    qs_args a;
    a.L = L;
    a.base = 2;
    a.fname = api->name;
    return run(L, api, c, &a);
}

static int module_wrapper(lua_State *L)
{
    const qs_api *api = (const qs_api *)lua_touserdata(L, lua_upvalueindex(1));
    int safe = lua_toboolean(L, lua_upvalueindex(2));
    const char *key = safe ? DEFAULT_SAFE_KEY : DEFAULT_KEY;
    qs_client *c;
    qs_args a;
    lua_getfield(L, LUA_REGISTRYINDEX, key);
    c = (qs_client *)lua_touserdata(L, -1);
    if (!c || c->closed) {
        /* created lazily from the environment, on first use */
        lua_pop(L, 1);
        if (qs_client_new(L, 0, safe) == 2) return 2; /* safe: nil, err */
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, key);
        c = (qs_client *)lua_touserdata(L, -1);
    }
    lua_insert(L, 1);
    a.L = L;
    a.base = 2;
    a.fname = api->name;
    return run(L, api, c, &a);
}

void qs_api_register(lua_State *L, const qs_api *apis, int safe)
{
    int mod = lua_gettop(L);
    luaL_getmetatable(L, QS_CLIENT_MT);
    lua_getfield(L, -1, "__index");
    lua_getfield(L, LUA_REGISTRYINDEX, PLANS_KEY);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, PLANS_KEY);
    }
    for (; apis->name; apis++) {
        lua_pushlightuserdata(L, (void *)apis);
        lua_pushcclosure(L, method_wrapper, 1);
        lua_setfield(L, -3, apis->name);
        lua_pushlightuserdata(L, (void *)apis);
        lua_pushboolean(L, safe);
        lua_pushcclosure(L, module_wrapper, 2);
        lua_setfield(L, mod, apis->name);
        if (apis->plan) {
            lua_pushlightuserdata(L, (void *)apis->plan);
            lua_setfield(L, -2, apis->name);
        }
    }
    lua_pop(L, 3);
}

const qs_plan *qs_api_plan(lua_State *L, const char *name)
{
    const qs_plan *p;
    lua_getfield(L, LUA_REGISTRYINDEX, PLANS_KEY);
    lua_getfield(L, -1, name);
    p = (const qs_plan *)lua_touserdata(L, -1);
    lua_pop(L, 2);
    return p;
}

const char *qs_api_check_id_of(const qs_args *a, int idx, size_t *len, const char *what)
{
    lua_State *L = a->L;
    size_t n, i;
    const char *id;
    if (lua_type(L, idx) != LUA_TSTRING)
        qs_argerror(a, idx, "%s must be a string, got %s", what, luaL_typename(L, idx));
    id = lua_tolstring(L, idx, &n);
    if (n == 0) qs_argerror(a, idx, "%s must not be empty (that would target every message)", what);
    if ((n == 1 && id[0] == '.') || (n == 2 && id[0] == '.' && id[1] == '.'))
        qs_argerror(a, idx, "%s must not be '.' or '..'", what);
    if (n > 512) qs_argerror(a, idx, "%s is longer than 512 bytes", what);
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)id[i];
        if (ch < 0x20 || ch == 0x7f) qs_argerror(a, idx, "%s must not contain control bytes", what);
    }
    *len = n;
    return id;
}

const char *qs_api_check_id(const qs_args *a, int idx, size_t *len)
{
    return qs_api_check_id_of(a, idx, len, "DLQ id");
}

void qs_api_add_id_of(const qs_args *a, int idx, qs_buf *out, const char *what)
{
    size_t n;
    const char *id = qs_api_check_id_of(a, idx, &n, what);
    if (qs_buf_add_pct(out, id, n)) luaL_error(a->L, "not enough memory");
}

void qs_api_add_id(const qs_args *a, int idx, qs_buf *out)
{
    qs_api_add_id_of(a, idx, out, "DLQ id");
}
