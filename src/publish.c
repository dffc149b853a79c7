/* Publish: client:publish(destination, body, opts) and
 * client:publish_json(destination, value, opts). */
#include <string.h>
#include <lauxlib.h>
#include "api.h"
#include "call.h"
#include "compat.h"
#include "errors.h"
#include "options.h"
#include "publish.h"
#include "response.h"

/* A destination is an http(s) URL (placed raw in the path, as QStash
 * expects) or a URL-group name of [A-Za-z0-9_.-]. */
static void check_destination(const qs_args *a, int idx)
{
    lua_State *L = a->L;
    size_t n, i;
    const char *d;
    if (lua_type(L, idx) != LUA_TSTRING)
        qs_argerror(a, idx, "destination must be a URL or a URL-group name, got %s", luaL_typename(L, idx));
    d = lua_tolstring(L, idx, &n);
    if (n == 0) qs_argerror(a, idx, "destination must not be empty");
    if (n > 4096) qs_argerror(a, idx, "destination is longer than 4096 bytes");
    if (strncmp(d, "http://", 7) == 0 || strncmp(d, "https://", 8) == 0) {
        size_t skip = d[4] == 's' ? 8 : 7;
        if (n == skip || d[skip] == '/') qs_argerror(a, idx, "destination URL has no host");
        for (i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)d[i];
            if (ch <= 0x20 || ch == 0x7f || ch == '#')
                qs_argerror(a, idx, "destination URL must not contain spaces, '#' or control bytes");
        }
        return;
    }
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)d[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            qs_argerror(a, idx, "destination must be an http(s) URL or a URL-group name of [A-Za-z0-9_.-]");
    }
}

/* Shapes the result: a PublishResponse, or for URL groups an array (QStash
 * answers a bare array, or {messages = [...]}: both are accepted). */
static int shape_result(lua_State *L, qs_client *c, long status)
{
    const char *why = NULL;
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
    if (why) {
        lua_pop(L, 1);
        qs_api_shape_error(L, c, &c->sync, "POST", status, why);
        return 0;
    }
    return 1;
}

static int do_publish(lua_State *L, qs_client *c, const qs_args *a, const char *body,
                      size_t body_len, int json)
{
    qs_call call;
    long status = 0;
    const char *content_type = NULL;
    int dest = a->base, opts = a->base + 2;
    size_t dlen;
    const char *d;

    check_destination(a, dest);
    qs_buf_clear(&c->headers);
    qs_opts_marshal(a, opts, &c->headers, 1, &content_type);
    if (json) {
        if (content_type)
            qs_argerror(a, opts, "publish_json always sends Content-Type: application/json");
        content_type = "application/json";
    }
    if (content_type && strpbrk(content_type, "\r\n"))
        qs_argerror(a, opts, "content_type must not contain CR or LF");
    if (!qs_call_have_token(L, c)) return qs_error_finish(L, c->safe);
    d = lua_tolstring(L, dest, &dlen);
    qs_buf_clear(&c->query);
    if (qs_buf_adds(&c->query, "/v2/publish/") || qs_buf_add(&c->query, d, dlen))
        return luaL_error(L, "not enough memory");
    qs_api_target(L, c, c->query.p, c->query.n);

    memset(&call, 0, sizeof call);
    call.req.method = "POST";
    call.req.body = body;
    call.req.body_len = body_len;
    call.req.content_type = content_type;
    /* Publishing twice makes two messages, unless QStash can deduplicate. */
    if (lua_type(L, opts) == LUA_TTABLE) {
        lua_getfield(L, opts, "deduplication_id");
        call.resend_ok = !lua_isnil(L, -1);
        lua_pop(L, 1);
    }
    if (!qs_call_run(L, c, &call, &status)) return qs_error_finish(L, c->safe);
    if (!qs_api_decode(L, c, &c->sync, "POST", status) || !shape_result(L, c, status))
        return qs_error_finish(L, c->safe);
    return 1;
}

/* client:publish(destination, body, opts) -> PublishResponse or a list of them */
static int publish(lua_State *L, qs_client *c, const qs_args *a)
{
    size_t n = 0;
    const char *body = "";
    int b = a->base + 1;
    lua_settop(L, a->base + 2);
    if (!lua_isnil(L, b)) {
        if (lua_type(L, b) != LUA_TSTRING)
            qs_argerror(a, b, "body must be a string, got %s", luaL_typename(L, b));
        body = lua_tolstring(L, b, &n);
    }
    return do_publish(L, c, a, body, n, 0);
}

/* client:publish_json(destination, value, opts): the value encoded by lua-cjson */
static int publish_json(lua_State *L, qs_client *c, const qs_args *a)
{
    size_t n;
    const char *body;
    lua_settop(L, a->base + 2);
    if (qs_json_encode(L, a->base + 1) != 0) {
        qs_argerror(a, a->base + 1, "cannot encode as JSON: %s", lua_tostring(L, -1));
    }
    lua_replace(L, a->base + 1); /* keep the text alive where the value was */
    body = lua_tolstring(L, a->base + 1, &n);
    return do_publish(L, c, a, body, n, 1);
}

const qs_api qs_publish_apis[] = {
    {"publish", publish},
    {"publish_json", publish_json},
    {NULL, NULL},
};
