/* Shared plumbing of the API functions (see api.h). */
#include <stdio.h>
#include <string.h>
#include <lauxlib.h>
#include "api.h"
#include "compat.h"
#include "errors.h"
#include "response.h"

#define DEFAULT_KEY "qstash.default"
#define DEFAULT_SAFE_KEY "qstash.default.safe"

static int method_wrapper(lua_State *L)
{
    const qs_api *api = (const qs_api *)lua_touserdata(L, lua_upvalueindex(1));
    qs_client *c = qs_client_check(L, 1);
    qs_args a;
    a.L = L;
    a.base = 2;
    a.fname = api->name;
    return api->fn(L, c, &a);
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
    return api->fn(L, c, &a);
}

void qs_api_register(lua_State *L, const qs_api *apis, int safe)
{
    int mod = lua_gettop(L);
    luaL_getmetatable(L, QS_CLIENT_MT);
    lua_getfield(L, -1, "__index");
    for (; apis->name; apis++) {
        lua_pushlightuserdata(L, (void *)apis);
        lua_pushcclosure(L, method_wrapper, 1);
        lua_setfield(L, -2, apis->name);
        lua_pushlightuserdata(L, (void *)apis);
        lua_pushboolean(L, safe);
        lua_pushcclosure(L, module_wrapper, 2);
        lua_setfield(L, mod, apis->name);
    }
    lua_pop(L, 2);
}

void qs_api_target(lua_State *L, qs_client *c, const char *path, size_t len)
{
    int fail = 0;
    qs_buf_clear(&c->sync.path);
    qs_buf_clear(&c->sync.url);
    fail |= qs_buf_add(&c->sync.path, path, len);
    fail |= qs_buf_adds(&c->sync.url, c->base_url);
    fail |= qs_buf_add(&c->sync.url, path, len);
    if (c->token_in_query && c->token) {
        fail |= qs_buf_adds(&c->sync.url, memchr(path, '?', len) ? "&qstash_token=" : "?qstash_token=");
        fail |= qs_buf_add_pct(&c->sync.url, c->token, strlen(c->token));
    }
    if (fail) luaL_error(L, "not enough memory");
}

const char *qs_api_check_id(const qs_args *a, int idx, size_t *len)
{
    lua_State *L = a->L;
    size_t n, i;
    const char *id;
    if (lua_type(L, idx) != LUA_TSTRING)
        qs_argerror(a, idx, "DLQ id must be a string, got %s", luaL_typename(L, idx));
    id = lua_tolstring(L, idx, &n);
    if (n == 0) qs_argerror(a, idx, "DLQ id must not be empty (that would target every message)");
    if ((n == 1 && id[0] == '.') || (n == 2 && id[0] == '.' && id[1] == '.'))
        qs_argerror(a, idx, "DLQ id must not be '.' or '..'");
    if (n > 512) qs_argerror(a, idx, "DLQ id is longer than 512 bytes");
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)id[i];
        if (ch < 0x20 || ch == 0x7f) qs_argerror(a, idx, "DLQ id must not contain control bytes");
    }
    *len = n;
    return id;
}

void qs_api_add_id(const qs_args *a, int idx, qs_buf *out)
{
    size_t n;
    const char *id = qs_api_check_id(a, idx, &n);
    if (qs_buf_add_pct(out, id, n)) luaL_error(a->L, "not enough memory");
}

void qs_api_shape_error(lua_State *L, qs_client *c, const qs_xfer *x, const char *method,
                        long status, const char *why)
{
    qs_error_push(L, "decode", why);
    qs_error_setint(L, "status", status);
    lua_pushstring(L, method);
    lua_setfield(L, -2, "method");
    qs_error_setscrubbed(L, "path", x->path.p, x->path.n, c->token, 2048);
    qs_error_setscrubbed(L, "body", x->body.p, x->body.n, c->token, 4096);
    qs_error_setint(L, "attempts", c->last_attempts);
    qs_error_setbool(L, "ambiguous", 0);
}

int qs_api_decode(lua_State *L, qs_client *c, const qs_xfer *x, const char *method, long status)
{
    if (qs_json_decode(L, x->body.p ? x->body.p : "", x->body.n) == 0) return 1;
    {
        char why[300];
        snprintf(why, sizeof why, "invalid JSON in the response: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        qs_api_shape_error(L, c, x, method, status, why);
    }
    return 0;
}
