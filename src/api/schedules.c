/* Schedules as plans (call.h): create or overwrite (POST
 * /v2/schedules/{destination}, the cron in Upstash-Cron and publish's
 * options as headers), get, list, delete, pause and resume (PATCH, as the
 * official SDKs send) under /v2/schedules. */
#include <string.h>
#include <strings.h>
#include <lauxlib.h>
#include "api/api.h"
#include "base/compat.h"
#include "core/cron.h"
#include "core/options.h"
#include "core/response.h"
#include "api/plan.h"
#include "api/publish.h"
#include "api/schedules.h"
#include "call/result.h"

/* A cron expression is short; this bounds what goes into a header. */
#define CRON_MAX_LEN 512

/* Headers a schedule must not carry, with the option that sends each:
 * QStash documents none of them for schedules (a schedule's runs are set
 * by its cron, and deduplicating one run against the next would drop it),
 * and Upstash-Cron is the cron argument's. */
static const struct refused {
    const char *header, *option, *why;
} refused[] = {
    {"Upstash-Not-Before", "not_before", "QStash documents no Upstash-Not-Before for schedules (the cron sets each run)"},
    {"Upstash-Deduplication-Id", "deduplication_id", "QStash documents no deduplication for schedules"},
    {"Upstash-Content-Based-Deduplication", "content_based_deduplication",
     "QStash documents no deduplication for schedules"},
    {"Upstash-Cron", "headers", "the cron is schedule_create's second argument"},
    {NULL, NULL, NULL},
};

/* Raises for a header line from `from` on that a schedule must not carry. */
static void refuse_headers(const qs_args *a, int opts, const qs_buf *h, size_t from)
{
    size_t i;
    const struct refused *r;
    for (i = from; i < h->n; i += strlen(h->p + i) + 1) {
        const char *line = h->p + i, *colon = strchr(line, ':');
        size_t n = colon ? (size_t)(colon - line) : 0;
        for (r = refused; r->header; r++)
            if (strlen(r->header) == n && strncasecmp(line, r->header, n) == 0)
                qs_argerror(a, opts, "option '%s' does not apply to schedules: %s", r->option, r->why);
    }
}

/* The schedule id at idx: a string of QStash's name rule (the ids it makes,
 * scd_..., are of it too), its own percent-encoding. */
static const char *check_id(const qs_args *a, int idx, size_t *n)
{
    lua_State *L = a->L;
    const char *s, *why;
    if (lua_type(L, idx) != LUA_TSTRING)
        qs_argerror(a, idx, "schedule id must be a string, got %s", luaL_typename(L, idx));
    s = lua_tolstring(L, idx, n);
    if ((why = qs_name_problem(s, *n)) != NULL) qs_argerror(a, idx, "schedule id %s", why);
    return s;
}

/* ---- create ------------------------------------------------------------- */

/* The request of schedule_create and schedule_create_json: the body at
 * `body` (nil: none), the cron checked and sent first, then publish's. */
static void build_create_with(lua_State *L, qs_call *k, const qs_args *a, int body, qs_opts_mode mode)
{
    int cron = a->base + 1, opts = a->base + 3;
    size_t n, from;
    const char *c, *why;
    char buf[160];
    qs_publish_check_destination(a, a->base);
    if (lua_type(L, cron) != LUA_TSTRING)
        qs_argerror(a, cron, "cron must be a string, got %s", luaL_typename(L, cron));
    c = lua_tolstring(L, cron, &n);
    if (n > CRON_MAX_LEN) qs_argerror(a, cron, "cron is longer than %d bytes", CRON_MAX_LEN);
    if ((why = qs_cron_problem(c, n, buf, sizeof buf)) != NULL) qs_argerror(a, cron, "%s", why);
    qs_opts_add_header(a, cron, &k->req.headers, "", "Upstash-Cron", 12, c, n, "cron");
    from = k->req.headers.n;
    qs_plan_start_target(L, k, "/v2/schedules/");
    qs_publish_build(L, k, a, a->base, body, opts, mode);
    refuse_headers(a, opts, &k->req.headers, from);
    /* Without an id each request makes another schedule; with one it
     * overwrites the same schedule, so repeating it is harmless. */
    k->req.resend_ok = 0;
    if (lua_type(L, opts) == LUA_TTABLE) {
        lua_getfield(L, opts, "schedule_id");
        k->req.resend_ok = !lua_isnil(L, -1);
        lua_pop(L, 1);
    }
}

/* client:schedule_create(destination, cron, body, opts) -> { scheduleId } */
static void build_create(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    int b = a->base + 2;
    (void)uv;
    if (!lua_isnoneornil(L, b) && lua_type(L, b) != LUA_TSTRING)
        qs_argerror(a, b, "body must be a string, got %s", luaL_typename(L, b));
    build_create_with(L, k, a, b, QS_OPTS_SCHEDULE);
}

/* client:schedule_create_json(destination, cron, value, opts): the value
 * encoded by lua-cjson, sent on every run */
static void build_create_json(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)uv;
    if (qs_json_encode(L, a->base + 2) != 0)
        qs_argerror(a, a->base + 2, "cannot encode as JSON: %s", lua_tostring(L, -1));
    build_create_with(L, k, a, lua_gettop(L), QS_OPTS_SCHEDULE_JSON);
}

static int absorb_create(lua_State *L, qs_call *k, int uv, long status)
{
    (void)uv;
    if (!qs_plan_json_object(L, k, status)) return -1;
    lua_getfield(L, -1, "scheduleId");
    if (lua_type(L, -1) == LUA_TSTRING) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pop(L, 2);
    qs_result_shape_error(L, &k->req, status, "the answer has no scheduleId string");
    return -1;
}

/* ---- the schedule resource ---------------------------------------------- */

/* A request on the schedule's path + the row's tail, with the row's method
 * and no body. Each is idempotent (pause and resume too), so repeatable. */
static void build_on_id(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    size_t n;
    const char *id = check_id(a, a->base, &n);
    (void)uv;
    k->req.method = k->plan->method;
    k->req.resend_ok = 1;
    qs_plan_start_target(L, k, "/v2/schedules/");
    if (qs_buf_add(&k->req.target, id, n) || qs_buf_adds(&k->req.target, k->plan->tail)) qs_plan_oom(L);
    qs_plan_target_done(L, k);
}

static void build_list(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)a;
    (void)uv;
    k->req.method = "GET";
    k->req.resend_ok = 1;
    qs_plan_start_target(L, k, "/v2/schedules");
    qs_plan_target_done(L, k);
}

/* The answer of a write: whatever its body, `true`. */
static int absorb_true(lua_State *L, qs_call *k, int uv, long status)
{
    (void)k;
    (void)uv;
    (void)status;
    lua_pushboolean(L, 1);
    return 0;
}

/* Checks the Schedule object at the top: scheduleId, cron and destination
 * strings; isPaused false when left out; the creator's address under both
 * of QStash's spellings (callerIp, callerIP) when it gives one. NULL, or
 * what is wrong. */
static const char *shape_schedule(lua_State *L)
{
    static const char *const strings[] = {"scheduleId", "cron", "destination", NULL};
    const char *const *f;
    int t;
    if (lua_type(L, -1) != LUA_TTABLE) return "a schedule is not a JSON object";
    for (f = strings; *f; f++) {
        lua_getfield(L, -1, *f);
        t = lua_type(L, -1);
        lua_pop(L, 1);
        if (t != LUA_TSTRING) return "a schedule's scheduleId, cron or destination is not a string";
    }
    lua_getfield(L, -1, "isPaused");
    t = lua_type(L, -1);
    lua_pop(L, 1);
    if (t == LUA_TNIL) {
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "isPaused");
    } else if (t != LUA_TBOOLEAN) {
        return "a schedule's isPaused is not a boolean";
    }
    lua_getfield(L, -1, "callerIp");
    lua_getfield(L, -2, "callerIP");
    if (lua_isnil(L, -2) && !lua_isnil(L, -1)) {
        lua_pushvalue(L, -1);
        lua_setfield(L, -4, "callerIp");
    } else if (!lua_isnil(L, -2) && lua_isnil(L, -1)) {
        lua_pushvalue(L, -2);
        lua_setfield(L, -4, "callerIP");
    }
    lua_pop(L, 2);
    return NULL;
}

static int absorb_get(lua_State *L, qs_call *k, int uv, long status)
{
    (void)uv;
    return qs_result_shaped(L, &k->req, status, shape_schedule, NULL) ? 0 : -1;
}

/* QStash answers a bare array. */
static int absorb_list(lua_State *L, qs_call *k, int uv, long status)
{
    (void)uv;
    return qs_result_shaped(L, &k->req, status, shape_schedule, "schedules") ? 0 : -1;
}

static const qs_plan create_plan = {"schedule_create", 0, build_create, absorb_create, NULL, NULL, NULL};
static const qs_plan create_json_plan = {"schedule_create_json", 0, build_create_json, absorb_create, NULL, NULL, NULL};
static const qs_plan get_plan = {"schedule_get", 0, build_on_id, absorb_get, NULL, "GET", ""};
static const qs_plan list_plan = {"schedule_list", 0, build_list, absorb_list, NULL, NULL, NULL};
static const qs_plan delete_plan = {"schedule_delete", 0, build_on_id, absorb_true, NULL, "DELETE", ""};
static const qs_plan pause_plan = {"schedule_pause", 0, build_on_id, absorb_true, NULL, "PATCH", "/pause"};
static const qs_plan resume_plan = {"schedule_resume", 0, build_on_id, absorb_true, NULL, "PATCH", "/resume"};

const qs_api qs_schedule_apis[] = {
    {"schedule_create", NULL, &create_plan},
    {"schedule_create_json", NULL, &create_json_plan},
    {"schedule_get", NULL, &get_plan},
    {"schedule_list", NULL, &list_plan},
    {"schedule_delete", NULL, &delete_plan},
    {"schedule_pause", NULL, &pause_plan},
    {"schedule_resume", NULL, &resume_plan},
    {NULL, NULL, NULL},
};
