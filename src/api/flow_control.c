/* The flow-control API as plans (call.h): the live state of a key that
 * `opts.flow_control` created (GET /v2/flowControl/{key}), its actions
 * (POST /v2/flowControl/{key}/pause|resume|resetRate|pin|unpin) and the
 * account's parallelism (GET /v2/globalParallelism).
 *
 * Every function is safe to repeat after an unknown outcome: reads are
 * reads, pause/resume/pin/unpin set a state rather than change it by a
 * step, and a second resetRate only starts the period again. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <lauxlib.h>
#include "api/api.h"
#include "base/compat.h"
#include "core/filters.h"
#include "core/options.h"
#include "api/flow_control.h"
#include "api/plan.h"
#include "call/result.h"

/* Bounds of a pin: QStash takes a period up to one week; a parallelism or
 * rate as in the publish option (QS_FLOW_LIMIT_MAX). */
#define LIMIT_MAX ((double)QS_FLOW_LIMIT_MAX)
#define PERIOD_MAX 604800.0

/* The fields of an answer QStash may leave out when zero or false. */
static const char *const key_ints[] = {"waitListSize", "parallelismMax", "parallelismCount",
                                       "rateMax", "rateCount", "ratePeriod", "ratePeriodStart",
                                       NULL};
static const char *const key_bools[] = {"isPaused", "isPinnedParallelism", "isPinnedRate", NULL};
static const char *const global_ints[] = {"parallelismMax", "parallelismCount", NULL};
static const char *const no_bools[] = {NULL};

static const char *const pin_keys[] = {"parallelism", "rate", "period", NULL};
static const char *const unpin_keys[] = {"parallelism", "rate", NULL};

/* The target /v2/flowControl/{key}{tail}, the key checked and encoded as
 * one path segment (argument #1). */
static void key_target(lua_State *L, qs_call *k, const qs_args *a, const char *tail)
{
    k->req.method = tail[0] ? "POST" : "GET";
    k->req.resend_ok = 1;
    qs_plan_start_target(L, k, "/v2/flowControl/");
    qs_api_add_id_of(a, a->base, &k->req.target, "flow-control key");
    if (qs_buf_adds(&k->req.target, tail)) qs_plan_oom(L);
}

/* Fills in the fields left out of the object at the top: 0 and false. */
static void defaults(lua_State *L, const char *const *ints, const char *const *bools)
{
    for (; *ints; ints++) {
        lua_getfield(L, -1, *ints);
        if (lua_isnil(L, -1)) {
            qs_pushint(L, 0);
            lua_setfield(L, -3, *ints);
        }
        lua_pop(L, 1);
    }
    for (; *bools; bools++) {
        lua_getfield(L, -1, *bools);
        if (lua_isnil(L, -1)) {
            lua_pushboolean(L, 0);
            lua_setfield(L, -3, *bools);
        }
        lua_pop(L, 1);
    }
}

/* Decodes the answer as a JSON object that is not an array (lua-cjson
 * gives both as tables): pushes it and returns 1, or pushes a `decode`
 * error and returns 0. */
static int object(lua_State *L, qs_call *k, long status)
{
    int array;
    if (!qs_plan_json_object(L, k, status)) return 0;
    lua_rawgeti(L, -1, 1);
    array = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (!array) return 1;
    lua_pop(L, 1);
    qs_result_shape_error(L, &k->req, status, "expected a JSON object, got an array");
    return 0;
}

static int absorb_true(lua_State *L, qs_call *k, int uv, long status)
{
    (void)k;
    (void)uv;
    (void)status;
    lua_pushboolean(L, 1); /* QStash answers these with an empty body */
    return 0;
}

/* ---- flow_control_get, global_parallelism ------------------------------- */

/* client:flow_control_get(key) -> { flowControlKey, waitListSize, ... } */
static void build_get(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)uv;
    key_target(L, k, a, "");
    qs_plan_target_done(L, k);
}

static int absorb_get(lua_State *L, qs_call *k, int uv, long status)
{
    (void)uv;
    if (!object(L, k, status)) return -1;
    lua_getfield(L, -1, "flowControlKey");
    if (lua_type(L, -1) != LUA_TSTRING) {
        lua_pop(L, 2);
        qs_result_shape_error(L, &k->req, status, "'flowControlKey' is not a string");
        return -1;
    }
    lua_pop(L, 1);
    defaults(L, key_ints, key_bools);
    return 0;
}

/* client:global_parallelism() -> { parallelismMax, parallelismCount } */
static void build_global(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)a;
    (void)uv;
    k->req.method = "GET";
    k->req.resend_ok = 1;
    qs_plan_start_target(L, k, "/v2/globalParallelism");
    qs_plan_target_done(L, k);
}

static int absorb_global(lua_State *L, qs_call *k, int uv, long status)
{
    (void)uv;
    if (!object(L, k, status)) return -1;
    defaults(L, global_ints, no_bools);
    return 0;
}

/* ---- pause, resume, resetRate -------------------------------------------- */

/* The key's path + the row's tail ("/pause", "/resume", "/resetRate"). */
static void build_on_key(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)uv;
    key_target(L, k, a, k->plan->tail);
    qs_plan_target_done(L, k);
}

/* ---- pin, unpin ----------------------------------------------------------- */

/* The settings table (argument #2): a table, its keys among `known`. */
static int settings(const qs_args *a, const char *const *known, const char *shape)
{
    lua_State *L = a->L;
    int t = a->base + 1;
    if (lua_type(L, t) != LUA_TTABLE)
        qs_argerror(a, t, "settings must be a table %s, got %s", shape, luaL_typename(L, t));
    qs_check_keys(a, t, t, "setting", known);
    return t;
}

/* Appends name=<integer from 1 to max> when the table at t has `name`;
 * returns whether it had. */
static int add_bounded(const qs_args *a, int t, qs_buf *q, const char *name, double max)
{
    lua_State *L = a->L;
    char num[32];
    double d;
    lua_getfield(L, t, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    d = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
    /* NaN fails the range check */
    if (!(d >= 1 && d <= max) || d != floor(d))
        qs_argerror(a, t, "'%s' must be an integer from 1 to %.0f", name, max);
    lua_pop(L, 1);
    snprintf(num, sizeof num, "%.0f", d);
    qs_query_add(L, q, name, num, strlen(num));
    return 1;
}

/* A duration as the publish options write it ("90s", "1m", "1h30m"):
 * its seconds, or -1 when it is not one (or passes PERIOD_MAX). */
static double duration_seconds(const char *s, size_t n)
{
    static const char units[] = "smhd";
    static const double mult[] = {1, 60, 3600, 86400};
    double total = 0;
    size_t i = 0;
    if (n == 0) return -1;
    while (i < n) {
        double v = 0;
        const char *u;
        size_t start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9' && v <= PERIOD_MAX) v = v * 10 + (s[i++] - '0');
        if (i == start || i == n || !(u = strchr(units, s[i])) || *u == '\0') return -1;
        total += v * mult[u - units];
        if (total > PERIOD_MAX) return -1;
        i++;
    }
    return total;
}

/* Appends period=<seconds> when the table at t has `period`: whole
 * seconds, or a duration string. */
static void add_period(const qs_args *a, int t, qs_buf *q)
{
    lua_State *L = a->L;
    char num[32];
    lua_getfield(L, t, "period");
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        double d = duration_seconds(s, n);
        if (!(d >= 1)) qs_argerror(a, t, "'period' must be whole seconds or a duration such as "
                                         "\"1m\" or \"1h30m\", from 1 s to 7 days");
        lua_pop(L, 1);
        snprintf(num, sizeof num, "%.0f", d);
        qs_query_add(L, q, "period", num, strlen(num));
        return;
    }
    lua_pop(L, 1);
    add_bounded(a, t, q, "period", PERIOD_MAX);
}

/* client:flow_control_pin(key, { parallelism = n, rate = n, period = s })
 * -> true: fixes the key's configuration; later messages' values are
 * ignored until unpinned. */
static void build_pin(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    int t, limits;
    (void)uv;
    key_target(L, k, a, "/pin?");
    t = settings(a, pin_keys, "{parallelism, rate, period}");
    limits = add_bounded(a, t, &k->req.target, "parallelism", LIMIT_MAX);
    limits += add_bounded(a, t, &k->req.target, "rate", LIMIT_MAX);
    add_period(a, t, &k->req.target);
    if (!limits) qs_argerror(a, t, "settings need 'parallelism' or 'rate' (a pin without a limit)");
    qs_plan_target_done(L, k);
}

/* client:flow_control_unpin(key, { parallelism = true, rate = true }) -> true */
static void build_unpin(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    int t, any = 0;
    const char *const *name;
    (void)uv;
    key_target(L, k, a, "/unpin?");
    t = settings(a, unpin_keys, "{parallelism = true, rate = true}");
    for (name = unpin_keys; *name; name++) {
        lua_getfield(L, t, *name);
        if (!lua_isnil(L, -1)) {
            if (lua_type(L, -1) != LUA_TBOOLEAN)
                qs_argerror(a, t, "'%s' must be a boolean, got %s", *name, luaL_typename(L, -1));
            if (lua_toboolean(L, -1)) {
                qs_query_add(L, &k->req.target, *name, "true", 4);
                any = 1;
            }
        }
        lua_pop(L, 1);
    }
    if (!any) qs_argerror(a, t, "settings need 'parallelism' or 'rate' set to true (nothing to unpin)");
    qs_plan_target_done(L, k);
}

static const qs_plan get_plan = {"flow_control_get", 0, build_get, absorb_get, NULL, NULL, NULL};
static const qs_plan global_plan = {"global_parallelism", 0, build_global, absorb_global, NULL, NULL, NULL};
static const qs_plan pause_plan = {"flow_control_pause", 0, build_on_key, absorb_true, NULL, NULL, "/pause"};
static const qs_plan resume_plan = {"flow_control_resume", 0, build_on_key, absorb_true, NULL, NULL, "/resume"};
static const qs_plan reset_plan = {"flow_control_reset_rate", 0, build_on_key, absorb_true, NULL, NULL, "/resetRate"};
static const qs_plan pin_plan = {"flow_control_pin", 0, build_pin, absorb_true, NULL, NULL, NULL};
static const qs_plan unpin_plan = {"flow_control_unpin", 0, build_unpin, absorb_true, NULL, NULL, NULL};

const qs_api qs_flow_control_apis[] = {
    {"flow_control_get", NULL, &get_plan},
    {"flow_control_pause", NULL, &pause_plan},
    {"flow_control_resume", NULL, &resume_plan},
    {"flow_control_reset_rate", NULL, &reset_plan},
    {"flow_control_pin", NULL, &pin_plan},
    {"flow_control_unpin", NULL, &unpin_plan},
    {"global_parallelism", NULL, &global_plan},
    {NULL, NULL, NULL},
};
