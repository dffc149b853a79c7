/* The DLQ API: retry one message (the heart of the module), and the rest of
 * the dead-letter queue endpoints. */
#include <string.h>
#include <lauxlib.h>
#include "compat.h"
#include "api.h"
#include "call.h"
#include "dlq.h"
#include "errors.h"
#include "filters.h"
#include "options.h"
#include "response.h"

/* client:dlq_retry(id, opts) -> { messageId = ..., deduplicated = false } */
static int dlq_retry(lua_State *L, qs_client *c, const qs_args *a)
{
    qs_call call;
    long status = 0;
    const char *why;

    qs_buf_clear(&c->query);
    if (qs_buf_adds(&c->query, "/v2/dlq/retry/")) return luaL_error(L, "not enough memory");
    qs_api_add_id(a, a->base, &c->query);
    qs_buf_clear(&c->headers);
    qs_opts_marshal(a, a->base + 1, &c->headers, 0, NULL);
    if (!qs_call_have_token(L, c)) return qs_error_finish(L, c->safe);
    qs_api_target(L, c, c->query.p, c->query.n);

    memset(&call, 0, sizeof call);
    call.req.method = "POST";
    /* A DLQ entry is consumed once: after an unknown outcome a repeat either
     * succeeds or answers 404, which is reported as ambiguous. */
    call.resend_ok = 1;
    if (!qs_call_run(L, c, &call, &status)) return qs_error_finish(L, c->safe);
    if (!qs_api_decode(L, c, &c->sync, "POST", status)) return qs_error_finish(L, c->safe);
    if ((why = qs_shape_publish_response(L)) != NULL) {
        lua_pop(L, 1);
        qs_api_shape_error(L, c, &c->sync, "POST", status, why);
        return qs_error_finish(L, c->safe);
    }
    return 1;
}

#define BULK_MAX 100

static void add_path(lua_State *L, qs_client *c, const char *path)
{
    qs_buf_clear(&c->query);
    if (qs_buf_adds(&c->query, path)) luaL_error(L, "not enough memory");
}

/* Runs a prepared call and decodes a JSON object, or pushes an error. */
static int run_json(lua_State *L, qs_client *c, const char *method, const char *path,
                    size_t len, int resend_ok)
{
    qs_call call;
    long status = 0;
    qs_api_target(L, c, path, len);
    memset(&call, 0, sizeof call);
    call.req.method = method;
    call.resend_ok = resend_ok;
    if (!qs_call_run(L, c, &call, &status)) return 0;
    if (!qs_api_decode(L, c, &c->sync, method, status)) return 0;
    if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 1);
        qs_api_shape_error(L, c, &c->sync, method, status, "expected a JSON object");
        return 0;
    }
    return 1;
}

/* Replaces an empty cursor (QStash's "no more pages") by nil in the result at the top. */
static void normalise_cursor(lua_State *L)
{
    lua_getfield(L, -1, "cursor");
    if (lua_type(L, -1) == LUA_TSTRING && qs_rawlen(L, -1) == 0) {
        lua_pushnil(L);
        lua_setfield(L, -3, "cursor");
    } else if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING) {
        lua_pushnil(L);
        lua_setfield(L, -3, "cursor");
    }
    lua_pop(L, 1);
}

/* Ends the query in c->query: drops a '?' with nothing after it. */
static void end_query(qs_client *c)
{
    if (c->query.n > 0 && c->query.p[c->query.n - 1] == '?') c->query.p[--c->query.n] = '\0';
}

/* One page of GET /v2/dlq with the params table at pidx (may be 0). */
static int list_page(lua_State *L, qs_client *c, const qs_args *a, int pidx)
{
    qs_buf_clear(&c->headers);
    add_path(L, c, "/v2/dlq?");
    if (pidx) {
        if (lua_type(L, pidx) != LUA_TTABLE)
            qs_argerror(a, pidx, "params must be a table, got %s", luaL_typename(L, pidx));
        qs_filters_marshal(a, pidx, pidx, &c->query, 1);
    }
    end_query(c);
    if (!qs_call_have_token(L, c)) return 0;
    if (!run_json(L, c, "GET", c->query.p, c->query.n, 1)) return 0;
    lua_getfield(L, -1, "messages");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_setfield(L, -2, "messages");
    } else if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 2);
        qs_api_shape_error(L, c, &c->sync, "GET", 200, "messages is not an array");
        return 0;
    } else {
        lua_pop(L, 1);
    }
    normalise_cursor(L);
    return 1;
}

/* client:dlq_list(params) -> { messages = {...}, cursor = "..." or nil } */
static int dlq_list(lua_State *L, qs_client *c, const qs_args *a)
{
    int pidx = lua_isnoneornil(L, a->base) ? 0 : a->base;
    if (!list_page(L, c, a, pidx)) return qs_error_finish(L, c->safe);
    return 1;
}

/* The iterator of dlq_messages: upvalues client, params (a private copy),
 * state { page = messages, i = index, cursor = next or nil, done = bool }.
 * It raises on failure in both variants: a nil would silently end the loop. */
static int messages_next(lua_State *L)
{
    qs_client *c = qs_client_check(L, lua_upvalueindex(1));
    int state = lua_upvalueindex(3);
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
        if (lua_toboolean(L, -1)) return 0;
        lua_pop(L, 1);
        /* fetch the next page: params with the cursor */
        {
            qs_args a;
            int params;
            lua_settop(L, 0);
            lua_pushvalue(L, lua_upvalueindex(2));
            params = lua_gettop(L);
            lua_getfield(L, state, "cursor");
            lua_setfield(L, params, "cursor");
            a.L = L;
            a.base = params;
            a.fname = "dlq_messages";
            if (!list_page(L, c, &a, params)) return lua_error(L);
            lua_getfield(L, -1, "messages");
            lua_setfield(L, state, "page");
            qs_pushint(L, 0);
            lua_setfield(L, state, "i");
            lua_getfield(L, -1, "cursor");
            if (lua_isnil(L, -1)) {
                lua_pushboolean(L, 1);
                lua_setfield(L, state, "done");
            } else {
                /* a cursor that does not move would loop forever */
                lua_getfield(L, params, "cursor");
                if (lua_rawequal(L, -1, -2)) {
                    lua_pushboolean(L, 1);
                    lua_setfield(L, state, "done");
                }
                lua_pop(L, 1);
            }
            lua_setfield(L, state, "cursor");
            lua_settop(L, 0);
        }
    }
}

/* client:dlq_messages(params) -> iterator over every message across pages */
static int dlq_messages(lua_State *L, qs_client *c, const qs_args *a)
{
    int pidx = a->base;
    lua_newtable(L); /* private copy of params */
    if (!lua_isnoneornil(L, pidx)) {
        if (lua_type(L, pidx) != LUA_TTABLE)
            qs_argerror(a, pidx, "params must be a table, got %s", luaL_typename(L, pidx));
        lua_pushnil(L);
        while (lua_next(L, pidx)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_settable(L, -4);
        }
        /* validate now, before the loop starts */
        qs_buf_clear(&c->query);
        qs_filters_marshal(a, pidx, pidx, &c->query, 1);
    }
    lua_pushvalue(L, a->base - 1); /* the client */
    lua_insert(L, -2);
    lua_newtable(L);                /* state */
    lua_pushcclosure(L, messages_next, 3);
    return 1;
}

/* client:dlq_get(id) -> the DLQ message */
static int dlq_get(lua_State *L, qs_client *c, const qs_args *a)
{
    add_path(L, c, "/v2/dlq/");
    qs_api_add_id(a, a->base, &c->query);
    qs_buf_clear(&c->headers);
    if (!qs_call_have_token(L, c)) return qs_error_finish(L, c->safe);
    if (!run_json(L, c, "GET", c->query.p, c->query.n, 1)) return qs_error_finish(L, c->safe);
    return 1;
}

/* client:dlq_delete(id) -> true (the answer has no body) */
static int dlq_delete(lua_State *L, qs_client *c, const qs_args *a)
{
    qs_call call;
    long status = 0;
    add_path(L, c, "/v2/dlq/");
    qs_api_add_id(a, a->base, &c->query);
    qs_buf_clear(&c->headers);
    if (!qs_call_have_token(L, c)) return qs_error_finish(L, c->safe);
    qs_api_target(L, c, c->query.p, c->query.n);
    memset(&call, 0, sizeof call);
    call.req.method = "DELETE";
    call.resend_ok = 1; /* deleting twice answers 404, reported as ambiguous */
    if (!qs_call_run(L, c, &call, &status)) return qs_error_finish(L, c->safe);
    lua_pushboolean(L, 1);
    return 1;
}

/* What a bulk call targets: explicit ids, or a filter (possibly all). */
typedef struct bulk {
    int ids;     /* 1: the array at idx holds ids */
    size_t n;    /* number of ids */
} bulk;

static bulk bulk_target(const qs_args *a, int idx)
{
    lua_State *L = a->L;
    bulk b = {0, 0};
    if (lua_type(L, idx) == LUA_TSTRING)
        qs_argerror(a, idx, "expected an array of DLQ ids or a filter table (use dlq_%s for one id)",
                    strstr(a->fname, "delete") ? "delete" : "retry");
    if (lua_type(L, idx) != LUA_TTABLE)
        qs_argerror(a, idx, "expected an array of DLQ ids or a filter table, got %s", luaL_typename(L, idx));
    b.n = qs_rawlen(L, idx);
    if (b.n > 0) {
        size_t i, count = 0;
        b.ids = 1;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            lua_pop(L, 1);
            count++;
        }
        if (count != b.n) qs_argerror(a, idx, "an array of ids must not have other keys");
        for (i = 1; i <= b.n; i++) {
            size_t len;
            int top = lua_gettop(L);
            lua_rawgeti(L, idx, (int)i);
            if (lua_type(L, -1) != LUA_TSTRING)
                qs_argerror(a, idx, "DLQ id #%d is not a string", (int)i);
            /* the same checks as a single id; messages name the list argument */
            {
                qs_args la = *a;
                la.base = a->base + (top + 1 - idx);
                qs_api_check_id(&la, top + 1, &len);
            }
            lua_settop(L, top);
        }
        return b;
    }
    lua_pushnil(L);
    if (!lua_next(L, idx))
        qs_argerror(a, idx, "an empty list would target every message; pass { all = true } for that");
    lua_pop(L, 2);
    return b;
}

/* Adds the ids [from, to] of the array at idx as dlqIds parameters. */
static void add_ids(lua_State *L, qs_buf *q, int idx, size_t from, size_t to)
{
    size_t i;
    for (i = from; i <= to; i++) {
        size_t n;
        const char *s;
        lua_rawgeti(L, idx, (int)i);
        s = lua_tolstring(L, -1, &n);
        qs_query_add(L, q, "dlqIds", s, n);
        lua_pop(L, 1);
    }
}

/* Checks a filter table for a bulk call; returns 1 for { all = true }. */
static int bulk_filter(const qs_args *a, int idx, qs_client *c)
{
    lua_State *L = a->L;
    int all, written;
    lua_getfield(L, idx, "all");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TBOOLEAN)
        qs_argerror(a, idx, "'all' must be a boolean");
    all = lua_toboolean(L, -1);
    lua_pop(L, 1);
    qs_buf_clear(&c->query);
    written = qs_filters_marshal(a, idx, idx, &c->query, 0);
    if (all && written) qs_argerror(a, idx, "'all = true' cannot be combined with filters");
    if (!all && !written)
        qs_argerror(a, idx, "no filter given: pass { all = true } to target every message");
    return all;
}

/* The loop shared by dlq_delete_many and dlq_retry_many. The result table is
 * at `result`; `merge` folds one page into it. Returns 1, or 0 with an error
 * (carrying what was done) at the top. State lives on the Lua stack, so an
 * error raised half-way leaks nothing. */
typedef void (*merge_fn)(lua_State *L, int result, int page);

static int bulk_run(lua_State *L, qs_client *c, const qs_args *a, const char *method,
                    const char *endpoint, merge_fn merge, int result)
{
    int idx = a->base, filter = 0, cursor;
    bulk b = bulk_target(a, idx);
    size_t from = 1;

    if (!b.ids) {
        bulk_filter(a, idx, c);
        lua_pushlstring(L, c->query.p ? c->query.p : "", c->query.n);
        filter = lua_gettop(L);
    }
    if (!qs_call_have_token(L, c)) return 0;
    lua_pushnil(L);
    cursor = lua_gettop(L);
    for (;;) {
        int page;
        add_path(L, c, endpoint);
        if (qs_buf_addc(&c->query, '?')) return luaL_error(L, "not enough memory");
        if (b.ids) {
            size_t to = from + BULK_MAX - 1;
            if (to > b.n) to = b.n;
            add_ids(L, &c->query, idx, from, to);
            from = to + 1;
        } else {
            size_t n;
            const char *f = lua_tolstring(L, filter, &n);
            if (qs_buf_add(&c->query, f, n)) return luaL_error(L, "not enough memory");
            qs_query_add(L, &c->query, "count", "100", 3);
            if (!lua_isnil(L, cursor)) {
                f = lua_tolstring(L, cursor, &n);
                qs_query_add(L, &c->query, "cursor", f, n);
            }
        }
        if (!run_json(L, c, method, c->query.p, c->query.n, 1)) {
            /* the error carries what was done */
            lua_pushnil(L);
            while (lua_next(L, result)) {
                lua_pushvalue(L, -2);
                lua_insert(L, -2);
                lua_settable(L, -4);
            }
            return 0;
        }
        page = lua_gettop(L);
        merge(L, result, page);
        normalise_cursor(L);
        if (b.ids) {
            lua_settop(L, cursor);
            if (from > b.n) return 1;
            continue;
        }
        lua_getfield(L, page, "cursor");
        /* done at the end, or when the cursor stops moving */
        if (lua_isnil(L, -1) || lua_rawequal(L, -1, cursor)) return 1;
        lua_replace(L, cursor);
        lua_settop(L, cursor);
    }
}

static void merge_deleted(lua_State *L, int result, int page)
{
    lua_Number total;
    lua_getfield(L, result, "deleted");
    total = lua_tonumber(L, -1);
    lua_getfield(L, page, "deleted");
    total += lua_tonumber(L, -1);
    lua_pop(L, 2);
    qs_pushint(L, (long long)total);
    lua_setfield(L, result, "deleted");
}

static void merge_responses(lua_State *L, int result, int page)
{
    size_t n, i;
    lua_getfield(L, result, "responses");
    n = qs_rawlen(L, -1);
    lua_getfield(L, page, "responses");
    if (lua_type(L, -1) == LUA_TTABLE) {
        size_t m = qs_rawlen(L, -1);
        for (i = 1; i <= m; i++) {
            lua_rawgeti(L, -1, (int)i);
            if (lua_type(L, -1) == LUA_TTABLE) qs_shape_publish_response(L);
            lua_rawseti(L, -3, (int)(n + i));
        }
    }
    lua_pop(L, 2);
}

/* client:dlq_delete_many(ids_or_filter) -> { deleted = n } (query form only:
 * a JSON body ignored by a server would mean "delete everything") */
static int dlq_delete_many(lua_State *L, qs_client *c, const qs_args *a)
{
    int result;
    lua_settop(L, a->base);
    qs_buf_clear(&c->headers);
    lua_createtable(L, 0, 1);
    qs_pushint(L, 0);
    lua_setfield(L, -2, "deleted");
    result = lua_gettop(L);
    if (!bulk_run(L, c, a, "DELETE", "/v2/dlq", merge_deleted, result)) return qs_error_finish(L, c->safe);
    lua_settop(L, result);
    return 1;
}

/* client:dlq_retry_many(ids_or_filter, opts) -> { responses = {...} } */
static int dlq_retry_many(lua_State *L, qs_client *c, const qs_args *a)
{
    int result;
    lua_settop(L, a->base + 1);
    qs_buf_clear(&c->headers);
    qs_opts_marshal(a, a->base + 1, &c->headers, 0, NULL);
    lua_createtable(L, 0, 1);
    lua_newtable(L);
    lua_setfield(L, -2, "responses");
    result = lua_gettop(L);
    if (!bulk_run(L, c, a, "POST", "/v2/dlq/retry", merge_responses, result))
        return qs_error_finish(L, c->safe);
    lua_settop(L, result);
    return 1;
}

const qs_api qs_dlq_apis[] = {
    {"dlq_retry", dlq_retry},
    {"dlq_list", dlq_list},
    {"dlq_messages", dlq_messages},
    {"dlq_get", dlq_get},
    {"dlq_delete", dlq_delete},
    {"dlq_delete_many", dlq_delete_many},
    {"dlq_retry_many", dlq_retry_many},
    {NULL, NULL},
};
