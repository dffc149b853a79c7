/* Lua 5.1/LuaJIT/5.3/5.4 compatibility: static, prefixed shims only.
 * LuaJIT 2.1 already exports some luaL_* names, so nothing here may be
 * defined under Lua's own names (one-definition rule). */
#ifndef QS_COMPAT_H
#define QS_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
static inline void qs_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    luaL_checkstack(L, nup + 1, "too many upvalues");
    for (; l->name; l++) {
        int i;
        for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}
#define qs_rawlen(L, i) lua_objlen(L, (i))
#define qs_absindex(L, i) (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop(L) + (i) + 1)
static inline void *qs_testudata(lua_State *L, int i, const char *tname)
{
    void *p = lua_touserdata(L, i);
    if (p == NULL || !lua_getmetatable(L, i)) return NULL;
    luaL_getmetatable(L, tname);
    if (!lua_rawequal(L, -1, -2)) p = NULL;
    lua_pop(L, 2);
    return p;
}
#else
#define qs_setfuncs luaL_setfuncs
#define qs_rawlen(L, i) lua_rawlen(L, (i))
#define qs_absindex lua_absindex
#define qs_testudata luaL_testudata
#endif

#if LUA_VERSION_NUM >= 504
#define qs_newudata(L, sz) lua_newuserdatauv(L, (sz), 0)
#else
#define qs_newudata(L, sz) lua_newuserdata(L, (sz))
#endif

/* A userdata with one Lua table of its own (its user value; the environment
 * on 5.1/LuaJIT), for Lua state that lives and dies with it. qs_newudata_t
 * pushes the userdata with a new empty table set; qs_getuv pushes it. */
#if LUA_VERSION_NUM >= 504
#define qs_newudata_t(L, sz) (lua_newuserdatauv(L, (sz), 1))
#define qs_setuv(L, idx) lua_setiuservalue(L, (idx), 1)
#define qs_getuv(L, idx) ((void)lua_getiuservalue(L, (idx), 1))
#elif LUA_VERSION_NUM >= 502
#define qs_newudata_t(L, sz) (lua_newuserdata(L, (sz)))
#define qs_setuv(L, idx) lua_setuservalue(L, (idx))
#define qs_getuv(L, idx) ((void)lua_getuservalue(L, (idx)))
#else
#define qs_newudata_t(L, sz) (lua_newuserdata(L, (sz)))
#define qs_setuv(L, idx) ((void)lua_setfenv(L, (idx)))
#define qs_getuv(L, idx) lua_getfenv(L, (idx))
#endif

/* Pushes an integral number as an integer where the Lua version has them. */
#if LUA_VERSION_NUM >= 503
#define qs_pushint(L, n) lua_pushinteger(L, (lua_Integer)(n))
#else
#define qs_pushint(L, n) lua_pushnumber(L, (lua_Number)(n))
#endif

#endif
