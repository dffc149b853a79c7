/* Paged reads (see pages.h). */
#include <lauxlib.h>
#include "base/compat.h"
#include "core/filters.h"
#include "api/pages.h"
#include "call/result.h"
#include "call/sync.h"

void qs_pages_normalise_cursor(lua_State *L)
{
    lua_getfield(L, -1, "cursor");
    if ((lua_type(L, -1) == LUA_TSTRING && qs_rawlen(L, -1) == 0) ||
        (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)) {
        lua_pushnil(L);
        lua_setfield(L, -3, "cursor");
    }
    lua_pop(L, 1);
}

int qs_pages_cursor_seen(lua_State *L, int t)
{
    int seen;
    lua_getfield(L, t, "seen");
    lua_pushvalue(L, -2);
    lua_rawget(L, -2);
    seen = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!seen) {
        lua_pushvalue(L, -2);
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
    }
    lua_pop(L, 1);
    return seen;
}

void qs_pages_cursor_repeated(lua_State *L, const qs_req *r, const char *cursor)
{
    qs_result_shape_error(L, r, 200, "the cursor repeated an earlier one: stopping, since following "
                                     "it would loop for ever");
    lua_pushstring(L, cursor);
    lua_setfield(L, -2, "cursor");
}

/* Fetches the next page into the iterator's state: the params with the
 * cursor. Raises on failure. */
static void next_page(lua_State *L, qs_client *c, const qs_pager *pg, int state)
{
    qs_args a;
    qs_call *k;
    int params, page;
    lua_settop(L, 0);
    lua_newtable(L);
    params = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, lua_upvalueindex(2))) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, params);
    }
    lua_getfield(L, state, "cursor");
    lua_setfield(L, params, "cursor");
    a.L = L;
    a.base = params;
    a.fname = pg->plan->name;
    k = qs_call_new(L, c, pg->plan, &a);
    if (!qs_sync_run(L, c, k, lua_gettop(L))) lua_error(L);
    page = lua_gettop(L);
    lua_getfield(L, page, pg->field);
    lua_setfield(L, state, "page");
    qs_pushint(L, 0);
    lua_setfield(L, state, "i");
    lua_getfield(L, page, "cursor");
    if (lua_isnil(L, -1)) {
        lua_pushboolean(L, 1);
        lua_setfield(L, state, "done");
    } else if (qs_pages_cursor_seen(L, state)) {
        /* a repeated cursor ends the loop, after the items of its page */
        lua_pushboolean(L, 1);
        lua_setfield(L, state, "done");
        qs_pages_cursor_repeated(L, &k->req, lua_tostring(L, -1));
        lua_setfield(L, state, "failure");
        lua_settop(L, 0);
        return;
    }
    lua_setfield(L, state, "cursor");
    lua_settop(L, 0);
}

/* The iterator: upvalues client, params (a private copy), state { page =
 * items, i = index, cursor = next or nil, done = bool, seen = { [cursor] =
 * true }, failure = the error raised once the page is done }, pager. */
static int pages_next(lua_State *L)
{
    qs_client *c = qs_client_check(L, lua_upvalueindex(1));
    int state = lua_upvalueindex(3);
    const qs_pager *pg = (const qs_pager *)lua_touserdata(L, lua_upvalueindex(4));
    for (;;) {
        lua_Integer i;
        lua_getfield(L, state, "i");
        i = (lua_Integer)lua_tonumber(L, -1) + 1;
        lua_pop(L, 1);
        lua_getfield(L, state, "page");
        if (lua_type(L, -1) == LUA_TTABLE) {
            lua_rawgeti(L, -1, (int)i);
            if (!lua_isnil(L, -1)) {
                qs_pushint(L, i);
                lua_setfield(L, state, "i");
                return 1;
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        lua_getfield(L, state, "done");
        if (lua_toboolean(L, -1)) {
            lua_getfield(L, state, "failure");
            if (!lua_isnil(L, -1)) return lua_error(L);
            return 0;
        }
        lua_pop(L, 1);
        next_page(L, c, pg, state);
    }
}

int qs_pages_iterate(lua_State *L, const qs_args *a, const qs_pager *pg)
{
    int pidx = a->base, copy;
    lua_newtable(L); /* private copy of params */
    copy = lua_gettop(L);
    if (!lua_isnoneornil(L, pidx)) {
        if (lua_type(L, pidx) != LUA_TTABLE)
            qs_argerror(a, pidx, "params must be a table, got %s", luaL_typename(L, pidx));
        lua_pushnil(L);
        while (lua_next(L, pidx)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_settable(L, copy);
        }
        /* validated now, before the loop starts */
        qs_filters_marshal(a, pidx, copy, qs_api_scratch(L), pg->filter_set);
        lua_pop(L, 1);
    }
    lua_pushvalue(L, a->base - 1); /* the client */
    lua_pushvalue(L, copy);
    lua_newtable(L); /* state */
    lua_newtable(L);
    /* the first page starts at the caller's cursor, if any: seen already */
    lua_getfield(L, copy, "cursor");
    if (lua_type(L, -1) == LUA_TSTRING && qs_rawlen(L, -1) > 0) {
        lua_pushvalue(L, -1);
        lua_setfield(L, -4, "cursor");
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
    } else {
        lua_pop(L, 1);
    }
    lua_setfield(L, -2, "seen");
    lua_pushlightuserdata(L, (void *)pg);
    lua_pushcclosure(L, pages_next, 4);
    return 1;
}
