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

double qs_now(void)
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
    double until = qs_now() + seconds, left;
    while ((left = until - qs_now()) > 0) {
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
static void add_rate_limit(lua_State *L, const qs_xfer *x, double wait)
{
    int burst = x->hvals[QS_H_BURST_LIMIT][0] || x->hvals[QS_H_BURST_REMAINING][0] ||
                x->hvals[QS_H_BURST_RESET][0];
    int daily = x->hvals[QS_H_DAILY_LIMIT][0] || x->hvals[QS_H_DAILY_REMAINING][0] ||
                x->hvals[QS_H_DAILY_RESET][0];
    if (wait >= 0) qs_error_setint(L, "retry_after", (long long)ceil(wait));
    if (burst || daily) {
        int base = burst ? QS_H_BURST_LIMIT : QS_H_DAILY_LIMIT;
        lua_createtable(L, 0, 4);
        lua_pushstring(L, burst ? "burst" : "daily");
        lua_setfield(L, -2, "scope");
        set_header_number(L, "limit", x->hvals[base]);
        set_header_number(L, "remaining", x->hvals[base + 1]);
        set_header_number(L, "reset", x->hvals[base + 2]);
        lua_setfield(L, -2, "ratelimit");
    }
}

/* The message of an HTTP error: QStash's {"error": "..."} text, else the body. */
static void push_http_message(lua_State *L, const qs_client *c, const qs_xfer *x, long status)
{
    int decoded = x->body.n > 0 && qs_json_decode(L, x->body.p, x->body.n) == 0;
    if (!decoded && x->body.n > 0) lua_pop(L, 1); /* the decoder's message */
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
    if (x->body.n > 0) {
        qs_error_setscrubbed(L, "message", x->body.p, x->body.n, c->token, 200);
    } else {
        char msg[64];
        snprintf(msg, sizeof msg, "HTTP %ld", status);
        lua_pushstring(L, msg);
        lua_setfield(L, -2, "message");
    }
}

void qs_call_error(lua_State *L, const qs_client *c, const qs_xfer *x, const char *method,
                   const qs_attempt *at, const qs_verdict *v, int attempts, int ambiguous,
                   double wait)
{
    qs_error_push(L, v->kind, NULL);
    lua_pushstring(L, method);
    lua_setfield(L, -2, "method");
    qs_error_setscrubbed(L, "path", x->path.p, x->path.n, c->token, 2048);
    qs_error_setint(L, "attempts", attempts);
    qs_error_setbool(L, "ambiguous", ambiguous);
    if (at->code != CURLE_OK && !at->too_large) {
        const char *m = x->errbuf[0] ? x->errbuf : curl_easy_strerror(at->code);
        qs_error_setint(L, "curl_code", (long long)at->code);
        qs_error_setscrubbed(L, "message", m, strlen(m), c->token, 1024);
        return;
    }
    if (at->status > 0) qs_error_setint(L, "status", at->status);
    if (x->body.n > 0) qs_error_setscrubbed(L, "body", x->body.p, x->body.n, c->token, BODY_CAP);
    if (at->too_large) {
        char msg[96];
        snprintf(msg, sizeof msg, "response body larger than max_response_bytes (%lld)",
                 c->max_response_bytes);
        lua_pushstring(L, msg);
        lua_setfield(L, -2, "message");
        return;
    }
    push_http_message(L, c, x, at->status);
    if (at->status == 429) add_rate_limit(L, x, wait);
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

int qs_call_step(qs_client *c, const qs_xfer *x, const qs_attempt *at, int attempt,
                 int resend_ok, qs_step *st)
{
    st->v = qs_classify(at);
    if (st->v.what == QS_OUT_OK) return QS_STEP_OK;
    st->wait = -1;
    if (at->status == 429) st->wait = qs_rate_limit_wait((const char (*)[QS_HVAL_MAX])x->hvals, now_real());
    /* A later 404 only means "already done" if an earlier try may have acted. */
    if (st->v.unknown) st->ambiguous = 1;
    if (st->v.what == QS_OUT_FAIL || attempt >= c->attempts) return QS_STEP_FAIL;
    if (st->v.unknown && !resend_ok) return QS_STEP_FAIL; /* repeating could do it twice */
    if (st->wait > c->max_delay) return QS_STEP_FAIL;     /* too long: tell the caller when */
    if (st->wait < 0) st->wait = backoff(c, attempt);
    return QS_STEP_RETRY;
}

int qs_call_run(lua_State *L, qs_client *c, const qs_call *call, long *status)
{
    qs_attempt at;
    qs_step st;
    int attempt, r;

    if (qs_client_ready(c) != 0) return luaL_error(L, "qstash: cannot create libcurl handles");
    memset(&st, 0, sizeof st);
    for (attempt = 1;; attempt++) {
        if (qs_engine_perform(c, &call->req, &at) != 0) return luaL_error(L, "not enough memory");
        c->last_attempts = attempt;
        r = qs_call_step(c, &c->sync, &at, attempt, call->resend_ok, &st);
        if (r == QS_STEP_OK) {
            *status = at.status;
            return 1;
        }
        if (r == QS_STEP_FAIL) break;
        sleep_for(st.wait);
    }
    qs_call_error(L, c, &c->sync, call->req.method, &at, &st.v, attempt, st.ambiguous, st.wait);
    return 0;
}
