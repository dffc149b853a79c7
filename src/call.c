/* Attempts, backoff with full jitter, 429 waits and error objects
 * (design.md, "Retries and time" and "Errors"). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <lauxlib.h>
#include "call.h"
#include "classify.h"
#include "compat.h"
#include "errors.h"
#include "response.h"

#define BODY_CAP 4096

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_for(double seconds)
{
    double until = now_mono() + seconds, left;
    while ((left = until - now_mono()) > 0) {
        struct timespec ts;
        ts.tv_sec = (time_t)left;
        ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
        if (nanosleep(&ts, NULL) != 0 && errno != EINTR) break;
    }
}

static double backoff(qs_client *c, int attempt)
{
    double cap = c->base_delay * pow(2.0, attempt - 1);
    if (cap > c->max_delay) cap = c->max_delay;
    return qs_client_random(c) * cap;
}

static void set_header_number(lua_State *L, const char *field, const char *v)
{
    char *end;
    double d;
    if (!v[0]) return;
    d = strtod(v, &end);
    if (end == v || *end) return;
    if (d == floor(d) && fabs(d) < 9e15) qs_pushint(L, (long long)d);
    else lua_pushnumber(L, d);
    lua_setfield(L, -2, field);
}

/* Adds retry_after and ratelimit to the error at the top. */
static void add_rate_limit(lua_State *L, const qs_client *c, double wait)
{
    int burst = c->hvals[QS_H_BURST_LIMIT][0] || c->hvals[QS_H_BURST_REMAINING][0] ||
                c->hvals[QS_H_BURST_RESET][0];
    int daily = c->hvals[QS_H_DAILY_LIMIT][0] || c->hvals[QS_H_DAILY_REMAINING][0] ||
                c->hvals[QS_H_DAILY_RESET][0];
    if (wait >= 0) qs_error_setint(L, "retry_after", (long long)ceil(wait));
    if (burst || daily) {
        int base = burst ? QS_H_BURST_LIMIT : QS_H_DAILY_LIMIT;
        lua_createtable(L, 0, 4);
        lua_pushstring(L, burst ? "burst" : "daily");
        lua_setfield(L, -2, "scope");
        set_header_number(L, "limit", c->hvals[base]);
        set_header_number(L, "remaining", c->hvals[base + 1]);
        set_header_number(L, "reset", c->hvals[base + 2]);
        lua_setfield(L, -2, "ratelimit");
    }
}

/* The message of an HTTP error: QStash's {"error": "..."} text, else the body. */
static void push_http_message(lua_State *L, qs_client *c, long status)
{
    int decoded = c->body.n > 0 && qs_json_decode(L, c->body.p, c->body.n) == 0;
    if (!decoded && c->body.n > 0) lua_pop(L, 1); /* the decoder's message */
    if (decoded) {
        if (lua_type(L, -1) == LUA_TTABLE) {
            lua_getfield(L, -1, "error");
            if (lua_type(L, -1) == LUA_TSTRING) {
                size_t n;
                const char *s = lua_tolstring(L, -1, &n);
                /* stack: err, decoded, text -> text, err (text stays alive) */
                lua_remove(L, -2);
                lua_insert(L, -2);
                qs_error_setscrubbed(L, "message", s, n, c->token, BODY_CAP);
                lua_remove(L, -2);
                return;
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    if (c->body.n > 0) {
        qs_error_setscrubbed(L, "message", c->body.p, c->body.n, c->token, 200);
    } else {
        char msg[64];
        snprintf(msg, sizeof msg, "HTTP %ld", status);
        lua_pushstring(L, msg);
        lua_setfield(L, -2, "message");
    }
}

static void push_error(lua_State *L, qs_client *c, const qs_call *call, const qs_attempt *at,
                       const qs_verdict *v, int attempts, int ambiguous, double wait)
{
    qs_error_push(L, v->kind, NULL);
    lua_pushstring(L, call->req.method);
    lua_setfield(L, -2, "method");
    qs_error_setscrubbed(L, "path", c->path.p, c->path.n, c->token, 2048);
    qs_error_setint(L, "attempts", attempts);
    qs_error_setbool(L, "ambiguous", ambiguous);
    if (at->code != CURLE_OK && !at->too_large) {
        const char *m = c->errbuf[0] ? c->errbuf : curl_easy_strerror(at->code);
        qs_error_setint(L, "curl_code", (long long)at->code);
        qs_error_setscrubbed(L, "message", m, strlen(m), c->token, 1024);
        return;
    }
    if (at->status > 0) qs_error_setint(L, "status", at->status);
    if (c->body.n > 0) qs_error_setscrubbed(L, "body", c->body.p, c->body.n, c->token, BODY_CAP);
    if (at->too_large) {
        char msg[96];
        snprintf(msg, sizeof msg, "response body larger than max_response_bytes (%lld)",
                 c->max_response_bytes);
        lua_pushstring(L, msg);
        lua_setfield(L, -2, "message");
        return;
    }
    push_http_message(L, c, at->status);
    if (at->status == 429) add_rate_limit(L, c, wait);
    if (at->status == 404 && ambiguous) {
        lua_getfield(L, -1, "message");
        lua_pushliteral(L, " (an earlier attempt's outcome is unknown: it may already have taken effect)");
        lua_concat(L, 2);
        lua_setfield(L, -2, "message");
    }
}

int qs_call_have_token(lua_State *L, qs_client *c)
{
    if (c->token) return 1;
    qs_error_push(L, "config", c->missing_token);
    return 0;
}

int qs_call_run(lua_State *L, qs_client *c, const qs_call *call, long *status)
{
    qs_attempt at;
    qs_verdict v;
    int attempt, ambiguous = 0;
    double wait = -1;

    if (qs_client_ready(c) != 0) return luaL_error(L, "qstash: cannot create libcurl handles");
    for (attempt = 1;; attempt++) {
        if (qs_engine_perform(c, &call->req, &at) != 0) return luaL_error(L, "not enough memory");
        v = qs_classify(&at);
        c->last_attempts = attempt;
        if (v.what == QS_OUT_OK) {
            *status = at.status;
            return 1;
        }
        wait = -1;
        if (at.status == 429) wait = qs_rate_limit_wait((const char (*)[QS_HVAL_MAX])c->hvals, now_real());
        /* A later 404 only means "already done" if an earlier try may have acted. */
        if (v.what == QS_OUT_FAIL || attempt >= c->attempts) {
            ambiguous = ambiguous || v.unknown;
            break;
        }
        if (v.unknown) {
            ambiguous = 1;
            if (!call->resend_ok) break; /* repeating could do it twice */
        }
        if (wait > c->max_delay) break; /* too long to sleep: tell the caller when */
        sleep_for(wait >= 0 ? wait : backoff(c, attempt));
    }
    push_error(L, c, call, &at, &v, attempt, ambiguous, wait);
    return 0;
}
