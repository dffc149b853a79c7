/* Queues as plans (call.h): enqueue and enqueue_json (POST
 * /v2/enqueue/{queue}/{destination}, publish with a queue in the path) and
 * the queue resource (upsert, get, list, delete, pause, resume under
 * /v2/queues). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <lauxlib.h>
#include "api/api.h"
#include "base/compat.h"
#include "core/response.h"
#include "api/plan.h"
#include "api/publish.h"
#include "api/queues.h"
#include "call/result.h"

/* A name is at most this long: QStash documents no limit; this bounds what
 * goes into a path and a JSON body. */
#define NAME_MAX_LEN 256

/* QStash's bound is the plan's (100 on pay-as-you-go, 412 above it); this
 * one only catches a wrong unit or a typo before anything is sent. */
#define PARALLELISM_MAX 10000

/* Checks a queue name: a string of QStash's [A-Za-z0-9_.-], not empty, not
 * "." or ".." (a path would drop or climb them), at most NAME_MAX_LEN bytes.
 * Such a name is its own percent-encoding, so it goes into a path as is. */
static const char *check_name(const qs_args *a, int idx, size_t *len)
{
    lua_State *L = a->L;
    size_t n, i;
    const char *s;
    if (lua_type(L, idx) != LUA_TSTRING)
        qs_argerror(a, idx, "queue name must be a string, got %s", luaL_typename(L, idx));
    s = lua_tolstring(L, idx, &n);
    if (n == 0) qs_argerror(a, idx, "queue name must not be empty");
    if (n > NAME_MAX_LEN) qs_argerror(a, idx, "queue name is longer than %d bytes", NAME_MAX_LEN);
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        qs_argerror(a, idx, "queue name must not be '.' or '..'");
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            qs_argerror(a, idx, "queue name may hold only letters, digits, '_', '.' and '-'");
    }
    *len = n;
    return s;
}

/* Starts the target with `path` followed by the checked queue name. */
static void target_with_name(lua_State *L, qs_call *k, const qs_args *a, const char *path)
{
    size_t n;
    const char *name = check_name(a, a->base, &n);
    qs_plan_start_target(L, k, path);
    if (qs_buf_add(&k->req.target, name, n)) qs_plan_oom(L);
}

/* ---- enqueue ------------------------------------------------------------ */

/* client:enqueue(queue, destination, body, opts) -> as publish */
static void build_enqueue(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    int b = a->base + 2;
    (void)uv;
    target_with_name(L, k, a, "/v2/enqueue/");
    if (!lua_isnoneornil(L, b) && lua_type(L, b) != LUA_TSTRING)
        qs_argerror(a, b, "body must be a string, got %s", luaL_typename(L, b));
    if (qs_buf_addc(&k->req.target, '/')) qs_plan_oom(L);
    qs_publish_build(L, k, a, a->base + 1, b, a->base + 3, QS_OPTS_PUBLISH);
}

/* client:enqueue_json(queue, destination, value, opts): the value encoded by lua-cjson */
static void build_enqueue_json(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)uv;
    target_with_name(L, k, a, "/v2/enqueue/");
    if (qs_json_encode(L, a->base + 2) != 0)
        qs_argerror(a, a->base + 2, "cannot encode as JSON: %s", lua_tostring(L, -1));
    if (qs_buf_addc(&k->req.target, '/')) qs_plan_oom(L);
    qs_publish_build(L, k, a, a->base + 1, lua_gettop(L), a->base + 3, QS_OPTS_PUBLISH_JSON);
}

static const qs_plan enqueue_plan = {"enqueue", 0, build_enqueue, qs_publish_absorb, NULL, NULL, NULL};
static const qs_plan enqueue_json_plan = {"enqueue_json", 0, build_enqueue_json, qs_publish_absorb, NULL, NULL, NULL};

/* ---- the queue resource ------------------------------------------------- */

static const char *const upsert_keys[] = {"parallelism", "paused", NULL};

/* client:queue_upsert(name, { parallelism = n, paused = b }) -> true.
 * The body is {"queueName", "parallelism", "paused"?}: parallelism is
 * required by QStash (1 when not given, as the official SDKs send);
 * `paused` goes only when given, so that changing the parallelism does not
 * resume a paused queue. Repeating an upsert is harmless. */
static void build_upsert(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    int o = a->base + 1, paused = -1;
    lua_Number par = 1;
    size_t n;
    const char *name = check_name(a, a->base, &n);
    char tail[96];
    (void)uv;
    if (!lua_isnoneornil(L, o)) {
        if (lua_type(L, o) != LUA_TTABLE)
            qs_argerror(a, o, "queue settings must be a table, got %s", luaL_typename(L, o));
        qs_check_keys(a, o, o, "queue setting", upsert_keys);
        lua_getfield(L, o, "parallelism");
        if (!lua_isnil(L, -1)) {
            par = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : NAN;
            /* NaN fails both comparisons */
            if (!(par >= 1 && par <= PARALLELISM_MAX) || par != floor(par))
                qs_argerror(a, o, "parallelism must be a whole number from 1 to %d", PARALLELISM_MAX);
        }
        lua_pop(L, 1);
        lua_getfield(L, o, "paused");
        if (!lua_isnil(L, -1)) {
            if (lua_type(L, -1) != LUA_TBOOLEAN)
                qs_argerror(a, o, "paused must be a boolean, got %s", luaL_typename(L, -1));
            paused = lua_toboolean(L, -1);
        }
        lua_pop(L, 1);
    }
    k->req.method = "POST";
    k->req.resend_ok = 1;
    qs_plan_start_target(L, k, "/v2/queues");
    qs_plan_target_done(L, k);
    /* the name is [A-Za-z0-9_.-]: nothing in it needs JSON escaping */
    snprintf(tail, sizeof tail, "\",\"parallelism\":%.0f%s}", par,
             paused < 0 ? "" : paused ? ",\"paused\":true" : ",\"paused\":false");
    if (qs_buf_adds(&k->req.body, "{\"queueName\":\"") || qs_buf_add(&k->req.body, name, n) ||
        qs_buf_adds(&k->req.body, tail) || qs_req_content_type(&k->req, "application/json", 16))
        qs_plan_oom(L);
}

/* A request with no body on the queue's path + the row's tail, with the
 * row's method (get, delete, pause, resume). Each is idempotent (deleting
 * an absent queue answers 200), so repeatable. */
static void build_on_name(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)uv;
    k->req.method = k->plan->method;
    k->req.resend_ok = 1;
    target_with_name(L, k, a, "/v2/queues/");
    if (qs_buf_adds(&k->req.target, k->plan->tail)) qs_plan_oom(L);
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

/* Checks the Queue object at the top: `name` a string; the counts and
 * flags QStash may leave out when zero or false filled in. NULL, or what
 * is wrong. */
static const char *shape_queue(lua_State *L)
{
    static const char *const counts[] = {"parallelism", "lag", "createdAt", "updatedAt", NULL};
    const char *const *f;
    int t;
    if (lua_type(L, -1) != LUA_TTABLE) return "a queue is not a JSON object";
    lua_getfield(L, -1, "name");
    t = lua_type(L, -1);
    lua_pop(L, 1);
    if (t != LUA_TSTRING) return "a queue has no name string";
    for (f = counts; *f; f++) {
        lua_getfield(L, -1, *f);
        t = lua_type(L, -1);
        lua_pop(L, 1);
        if (t == LUA_TNIL) {
            qs_pushint(L, 0);
            lua_setfield(L, -2, *f);
        } else if (t != LUA_TNUMBER) {
            return "a queue's parallelism, lag, createdAt or updatedAt is not a number";
        }
    }
    lua_getfield(L, -1, "paused");
    t = lua_type(L, -1);
    lua_pop(L, 1);
    if (t == LUA_TNIL) {
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "paused");
    } else if (t != LUA_TBOOLEAN) {
        return "a queue's paused is not a boolean";
    }
    return NULL;
}

/* client:queue_get(name) -> the Queue object */
static int absorb_get(lua_State *L, qs_call *k, int uv, long status)
{
    (void)uv;
    return qs_result_shaped(L, &k->req, status, shape_queue, NULL) ? 0 : -1;
}

/* client:queue_list() -> an array of Queue objects (QStash answers a bare array) */
static void build_list(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)a;
    (void)uv;
    k->req.method = "GET";
    k->req.resend_ok = 1;
    qs_plan_start_target(L, k, "/v2/queues");
    qs_plan_target_done(L, k);
}

/* QStash answers a bare array. */
static int absorb_list(lua_State *L, qs_call *k, int uv, long status)
{
    (void)uv;
    return qs_result_shaped(L, &k->req, status, shape_queue, "queues") ? 0 : -1;
}

static const qs_plan upsert_plan = {"queue_upsert", 0, build_upsert, absorb_true, NULL, NULL, NULL};
static const qs_plan get_plan = {"queue_get", 0, build_on_name, absorb_get, NULL, "GET", ""};
static const qs_plan list_plan = {"queue_list", 0, build_list, absorb_list, NULL, NULL, NULL};
static const qs_plan delete_plan = {"queue_delete", 0, build_on_name, absorb_true, NULL, "DELETE", ""};
static const qs_plan pause_plan = {"queue_pause", 0, build_on_name, absorb_true, NULL, "POST", "/pause"};
static const qs_plan resume_plan = {"queue_resume", 0, build_on_name, absorb_true, NULL, "POST", "/resume"};

const qs_api qs_queue_apis[] = {
    {"enqueue", NULL, &enqueue_plan},
    {"enqueue_json", NULL, &enqueue_json_plan},
    {"queue_upsert", NULL, &upsert_plan},
    {"queue_get", NULL, &get_plan},
    {"queue_list", NULL, &list_plan},
    {"queue_delete", NULL, &delete_plan},
    {"queue_pause", NULL, &pause_plan},
    {"queue_resume", NULL, &resume_plan},
    {NULL, NULL, NULL},
};
