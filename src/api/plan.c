/* What the plans share (see plan.h). */
#include <lauxlib.h>
#include "core/filters.h"
#include "api/plan.h"
#include "call/result.h"

void qs_plan_oom(lua_State *L)
{
    luaL_error(L, "not enough memory");
}

void qs_plan_start_target(lua_State *L, qs_call *k, const char *path)
{
    qs_buf_clear(&k->req.target);
    if (qs_buf_adds(&k->req.target, path)) qs_plan_oom(L);
}

void qs_plan_target_done(lua_State *L, qs_call *k)
{
    qs_buf *q = &k->req.target;
    if (q->n > 0 && q->p[q->n - 1] == '?') q->p[--q->n] = '\0';
    if (qs_req_set_target(&k->req, q->p, q->n)) qs_plan_oom(L);
}

void qs_plan_list_target(lua_State *L, qs_call *k, const qs_args *a, const char *path, int set)
{
    int p = a->base;
    k->req.method = "GET";
    k->req.resend_ok = 1;
    qs_plan_start_target(L, k, path);
    if (!lua_isnoneornil(L, p)) {
        if (lua_type(L, p) != LUA_TTABLE)
            qs_argerror(a, p, "%s must be a table, got %s", set == QS_FSET_LOGS ? "filter" : "params",
                        luaL_typename(L, p));
        qs_filters_marshal(a, p, p, &k->req.target, set);
    }
    qs_plan_target_done(L, k);
}

int qs_plan_json_object(lua_State *L, qs_call *k, long status)
{
    if (!qs_result_json(L, &k->req, status)) return 0;
    if (lua_type(L, -1) == LUA_TTABLE) return 1;
    lua_pop(L, 1);
    qs_result_shape_error(L, &k->req, status, "expected a JSON object");
    return 0;
}
