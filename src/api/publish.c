/* Publish as plans (call.h): client:publish(destination, body, opts) and
 * client:publish_json(destination, value, opts). */
#include <string.h>
#include <lauxlib.h>
#include "api/api.h"
#include "base/compat.h"
#include "core/options.h"
#include "api/publish.h"
#include "core/response.h"
#include "call/result.h"
#include "core/url.h"

/* A destination is an http(s) URL (placed raw in the path, as QStash
 * expects) or a URL-group name of [A-Za-z0-9_.-]; batch items too. */
void qs_publish_check_destination(const qs_args *a, int idx)
{
    lua_State *L = a->L;
    size_t n, i;
    const char *d, *why;
    if (lua_type(L, idx) != LUA_TSTRING)
        qs_argerror(a, idx, "destination must be a URL or a URL-group name, got %s", luaL_typename(L, idx));
    d = lua_tolstring(L, idx, &n);
    if (n == 0) qs_argerror(a, idx, "destination must not be empty");
    if (n > 4096) qs_argerror(a, idx, "destination is longer than 4096 bytes");
    if (strncmp(d, "http://", 7) == 0 || strncmp(d, "https://", 8) == 0) {
        if ((why = qs_url_check(d, n, QS_URL_NO_FRAGMENT)) != NULL) qs_argerror(a, idx, "destination URL %s", why);
        return;
    }
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)d[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            qs_argerror(a, idx, "destination must be an http(s) URL or a URL-group name of [A-Za-z0-9_.-]");
    }
}

/* The request of publish and enqueue: the destination appended raw to the
 * target the caller started ("/v2/publish/", "/v2/enqueue/{queue}/"), the
 * body copied, the options' headers. */
void qs_publish_build(lua_State *L, qs_call *k, const qs_args *a, int dest, int body, int opts,
                      qs_opts_mode mode)
{
    size_t dlen, blen = 0;
    const char *d, *b = "";
    qs_publish_check_destination(a, dest);
    k->req.method = "POST";
    /* Publishing twice makes two messages, unless QStash can deduplicate. */
    k->req.resend_ok = qs_opts_marshal(a, opts, &k->req.headers, mode);
    d = lua_tolstring(L, dest, &dlen);
    if (!lua_isnoneornil(L, body)) b = lua_tolstring(L, body, &blen);
    if (qs_buf_add(&k->req.target, d, dlen) || qs_req_set_target(&k->req, k->req.target.p, k->req.target.n) ||
        qs_buf_add(&k->req.body, b, blen))
        luaL_error(L, "not enough memory");
}

static void build_publish(lua_State *L, qs_call *k, const qs_args *a, int body, qs_opts_mode mode)
{
    qs_buf_clear(&k->req.target);
    if (qs_buf_adds(&k->req.target, "/v2/publish/")) luaL_error(L, "not enough memory");
    qs_publish_build(L, k, a, a->base, body, a->base + 2, mode);
}

/* client:publish(destination, body, opts) -> PublishResponse or a list of them */
static void build_raw(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    int b = a->base + 1;
    (void)uv;
    if (!lua_isnoneornil(L, b) && lua_type(L, b) != LUA_TSTRING)
        qs_argerror(a, b, "body must be a string, got %s", luaL_typename(L, b));
    build_publish(L, k, a, b, QS_OPTS_PUBLISH);
}

/* client:publish_json(destination, value, opts): the value encoded by lua-cjson */
static void build_json(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)uv;
    if (qs_json_encode(L, a->base + 1) != 0)
        qs_argerror(a, a->base + 1, "cannot encode as JSON: %s", lua_tostring(L, -1));
    build_publish(L, k, a, lua_gettop(L), QS_OPTS_PUBLISH_JSON);
}

/* The result: a PublishResponse, or for URL groups an array (QStash
 * answers a bare array, or {messages = [...]}: both are accepted). */
int qs_publish_absorb(lua_State *L, qs_call *k, int uv, long status)
{
    const char *why = NULL;
    (void)uv;
    if (!qs_result_json(L, &k->req, status)) return -1;
    if (lua_type(L, -1) == LUA_TTABLE) {
        lua_getfield(L, -1, "messages");
        if (lua_type(L, -1) == LUA_TTABLE) lua_remove(L, -2);
        else lua_pop(L, 1);
    }
    if (lua_type(L, -1) == LUA_TTABLE && qs_rawlen(L, -1) > 0) {
        size_t n = qs_rawlen(L, -1), i;
        for (i = 1; i <= n && !why; i++) {
            lua_rawgeti(L, -1, (int)i);
            why = qs_shape_publish_response(L);
            lua_pop(L, 1);
        }
    } else {
        why = qs_shape_publish_response(L);
    }
    if (!why) return 0;
    lua_pop(L, 1);
    qs_result_shape_error(L, &k->req, status, why);
    return -1;
}

static const qs_plan publish_plan = {"publish", 0, build_raw, qs_publish_absorb, NULL, NULL, NULL};
static const qs_plan publish_json_plan = {"publish_json", 0, build_json, qs_publish_absorb, NULL, NULL, NULL};

const qs_api qs_publish_apis[] = {
    {"publish", NULL, &publish_plan},
    {"publish_json", NULL, &publish_json_plan},
    {NULL, NULL, NULL},
};
