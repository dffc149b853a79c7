/* Results and error objects of requests (see result.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "base/compat.h"
#include "core/errors.h"
#include "core/response.h"
#include "call/result.h"

#define BODY_CAP 4096
#define PATH_CAP 2048

static const char *secret(const qs_req *r)
{
    return r->conf ? r->conf->token : NULL;
}

/* The fields every request error has. */
static void push_base(lua_State *L, const qs_req *r, const char *kind, int attempts, int ambiguous)
{
    qs_error_push(L, kind, NULL);
    lua_pushstring(L, r->method);
    lua_setfield(L, -2, "method");
    qs_error_setscrubbed(L, "path", r->target.p ? r->target.p : "", r->target.n, secret(r), PATH_CAP);
    qs_error_setint(L, "attempts", attempts);
    qs_error_setbool(L, "ambiguous", ambiguous);
}

static void set_header_number(lua_State *L, const char *field, const char *v)
{
    char *end;
    double d;
    if (!v[0]) return;
    d = strtod(v, &end);
    if (end == v || *end || !isfinite(d)) return;
    if (d == floor(d) && fabs(d) < 9e15) qs_pushint(L, (long long)d);
    else lua_pushnumber(L, d);
    lua_setfield(L, -2, field);
}

/* Adds retry_after and ratelimit to the error at the top. */
static void add_rate_limit(lua_State *L, const qs_outcome *o, double wait)
{
    int burst = o->hvals[QS_H_BURST_LIMIT][0] || o->hvals[QS_H_BURST_REMAINING][0] ||
                o->hvals[QS_H_BURST_RESET][0];
    int daily = o->hvals[QS_H_DAILY_LIMIT][0] || o->hvals[QS_H_DAILY_REMAINING][0] ||
                o->hvals[QS_H_DAILY_RESET][0];
    if (wait >= 0 && wait < 1e15) qs_error_setint(L, "retry_after", (long long)ceil(wait));
    if (burst || daily) {
        int base = burst ? QS_H_BURST_LIMIT : QS_H_DAILY_LIMIT;
        lua_createtable(L, 0, 4);
        lua_pushstring(L, burst ? "burst" : "daily");
        lua_setfield(L, -2, "scope");
        set_header_number(L, "limit", o->hvals[base]);
        set_header_number(L, "remaining", o->hvals[base + 1]);
        set_header_number(L, "reset", o->hvals[base + 2]);
        lua_setfield(L, -2, "ratelimit");
    }
}

/* The message of an HTTP error: QStash's {"error": "..."} text, else the
 * start of the body, else "HTTP <status>". */
static void push_http_message(lua_State *L, const qs_req *r, long status)
{
    const qs_buf *b = &r->resp;
    if (b->n > 0 && qs_json_decode(L, b->p, b->n) == 0) {
        if (lua_type(L, -1) == LUA_TTABLE) {
            lua_getfield(L, -1, "error");
            if (lua_type(L, -1) == LUA_TSTRING) {
                size_t n;
                const char *s = lua_tolstring(L, -1, &n);
                /* stack: err, decoded, text: the text stays alive meanwhile */
                lua_pushvalue(L, -3);
                qs_error_setscrubbed(L, "message", s, n, secret(r), BODY_CAP);
                lua_pop(L, 3);
                return;
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    } else if (b->n > 0) {
        lua_pop(L, 1); /* the decoder's message */
    }
    if (b->n > 0) {
        qs_error_setscrubbed(L, "message", b->p, b->n, secret(r), 200);
    } else {
        char msg[64];
        snprintf(msg, sizeof msg, "HTTP %ld", status);
        lua_pushstring(L, msg);
        lua_setfield(L, -2, "message");
    }
}

void qs_result_error(lua_State *L, const qs_req *r, const qs_outcome *o, const qs_decision *d)
{
    push_base(L, r, d->kind, d->attempts, d->ambiguous);
    if (o->failure != QS_FAIL_NONE && o->failure != QS_FAIL_TOO_LARGE) {
        if (o->code) qs_error_setint(L, "curl_code", o->code);
        qs_error_setscrubbed(L, "message", o->message, strlen(o->message), secret(r), 1024);
        return;
    }
    if (o->status > 0) qs_error_setint(L, "status", o->status);
    if (r->resp.n > 0) qs_error_setscrubbed(L, "body", r->resp.p, r->resp.n, secret(r), BODY_CAP);
    if (o->failure == QS_FAIL_TOO_LARGE) {
        char msg[96];
        snprintf(msg, sizeof msg, "response body larger than max_response_bytes (%lld)",
                 r->conf->max_response_bytes);
        lua_pushstring(L, msg);
        lua_setfield(L, -2, "message");
        return;
    }
    push_http_message(L, r, o->status);
    if (o->status == 429) add_rate_limit(L, o, d->wait);
    if (o->status == 404 && d->ambiguous) {
        lua_getfield(L, -1, "message");
        lua_pushliteral(L, " (an earlier attempt's outcome is unknown: it may already have taken effect)");
        lua_concat(L, 2);
        lua_setfield(L, -2, "message");
    }
}

void qs_result_shape_error(lua_State *L, const qs_req *r, long status, const char *why)
{
    push_base(L, r, "decode", r->attempts, r->ambiguous);
    lua_pushstring(L, why);
    lua_setfield(L, -2, "message");
    qs_error_setint(L, "status", status);
    qs_error_setscrubbed(L, "body", r->resp.p ? r->resp.p : "", r->resp.n, secret(r), BODY_CAP);
}

int qs_result_json(lua_State *L, const qs_req *r, long status)
{
    char why[300];
    if (qs_json_decode(L, r->resp.p ? r->resp.p : "", r->resp.n) == 0) return 1;
    snprintf(why, sizeof why, "invalid JSON in the response: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    qs_result_shape_error(L, r, status, why);
    return 0;
}

/* Whether the table at the top has only the keys 1..n (*n its length): a
 * JSON array, not an object (an object decodes to a table of length 0). */
static int is_array(lua_State *L, size_t *n)
{
    size_t count = 0;
    *n = qs_rawlen(L, -1);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pop(L, 1);
        count++;
    }
    return count == *n;
}

int qs_result_shaped(lua_State *L, const qs_req *r, long status, qs_shape_fn shape, const char *array_of)
{
    char why_array[80];
    const char *why = NULL;
    size_t i, n;
    if (!qs_result_json(L, r, status)) return 0;
    if (!array_of) {
        why = shape(L);
    } else if (lua_type(L, -1) != LUA_TTABLE || !is_array(L, &n)) {
        snprintf(why_array, sizeof why_array, "expected a JSON array of %s", array_of);
        why = why_array;
    } else {
        for (i = 1; i <= n && !why; i++) {
            lua_rawgeti(L, -1, (int)i);
            why = shape(L);
            lua_pop(L, 1);
        }
    }
    if (!why) return 1;
    lua_pop(L, 1);
    qs_result_shape_error(L, r, status, why);
    return 0;
}

int qs_result_publish(lua_State *L, const qs_req *r, long status)
{
    const char *why;
    if (!qs_result_json(L, r, status)) return 0;
    if ((why = qs_shape_publish_response(L)) == NULL) return 1;
    lua_pop(L, 1);
    qs_result_shape_error(L, r, status, why);
    return 0;
}

void qs_result_no_token(lua_State *L, const qs_req *r)
{
    qs_error_push(L, "config", r->conf->missing_token);
}

void qs_result_cancelled(lua_State *L, const qs_req *r, const char *why, int ambiguous)
{
    push_base(L, r, "cancelled", r->attempts, ambiguous);
    lua_pushstring(L, why);
    lua_setfield(L, -2, "message");
}

void qs_result_limit(lua_State *L, const qs_req *r, const char *which, long requests, int ambiguous)
{
    char msg[160];
    push_base(L, r, "limit", r->attempts, ambiguous);
    lua_pushstring(L, which);
    lua_setfield(L, -2, "limit");
    qs_error_setint(L, "requests", requests);
    if (strcmp(which, "deadline") == 0)
        snprintf(msg, sizeof msg, "the call's deadline (call_timeout) passed after %ld requests", requests);
    else
        snprintf(msg, sizeof msg, "the call sent %ld requests (max_requests)", requests);
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "message");
}
