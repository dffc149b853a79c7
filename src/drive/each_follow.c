/* dlq_retry_each's follow phase (see each_follow.h). */
#include <lauxlib.h>
#include "base/compat.h"
#include "drive/each_follow.h"
#include "core/errors.h"
#include "api/follow.h"
#include "call/sync.h"

typedef struct run {
    qs_client *c;
    qs_call *k;
    int kidx, by_msg, fired_set;
    size_t fired;
    qs_each_batch *b;
} run;

/* Every id whose retry gave the new message at the top (a deduplicated
 * retry shares the message of another: each of them, in the batch's order)
 * gets `delivery` = the value below it (both popped); each is counted once,
 * and its callbacks run (under pcall: the first error is kept, and stops
 * what follows). */
static void deliver(lua_State *L, run *r)
{
    qs_each_batch *b = r->b;
    int mid = lua_gettop(L), del = mid - 1, ids;
    size_t n, i;
    lua_pushvalue(L, mid);
    lua_pushboolean(L, 1);
    lua_rawset(L, r->fired_set);
    lua_pushvalue(L, mid);
    lua_rawget(L, r->by_msg); /* the DLQ ids */
    ids = lua_gettop(L);
    n = qs_rawlen(L, ids);
    for (i = 1; i <= n; i++) {
        int res;
        lua_settop(L, ids);
        lua_rawgeti(L, ids, (int)i);
        lua_pushvalue(L, -1);
        lua_rawget(L, b->results);
        res = lua_gettop(L);
        lua_pushvalue(L, del);
        lua_setfield(L, res, "delivery");
        ++*b->ok;
        ++*b->done;
        if (*b->err_ref != LUA_NOREF || r->c->closed) continue;
        if (!lua_isnil(L, b->on_result)) {
            lua_pushvalue(L, b->on_result);
            lua_pushvalue(L, res - 1);
            lua_pushvalue(L, res);
            lua_pushnil(L);
            if (lua_pcall(L, 3, 0, 0) != 0) *b->err_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        }
        if (*b->err_ref == LUA_NOREF && !r->c->closed && !lua_isnil(L, b->on_progress)) {
            lua_pushvalue(L, b->on_progress);
            qs_pushint(L, (long long)*b->done);
            qs_pushint(L, (long long)b->total);
            if (lua_pcall(L, 2, 0, 0) != 0) *b->err_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        }
    }
    lua_settop(L, del - 1);
}

/* Before each wait: the messages that ended since the last one. Stops the
 * run when a callback failed or closed the client. */
static int at_wait(lua_State *L, void *ud)
{
    run *r = (run *)ud;
    int top = lua_gettop(L);
    while (qs_follow_next_finished(L, r->k, r->kidx, &r->fired)) {
        lua_insert(L, -2); /* result, id */
        deliver(L, r);
    }
    lua_settop(L, top);
    return *r->b->err_ref != LUA_NOREF || r->c->closed;
}

void qs_each_follow(lua_State *L, qs_client *c, const qs_call *tmpl, qs_each_batch *b)
{
    int top = lua_gettop(L), mids, opts, ok;
    size_t n = qs_rawlen(L, b->list), i, m = 0;
    run r;
    qs_args fa;
    r.c = c;
    r.b = b;
    r.fired = 0;
    lua_newtable(L);
    mids = lua_gettop(L);
    lua_newtable(L);
    r.by_msg = lua_gettop(L);
    lua_newtable(L);
    r.fired_set = lua_gettop(L);
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, b->list, (int)i);
        lua_pushvalue(L, -1);
        lua_rawget(L, b->results);
        if (lua_type(L, -1) == LUA_TTABLE && !qs_is_error(L, -1)) {
            /* by_msg[messageId] = the DLQ ids that got it; mids = each
             * new message once, in the order of its first id */
            lua_getfield(L, -1, "messageId");
            lua_pushvalue(L, -1);
            lua_rawget(L, r.by_msg);
            if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                lua_newtable(L);
                lua_pushvalue(L, -2);
                lua_pushvalue(L, -2);
                lua_rawset(L, r.by_msg);
                lua_pushvalue(L, -2);
                lua_rawseti(L, mids, (int)++m);
            }
            lua_pushvalue(L, -4);
            lua_rawseti(L, -2, (int)qs_rawlen(L, -2) + 1);
            lua_pop(L, 2);
        }
        lua_pop(L, 2);
    }
    if (m == 0) goto out;
    if (c->closed || *b->err_ref != LUA_NOREF) goto rest;
    lua_createtable(L, 0, 2);
    opts = lua_gettop(L);
    lua_pushnumber(L, tmpl->follow_timeout);
    lua_setfield(L, opts, "timeout");
    lua_pushnumber(L, tmpl->follow_interval);
    lua_setfield(L, opts, "interval");
    lua_pushvalue(L, mids);
    lua_pushvalue(L, opts);
    fa.L = L;
    fa.base = lua_gettop(L) - 1;
    fa.fname = "dlq_retry_each";
    r.k = qs_call_new(L, c, &qs_plan_follow_many, &fa);
    r.kidx = lua_gettop(L);
    ok = qs_sync_run_hooked(L, c, r.k, r.kidx, at_wait, &r);
    if (ok >= 0) {
        /* the end: what ended in the last round, then the rest, in order */
        int end = lua_gettop(L);
        at_wait(L, &r);
        for (i = 1; i <= m; i++) {
            lua_rawgeti(L, mids, (int)i);
            lua_pushvalue(L, -1);
            lua_rawget(L, r.fired_set);
            if (lua_toboolean(L, -1)) {
                lua_pop(L, 2);
                continue;
            }
            lua_pop(L, 1);
            if (ok) {
                lua_pushvalue(L, -1);
                lua_rawget(L, end);
            } else {
                /* following failed: what is known is that it did not end */
                lua_createtable(L, 0, 3);
                lua_pushvalue(L, -2);
                lua_setfield(L, -2, "messageId");
                lua_pushboolean(L, 0);
                lua_setfield(L, -2, "done");
                lua_pushvalue(L, end);
                lua_setfield(L, -2, "error");
            }
            lua_insert(L, -2);
            deliver(L, &r);
        }
    }
rest:
    /* not followed to the end: retried all the same */
    for (i = 1; i <= m; i++) {
        lua_rawgeti(L, mids, (int)i);
        lua_pushvalue(L, -1);
        lua_rawget(L, r.fired_set);
        if (!lua_toboolean(L, -1)) {
            size_t ids;
            lua_pop(L, 1);
            lua_rawget(L, r.by_msg);
            ids = qs_rawlen(L, -1);
            *b->ok += ids;
            *b->done += ids;
        }
        lua_settop(L, mids + 3);
    }
out:
    lua_settop(L, top);
}
