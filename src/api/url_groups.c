/* URL groups as plans (call.h): add and remove endpoints
 * (POST and DELETE /v2/topics/{name}/endpoints, a JSON body each), read one
 * group or all, delete one. Every write is an upsert or a removal, so each
 * may be repeated after an unknown outcome. */
#include <string.h>
#include <lauxlib.h>
#include "api/api.h"
#include "base/compat.h"
#include "api/plan.h"
#include "core/response.h"
#include "call/result.h"
#include "core/url.h"
#include "api/url_groups.h"

/* QStash's cap on a URL is not documented; publish's destination cap. */
#define URL_MAX 4096

/* [A-Za-z0-9_.-]: QStash's rule for group and endpoint names. */
static int name_ok(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return 0;
    }
    return n > 0;
}

/* The group name at a->base: the checks of an id ('.', '..', length,
 * control bytes), QStash's name rule, then appended as one path segment. */
static void add_group_name(const qs_args *a, qs_buf *out)
{
    size_t n;
    const char *s = qs_api_check_id_of(a, a->base, &n, "URL group name");
    if (!name_ok(s, n)) qs_argerror(a, a->base, "URL group name must be of [A-Za-z0-9_.-]");
    qs_api_add_id_of(a, a->base, out, "URL group name");
}

/* ---- add and remove endpoints ------------------------------------------- */

static const char *const endpoint_keys[] = {"url", "name", NULL};

/* Copies field `key` of the endpoint at `ep` into the table at `out` when
 * it is set, checked; returns whether it was set. */
static int copy_field(const qs_args *a, int list, int i, int ep, int out, const char *key)
{
    lua_State *L = a->L;
    size_t n;
    const char *s, *why;
    lua_getfield(L, ep, key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        qs_argerror(a, list, "endpoint #%d: '%s' must be a string, got %s", i, key, luaL_typename(L, -1));
    s = lua_tolstring(L, -1, &n);
    if (key[0] == 'u') {
        if (n > URL_MAX) qs_argerror(a, list, "endpoint #%d: 'url' is longer than %d bytes", i, URL_MAX);
        if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0)
            qs_argerror(a, list, "endpoint #%d: 'url' must be an http(s) URL", i);
        if ((why = qs_url_check(s, n, QS_URL_NO_FRAGMENT)) != NULL)
            qs_argerror(a, list, "endpoint #%d: 'url' %s", i, why);
    } else if (n > 512 || !name_ok(s, n)) {
        qs_argerror(a, list, "endpoint #%d: 'name' must be 1 to 512 bytes of [A-Za-z0-9_.-]", i);
    }
    lua_setfield(L, out, key);
    return 1;
}

/* The body { endpoints = [...] } from the list at a->base + 1, checked
 * item by item (`url_required`: adding; removing takes url or name). */
static void build_endpoints(lua_State *L, qs_call *k, const qs_args *a, const char *method, int url_required)
{
    int list = a->base + 1, body;
    size_t n, i, count = 0;
    const char *json;
    k->req.method = method;
    /* adding is an upsert, removing twice removes nothing more */
    k->req.resend_ok = 1;
    qs_plan_start_target(L, k, "/v2/topics/");
    add_group_name(a, &k->req.target);
    if (qs_buf_adds(&k->req.target, "/endpoints")) qs_plan_oom(L);
    if (lua_type(L, list) != LUA_TTABLE)
        qs_argerror(a, list, "expected an array of endpoints, got %s", luaL_typename(L, list));
    n = qs_rawlen(L, list);
    if (n == 0) qs_argerror(a, list, "expected a non-empty array of endpoints");
    lua_pushnil(L);
    while (lua_next(L, list)) {
        lua_pop(L, 1);
        count++;
    }
    if (count != n) qs_argerror(a, list, "an array of endpoints must not have other keys");
    lua_createtable(L, 0, 1);
    body = lua_gettop(L);
    lua_createtable(L, (int)n, 0);
    for (i = 1; i <= n; i++) {
        int ep, out, has_url, has_name;
        lua_rawgeti(L, list, (int)i);
        ep = lua_gettop(L);
        if (lua_type(L, ep) != LUA_TTABLE)
            qs_argerror(a, list, "endpoint #%d must be a table, got %s", (int)i, luaL_typename(L, ep));
        qs_check_keys(a, list, ep, "endpoint key", endpoint_keys);
        lua_createtable(L, 0, 2);
        out = lua_gettop(L);
        has_url = copy_field(a, list, (int)i, ep, out, "url");
        has_name = copy_field(a, list, (int)i, ep, out, "name");
        if (url_required && !has_url) qs_argerror(a, list, "endpoint #%d needs a 'url'", (int)i);
        if (!has_url && !has_name) qs_argerror(a, list, "endpoint #%d needs a 'url' or a 'name'", (int)i);
        lua_rawseti(L, body + 1, (int)i);
        lua_pop(L, 1); /* the caller's endpoint */
    }
    lua_setfield(L, body, "endpoints");
    if (qs_json_encode(L, body) != 0) luaL_error(L, "cannot encode the endpoints: %s", lua_tostring(L, -1));
    json = lua_tolstring(L, -1, &n);
    qs_buf_clear(&k->req.body);
    if (qs_buf_add(&k->req.body, json, n) || qs_req_content_type(&k->req, "application/json", 16))
        qs_plan_oom(L);
    lua_pop(L, 2); /* the JSON text, the body table */
    qs_plan_target_done(L, k);
}

/* Writes answer 200 with an empty body: true. */
static int absorb_true(lua_State *L, qs_call *k, int uv, long status)
{
    (void)k;
    (void)uv;
    (void)status;
    lua_pushboolean(L, 1);
    return 0;
}

/* client:url_group_add_endpoints(name, { { url = ..., name = ... }, ... }) -> true */
static void build_add(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)uv;
    build_endpoints(L, k, a, "POST", 1);
}

/* client:url_group_remove_endpoints(name, { { url = ... } or { name = ... }, ... }) -> true */
static void build_remove(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)uv;
    build_endpoints(L, k, a, "DELETE", 0);
}

static const qs_plan add_plan = {"url_group_add_endpoints", 0, build_add, absorb_true, NULL, NULL, NULL};
static const qs_plan remove_plan = {"url_group_remove_endpoints", 0, build_remove, absorb_true, NULL, NULL, NULL};

/* ---- get, list, delete --------------------------------------------------- */

/* The group at the top: an object whose `endpoints` is an array (an absent
 * one made empty). NULL, or what is wrong. */
static const char *shape_group(lua_State *L)
{
    int t;
    /* a JSON object decodes to string keys only: items mean an array */
    if (lua_type(L, -1) != LUA_TTABLE || qs_rawlen(L, -1) > 0) return "a URL group is not a JSON object";
    lua_getfield(L, -1, "endpoints");
    t = lua_type(L, -1);
    lua_pop(L, 1);
    if (t == LUA_TNIL) {
        lua_newtable(L);
        lua_setfield(L, -2, "endpoints");
    } else if (t != LUA_TTABLE) {
        return "a URL group's 'endpoints' is not an array";
    }
    return NULL;
}

/* get and delete: the row's method on the group's path */
static void build_by_name(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)uv;
    k->req.method = k->plan->method;
    /* reading twice is harmless; deleting an absent group answers 200 */
    k->req.resend_ok = 1;
    qs_plan_start_target(L, k, "/v2/topics/");
    add_group_name(a, &k->req.target);
    qs_plan_target_done(L, k);
}

/* client:url_group_get(name) -> { name, createdAt, updatedAt, endpoints = {...} } */
static int absorb_get(lua_State *L, qs_call *k, int uv, long status)
{
    const char *why;
    (void)uv;
    if (!qs_plan_json_object(L, k, status)) return -1;
    if ((why = shape_group(L)) == NULL) return 0;
    lua_pop(L, 1);
    qs_result_shape_error(L, &k->req, status, why);
    return -1;
}

/* client:url_group_delete(name) -> true: build_by_name */

/* client:url_group_list() -> { group, ... } */
static void build_list(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)uv;
    (void)a;
    k->req.method = "GET";
    k->req.resend_ok = 1;
    qs_plan_start_target(L, k, "/v2/topics");
    qs_plan_target_done(L, k);
}

static int absorb_list(lua_State *L, qs_call *k, int uv, long status)
{
    (void)uv;
    return qs_result_shaped(L, &k->req, status, shape_group, "URL groups") ? 0 : -1;
}

static const qs_plan get_plan = {"url_group_get", 0, build_by_name, absorb_get, NULL, "GET", NULL};
static const qs_plan list_plan = {"url_group_list", 0, build_list, absorb_list, NULL, NULL, NULL};
static const qs_plan delete_plan = {"url_group_delete", 0, build_by_name, absorb_true, NULL, "DELETE", NULL};

const qs_api qs_url_group_apis[] = {
    {"url_group_add_endpoints", NULL, &add_plan},
    {"url_group_remove_endpoints", NULL, &remove_plan},
    {"url_group_get", NULL, &get_plan},
    {"url_group_list", NULL, &list_plan},
    {"url_group_delete", NULL, &delete_plan},
    {NULL, NULL, NULL},
};
