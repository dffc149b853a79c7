/* The logs API, as plans (call.h): logs(filter) reads one page of
 * GET /v2/logs; log_entries(filter) walks every page (pages.c). Following a
 * message to its end reads the same pages: follow.c. */
#include <lauxlib.h>
#include "core/filters.h"
#include "api/logs.h"
#include "api/pages.h"
#include "api/plan.h"
#include "call/result.h"

/* ---- logs, log_entries --------------------------------------------------- */

/* client:logs(filter) -> { logs = { entry, ... }, cursor = "..." or nil } */
static void build_logs(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)uv;
    qs_plan_list_target(L, k, a, "/v2/logs?", QS_FSET_LOGS);
}

/* Makes the page at the top { logs = array, cursor = string or nil }:
 * QStash's OpenAPI names the array `logs`, its docs and qstash-js `events`.
 * 1, or 0 with a decode error pushed instead. */
int qs_logs_page(lua_State *L, qs_call *k, long status)
{
    if (!qs_plan_json_object(L, k, status)) return 0;
    lua_getfield(L, -1, "logs");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_getfield(L, -1, "events");
    }
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
    } else if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 2);
        qs_result_shape_error(L, &k->req, status, "logs is not an array");
        return 0;
    }
    lua_setfield(L, -2, "logs");
    lua_pushnil(L);
    lua_setfield(L, -2, "events");
    qs_pages_normalise_cursor(L);
    return 1;
}

static int absorb_logs(lua_State *L, qs_call *k, int uv, long status)
{
    (void)uv;
    return qs_logs_page(L, k, status) ? 0 : -1;
}

static const qs_plan logs_plan = {"logs", 0, build_logs, absorb_logs, NULL, NULL, NULL};
static const qs_pager logs_pager = {&logs_plan, "logs", QS_FSET_LOGS};

/* client:log_entries(filter) -> iterator over every entry across pages */
static int log_entries(lua_State *L, qs_client *c, const qs_args *a)
{
    (void)c;
    return qs_pages_iterate(L, a, &logs_pager);
}

const qs_api qs_logs_apis[] = {
    {"logs", NULL, &logs_plan},
    {"log_entries", log_entries, NULL},
    {NULL, NULL, NULL},
};
