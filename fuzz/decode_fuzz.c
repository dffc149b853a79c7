/* libFuzzer harness for qs_json_decode and qs_shape_publish_response
 * (src/core/response.c): the fuzz bytes are a response body. Whatever lua-cjson
 * makes of it, the decoded value must hold no JSON null (cjson.null, a NULL
 * lightuserdata) at any depth, integral numbers must be integers, the stack
 * must grow by exactly one value, and a shaped PublishResponse must have a
 * string messageId and a boolean deduplicated (design.md, "Results"). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "core/response.h"

#define FAIL(...) do { fprintf(stderr, "decode_fuzz: " __VA_ARGS__); fputc('\n', stderr); abort(); } while (0)

static lua_State *state;

static int init(lua_State *L)
{
    /* Debian's lua-cjson for 5.4, wherever LUA_CPATH points */
    lua_getglobal(L, "package");
    lua_pushstring(L, "/usr/lib/x86_64-linux-gnu/lua/5.4/?.so;/usr/local/lib/lua/5.4/?.so;");
    lua_getfield(L, -2, "cpath");
    lua_concat(L, 2);
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);
    qs_json_init(L);
    return 0;
}

static void check_value(lua_State *L, int idx, int depth, const char *where)
{
    int t = lua_type(L, idx);
    if (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL)
        FAIL("JSON null left as cjson.null in a %s at depth %d", where, depth);
    if (t == LUA_TNUMBER && !lua_isinteger(L, idx)) {
        lua_Number d = lua_tonumber(L, idx);
        if (d == floor(d) && fabs(d) < 9007199254740992.0)
            FAIL("integral number %.17g left as a float in a %s at depth %d", d, where, depth);
    }
    if (t == LUA_TTABLE) {
        idx = lua_absindex(L, idx);
        if (!lua_checkstack(L, 4)) FAIL("Lua stack");
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            check_value(L, -2, depth + 1, "key");
            check_value(L, -1, depth + 1, "value");
            lua_pop(L, 1);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int top, rc;
    if (!state) {
        state = luaL_newstate();
        if (!state) abort();
        luaL_openlibs(state);
        lua_pushcfunction(state, init);
        if (lua_pcall(state, 0, 0, 0) != 0) FAIL("qs_json_init: %s", lua_tostring(state, -1));
    }
    lua_settop(state, 0);
    lua_pushliteral(state, "below");
    top = lua_gettop(state);
    rc = qs_json_decode(state, (const char *)data, size);
    if (lua_gettop(state) != top + 1) FAIL("decode: stack %d -> %d", top, lua_gettop(state));
    if (lua_type(state, 1) != LUA_TSTRING) FAIL("decode: the stack below was changed");
    if (rc != 0) {
        if (rc != -1) FAIL("decode returned %d", rc);
        if (lua_type(state, -1) != LUA_TSTRING) FAIL("decode error is not a string");
    } else {
        check_value(state, -1, 0, "document");
        if (lua_type(state, -1) == LUA_TTABLE) {
            const char *why = qs_shape_publish_response(state);
            if (lua_gettop(state) != top + 1) FAIL("shape: stack not balanced");
            if (!why) {
                lua_getfield(state, -1, "messageId");
                if (lua_type(state, -1) != LUA_TSTRING) FAIL("shaped without a messageId string");
                lua_getfield(state, -2, "deduplicated");
                if (lua_type(state, -1) != LUA_TBOOLEAN) FAIL("deduplicated is not a boolean");
                lua_pop(state, 2);
            }
            check_value(state, -1, 0, "shaped document");
        } else {
            const char *why = qs_shape_publish_response(state);
            if (!why) FAIL("a %s shaped as a PublishResponse", luaL_typename(state, -1));
            if (lua_gettop(state) != top + 1) FAIL("shape: stack not balanced");
        }
    }
    lua_settop(state, 0);
    return 0;
}
