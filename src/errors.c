/* Structured error objects (see errors.h). */
#include <stdio.h>
#include <string.h>
#include <lauxlib.h>
#include "errors.h"
#include "compat.h"

static void add_field(lua_State *L, luaL_Buffer *b, const char *field,
                      const char *before, const char *after)
{
    lua_getfield(L, 1, field);
    if (lua_type(L, -1) == LUA_TSTRING && qs_rawlen(L, -1) > 0) {
        const char *s = lua_tostring(L, -1);
        lua_pop(L, 1); /* the string stays alive in the table */
        luaL_addstring(b, before);
        luaL_addstring(b, s);
        luaL_addstring(b, after);
    } else {
        lua_pop(L, 1);
    }
}

/* __tostring: "qstash: not_found (404) POST /v2/dlq/retry/abc: message not found" */
static int error_tostring(lua_State *L)
{
    luaL_Buffer b;
    char num[32] = "";
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "status");
    if (lua_type(L, -1) == LUA_TNUMBER)
        snprintf(num, sizeof num, " (%ld)", (long)lua_tonumber(L, -1));
    lua_pop(L, 1);
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "qstash:");
    add_field(L, &b, "kind", " ", "");
    luaL_addstring(&b, num);
    add_field(L, &b, "method", " ", "");
    add_field(L, &b, "path", " ", "");
    add_field(L, &b, "reason", " [", "]");
    add_field(L, &b, "message", ": ", "");
    luaL_pushresult(&b);
    return 1;
}

void qs_errors_init(lua_State *L)
{
    if (luaL_newmetatable(L, QS_ERROR_MT)) {
        lua_pushcfunction(L, error_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "qstash.error");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
}

void qs_error_push(lua_State *L, const char *kind, const char *message)
{
    lua_createtable(L, 0, 8);
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    if (message) {
        lua_pushstring(L, message);
        lua_setfield(L, -2, "message");
    }
    luaL_getmetatable(L, QS_ERROR_MT);
    lua_setmetatable(L, -2);
}

void qs_error_setstr(lua_State *L, const char *field, const char *s, size_t len)
{
    lua_pushlstring(L, s, len);
    lua_setfield(L, -2, field);
}

void qs_error_setint(lua_State *L, const char *field, long long v)
{
    qs_pushint(L, v);
    lua_setfield(L, -2, field);
}

void qs_error_setbool(lua_State *L, const char *field, int v)
{
    lua_pushboolean(L, v);
    lua_setfield(L, -2, field);
}

void qs_error_setscrubbed(lua_State *L, const char *field, const char *s, size_t len,
                          const char *secret, size_t cap)
{
    luaL_Buffer b;
    /* A secret shorter than this is no real token: scrubbing it would only
     * garble the text. */
    size_t slen = secret && strlen(secret) >= 8 ? strlen(secret) : 0;
    size_t i = 0;
    if (len > cap) len = cap;
    luaL_buffinit(L, &b);
    while (i < len) {
        if (slen > 0 && len - i >= slen && memcmp(s + i, secret, slen) == 0) {
            luaL_addstring(&b, "[REDACTED]");
            i += slen;
        } else {
            luaL_addchar(&b, s[i]);
            i++;
        }
    }
    luaL_pushresult(&b);
    lua_setfield(L, -2, field);
}

int qs_error_finish(lua_State *L, int safe)
{
    if (!safe) return lua_error(L);
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

int qs_is_error(lua_State *L, int idx)
{
    int same;
    if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return 0;
    luaL_getmetatable(L, QS_ERROR_MT);
    same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same;
}
