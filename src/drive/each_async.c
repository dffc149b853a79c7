/* dlq_retry_each through client:async (see each_async.h).
 *
 * The batch is a Lua table (its state: ids, results, counters, callbacks)
 * that the callbacks of its requests share. Its requests are ordinary
 * client:async calls, so the drive calls, a host loop's hooks, cancel and
 * close treat them like any other; no C memory belongs to the batch. */
#include <string.h>
#include <lauxlib.h>
#include "api/api.h"
#include "api/dlq.h"
#include "base/compat.h"
#include "call/call.h"
#include "call/result.h"
#include "core/errors.h"
#include "drive/async.h"
#include "drive/each_async.h"

#define QS_BATCH_MT "qstash.batch"

/* the batch's fields (a table): see each_async below */
static lua_Integer get_n(lua_State *L, int b, const char *k)
{
    lua_Integer v;
    lua_getfield(L, b, k);
    v = (lua_Integer)lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

static void set_n(lua_State *L, int b, const char *k, lua_Integer v)
{
    qs_pushint(L, v);
    lua_setfield(L, b, k);
}

static void add_n(lua_State *L, int b, const char *k, lua_Integer d)
{
    set_n(L, b, k, get_n(L, b, k) + d);
}

static int get_flag(lua_State *L, int b, const char *k)
{
    int v;
    lua_getfield(L, b, k);
    v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* Calls client:async(name, <arg>, <opts>, fn) with the values at arg, opts
 * (0: nil) and the function at the top (popped); pushes the handle. */
static void start_async(lua_State *L, int b, const char *name, int arg, int opts)
{
    int fn = lua_gettop(L);
    lua_getfield(L, b, "client");
    lua_getfield(L, -1, "async");
    lua_insert(L, -2);
    lua_pushstring(L, name);
    lua_pushvalue(L, arg);
    if (opts) lua_pushvalue(L, opts);
    else lua_pushnil(L);
    lua_pushvalue(L, fn);
    lua_call(L, 5, 1);
    lua_remove(L, fn);
}

/* Runs on_result(id, res, err) then on_progress(done, total), unless a
 * callback failed already; the first error is kept in b.err and stops the
 * batch. The id, res and err are at id, id + 1, id + 2. */
static void run_callbacks(lua_State *L, int b, int id);

static int one_done(lua_State *L);

/* Keeps `concurrency` retries in flight while ids are left and nothing
 * stopped the batch. */
static void start_next(lua_State *L, int b)
{
    lua_Integer total = get_n(L, b, "total"), conc = get_n(L, b, "concurrency");
    while (!get_flag(L, b, "stopped") && get_n(L, b, "next") <= total && get_n(L, b, "inflight") < conc) {
        lua_Integer idx = get_n(L, b, "next");
        int top = lua_gettop(L);
        set_n(L, b, "next", idx + 1);
        add_n(L, b, "inflight", 1);
        lua_getfield(L, b, "ids");
        lua_rawgeti(L, -1, (int)idx);
        lua_getfield(L, b, "opts");
        lua_pushvalue(L, b);
        qs_pushint(L, idx);
        lua_pushcclosure(L, one_done, 2);
        start_async(L, b, "dlq_retry", top + 2, lua_isnil(L, top + 3) ? 0 : top + 3);
        lua_getfield(L, b, "handles");
        qs_pushint(L, idx);
        lua_pushvalue(L, -3);
        lua_rawset(L, -3);
        lua_settop(L, top);
    }
}

/* Cancels every request of the batch still in flight (their callbacks
 * record them as cancelled) and stops it. */
static void stop(lua_State *L, int b)
{
    int top = lua_gettop(L);
    lua_pushboolean(L, 1);
    lua_setfield(L, b, "stopped");
    lua_getfield(L, b, "handles");
    lua_pushnil(L);
    while (lua_next(L, top + 1)) {
        lua_getfield(L, -1, "cancel");
        lua_insert(L, -2);
        lua_call(L, 1, 0);
    }
    lua_getfield(L, b, "follow_handle");
    if (!lua_isnil(L, -1)) {
        lua_getfield(L, -1, "cancel");
        lua_insert(L, -2);
        lua_call(L, 1, 0);
    }
    lua_settop(L, top);
}

static void run_callbacks(lua_State *L, int b, int id)
{
    int top = lua_gettop(L), i;
    static const char *const names[] = {"on_result", "on_progress"};
    for (i = 0; i < 2; i++) {
        if (get_flag(L, b, "stopped")) return;
        lua_getfield(L, b, names[i]);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            continue;
        }
        if (i == 0) {
            lua_pushvalue(L, id);
            lua_pushvalue(L, id + 1);
            lua_pushvalue(L, id + 2);
        } else {
            qs_pushint(L, get_n(L, b, "done"));
            qs_pushint(L, get_n(L, b, "total"));
        }
        if (lua_pcall(L, i == 0 ? 3 : 2, 0, 0) != 0) {
            /* as dlq_retry_each raises it */
            if (lua_type(L, -1) == LUA_TSTRING) {
                lua_pushfstring(L, "qstash: error in a callback: %s", lua_tostring(L, -1));
                lua_remove(L, -2);
            }
            lua_setfield(L, b, "err");
            stop(L, b);
        }
    }
    lua_settop(L, top);
}

static int follow_done(lua_State *L);

/* When nothing of the batch is in flight: the ids never started get a
 * `cancelled` error, the follow of the retried messages starts, or the
 * batch's callback runs with its end. */
static void maybe_finish(lua_State *L, int b)
{
    int top = lua_gettop(L);
    lua_Integer i, total = get_n(L, b, "total");
    if (get_n(L, b, "inflight") > 0 || get_flag(L, b, "following") || get_flag(L, b, "ended")) return;
    if (get_n(L, b, "next") <= total && !get_flag(L, b, "stopped")) return;
    lua_getfield(L, b, "ids");
    lua_getfield(L, b, "results");
    lua_getfield(L, b, "tmpl");
    for (i = get_n(L, b, "next"); i <= total; i++) {
        size_t n;
        const char *key;
        qs_buf *path;
        lua_rawgeti(L, top + 1, (int)i);
        qs_result_cancelled(L, &qs_call_at(L, top + 3)->req, "the batch stopped before this request started", 0);
        key = lua_tolstring(L, -2, &n);
        path = qs_api_scratch(L);
        if (qs_buf_adds(path, "/v2/dlq/retry/") || qs_buf_add_pct(path, key, n)) luaL_error(L, "not enough memory");
        lua_pushlstring(L, path->p, path->n);
        lua_setfield(L, -3, "path");
        lua_pop(L, 1);
        lua_rawset(L, top + 2);
        add_n(L, b, "failed", 1);
        add_n(L, b, "done", 1);
    }
    set_n(L, b, "next", total + 1);
    lua_settop(L, top);
    if (get_n(L, b, "waiting") > 0) {
        if (!get_flag(L, b, "stopped")) {
            /* the retried messages, each once, in the order of their first id */
            int mids, by_msg, opts;
            lua_Integer m = 0;
            lua_newtable(L);
            mids = lua_gettop(L);
            lua_newtable(L);
            by_msg = lua_gettop(L);
            lua_getfield(L, b, "ids");
            lua_getfield(L, b, "results");
            for (i = 1; i <= total; i++) {
                lua_rawgeti(L, top + 3, (int)i);
                lua_pushvalue(L, -1);
                lua_rawget(L, top + 4);
                if (lua_type(L, -1) == LUA_TTABLE && !qs_is_error(L, -1)) {
                    lua_getfield(L, -1, "messageId");
                    lua_pushvalue(L, -1);
                    lua_rawget(L, by_msg);
                    if (lua_isnil(L, -1)) {
                        lua_pop(L, 1);
                        lua_newtable(L);
                        lua_pushvalue(L, -2);
                        lua_pushvalue(L, -2);
                        lua_rawset(L, by_msg);
                        lua_pushvalue(L, -2);
                        lua_rawseti(L, mids, (int)++m);
                    }
                    lua_pushvalue(L, -4);
                    lua_rawseti(L, -2, (int)qs_rawlen(L, -2) + 1);
                    lua_pop(L, 2);
                }
                lua_pop(L, 2);
            }
            lua_pushvalue(L, by_msg);
            lua_setfield(L, b, "by_msg");
            lua_pushvalue(L, mids);
            lua_setfield(L, b, "mids");
            lua_createtable(L, 0, 2);
            opts = lua_gettop(L);
            lua_getfield(L, b, "follow_timeout");
            lua_setfield(L, opts, "timeout");
            lua_getfield(L, b, "follow_interval");
            lua_setfield(L, opts, "interval");
            lua_pushboolean(L, 1);
            lua_setfield(L, b, "following");
            lua_pushvalue(L, b);
            lua_pushcclosure(L, follow_done, 1);
            start_async(L, b, "follow_many", mids, opts);
            lua_setfield(L, b, "follow_handle");
            lua_settop(L, top);
            return;
        }
        /* stopped before following: retried all the same, without `delivery` */
        add_n(L, b, "ok", get_n(L, b, "waiting"));
        add_n(L, b, "done", get_n(L, b, "waiting"));
        set_n(L, b, "waiting", 0);
    }
    lua_pushboolean(L, 1);
    lua_setfield(L, b, "ended");
    lua_getfield(L, b, "callback");
    lua_getfield(L, b, "err");
    if (!lua_isnil(L, -1)) {
        lua_pushnil(L);
        lua_insert(L, -2);
    } else {
        lua_pop(L, 1);
        lua_createtable(L, 0, 3);
        qs_pushint(L, get_n(L, b, "ok"));
        lua_setfield(L, -2, "ok");
        qs_pushint(L, get_n(L, b, "failed"));
        lua_setfield(L, -2, "failed");
        lua_getfield(L, b, "results");
        lua_setfield(L, -2, "results");
    }
    /* the batch's callback: what it raises goes to the drive call */
    lua_call(L, lua_gettop(L) - top - 1, 0);
    lua_settop(L, top);
}

/* The callback of one retry: (res, err); upvalues: the batch, the index of
 * its id. */
static int one_done(lua_State *L)
{
    int b = lua_upvalueindex(1), id;
    lua_Integer idx = (lua_Integer)lua_tonumber(L, lua_upvalueindex(2));
    lua_settop(L, 2);
    add_n(L, b, "inflight", -1);
    lua_getfield(L, b, "handles");
    qs_pushint(L, idx);
    lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    lua_getfield(L, b, "ids");
    lua_rawgeti(L, -1, (int)idx);
    lua_replace(L, -2);
    lua_insert(L, 1); /* id, res, err */
    id = 1;
    lua_getfield(L, b, "results");
    lua_pushvalue(L, id);
    lua_pushvalue(L, lua_isnil(L, id + 2) ? id + 1 : id + 2);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    if (get_flag(L, b, "no_token")) {
        lua_pushboolean(L, 1);
        lua_setfield(L, b, "ended");
        lua_getfield(L, b, "callback");
        lua_pushnil(L);
        lua_pushvalue(L, id + 2);
        lua_call(L, 2, 0);
        return 0;
    }
    if (lua_isnil(L, id + 2) && get_flag(L, b, "follow")) {
        add_n(L, b, "waiting", 1); /* its callbacks run when it is followed */
    } else {
        add_n(L, b, lua_isnil(L, id + 2) ? "ok" : "failed", 1);
        add_n(L, b, "done", 1);
        run_callbacks(L, b, id);
    }
    start_next(L, b);
    maybe_finish(L, b);
    return 0;
}

/* The callback of the follow of the retried messages: (res, err); each
 * retried id gets `delivery` (the end of its message, or what is known:
 * that it did not end, and why), and its callbacks run. */
static int follow_done(lua_State *L)
{
    int b = lua_upvalueindex(1), mids, by_msg, results;
    size_t m, i;
    lua_settop(L, 2);
    lua_pushnil(L);
    lua_setfield(L, b, "follow_handle");
    lua_getfield(L, b, "mids");
    mids = lua_gettop(L);
    lua_getfield(L, b, "by_msg");
    by_msg = lua_gettop(L);
    lua_getfield(L, b, "results");
    results = lua_gettop(L);
    m = qs_rawlen(L, mids);
    for (i = 1; i <= m; i++) {
        int del, ids;
        size_t k, n;
        lua_settop(L, results);
        lua_rawgeti(L, mids, (int)i);
        if (lua_type(L, 1) == LUA_TTABLE) {
            lua_pushvalue(L, -1);
            lua_rawget(L, 1);
        } else {
            lua_pushnil(L);
        }
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_createtable(L, 0, 3);
            lua_pushvalue(L, -2);
            lua_setfield(L, -2, "messageId");
            lua_pushboolean(L, 0);
            lua_setfield(L, -2, "done");
            lua_pushvalue(L, 2);
            lua_setfield(L, -2, "error");
        }
        del = lua_gettop(L);
        lua_pushvalue(L, del - 1);
        lua_rawget(L, by_msg);
        ids = lua_gettop(L);
        n = qs_rawlen(L, ids);
        for (k = 1; k <= n; k++) {
            int id;
            lua_settop(L, ids);
            lua_rawgeti(L, ids, (int)k);
            id = lua_gettop(L);
            lua_pushvalue(L, id);
            lua_rawget(L, results);
            lua_pushvalue(L, del);
            lua_setfield(L, -2, "delivery");
            lua_pushnil(L);
            add_n(L, b, "ok", 1);
            add_n(L, b, "done", 1);
            add_n(L, b, "waiting", -1);
            run_callbacks(L, b, id);
        }
    }
    lua_settop(L, 2);
    lua_pushnil(L);
    lua_setfield(L, b, "following");
    /* stopped half-way (a callback failed): the rest count as retried */
    add_n(L, b, "ok", get_n(L, b, "waiting"));
    add_n(L, b, "done", get_n(L, b, "waiting"));
    set_n(L, b, "waiting", 0);
    maybe_finish(L, b);
    return 0;
}

/* batch:cancel() -> true when the batch had not ended: its requests in
 * flight are cancelled, the ids not started get a `cancelled` error, and
 * its callback runs from a drive call with { ok, failed, results }. */
static int batch_cancel(lua_State *L)
{
    int b;
    luaL_checkudata(L, 1, QS_BATCH_MT);
    qs_getuv(L, 1);
    b = lua_gettop(L);
    if (get_flag(L, b, "ended") || get_flag(L, b, "stopped")) {
        lua_pushboolean(L, 0);
        return 1;
    }
    stop(L, b);
    lua_pushboolean(L, 1);
    return 1;
}

static int batch_tostring(lua_State *L)
{
    int b;
    luaL_checkudata(L, 1, QS_BATCH_MT);
    qs_getuv(L, 1);
    b = lua_gettop(L);
    lua_pushfstring(L, "qstash.batch (%d of %d ended): %p", (int)get_n(L, b, "done"), (int)get_n(L, b, "total"),
                    lua_touserdata(L, 1));
    return 1;
}

int qs_each_async(lua_State *L, qs_client *c, const qs_args *a)
{
    int cidx = a->base - 2, cb = lua_gettop(L), b, list, nargs = cb - a->base;
    int ids = a->base, opts, cfg, on_result, on_progress, tmpl;
    size_t total, concurrency;
    qs_call *tk;
    if (nargs > 3) qs_argerror(a, a->base + 3, "dlq_retry_each takes ids, opts and the batch options");
    /* nil where left out, below the callback */
    if (nargs >= 2) lua_pushvalue(L, a->base + 1);
    else lua_pushnil(L);
    opts = lua_gettop(L);
    if (nargs >= 3) lua_pushvalue(L, a->base + 2);
    else lua_pushnil(L);
    cfg = lua_gettop(L);
    if (lua_type(L, ids) != LUA_TTABLE)
        qs_argerror(a, ids, "expected an array of DLQ ids, got %s", luaL_typename(L, ids));
    total = qs_each_distinct_ids(L, a, ids);
    list = lua_gettop(L);
    {
        qs_args ta = *a;
        lua_rawgeti(L, list, 1);
        lua_pushvalue(L, opts);
        ta.base = lua_gettop(L) - 1;
        ta.fname = "dlq_retry_each";
        tk = qs_call_new(L, c, &qs_plan_dlq_retry, &ta);
        tmpl = lua_gettop(L);
    }
    lua_pushnil(L);
    on_result = lua_gettop(L);
    lua_pushnil(L);
    on_progress = lua_gettop(L);
    concurrency = qs_each_options(L, a, cfg, on_result, on_progress);

    lua_createtable(L, 0, 24);
    b = lua_gettop(L);
    lua_pushvalue(L, cidx);
    lua_setfield(L, b, "client");
    lua_pushvalue(L, list);
    lua_setfield(L, b, "ids");
    lua_createtable(L, 0, (int)total);
    lua_setfield(L, b, "results");
    lua_newtable(L);
    lua_setfield(L, b, "handles");
    lua_pushvalue(L, on_result);
    lua_setfield(L, b, "on_result");
    lua_pushvalue(L, on_progress);
    lua_setfield(L, b, "on_progress");
    lua_pushvalue(L, cb);
    lua_setfield(L, b, "callback");
    lua_pushvalue(L, tmpl); /* for the errors of ids never started */
    lua_setfield(L, b, "tmpl");
    set_n(L, b, "total", (lua_Integer)total);
    set_n(L, b, "concurrency", (lua_Integer)concurrency);
    set_n(L, b, "next", 1);
    if (tk->follow) {
        /* each retry without its follow: the retried messages are followed
         * together once every retry ended (follow_many), as dlq_retry_each does */
        lua_pushboolean(L, 1);
        lua_setfield(L, b, "follow");
        lua_pushnumber(L, tk->follow_timeout);
        lua_setfield(L, b, "follow_timeout");
        lua_pushnumber(L, tk->follow_interval);
        lua_setfield(L, b, "follow_interval");
        lua_newtable(L);
        lua_pushnil(L);
        while (lua_next(L, opts)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            if (lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), "follow") == 0) lua_pop(L, 2);
            else lua_rawset(L, -4);
        }
        lua_setfield(L, b, "opts");
    } else {
        lua_pushvalue(L, opts);
        lua_setfield(L, b, "opts");
    }
    if (!c->conf->token) {
        /* the error of the synchronous call, from a drive call: the first
         * id's retry gets it, and so does the batch's callback */
        set_n(L, b, "concurrency", 1);
        set_n(L, b, "total", 1);
        lua_pushboolean(L, 1);
        lua_setfield(L, b, "no_token");
    }
    /* the handle, then the first requests */
    qs_newudata_t(L, 1);
    lua_pushvalue(L, b);
    qs_setuv(L, -2);
    luaL_getmetatable(L, QS_BATCH_MT);
    lua_setmetatable(L, -2);
    start_next(L, b);
    return 1;
}

void qs_each_async_register(lua_State *L)
{
    if (luaL_newmetatable(L, QS_BATCH_MT)) {
        lua_pushcfunction(L, batch_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_newtable(L);
        lua_pushcfunction(L, batch_cancel);
        lua_setfield(L, -2, "cancel");
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}
