/* The caller-driven transport (design.md, "Architecture"): client:prepare
 * gives a call; call:step hands out the exact request to send, takes back
 * how it ended, and says what comes next: "send", "wait", "done" or "fail".
 * The decisions are the same C code the libcurl path runs. */
#include <math.h>
#include <string.h>
#include <strings.h>
#include <lauxlib.h>
#include "api/api.h"
#include "call/call.h"
#include "base/clock.h"
#include "base/compat.h"
#include "drive/step.h"

/* client:prepare(name, ...) -> call; the arguments as the API function takes
 * them, checked now (argument errors raise here). */
static int prepare(lua_State *L, qs_client *c, const qs_args *a)
{
    const char *name;
    const qs_plan *plan;
    qs_args fa;
    if (lua_type(L, a->base) != LUA_TSTRING)
        qs_argerror(a, a->base, "the name of an API function expected, got %s", luaL_typename(L, a->base));
    name = lua_tostring(L, a->base);
    plan = qs_api_plan(L, name);
    if (!plan) qs_argerror(a, a->base, "'%s' cannot be prepared (dlq_messages and log_entries: prepare dlq_list or logs pages)", name);
    fa.L = L;
    fa.base = a->base + 1;
    fa.fname = plan->name;
    qs_call_new(L, c, plan, &fa);
    return 1;
}

/* ---- the request, as Lua sees it ---------------------------------------- */

static void push_request(lua_State *L, qs_call *k)
{
    const qs_req *r = &k->req;
    const qs_conf *c = r->conf;
    size_t off = 0;
    int i = 0;
    lua_createtable(L, 0, 9);
    lua_pushstring(L, r->method);
    lua_setfield(L, -2, "method");
    lua_pushlstring(L, r->url.p, r->url.n);
    lua_setfield(L, -2, "url");
    lua_newtable(L);
    while (off < r->headers.n) {
        const char *line = r->headers.p + off, *colon = strchr(line, ':');
        size_t len = strlen(line);
        lua_createtable(L, 2, 0);
        lua_pushlstring(L, line, (size_t)(colon - line));
        lua_rawseti(L, -2, 1);
        lua_pushstring(L, colon + 2); /* after ": " */
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, ++i);
        off += len + 1;
    }
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, r->body.p ? r->body.p : "", r->body.n);
    lua_setfield(L, -2, "body");
    lua_pushnumber(L, qs_req_attempt_ms(r, c->timeout_ms, qs_now()) / 1000.0);
    lua_setfield(L, -2, "timeout");
    lua_pushnumber(L, c->connect_timeout_ms / 1000.0);
    lua_setfield(L, -2, "connect_timeout");
    lua_pushnumber(L, (lua_Number)c->max_response_bytes);
    lua_setfield(L, -2, "max_response_bytes");
    if (c->ca_file) {
        lua_pushstring(L, c->ca_file);
        lua_setfield(L, -2, "ca_file");
    }
    if (c->proxy) {
        lua_pushstring(L, c->proxy);
        lua_setfield(L, -2, "proxy");
    }
}

/* ---- how it ended, as the caller tells it ------------------------------- */

static const char *const failures[] = {"timeout", "network", "too_large", NULL};

/* Copies the value of a captured header (a string, or the last of an array). */
static void capture(lua_State *L, int v, char *out)
{
    size_t n;
    const char *s;
    if (lua_type(L, v) == LUA_TTABLE) {
        size_t len = qs_rawlen(L, v);
        if (len == 0) return;
        lua_rawgeti(L, v, (int)len);
        v = lua_gettop(L);
    }
    if (lua_type(L, v) == LUA_TSTRING) {
        s = lua_tolstring(L, v, &n);
        if (n >= QS_HVAL_MAX) n = QS_HVAL_MAX - 1;
        memcpy(out, s, n);
        out[n] = '\0';
        if (strlen(out) != n) out[0] = '\0'; /* a NUL inside: not a value */
    }
}

static void read_headers(lua_State *L, const qs_args *a, int t, qs_outcome *o)
{
    int top = lua_gettop(L);
    if (lua_isnil(L, t)) return;
    if (lua_type(L, t) != LUA_TTABLE) qs_argerror(a, a->base, "'headers' must be a table of name = value");
    lua_pushnil(L);
    while (lua_next(L, t)) {
        size_t i;
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *name = lua_tostring(L, -2);
            for (i = 0; i < QS_H_COUNT; i++)
                if (strcasecmp(name, qs_captured_headers[i]) == 0) {
                    int v = lua_gettop(L);
                    capture(L, v, o->hvals[i]);
                    lua_settop(L, v);
                }
        }
        lua_pop(L, 1);
    }
    lua_settop(L, top);
}

/* Reads the table at t into *o (a local of the caller) and leaves the body
 * (a string, or nil) at the top: every Lua read, metamethods included, is
 * finished before the call is touched (commit_outcome). */
static void read_outcome(lua_State *L, const qs_args *a, int t, const qs_call *k, qs_outcome *o)
{
    memset(o, 0, sizeof *o);
    if (lua_type(L, t) != LUA_TTABLE)
        qs_argerror(a, a->base, "how the request ended expected: { status, headers, body } or { failure, sent, message }");
    lua_getfield(L, t, "failure");
    if (!lua_isnil(L, -1)) {
        int f = 0;
        const char *s = lua_tostring(L, -1);
        while (failures[f] && (!s || lua_type(L, -1) != LUA_TSTRING || strcmp(s, failures[f]) != 0)) f++;
        if (!failures[f]) qs_argerror(a, a->base, "'failure' must be \"timeout\", \"network\" or \"too_large\"");
        o->failure = f == 0 ? QS_FAIL_TIMEOUT : f == 1 ? QS_FAIL_NETWORK : QS_FAIL_TOO_LARGE;
        lua_getfield(L, t, "sent");
        /* unknown means it may have reached the server */
        if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TBOOLEAN) qs_argerror(a, a->base, "'sent' must be a boolean");
        o->sends = lua_isnil(L, -1) || lua_toboolean(L, -1) ? 1 : 0;
        lua_getfield(L, t, "retryable");
        if (o->failure == QS_FAIL_NETWORK && lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))
            o->failure = QS_FAIL_PERMANENT;
        lua_getfield(L, t, "message");
        if (lua_type(L, -1) == LUA_TSTRING) {
            size_t n;
            const char *m = lua_tolstring(L, -1, &n);
            if (n >= sizeof o->message) n = sizeof o->message - 1;
            memcpy(o->message, m, n);
            o->message[n] = '\0';
        } else if (o->failure != QS_FAIL_TOO_LARGE) {
            strcpy(o->message, o->failure == QS_FAIL_TIMEOUT ? "the attempt timed out" : "the request failed");
        }
        lua_getfield(L, t, "status");
        if (o->failure == QS_FAIL_TOO_LARGE && lua_type(L, -1) == LUA_TNUMBER) {
            double st = lua_tonumber(L, -1);
            if (st >= 100 && st <= 599) o->status = (long)st;
        }
        if (o->failure == QS_FAIL_TOO_LARGE) o->sends = 1;
        lua_settop(L, t);
        lua_pushnil(L); /* no body */
        return;
    }
    lua_getfield(L, t, "status");
    {
        double st = lua_tonumber(L, -1);
        if (lua_type(L, -1) != LUA_TNUMBER || !(st >= 100 && st <= 599) || st != floor(st))
            qs_argerror(a, a->base, "'status' must be an HTTP status from 100 to 599");
        o->status = (long)st;
    }
    o->sends = 1;
    lua_getfield(L, t, "headers");
    read_headers(L, a, lua_gettop(L), o);
    lua_getfield(L, t, "body");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING) qs_argerror(a, a->base, "'body' must be a string");
    if (!lua_isnil(L, -1) && (long long)qs_rawlen(L, -1) > k->req.conf->max_response_bytes) {
        o->failure = QS_FAIL_TOO_LARGE; /* the caller did not stop reading: we do */
        lua_pushnil(L);
    } else {
        lua_pushvalue(L, -1);
    }
    lua_replace(L, t + 1);
    lua_settop(L, t + 1);
}

/* Moves what read_outcome read into the call: *o, and the body at the top. */
static void commit_outcome(lua_State *L, qs_call *k, const qs_outcome *o)
{
    *k->out = *o;
    qs_buf_clear(&k->req.resp);
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        if (qs_buf_add(&k->req.resp, s, n)) luaL_error(L, "not enough memory");
    }
}

/* The body of call:step, run by call_step while the call is marked busy. */
static int step_body(lua_State *L)
{
    qs_call *k = qs_call_at(L, 1);
    qs_call_state st;
    int ended = k->state == QS_K_DONE || k->state == QS_K_FAILED;
    qs_args a;
    a.L = L;
    a.base = 2;
    a.fname = "step";
    if (k->state == QS_K_SENT) {
        qs_outcome o;
        lua_settop(L, 2);
        read_outcome(L, &a, 2, k, &o);
        commit_outcome(L, k, &o);
        lua_settop(L, 1);
        st = qs_call_feed(L, k, 1);
    } else if (!lua_isnoneornil(L, 2)) {
        return qs_argerror(&a, 2, "no request is in flight: call step() without an argument");
    } else {
        lua_settop(L, 1);
        st = qs_call_next(L, k, 1);
    }
    if ((st == QS_K_DONE || st == QS_K_FAILED) && !ended) {
        /* kept for step() asked again after the end */
        qs_call_keep(L, k);
        qs_call_release(k);
    }
    switch (st) {
    case QS_K_SEND:
        qs_call_sent(k);
        lua_pushliteral(L, "send");
        push_request(L, k);
        return 2;
    case QS_K_WAIT:
        lua_pushliteral(L, "wait");
        lua_pushnumber(L, k->wait);
        if (k->rate_limited) lua_pushliteral(L, "rate_limited");
        else if (k->polling) lua_pushliteral(L, "poll");
        else lua_pushliteral(L, "backoff");
        return 3;
    case QS_K_DONE:
        lua_pushliteral(L, "done");
        lua_insert(L, -2);
        return 2;
    default:
        lua_pushliteral(L, "fail");
        lua_insert(L, -2);
        return 2;
    }
}

/* call:step([how it ended]) -> "send", request | "wait", seconds, why |
 * "done", result | "fail", err
 * Lua runs inside a step: the answer's metamethods, and any finalizer the
 * collector runs at an allocation. A step entered again from there on the
 * same call would free or rewrite what the outer one is still using, so the
 * call is marked busy for the whole step (in a protected call, so that an
 * error cannot leave the mark behind) and a second step raises. */
static int call_step(lua_State *L)
{
    qs_call *k = qs_call_at(L, 1);
    int n = lua_gettop(L), i, rc;
    if (k->collected) return luaL_error(L, "qstash: the call was collected (its __gc ran)");
    if (k->busy)
        return luaL_error(L, "qstash: step() re-entered: this call's step is still running "
                             "(in a metamethod or a finalizer it ran)");
    k->busy = 1;
    lua_pushcfunction(L, step_body);
    for (i = 1; i <= n; i++) lua_pushvalue(L, i); /* the call stays at 1 meanwhile */
    rc = lua_pcall(L, n, LUA_MULTRET, 0);
    k->busy = 0;
    if (rc != 0) return lua_error(L);
    return lua_gettop(L) - n;
}

void qs_step_register(lua_State *L)
{
    luaL_getmetatable(L, QS_CALL_MT);
    lua_getfield(L, -1, "__index");
    lua_pushcfunction(L, call_step);
    lua_setfield(L, -2, "step");
    lua_pop(L, 2);
}

const qs_api qs_step_apis[] = {
    {"prepare", prepare, NULL},
    {NULL, NULL, NULL},
};
