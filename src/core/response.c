/* JSON through lua-cjson and result shaping (see response.h). */
#include <math.h>
#include <string.h>
#include <lauxlib.h>
#include "base/compat.h"
#include "core/json_flat.h"
#include "core/response.h"

#define JSON_DECODE_KEY "qstash.json.decode"
#define JSON_ENCODE_KEY "qstash.json.encode"
/* The nesting the private decoder accepts (lua-cjson's default, made
 * explicit); normalise() walks all of it, so no JSON null is left behind. */
#define JSON_MAX_DEPTH 1000

void qs_json_init(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, JSON_DECODE_KEY);
    if (!lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    lua_call(L, 1, 1);
    /* A private instance: the application's cjson settings stay its own. */
    lua_getfield(L, -1, "new");
    lua_call(L, 0, 1);
    lua_getfield(L, -1, "decode_invalid_numbers");
    if (lua_isfunction(L, -1)) {
        lua_pushboolean(L, 0);
        lua_call(L, 1, 0);
    } else {
        lua_pop(L, 1);
    }
    lua_getfield(L, -1, "decode_max_depth");
    if (lua_isfunction(L, -1)) {
        lua_pushinteger(L, JSON_MAX_DEPTH);
        lua_call(L, 1, 0);
    } else {
        lua_pop(L, 1);
    }
    lua_getfield(L, -1, "encode_invalid_numbers");
    if (lua_isfunction(L, -1)) {
        lua_pushboolean(L, 0);
        lua_call(L, 1, 0);
    } else {
        lua_pop(L, 1);
    }
    lua_getfield(L, -1, "decode");
    lua_setfield(L, LUA_REGISTRYINDEX, JSON_DECODE_KEY);
    lua_getfield(L, -1, "encode");
    lua_setfield(L, LUA_REGISTRYINDEX, JSON_ENCODE_KEY);
    lua_pop(L, 2);
}

static int is_json_null(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}

/* Replaces JSON nulls by nil and integral floats by integers, in place. */
static void normalise(lua_State *L, int idx, int depth)
{
    if (depth > JSON_MAX_DEPTH) return;
    luaL_checkstack(L, 4, "JSON nesting");
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int t = lua_type(L, -1);
        if (t == LUA_TTABLE) {
            normalise(L, lua_gettop(L), depth + 1);
        } else if (is_json_null(L, -1)) {
            /* assigning nil to an existing field is allowed during lua_next */
            lua_pushvalue(L, -2);
            lua_pushnil(L);
            lua_rawset(L, idx);
        }
#if LUA_VERSION_NUM >= 503
        else if (t == LUA_TNUMBER && !lua_isinteger(L, -1)) {
            lua_Number d = lua_tonumber(L, -1);
            if (d == floor(d) && fabs(d) < 9007199254740992.0) {
                lua_pushvalue(L, -2);
                lua_pushinteger(L, (lua_Integer)d);
                lua_rawset(L, idx);
            }
        }
#endif
        lua_pop(L, 1);
    }
}

/* How lua-cjson 2.1's own errors begin: its decode and encode messages and
 * the argument checks of its functions. A protected call can also end with
 * an error that is not the coder's: a memory error, or whatever a hook
 * raised meanwhile (the interpreter's "interrupted!" on Ctrl-C, a debug
 * hook); those are the caller's, and pass through unchanged. */
static const char *const coder_errors[] = {
    "Expected ",                     /* "Expected value but found invalid token at character 1" */
    "Found too many nested",         /* decode_max_depth */
    "JSON parser does not support",  /* UTF-16 or UTF-32 input */
    "Cannot serialise",              /* encode: NaN, sparse arrays, nesting, key types */
    "bad argument",                  /* luaL_arg* checks of decode and encode */
    NULL,
};

/* After a failed lua_pcall of the coder: returns when the error is the
 * coder's (a decode or encode failure), re-raises it as itself otherwise. */
static void keep_coder_error(lua_State *L, int status)
{
    const char *const *p;
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (status == LUA_ERRRUN && msg)
        for (p = coder_errors; *p; p++)
            if (strncmp(msg, *p, strlen(*p)) == 0) return;
    lua_error(L); /* nothing C-owned is held here: callers keep their memory in userdata */
}

int qs_json_decode(lua_State *L, const char *s, size_t n)
{
    int status;
    /* most answers are one flat object: the same table without lua-cjson */
    if (qs_json_flat(L, s, n)) return 0;
    lua_getfield(L, LUA_REGISTRYINDEX, JSON_DECODE_KEY);
    lua_pushlstring(L, s, n);
    if ((status = lua_pcall(L, 1, 1, 0)) != 0) {
        keep_coder_error(L, status);
        return -1;
    }
    if (is_json_null(L, -1)) {
        lua_pop(L, 1);
        lua_pushnil(L);
    } else if (lua_type(L, -1) == LUA_TTABLE) {
        normalise(L, lua_gettop(L), 0);
    }
#if LUA_VERSION_NUM >= 503
    else if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
        lua_Number d = lua_tonumber(L, -1);
        if (d == floor(d) && fabs(d) < 9007199254740992.0) {
            lua_pop(L, 1);
            lua_pushinteger(L, (lua_Integer)d);
        }
    }
#endif
    return 0;
}

int qs_json_encode(lua_State *L, int idx)
{
    int status;
    idx = qs_absindex(L, idx);
    lua_getfield(L, LUA_REGISTRYINDEX, JSON_ENCODE_KEY);
    lua_pushvalue(L, idx);
    if ((status = lua_pcall(L, 1, 1, 0)) != 0) {
        keep_coder_error(L, status);
        return -1;
    }
    return 0;
}

const char *qs_shape_publish_response(lua_State *L)
{
    int t;
    if (lua_type(L, -1) != LUA_TTABLE) return "expected a JSON object with messageId";
    lua_getfield(L, -1, "messageId");
    t = lua_type(L, -1);
    lua_pop(L, 1);
    if (t != LUA_TSTRING) return "the response has no messageId string";
    lua_getfield(L, -1, "deduplicated");
    t = lua_type(L, -1);
    lua_pop(L, 1);
    if (t == LUA_TNIL) {
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "deduplicated");
    } else if (t != LUA_TBOOLEAN) {
        return "deduplicated is not a boolean";
    }
    return NULL;
}
