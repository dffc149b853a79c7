/* The DLQ API as plans (call.h): retry one message (the heart of the
 * module), and the rest of the dead-letter queue endpoints. Each plan reads
 * its arguments into the call's request, and turns successful answers into
 * results or the next page's request. */
#include <string.h>
#include <lauxlib.h>
#include "api/api.h"
#include "base/compat.h"
#include "api/dlq.h"
#include "core/errors.h"
#include "core/filters.h"
#include "api/follow.h"
#include "api/pages.h"
#include "api/plan.h"
#include "core/options.h"
#include "core/response.h"
#include "call/result.h"
#include "call/sync.h"

#define BULK_MAX 100

/* ---- dlq_retry ---------------------------------------------------------- */

/* client:dlq_retry(id, opts) -> { messageId = ..., deduplicated = false }
 * (with opts.follow, and `delivery` = what following the new message saw) */
static void build_retry(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    int o = a->base + 1;
    k->req.method = "POST";
    /* A DLQ entry is consumed once: after an unknown outcome a repeat either
     * succeeds or answers 404, which is reported as ambiguous. */
    k->req.resend_ok = 1;
    qs_plan_start_target(L, k, "/v2/dlq/retry/");
    qs_api_add_id(a, a->base, &k->req.target);
    qs_opts_marshal(a, o, &k->req.headers, QS_OPTS_RETRY);
    qs_plan_target_done(L, k);
    if (lua_type(L, o) == LUA_TTABLE) {
        lua_getfield(L, o, "follow");
        if (!lua_isnil(L, -1)) {
            qs_follow_config(a, o, lua_gettop(L), k);
            /* an __index that answers differently on each read */
            if (k->follow && !uv) qs_argerror(a, o, "option 'follow' changed while the options were read");
        }
        lua_pop(L, 1);
    }
}

static int absorb_retry(lua_State *L, qs_call *k, int uv, long status)
{
    if (k->follow) return qs_follow_retry_absorb(L, k, uv, status);
    return qs_result_publish(L, &k->req, status) ? 0 : -1;
}

const qs_plan qs_plan_dlq_retry = {"dlq_retry", 0, build_retry, absorb_retry, qs_follow_wants_state, NULL, NULL};

/* ---- dlq_list, dlq_messages -------------------------------------------- */

/* client:dlq_list(params) -> { messages = {...}, cursor = "..." or nil } */
static void build_list(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)uv;
    qs_plan_list_target(L, k, a, "/v2/dlq?", QS_FSET_DLQ_LIST);
}

static int absorb_list(lua_State *L, qs_call *k, int uv, long status)
{
    (void)uv;
    if (!qs_plan_json_object(L, k, status)) return -1;
    lua_getfield(L, -1, "messages");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_setfield(L, -2, "messages");
    } else if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 2);
        qs_result_shape_error(L, &k->req, status, "messages is not an array");
        return -1;
    } else {
        lua_pop(L, 1);
    }
    qs_pages_normalise_cursor(L);
    return 0;
}

const qs_plan qs_plan_dlq_list = {"dlq_list", 0, build_list, absorb_list, NULL, NULL, NULL};

static const qs_pager dlq_pager = {&qs_plan_dlq_list, "messages", QS_FSET_DLQ_LIST};

/* client:dlq_messages(params) -> iterator over every message across pages */
static int dlq_messages(lua_State *L, qs_client *c, const qs_args *a)
{
    (void)c;
    return qs_pages_iterate(L, a, &dlq_pager);
}

/* ---- dlq_get, dlq_delete ------------------------------------------------ */

static void build_by_id(lua_State *L, qs_call *k, const qs_args *a, const char *method)
{
    k->req.method = method;
    /* reading twice is harmless; deleting twice answers 404, reported as ambiguous */
    k->req.resend_ok = 1;
    qs_plan_start_target(L, k, "/v2/dlq/");
    qs_api_add_id(a, a->base, &k->req.target);
    qs_plan_target_done(L, k);
}

/* client:dlq_get(id) -> the DLQ message */
static void build_get(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)uv;
    build_by_id(L, k, a, "GET");
}

static int absorb_get(lua_State *L, qs_call *k, int uv, long status)
{
    (void)uv;
    return qs_plan_json_object(L, k, status) ? 0 : -1;
}

const qs_plan qs_plan_dlq_get = {"dlq_get", 0, build_get, absorb_get, NULL, NULL, NULL};

/* client:dlq_delete(id) -> true (the answer has no body) */
static void build_delete(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)uv;
    build_by_id(L, k, a, "DELETE");
}

static int absorb_delete(lua_State *L, qs_call *k, int uv, long status)
{
    (void)k;
    (void)uv;
    (void)status;
    lua_pushboolean(L, 1);
    return 0;
}

const qs_plan qs_plan_dlq_delete = {"dlq_delete", 0, build_delete, absorb_delete, NULL, NULL, NULL};

/* ---- dlq_delete_many, dlq_retry_many ------------------------------------ */

void qs_bulk_target(lua_State *L, const qs_args *a, int uv, const qs_bulk *b)
{
    int idx = a->base;
    size_t n;
    if (lua_type(L, idx) == LUA_TSTRING)
        qs_argerror(a, idx, "expected an array of %ss or a filter table (use %s for one id)", b->id_what, b->one);
    if (lua_type(L, idx) != LUA_TTABLE)
        qs_argerror(a, idx, "expected an array of %ss or a filter table, got %s", b->id_what, luaL_typename(L, idx));
    n = qs_rawlen(L, idx);
    if (n > 0) {
        size_t i, count = 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            lua_pop(L, 1);
            count++;
        }
        if (count != n) qs_argerror(a, idx, "an array of ids must not have other keys");
        lua_createtable(L, (int)n, 0);
        for (i = 1; i <= n; i++) {
            size_t len;
            int top = lua_gettop(L);
            lua_rawgeti(L, idx, (int)i);
            if (lua_type(L, -1) != LUA_TSTRING) qs_argerror(a, idx, "%s #%d is not a string", b->id_what, (int)i);
            /* the same checks as a single id; messages name the list argument */
            {
                qs_args la = *a;
                la.base = a->base + (top + 1 - idx);
                qs_api_check_id_of(&la, top + 1, &len, b->id_what);
            }
            lua_rawseti(L, top, (int)i);
        }
        lua_setfield(L, uv, "ids");
        return;
    }
    lua_pushnil(L);
    if (!lua_next(L, idx))
        qs_argerror(a, idx, "an empty list would target every message; pass { all = true } for that");
    lua_pop(L, 2);
    {
        int all, written;
        qs_buf *q = qs_api_scratch(L);
        lua_getfield(L, idx, "all");
        if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TBOOLEAN)
            qs_argerror(a, idx, "'all' must be a boolean");
        all = lua_toboolean(L, -1);
        lua_pop(L, 1);
        written = qs_filters_marshal(a, idx, idx, q, b->filter_set);
        if (all && written) qs_argerror(a, idx, "'all = true' cannot be combined with filters");
        if (!all && !written)
            qs_argerror(a, idx, "no filter given: pass { all = true } to target every message");
        lua_pushlstring(L, q->p ? q->p : "", q->n);
        lua_setfield(L, uv, "filter");
        lua_pop(L, 1); /* the scratch buffer: freed by the collector */
    }
}

void qs_bulk_add_ids(lua_State *L, qs_call *k, int ids, const char *param)
{
    size_t n = qs_rawlen(L, ids), i, to = k->page + BULK_MAX;
    if (to > n) to = n;
    for (i = k->page + 1; i <= to; i++) {
        size_t len;
        const char *s;
        lua_rawgeti(L, ids, (int)i);
        s = lua_tolstring(L, -1, &len);
        qs_query_add(L, &k->req.target, param, s, len);
        lua_pop(L, 1);
    }
    k->page = to;
}

/* Sets the target of the next page: the next 100 ids, or the filter with
 * the cursor of the previous page. */
static void bulk_page(lua_State *L, qs_call *k, int uv, const char *endpoint)
{
    qs_buf *t = &k->req.target;
    qs_plan_start_target(L, k, endpoint);
    if (qs_buf_addc(t, '?')) qs_plan_oom(L);
    lua_getfield(L, uv, "ids");
    if (lua_type(L, -1) == LUA_TTABLE) {
        qs_bulk_add_ids(L, k, lua_gettop(L), "dlqIds");
    } else {
        size_t len;
        const char *f;
        lua_getfield(L, uv, "filter");
        f = lua_tolstring(L, -1, &len);
        if (qs_buf_add(t, f, len)) qs_plan_oom(L);
        qs_query_add(L, t, "count", "100", 3);
        lua_getfield(L, uv, "cursor");
        if (lua_type(L, -1) == LUA_TSTRING) {
            f = lua_tolstring(L, -1, &len);
            qs_query_add(L, t, "cursor", f, len);
        }
        lua_pop(L, 2);
        k->page++;
    }
    lua_pop(L, 1);
    qs_plan_target_done(L, k);
}

/* After a page: another (1, target set) or the end (0, acc pushed); a
 * cursor seen before ends the loop with an error (-1). */
static int bulk_next(lua_State *L, qs_call *k, int uv, int page, const char *endpoint)
{
    lua_getfield(L, uv, "ids");
    if (lua_type(L, -1) == LUA_TTABLE) {
        size_t n = qs_rawlen(L, -1);
        lua_pop(L, 1);
        if (k->page < n) {
            bulk_page(L, k, uv, endpoint);
            return 1;
        }
        lua_getfield(L, uv, "acc");
        return 0;
    }
    lua_pop(L, 1);
    qs_pages_normalise_cursor(L);
    lua_getfield(L, page, "cursor");
    if (lua_isnil(L, -1)) {
        lua_getfield(L, uv, "acc");
        return 0;
    }
    if (qs_pages_cursor_seen(L, uv)) {
        qs_pages_cursor_repeated(L, &k->req, lua_tostring(L, -1));
        return -1;
    }
    lua_setfield(L, uv, "cursor");
    bulk_page(L, k, uv, endpoint);
    return 1;
}

static const qs_bulk dlq_bulk_delete = {"DLQ id", "dlq_delete", QS_FSET_DLQ_BULK};
static const qs_bulk dlq_bulk_retry = {"DLQ id", "dlq_retry", QS_FSET_DLQ_BULK};

static void bulk_build(lua_State *L, qs_call *k, const qs_args *a, int uv, const char *method,
                       const char *endpoint)
{
    k->req.method = method;
    k->req.resend_ok = 1;
    qs_bulk_target(L, a, uv, strcmp(method, "DELETE") == 0 ? &dlq_bulk_delete : &dlq_bulk_retry);
    lua_newtable(L);
    lua_setfield(L, uv, "seen");
    bulk_page(L, k, uv, endpoint);
}

/* client:dlq_delete_many(ids_or_filter) -> { deleted = n } (query form only:
 * a JSON body ignored by a server would mean "delete everything") */
static void build_delete_many(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    bulk_build(L, k, a, uv, "DELETE", "/v2/dlq");
    lua_createtable(L, 0, 1);
    qs_pushint(L, 0);
    lua_setfield(L, -2, "deleted");
    lua_setfield(L, uv, "acc");
}

static int absorb_delete_many(lua_State *L, qs_call *k, int uv, long status)
{
    int page;
    lua_Number total;
    if (!qs_plan_json_object(L, k, status)) return -1;
    page = lua_gettop(L);
    lua_getfield(L, uv, "acc");
    lua_getfield(L, -1, "deleted");
    total = lua_tonumber(L, -1);
    lua_getfield(L, page, "deleted");
    total += lua_tonumber(L, -1);
    lua_pop(L, 2);
    qs_pushint(L, (long long)total);
    lua_setfield(L, -2, "deleted");
    lua_pop(L, 1);
    return bulk_next(L, k, uv, page, "/v2/dlq");
}

const qs_plan qs_plan_dlq_delete_many = {"dlq_delete_many", 1, build_delete_many, absorb_delete_many, NULL, NULL, NULL};

/* client:dlq_retry_many(ids_or_filter, opts) -> { responses = {...} } */
static void build_retry_many(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    if (lua_type(L, a->base + 1) == LUA_TTABLE) {
        lua_getfield(L, a->base + 1, "follow");
        if (!lua_isnil(L, -1))
            qs_argerror(a, a->base + 1, "option 'follow' applies to dlq_retry and dlq_retry_each "
                                        "(follow_many takes the messageIds of the responses)");
        lua_pop(L, 1);
    }
    qs_opts_marshal(a, a->base + 1, &k->req.headers, QS_OPTS_RETRY);
    bulk_build(L, k, a, uv, "POST", "/v2/dlq/retry");
    lua_createtable(L, 0, 1);
    lua_newtable(L);
    lua_setfield(L, -2, "responses");
    lua_setfield(L, uv, "acc");
}

static int absorb_retry_many(lua_State *L, qs_call *k, int uv, long status)
{
    int page;
    size_t n, m, i;
    if (!qs_plan_json_object(L, k, status)) return -1;
    page = lua_gettop(L);
    lua_getfield(L, uv, "acc");
    lua_getfield(L, -1, "responses");
    n = qs_rawlen(L, -1);
    lua_getfield(L, page, "responses");
    if (lua_type(L, -1) == LUA_TTABLE) {
        m = qs_rawlen(L, -1);
        for (i = 1; i <= m; i++) {
            lua_rawgeti(L, -1, (int)i);
            if (lua_type(L, -1) == LUA_TTABLE) qs_shape_publish_response(L);
            lua_rawseti(L, -3, (int)(n + i));
        }
    }
    lua_settop(L, page);
    return bulk_next(L, k, uv, page, "/v2/dlq/retry");
}

const qs_plan qs_plan_dlq_retry_many = {"dlq_retry_many", 1, build_retry_many, absorb_retry_many, NULL, NULL, NULL};

const qs_api qs_dlq_apis[] = {
    {"dlq_retry", NULL, &qs_plan_dlq_retry},
    {"dlq_list", NULL, &qs_plan_dlq_list},
    {"dlq_messages", dlq_messages, NULL},
    {"dlq_get", NULL, &qs_plan_dlq_get},
    {"dlq_delete", NULL, &qs_plan_dlq_delete},
    {"dlq_delete_many", NULL, &qs_plan_dlq_delete_many},
    {"dlq_retry_many", NULL, &qs_plan_dlq_retry_many},
    {NULL, NULL, NULL},
};
