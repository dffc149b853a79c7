/* Batch publish as a plan (call.h): client:batch(items) and
 * client:batch_json(items), POST /v2/batch.
 *
 * One call is one request: every item is checked before anything is sent,
 * and QStash answers one slot per item, in order. QStash documents no cap
 * on the items of a request, so the list is never split: splitting would
 * turn one call into requests that can end differently (the first sent, the
 * second lost), which no result in the order given could tell. */
#include <string.h>
#include <lauxlib.h>
#include "api/api.h"
#include "api/batch.h"
#include "api/plan.h"
#include "api/publish.h"
#include "base/compat.h"
#include "base/json_str.h"
#include "core/options.h"
#include "core/response.h"
#include "call/result.h"

/* The keys of an item. */
static const char *const item_keys[] = {"destination", "body", "queue", "opts", NULL};

/* What building one item needs, and what it tells back. */
typedef struct item_ctx {
    qs_buf *body;       /* the request body: the JSON array so far */
    qs_buf *lines;      /* scratch: the item's header lines */
    qs_opts_mode mode;
    const char *fname;
    int dedup;          /* the item carries a deduplication_id */
} item_ctx;

/* Appends a JSON string, or raises: a byte sequence that is not UTF-8 cannot
 * travel in a JSON text (QStash would store U+FFFD in its place). */
static void put_string(const qs_args *sub, int idx, qs_buf *b, const char *s, size_t n, const char *what)
{
    int r = qs_buf_add_json_string(b, s, n);
    if (r == -1) qs_plan_oom(sub->L);
    if (r == -2)
        qs_argerror(sub, idx, "%s is not UTF-8 text (a batch travels as JSON; publish sends any bytes)", what);
}

static void put_literal(lua_State *L, qs_buf *b, const char *s)
{
    if (qs_buf_adds(b, s)) qs_plan_oom(L);
}

/* A queue name: QStash's [A-Za-z0-9_.-], as for the other names. */
static void check_queue(const qs_args *sub, int idx)
{
    lua_State *L = sub->L;
    size_t n, i;
    const char *q;
    if (lua_type(L, idx) != LUA_TSTRING)
        qs_argerror(sub, idx, "queue must be a string, got %s", luaL_typename(L, idx));
    q = lua_tolstring(L, idx, &n);
    if (n == 0 || n > 256) qs_argerror(sub, idx, "queue name must be 1 to 256 bytes");
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)q[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            qs_argerror(sub, idx, "queue name must be of [A-Za-z0-9_.-]");
    }
}

/* The item's header lines ("Name: value\0" each) as a JSON object. */
static void put_headers(const qs_args *sub, int idx, item_ctx *x)
{
    lua_State *L = sub->L;
    size_t i = 0;
    int first = 1;
    if (x->lines->n == 0) return;
    put_literal(L, x->body, ",\"headers\":{");
    while (i < x->lines->n) {
        const char *line = x->lines->p + i, *colon = strchr(line, ':');
        size_t len = strlen(line);
        if (!first) put_literal(L, x->body, ",");
        first = 0;
        put_string(sub, idx, x->body, line, (size_t)(colon - line), "a header name");
        put_literal(L, x->body, ":");
        put_string(sub, idx, x->body, colon + 2, len - (size_t)(colon + 2 - line), "a header value");
        i += len + 1;
    }
    put_literal(L, x->body, "}");
}

/* Checks one item and appends it to the body. Runs protected (lua_pcall),
 * with the context at 1 and the item at 2, so that its argument errors can
 * be told again with the item's number. */
static int build_item(lua_State *L)
{
    item_ctx *x = (item_ctx *)lua_touserdata(L, 1);
    qs_args sub;
    const char *s;
    size_t n;
    sub.L = L;
    sub.base = 2;
    sub.fname = x->fname;
    if (lua_type(L, 2) != LUA_TTABLE)
        qs_argerror(&sub, 2, "must be a table { destination = ..., body = ..., queue = ..., opts = ... }, got %s",
                    luaL_typename(L, 2));
    qs_check_keys(&sub, 2, 2, "item key", item_keys);
    lua_getfield(L, 2, "destination"); /* 3 */
    lua_getfield(L, 2, "body");        /* 4 */
    lua_getfield(L, 2, "queue");       /* 5 */
    lua_getfield(L, 2, "opts");        /* 6 */
    qs_publish_check_destination(&sub, 3);
    if (!lua_isnil(L, 5)) check_queue(&sub, 5);
    if (x->mode == QS_OPTS_PUBLISH_JSON) {
        if (!lua_isnil(L, 4)) {
            if (qs_json_encode(L, 4) != 0) qs_argerror(&sub, 4, "body cannot be encoded as JSON: %s", lua_tostring(L, -1));
            lua_replace(L, 4);
        }
    } else if (!lua_isnil(L, 4) && lua_type(L, 4) != LUA_TSTRING) {
        qs_argerror(&sub, 4, "body must be a string, got %s", luaL_typename(L, 4));
    }
    qs_buf_clear(x->lines);
    x->dedup = qs_opts_marshal(&sub, 6, x->lines, x->mode);

    put_literal(L, x->body, "{\"destination\":");
    s = lua_tolstring(L, 3, &n);
    put_string(&sub, 3, x->body, s, n, "destination");
    put_headers(&sub, 6, x);
    if (!lua_isnil(L, 4)) {
        put_literal(L, x->body, ",\"body\":");
        s = lua_tolstring(L, 4, &n);
        put_string(&sub, 4, x->body, s, n, "body");
    }
    if (!lua_isnil(L, 5)) {
        put_literal(L, x->body, ",\"queue\":");
        s = lua_tolstring(L, 5, &n);
        put_string(&sub, 5, x->body, s, n, "queue");
    }
    put_literal(L, x->body, "}");
    return 0;
}

/* Runs build_item for item i (at the top, popped); an argument error it
 * raised is raised again naming the item, any other error as it is. */
static int add_item(lua_State *L, const qs_args *a, item_ctx *x, size_t i)
{
    int st;
    const char *msg, *inner;
    lua_pushcfunction(L, build_item);
    lua_pushlightuserdata(L, x);
    lua_pushvalue(L, -3);
    st = lua_pcall(L, 2, 0, 0);
    if (st == 0) {
        lua_pop(L, 1);
        return x->dedup;
    }
    msg = lua_tostring(L, -1);
    if (st != LUA_ERRMEM && msg && strncmp(msg, "bad argument #", 14) == 0 &&
        (inner = strstr(msg, "' (")) != NULL) {
        size_t len = strlen(inner += 3);
        if (len > 0 && inner[len - 1] == ')') len--;
        qs_argerror(a, a->base, "item %d: %.*s", (int)i, (int)len, inner);
    }
    return lua_error(L);
}

/* The request: every item checked and written into one JSON array. */
static void build_batch(lua_State *L, qs_call *k, const qs_args *a, qs_opts_mode mode)
{
    int items = a->base, all_dedup = 1;
    size_t n, i, keys = 0;
    item_ctx x;
    if (lua_type(L, items) != LUA_TTABLE)
        qs_argerror(a, items, "items must be a list of messages, got %s", luaL_typename(L, items));
    n = qs_rawlen(L, items);
    if (n == 0) qs_argerror(a, items, "items must not be empty (a batch sends at least one message)");
    lua_pushnil(L);
    while (lua_next(L, items)) {
        keys++;
        lua_pop(L, 1);
    }
    if (keys != n) qs_argerror(a, items, "items must be a list (keys 1 to %d only), found other keys", (int)n);
    x.body = &k->req.body;
    x.lines = qs_api_scratch(L);
    x.mode = mode;
    x.fname = a->fname;
    qs_buf_clear(x.body);
    if (qs_buf_addc(x.body, '[')) qs_plan_oom(L);
    for (i = 1; i <= n; i++) {
        if (i > 1 && qs_buf_addc(x.body, ',')) qs_plan_oom(L);
        lua_rawgeti(L, items, (int)i);
        if (!add_item(L, a, &x, i)) all_dedup = 0;
    }
    lua_pop(L, 1);
    if (qs_buf_addc(x.body, ']')) qs_plan_oom(L);
    k->req.method = "POST";
    /* Sending a batch again makes every message again, unless QStash can
     * deduplicate each of them. */
    k->req.resend_ok = all_dedup;
    k->page = n;
    qs_plan_start_target(L, k, "/v2/batch");
    qs_plan_target_done(L, k);
    if (qs_buf_adds(&k->req.headers, "Content-Type: application/json") || qs_buf_addc(&k->req.headers, '\0'))
        qs_plan_oom(L);
}

static void build_raw(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)uv;
    build_batch(L, k, a, QS_OPTS_PUBLISH);
}

static void build_json(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)uv;
    build_batch(L, k, a, QS_OPTS_PUBLISH_JSON);
}

/* Whether the table at the top is one answer (an object) rather than a list. */
static int is_object(lua_State *L)
{
    int yes;
    lua_getfield(L, -1, "messageId");
    yes = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (yes) return 1;
    lua_getfield(L, -1, "error");
    yes = !lua_isnil(L, -1);
    lua_pop(L, 1);
    return yes;
}

/* One answer: a PublishResponse, or QStash's {error = "..."} for an item it
 * refused (the others are sent all the same). */
static const char *shape_answer(lua_State *L)
{
    if (lua_type(L, -1) != LUA_TTABLE) return "expected an object per message";
    lua_getfield(L, -1, "error");
    if (!lua_isnil(L, -1)) {
        int ok = lua_type(L, -1) == LUA_TSTRING;
        lua_pop(L, 1);
        return ok ? NULL : "expected error to be a string";
    }
    lua_pop(L, 1);
    return qs_shape_publish_response(L);
}

/* One item's slot: an answer, or for a URL group an array of them (one per
 * endpoint; empty for a group without endpoints). */
static const char *shape_slot(lua_State *L)
{
    size_t n, i;
    const char *why = NULL;
    if (lua_type(L, -1) != LUA_TTABLE) return "expected an object or an array per message";
    if (is_object(L)) return shape_answer(L);
    n = qs_rawlen(L, -1);
    if (n == 0) {
        /* an empty array, or an object that is no answer */
        lua_pushnil(L);
        if (!lua_next(L, -2)) return NULL;
        lua_pop(L, 2);
        return shape_answer(L);
    }
    for (i = 1; i <= n && !why; i++) {
        lua_rawgeti(L, -1, (int)i);
        why = shape_answer(L);
        lua_pop(L, 1);
    }
    return why;
}

/* The result: one slot per item, in the order given. */
static int absorb_batch(lua_State *L, qs_call *k, int uv, long status)
{
    const char *why = NULL;
    size_t n = k->page, i;
    (void)uv;
    if (!qs_result_json(L, &k->req, status)) return -1;
    if (lua_type(L, -1) != LUA_TTABLE) {
        why = "expected a JSON array";
    } else {
        if (n == 1 && is_object(L)) {
            /* a lone object for a one-item batch: a list of one all the same */
            lua_createtable(L, 1, 0);
            lua_insert(L, -2);
            lua_rawseti(L, -2, 1);
        }
        if (qs_rawlen(L, -1) != n) why = "expected one answer per message, in order";
        for (i = 1; i <= n && !why; i++) {
            lua_rawgeti(L, -1, (int)i);
            why = shape_slot(L);
            lua_pop(L, 1);
        }
    }
    if (!why) return 0;
    lua_pop(L, 1);
    qs_result_shape_error(L, &k->req, status, why);
    return -1;
}

static const qs_plan batch_plan = {"batch", 0, build_raw, absorb_batch, NULL, NULL, NULL};
static const qs_plan batch_json_plan = {"batch_json", 0, build_json, absorb_batch, NULL, NULL, NULL};

const qs_api qs_batch_apis[] = {
    {"batch", NULL, &batch_plan},
    {"batch_json", NULL, &batch_json_plan},
    {NULL, NULL, NULL},
};
