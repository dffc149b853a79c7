/* The messages API as plans (call.h): read one message (GET
 * /v2/messages/{id}), cancel one (DELETE /v2/messages/{id}) and cancel many
 * (DELETE /v2/messages, query form only: a JSON body ignored by a server
 * would mean "no filter", i.e. every message). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "api/api.h"
#include "base/clock.h"
#include "base/compat.h"
#include "api/dlq.h"
#include "core/filters.h"
#include "api/messages.h"
#include "api/plan.h"
#include "call/result.h"

#define BULK_MAX 100

static void build_by_id(lua_State *L, qs_call *k, const qs_args *a, const char *method)
{
    k->req.method = method;
    /* reading twice is harmless; cancelling twice answers 404, reported as ambiguous */
    k->req.resend_ok = 1;
    qs_plan_start_target(L, k, "/v2/messages/");
    qs_api_add_id_of(a, a->base, &k->req.target, "message id");
    qs_plan_target_done(L, k);
}

/* client:message(id) -> the message, as QStash stores it until delivered */
static void build_message(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)uv;
    build_by_id(L, k, a, "GET");
}

static int absorb_message(lua_State *L, qs_call *k, int uv, long status)
{
    (void)uv;
    return qs_plan_json_object(L, k, status) ? 0 : -1;
}

static const qs_plan message_plan = {"message", 0, build_message, absorb_message, NULL, NULL, NULL};

/* client:cancel(id) -> true */
static void build_cancel(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)uv;
    build_by_id(L, k, a, "DELETE");
}

static int absorb_cancel(lua_State *L, qs_call *k, int uv, long status)
{
    (void)k;
    (void)uv;
    (void)status;
    lua_pushboolean(L, 1);
    return 0;
}

static const qs_plan cancel_plan = {"cancel", 0, build_cancel, absorb_cancel, NULL, NULL, NULL};

/* ---- cancel_many -------------------------------------------------------- */

static const qs_bulk cancel_bulk = {"message id", "cancel", QS_FSET_CANCEL};

/* The next request: the next 100 ids, or the filter (nothing for `all`)
 * with count=100. QStash cancels at most `count` per request and has no
 * cursor here: a filter is sent again until a request cancels fewer. */
static void cancel_page(lua_State *L, qs_call *k, int uv)
{
    qs_plan_start_target(L, k, "/v2/messages?");
    lua_getfield(L, uv, "ids");
    if (lua_type(L, -1) == LUA_TTABLE) {
        qs_bulk_add_ids(L, k, lua_gettop(L), "messageIds");
    } else {
        size_t len;
        const char *f;
        lua_getfield(L, uv, "filter");
        f = lua_tolstring(L, -1, &len);
        if (qs_buf_add(&k->req.target, f, len)) qs_plan_oom(L);
        qs_query_add(L, &k->req.target, "count", "100", 3);
        lua_pop(L, 1);
        k->page++;
    }
    lua_pop(L, 1);
    qs_plan_target_done(L, k);
}

/* A filter cancel never reaches messages created after the call began
 * (a producer still publishing to the URL would keep it going, and lose
 * those messages): uv.filter gets `toDate` = the call's start in unix ms
 * (the wall clock, read once here), or the caller's `to_date` when that is
 * earlier. The caller's, marshalled as "toDate=<digits>", is taken out of
 * the query first, so that exactly one goes. */
static void cap_to_date(lua_State *L, int uv)
{
    char num[32];
    size_t n, i = 0;
    const char *f;
    double to = floor(qs_wall() * 1000.0);
    qs_buf *q = qs_api_scratch(L);
    lua_getfield(L, uv, "filter");
    f = lua_tolstring(L, -1, &n);
    while (i < n) {
        size_t end = i;
        while (end < n && f[end] != '&') end++;
        if (end - i > 7 && memcmp(f + i, "toDate=", 7) == 0) {
            double v = strtod(f + i + 7, NULL);
            if (v < to) to = v;
        } else if ((q->n > 0 && qs_buf_addc(q, '&')) || qs_buf_add(q, f + i, end - i)) {
            qs_plan_oom(L);
        }
        i = end + 1;
    }
    snprintf(num, sizeof num, "%.0f", to);
    qs_query_add(L, q, "toDate", num, strlen(num));
    lua_pushlstring(L, q->p, q->n);
    lua_setfield(L, uv, "filter");
    lua_pop(L, 2); /* the filter, the scratch buffer */
}

/* client:cancel_many(ids_or_filter) -> { cancelled = n } */
static void build_cancel_many(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    k->req.method = "DELETE";
    k->req.resend_ok = 1;
    qs_bulk_target(L, a, uv, &cancel_bulk);
    lua_getfield(L, uv, "filter");
    if (lua_type(L, -1) == LUA_TSTRING) cap_to_date(L, uv);
    lua_pop(L, 1);
    lua_createtable(L, 0, 1);
    qs_pushint(L, 0);
    lua_setfield(L, -2, "cancelled");
    lua_setfield(L, uv, "acc");
    cancel_page(L, k, uv);
}

static int absorb_cancel_many(lua_State *L, qs_call *k, int uv, long status)
{
    lua_Number got, total;
    int ids;
    if (!qs_plan_json_object(L, k, status)) return -1;
    lua_getfield(L, -1, "cancelled");
    got = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
    lua_pop(L, 2);
    /* NaN fails both comparisons (lua-cjson reads NaN and Infinity) */
    if (!(got >= 0 && got <= BULK_MAX) || got != floor(got)) {
        qs_result_shape_error(L, &k->req, status, "'cancelled' is not a count from 0 to 100");
        return -1;
    }
    lua_getfield(L, uv, "acc");
    lua_getfield(L, -1, "cancelled");
    total = lua_tonumber(L, -1) + got;
    lua_pop(L, 1);
    qs_pushint(L, (long long)total);
    lua_setfield(L, -2, "cancelled");
    lua_getfield(L, uv, "ids");
    ids = lua_type(L, -1) == LUA_TTABLE;
    if (ids ? k->page < qs_rawlen(L, -1) : got >= BULK_MAX) {
        lua_pop(L, 2);
        cancel_page(L, k, uv);
        return 1;
    }
    lua_pop(L, 1);
    return 0; /* acc at the top */
}

static const qs_plan cancel_many_plan = {"cancel_many", 1, build_cancel_many, absorb_cancel_many, NULL, NULL, NULL};

const qs_api qs_message_apis[] = {
    {"message", NULL, &message_plan},
    {"cancel", NULL, &cancel_plan},
    {"cancel_many", NULL, &cancel_many_plan},
    {NULL, NULL, NULL},
};
