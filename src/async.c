/* Async requests and batches over the client's multi handle.
 *
 * A request is a userdata (the handle) holding its own transfer. While it is
 * active it sits in the client's list and the registry keeps it, its
 * callback and its client alive. `poll` drives libcurl, decides after each
 * attempt (the same decision as synchronous calls), and runs callbacks under
 * pcall once a request's C state is complete: no Lua runs inside libcurl and
 * no error unwinds through half-open transfers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "api.h"
#include "async.h"
#include "call.h"
#include "compat.h"
#include "errors.h"
#include "options.h"
#include "response.h"

#define QS_ASYNC_MT "qstash.request"

enum { A_WAITING, A_RUNNING, A_FINISHED, A_CANCELLED, A_DONE };

typedef struct qs_async {
    qs_xfer x;
    struct qs_async *next, *prev;
    qs_client *c;
    int state;
    int attempt;
    qs_step st;
    qs_attempt at;
    double start_at;   /* A_WAITING: not before this (monotonic) */
    int cb_ref, self_ref, client_ref;
    int batch_idx;         /* dlq_retry_each: the id's index, passed to the callback */
    const void *batch;     /* dlq_retry_each: which batch it belongs to; such a request
                              is plain C memory with no handle, and the batch owns cb_ref */
} qs_async;

static const qs_request retry_request = {"POST", NULL, 0, NULL};

static void link_active(qs_client *c, qs_async *a)
{
    a->prev = NULL;
    a->next = c->active;
    if (c->active) c->active->prev = a;
    c->active = a;
    c->pending++;
}

static void unlink_active(qs_client *c, qs_async *a)
{
    if (a->prev) a->prev->next = a->next;
    else c->active = a->next;
    if (a->next) a->next->prev = a->prev;
    a->next = a->prev = NULL;
    c->pending--;
}

static void detach(qs_client *c, qs_async *a)
{
    if (a->x.in_multi && c->multi) curl_multi_remove_handle(c->multi, a->x.easy);
    a->x.in_multi = 0;
}

/* Releases what the request holds: its transfer (whose handle the client
 * keeps for the next request) and its registry refs. */
static void release(lua_State *L, qs_async *a)
{
    qs_client_give_spare(a->c, &a->x);
    if (a->batch) {
        free(a);
        return;
    }
    luaL_unref(L, LUA_REGISTRYINDEX, a->cb_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, a->client_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, a->self_ref);
    a->cb_ref = a->client_ref = a->self_ref = LUA_NOREF;
    a->state = A_DONE;
}

void qs_async_close_all(lua_State *L, qs_client *c)
{
    while (c->active) {
        qs_async *a = c->active;
        detach(c, a);
        unlink_active(c, a);
        release(L, a);
    }
}

/* Starts the waiting requests whose time has come (and no 429 pause holds). */
static void start_due(qs_client *c, double now)
{
    qs_async *a;
    if (now < c->pause_until) return;
    for (a = c->active; a; a = a->next) {
        if (a->state != A_WAITING || a->start_at > now) continue;
        if (qs_engine_setup(c, &a->x, &retry_request, 1) != 0 ||
            curl_multi_add_handle(c->multi, a->x.easy) != CURLM_OK) {
            /* cannot start: finish it as a failed attempt */
            a->x.result = CURLE_OUT_OF_MEMORY;
            a->x.done = 1;
            a->attempt++;
            a->state = A_RUNNING;
            continue;
        }
        a->x.in_multi = 1;
        a->attempt++;
        a->state = A_RUNNING;
    }
}

/* Decides after each finished attempt: retry later, or finished. */
static void settle(qs_client *c, double now)
{
    qs_async *a;
    for (a = c->active; a; a = a->next) {
        int r;
        if (a->state != A_RUNNING || !a->x.done) continue;
        qs_engine_outcome(&a->x, &a->at);
        detach(c, a);
        r = qs_call_step(c, &a->x, &a->at, a->attempt, 1, &a->st);
        if (r == QS_STEP_RETRY) {
            a->state = A_WAITING;
            a->start_at = now + a->st.wait;
            /* a 429 pauses every start of this client until its wait is over */
            if (a->at.status == 429 && a->start_at > c->pause_until) c->pause_until = a->start_at;
        } else {
            a->state = A_FINISHED;
        }
    }
}

/* Pushes callback, res, err for a finished or cancelled request, then
 * releases it. */
static int push_completion(lua_State *L, qs_client *c, qs_async *a)
{
    int nargs = 2;
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->cb_ref);
    if (a->batch) {
        /* a batch's one callback learns which id from its index */
        qs_pushint(L, a->batch_idx);
        nargs = 3;
    }
    if (a->state == A_CANCELLED) {
        lua_pushnil(L);
        qs_error_push(L, "cancelled", "the request was cancelled");
        lua_pushliteral(L, "POST");
        lua_setfield(L, -2, "method");
        qs_error_setscrubbed(L, "path", a->x.path.p, a->x.path.n, c->token, 2048);
        qs_error_setint(L, "attempts", a->attempt);
        /* cancelled after being sent: the retry may have happened */
        qs_error_setbool(L, "ambiguous", a->st.ambiguous || a->x.in_multi);
    } else if (a->st.v.what == QS_OUT_OK) {
        if (qs_api_decode(L, c, &a->x, "POST", a->at.status)) {
            const char *why = qs_shape_publish_response(L);
            if (why) {
                lua_pop(L, 1);
                qs_api_shape_error(L, c, &a->x, "POST", a->at.status, why);
                lua_pushnil(L);
                lua_insert(L, -2);
            } else {
                lua_pushnil(L);
            }
        } else {
            lua_pushnil(L);
            lua_insert(L, -2);
        }
    } else {
        lua_pushnil(L);
        qs_call_error(L, c, &a->x, "POST", &a->at, &a->st.v, a->attempt, a->st.ambiguous, a->st.wait);
    }
    detach(c, a);
    unlink_active(c, a);
    release(L, a);
    return nargs;
}

/* Runs the callbacks of every completed request. Returns how many ran; the
 * first callback error (if any) is left in *err_ref. */
static int run_callbacks(lua_State *L, qs_client *c, int *err_ref)
{
    int ran = 0;
    for (;;) {
        qs_async *a;
        for (a = c->active; a; a = a->next)
            if (a->state == A_FINISHED || a->state == A_CANCELLED) break;
        if (!a) return ran;
        {
            int nargs = push_completion(L, c, a);
            ran++;
            if (lua_pcall(L, nargs, 0, 0) == 0) goto next;
        }
        {
            if (*err_ref == LUA_NOREF) *err_ref = luaL_ref(L, LUA_REGISTRYINDEX);
            else lua_pop(L, 1);
        }
    next:
        if (c->closed) return ran; /* close() inside a callback cancels the rest */
    }
}

static int any_completed(qs_client *c)
{
    qs_async *a;
    for (a = c->active; a; a = a->next)
        if (a->state == A_FINISHED || a->state == A_CANCELLED) return 1;
    return 0;
}

/* Drives every transfer until at least one request completes or `timeout`
 * seconds pass, then runs the callbacks of all completed ones. */
static int drive(lua_State *L, qs_client *c, double timeout, int *err_ref)
{
    double deadline = qs_now() + timeout;
    if (qs_client_ready(c) != 0) return luaL_error(L, "qstash: cannot create libcurl handles");
    c->in_poll++;
    for (;;) {
        double now = qs_now(), wake = deadline;
        int running = 0;
        qs_async *a;
        start_due(c, now);
        curl_multi_perform(c->multi, &running);
        qs_engine_collect(c);
        settle(c, qs_now());
        if (any_completed(c) || c->pending == 0) break;
        now = qs_now();
        if (now >= deadline) break;
        for (a = c->active; a; a = a->next) {
            if (a->state != A_WAITING) continue;
            double at = a->start_at > c->pause_until ? a->start_at : c->pause_until;
            if (at < wake) wake = at;
        }
        if (wake > now) {
            double ms = ceil((wake - now) * 1000.0);
            curl_multi_poll(c->multi, NULL, 0, ms > 1e6 ? 1000000 : (int)ms, NULL);
        }
    }
    {
        int ran = run_callbacks(L, c, err_ref);
        c->in_poll--;
        return ran;
    }
}

static void raise_callback_error(lua_State *L, int err_ref)
{
    if (err_ref == LUA_NOREF) return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, err_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, err_ref);
    if (lua_type(L, -1) == LUA_TSTRING)
        luaL_error(L, "qstash: error in a callback: %s", lua_tostring(L, -1));
    lua_error(L);
}

/* Creates an active request for the id at idx, with the header lines now in
 * c->headers. A single request gets a handle (pushed) holding refs to its
 * callback at cb and to the client; a batch request (batch != NULL) is plain
 * C memory whose callback ref cb_ref belongs to the batch. */
static qs_async *new_request(lua_State *L, qs_client *c, const qs_args *a, int idx, int cb,
                             const void *batch, int batch_idx, int cb_ref)
{
    qs_async *r;
    int top = 0;
    qs_buf_clear(&c->query);
    if (qs_buf_adds(&c->query, "/v2/dlq/retry/")) luaL_error(L, "not enough memory");
    qs_api_add_id(a, idx, &c->query);
    qs_api_target(L, c, c->query.p, c->query.n);
    if (batch) {
        r = (qs_async *)calloc(1, sizeof *r);
        if (!r) luaL_error(L, "not enough memory");
    } else {
        r = (qs_async *)qs_newudata(L, sizeof *r);
        memset(r, 0, sizeof *r);
        luaL_getmetatable(L, QS_ASYNC_MT);
        lua_setmetatable(L, -2);
        top = lua_gettop(L);
    }
    r->cb_ref = r->self_ref = r->client_ref = LUA_NOREF;
    r->state = A_DONE;
    if (qs_client_take_spare(c, &r->x) || qs_buf_add(&r->x.url, c->sync.url.p, c->sync.url.n) ||
        qs_buf_add(&r->x.path, c->sync.path.p, c->sync.path.n) ||
        qs_engine_headers(c, &r->x, &retry_request)) {
        qs_xfer_free(&r->x);
        if (batch) free(r);
        luaL_error(L, "not enough memory");
        return NULL;
    }
    r->c = c;
    if (batch) {
        r->cb_ref = cb_ref;
    } else {
        lua_pushvalue(L, cb);
        r->cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        lua_pushvalue(L, a->base - 1);
        r->client_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        lua_pushvalue(L, top);
        r->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    r->batch = batch;
    r->batch_idx = batch_idx;
    r->state = A_WAITING;
    r->start_at = 0; /* due at once */
    link_active(c, r);
    return r;
}

/* client:dlq_retry_async(id, opts, callback) -> handle; callback(res, err) runs from poll */
static int dlq_retry_async(lua_State *L, qs_client *c, const qs_args *a)
{
    int cb = a->base + 2;
    lua_settop(L, cb);
    qs_api_check_id(a, a->base, &(size_t){0});
    qs_buf_clear(&c->headers);
    qs_opts_marshal(a, a->base + 1, &c->headers, 0, NULL);
    if (lua_type(L, cb) != LUA_TFUNCTION)
        qs_argerror(a, cb, "callback must be a function, got %s", luaL_typename(L, cb));
    if (!qs_call_have_token(L, c)) return qs_error_finish(L, c->safe);
    if (qs_client_ready(c) != 0) return luaL_error(L, "qstash: cannot create libcurl handles");
    new_request(L, c, a, a->base, cb, NULL, 0, LUA_NOREF);
    return 1;
}

/* client:poll(timeout_s) -> how many callbacks ran */
static int poll(lua_State *L, qs_client *c, const qs_args *a)
{
    double timeout = 0;
    int ran, err_ref = LUA_NOREF;
    if (!lua_isnoneornil(L, a->base)) {
        if (lua_type(L, a->base) != LUA_TNUMBER || !(lua_tonumber(L, a->base) >= 0))
            qs_argerror(a, a->base, "timeout must be a number of seconds >= 0");
        timeout = lua_tonumber(L, a->base);
    }
    if (c->in_poll) return luaL_error(L, "qstash: poll cannot run inside a callback");
    ran = drive(L, c, timeout, &err_ref);
    raise_callback_error(L, err_ref);
    qs_pushint(L, ran);
    return 1;
}

/* client:pending() -> requests not yet completed */
static int pending(lua_State *L, qs_client *c, const qs_args *a)
{
    (void)a;
    qs_pushint(L, c->pending);
    return 1;
}

/* client:wait() -> runs until nothing is pending; returns how many callbacks ran */
static int wait_all(lua_State *L, qs_client *c, const qs_args *a)
{
    int ran = 0, err_ref = LUA_NOREF;
    (void)a;
    if (c->in_poll) return luaL_error(L, "qstash: wait cannot run inside a callback");
    while (c->pending > 0 && !c->closed) ran += drive(L, c, 1.0, &err_ref);
    raise_callback_error(L, err_ref);
    qs_pushint(L, ran);
    return 1;
}

/* handle:cancel() -> true when it was still pending (its callback gets a
 * `cancelled` error from the next poll), false otherwise */
/* Completes a pending request with `cancelled`; 0 if it was not pending. */
static int cancel(qs_async *r)
{
    if (r->state != A_WAITING && r->state != A_RUNNING) return 0;
    if (r->x.in_multi) {
        r->st.ambiguous = 1; /* it may have been sent */
        detach(r->c, r);
    }
    r->state = A_CANCELLED;
    return 1;
}

static int handle_cancel(lua_State *L)
{
    qs_async *r = (qs_async *)luaL_checkudata(L, 1, QS_ASYNC_MT);
    lua_pushboolean(L, cancel(r));
    return 1;
}

static int handle_gc(lua_State *L)
{
    qs_async *r = (qs_async *)luaL_checkudata(L, 1, QS_ASYNC_MT);
    /* Only reached with a live request while the Lua state closes. */
    if (r->state != A_DONE && !r->c->closed) {
        detach(r->c, r);
        unlink_active(r->c, r);
    }
    qs_xfer_free(&r->x);
    r->state = A_DONE;
    return 0;
}

static int handle_tostring(lua_State *L)
{
    static const char *const names[] = {"waiting", "running", "finished", "cancelled", "done"};
    qs_async *r = (qs_async *)luaL_checkudata(L, 1, QS_ASYNC_MT);
    lua_pushfstring(L, "qstash.request (%s): %p", names[r->state], (void *)r);
    return 1;
}

void qs_async_register(lua_State *L)
{
    if (luaL_newmetatable(L, QS_ASYNC_MT)) {
        lua_pushcfunction(L, handle_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, handle_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_newtable(L);
        lua_pushcfunction(L, handle_cancel);
        lua_setfield(L, -2, "cancel");
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

/* ---- dlq_retry_each ------------------------------------------------------ */

static const char *const each_keys[] = {"concurrency", "on_result", "on_progress", NULL};

/* A batch's counters, kept in C: its one callback runs once per id. */
typedef struct each_state {
    size_t ok, failed, done, total;
} each_state;

/* The one callback of a batch's requests: (index of the id, res, err).
 * Upvalues: the counters (userdata), the list of distinct ids, the results
 * table, on_result, on_progress (either may be nil). */
static int each_done(lua_State *L)
{
    each_state *s = (each_state *)lua_touserdata(L, lua_upvalueindex(1));
    int ok = lua_isnil(L, 3);
    lua_rawgeti(L, lua_upvalueindex(2), (int)lua_tointeger(L, 1));
    lua_replace(L, 1); /* args: id, res, err */
    lua_pushvalue(L, 1);
    lua_pushvalue(L, ok ? 2 : 3);
    lua_rawset(L, lua_upvalueindex(3));
    if (ok) s->ok++;
    else s->failed++;
    s->done++;
    if (!lua_isnil(L, lua_upvalueindex(4))) {
        lua_pushvalue(L, lua_upvalueindex(4));
        lua_pushvalue(L, 1);
        lua_pushvalue(L, 2);
        lua_pushvalue(L, 3);
        lua_call(L, 3, 0);
    }
    if (!lua_isnil(L, lua_upvalueindex(5))) {
        lua_pushvalue(L, lua_upvalueindex(5));
        qs_pushint(L, (long long)s->done);
        qs_pushint(L, (long long)s->total);
        lua_call(L, 2, 0);
    }
    return 0;
}

/* client:dlq_retry_each(ids, opts, { concurrency = 32, on_result = fn, on_progress = fn })
 *   -> { ok = n, failed = n, results = { [id] = res or err } } */
static int dlq_retry_each(lua_State *L, qs_client *c, const qs_args *a)
{
    int ids = a->base, opts = a->base + 1, cfg = a->base + 2;
    int list, results, on_result, on_progress, done_cb, headers, err_ref = LUA_NOREF, cb_ref;
    each_state *st;
    size_t n, i, total = 0, next = 1, concurrency = 32;
    lua_settop(L, cfg);
    if (lua_type(L, ids) != LUA_TTABLE)
        qs_argerror(a, ids, "expected an array of DLQ ids, got %s", luaL_typename(L, ids));
    n = qs_rawlen(L, ids);
    if (n == 0) qs_argerror(a, ids, "an empty list of ids");
    qs_buf_clear(&c->headers);
    qs_opts_marshal(a, opts, &c->headers, 0, NULL);
    lua_pushlstring(L, c->headers.p ? c->headers.p : "", c->headers.n);
    headers = lua_gettop(L);

    lua_pushnil(L);
    on_result = lua_gettop(L);
    lua_pushnil(L);
    on_progress = lua_gettop(L);
    if (!lua_isnil(L, cfg)) {
        if (lua_type(L, cfg) != LUA_TTABLE) qs_argerror(a, cfg, "options of the batch must be a table");
        qs_check_keys(a, cfg, cfg, "batch option", each_keys);
        lua_getfield(L, cfg, "concurrency");
        if (!lua_isnil(L, -1)) {
            double d = lua_tonumber(L, -1);
            if (lua_type(L, -1) != LUA_TNUMBER || d != floor(d) || d < 1 || d > 1024)
                qs_argerror(a, cfg, "'concurrency' must be an integer from 1 to 1024");
            concurrency = (size_t)d;
        }
        lua_pop(L, 1);
        lua_getfield(L, cfg, "on_result");
        if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TFUNCTION)
            qs_argerror(a, cfg, "'on_result' must be a function");
        lua_replace(L, on_result);
        lua_getfield(L, cfg, "on_progress");
        if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TFUNCTION)
            qs_argerror(a, cfg, "'on_progress' must be a function");
        lua_replace(L, on_progress);
    }

    /* distinct ids, checked before anything is sent */
    lua_createtable(L, (int)n, 0);
    list = lua_gettop(L);
    lua_createtable(L, 0, (int)n); /* seen */
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, ids, (int)i);
        {
            qs_args la = *a;
            int top = lua_gettop(L);
            if (lua_type(L, top) != LUA_TSTRING) qs_argerror(a, ids, "DLQ id #%d is not a string", (int)i);
            la.base = a->base + (top - ids);
            qs_api_check_id(&la, top, &(size_t){0});
        }
        lua_pushvalue(L, -1);
        lua_rawget(L, -3);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushvalue(L, -1);
            lua_pushboolean(L, 1);
            lua_rawset(L, -4);
            lua_rawseti(L, list, (int)++total);
        } else {
            lua_pop(L, 2);
        }
    }
    lua_pop(L, 1);
    lua_createtable(L, 0, (int)total);
    results = lua_gettop(L);
    st = (each_state *)qs_newudata(L, sizeof *st);
    memset(st, 0, sizeof *st);
    st->total = total;
    lua_pushvalue(L, list);
    lua_pushvalue(L, results);
    lua_pushvalue(L, on_result);
    lua_pushvalue(L, on_progress);
    lua_pushcclosure(L, each_done, 5); /* the batch's one callback */
    done_cb = lua_gettop(L);

    if (!qs_call_have_token(L, c)) return qs_error_finish(L, c->safe);
    if (c->in_poll) return luaL_error(L, "qstash: dlq_retry_each cannot run inside a callback");
    if (qs_client_ready(c) != 0) return luaL_error(L, "qstash: cannot create libcurl handles");
    /* one ref for the whole batch: its requests hold no refs of their own */
    lua_pushvalue(L, done_cb);
    cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    for (;;) {
        /* keep `concurrency` requests of this batch in flight */
        while (err_ref == LUA_NOREF && next <= total && next - 1 - st->done < concurrency) {
            size_t hl;
            const char *h = lua_tolstring(L, headers, &hl);
            qs_buf_clear(&c->headers);
            if (qs_buf_add(&c->headers, h, hl)) return luaL_error(L, "not enough memory");
            lua_rawgeti(L, list, (int)next);
            /* ids were checked above */
            new_request(L, c, a, lua_gettop(L), done_cb, (const void *)st, (int)next, cb_ref);
            lua_pop(L, 1);
            next++;
        }
        if (st->done >= total || c->closed) break;
        if (err_ref != LUA_NOREF) {
            /* a callback failed: cancel the rest of the batch, then report */
            qs_async *r;
            for (r = c->active; r; r = r->next)
                if (r->batch == (const void *)st) cancel(r);
            while (c->pending > 0 && !c->closed) {
                int dummy = LUA_NOREF;
                drive(L, c, 0.1, &dummy);
                if (dummy != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, dummy);
                if (st->done + (total - (next - 1)) >= total) break;
            }
            luaL_unref(L, LUA_REGISTRYINDEX, cb_ref);
            raise_callback_error(L, err_ref);
        }
        drive(L, c, 1.0, &err_ref);
    }
    luaL_unref(L, LUA_REGISTRYINDEX, cb_ref);
    lua_createtable(L, 0, 3);
    qs_pushint(L, (long long)st->ok);
    lua_setfield(L, -2, "ok");
    qs_pushint(L, (long long)st->failed);
    lua_setfield(L, -2, "failed");
    lua_pushvalue(L, results);
    lua_setfield(L, -2, "results");
    return 1;
}

const qs_api qs_async_apis[] = {
    {"dlq_retry_async", dlq_retry_async},
    {"poll", poll},
    {"pending", pending},
    {"wait", wait_all},
    {"dlq_retry_each", dlq_retry_each},
    {NULL, NULL},
};
