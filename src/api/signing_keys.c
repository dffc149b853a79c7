/* The signing keys as plans (call.h): the pair QStash signs deliveries
 * with (GET /v2/keys) and its rotation (POST /v2/keys/rotate), both
 * answering {"current": "sig_...", "next": "sig_..."}.
 *
 * The rotation's path: QStash's OpenAPI document and API reference, and
 * qstash-py (`signing_key.py`), call POST /v2/keys/rotate; qstash-go
 * (`signing_key.go`) calls POST /v2/rotate, which no test of its own
 * exercises (its only keys test reads GET /v2/keys). The documented path
 * is the one sent; qstash-js has no keys API.
 *
 * Resend safety: reading is reading. A rotation moves `next` to `current`
 * and makes a new `next`: one sent again after an unknown outcome may
 * rotate twice, and then receivers holding the keys read before it reject
 * every delivery. So a rotation goes out at most once per unknown outcome:
 * the call fails `ambiguous` and the caller reads the keys to see what
 * happened. Neither function takes arguments; extra ones are ignored, as
 * Lua functions do. */
#include <lauxlib.h>
#include "api/api.h"
#include "api/plan.h"
#include "api/signing_keys.h"
#include "call/result.h"

static void build(lua_State *L, qs_call *k, const char *method, const char *path, int resend_ok)
{
    k->req.method = method;
    k->req.resend_ok = resend_ok;
    qs_plan_start_target(L, k, path);
    qs_plan_target_done(L, k);
}

/* client:signing_keys() -> { current = "sig_...", next = "sig_..." } */
static void build_get(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)a;
    (void)uv;
    build(L, k, "GET", "/v2/keys", 1);
}

/* client:signing_keys_rotate() -> the new pair: the old next is current */
static void build_rotate(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)a;
    (void)uv;
    build(L, k, "POST", "/v2/keys/rotate", 0);
}

/* The answer of both: a JSON object whose `current` and `next` are
 * non-empty strings (a receiver handed an empty key would verify nothing). */
static int absorb_keys(lua_State *L, qs_call *k, int uv, long status)
{
    static const char *const fields[] = {"current", "next", NULL};
    const char *const *f;
    (void)uv;
    if (!qs_plan_json_object(L, k, status)) return -1;
    for (f = fields; *f; f++) {
        size_t n = 0;
        int t;
        lua_getfield(L, -1, *f);
        t = lua_type(L, -1);
        if (t == LUA_TSTRING) lua_tolstring(L, -1, &n);
        lua_pop(L, 1);
        if (t != LUA_TSTRING || n == 0) {
            lua_pop(L, 1);
            qs_result_shape_error(L, &k->req, status,
                                  "expected {\"current\": \"...\", \"next\": \"...\"} with both keys "
                                  "non-empty strings");
            return -1;
        }
    }
    return 0;
}

static const qs_plan get_plan = {"signing_keys", 0, build_get, absorb_keys, NULL, NULL, NULL};
static const qs_plan rotate_plan = {"signing_keys_rotate", 0, build_rotate, absorb_keys, NULL, NULL, NULL};

const qs_api qs_signing_key_apis[] = {
    {"signing_keys", NULL, &get_plan},
    {"signing_keys_rotate", NULL, &rotate_plan},
    {NULL, NULL, NULL},
};
