/* Following a message to its end, as plans (call.h): follow(id) polls the logs of one message until it reaches
 * DELIVERED, FAILED or CANCELLED, or its time is up; follow_many(ids) does
 * the same for many messages with one logs request per 100 of them per
 * round, never one per message. dlq_retry(id, { follow = ... }) follows the
 * new message through the same code. A poll is a plan step like any other
 * (absorb returns 2: "wait, then send"), so every transport runs it: the
 * libcurl engine sleeps, qstash.resty waits with ngx.sleep.
 *
 * The call's state table (uv) holds: tracks = { [messageId] = track },
 * order = the ids in the order given, pending = the ids of this round,
 * finished = the ids in the order they ended, lookups = FAILED ids whose
 * dlqId is still to be read from the DLQ (the next at lookup_at),
 * cursor/seen = paging inside one logs request, acc = dlq_retry's answer. A track is { messageId, hist =
 * entries, keys = { [time|state] = true }, newest = the newest time seen,
 * state, entry = the entry that gave it, at = its time, dlqId, done }. */
#include <stdio.h>
#include <string.h>
#include <lauxlib.h>
#include "base/clock.h"
#include "base/compat.h"
#include "api/dlq.h"
#include "core/filters.h"
#include "api/follow.h"
#include "api/follow_lookup.h"
#include "api/follow_track.h"
#include "api/logs.h"
#include "api/pages.h"
#include "api/plan.h"
#include "call/result.h"

#define CHUNK 100          /* message ids per logs request of follow_many */
#define FOLLOW_COUNT "1000" /* entries per page when following many */
/* How far before the newest entry seen a poll asks again: QStash's nodes
 * stamp entries with their own clocks, so an end stamped before a later
 * entry (DELIVERED@T+1 logged after ACTIVE@T+2 was read) would otherwise
 * never be asked for. Entries read twice are merged once (their time and
 * state). */
#define SKEW_MS 10000.0

enum { PHASE_RETRY, PHASE_LOGS, PHASE_LOOKUP };

/* ---- follow: configuration ------------------------------------------------ */

static const char *const follow_keys[] = {"timeout", "interval", NULL};

static double follow_number(const qs_args *a, int argidx, int t, const char *key, double dflt, double lo,
                            double hi)
{
    double d = dflt;
    lua_getfield(a->L, t, key);
    if (!lua_isnil(a->L, -1)) {
        d = lua_tonumber(a->L, -1);
        if (lua_type(a->L, -1) != LUA_TNUMBER || !(d >= lo && d <= hi))
            qs_argerror(a, argidx, "follow '%s' must be a number of seconds from %g to %g", key, lo, hi);
    }
    lua_pop(a->L, 1);
    return d;
}

void qs_follow_config(const qs_args *a, int argidx, int v, qs_call *k)
{
    lua_State *L = a->L;
    k->follow_timeout = 60;
    k->follow_interval = 1;
    if (lua_type(L, v) == LUA_TBOOLEAN) {
        k->follow = lua_toboolean(L, v);
        return;
    }
    if (lua_type(L, v) != LUA_TTABLE)
        qs_argerror(a, argidx, "follow must be true or a table { timeout = s, interval = s }, got %s",
                    luaL_typename(L, v));
    qs_check_keys(a, argidx, v, "follow option", follow_keys);
    k->follow = 1;
    k->follow_timeout = follow_number(a, argidx, v, "timeout", 60, 0, 86400);
    k->follow_interval = follow_number(a, argidx, v, "interval", 1, 0.01, 3600);
}

static int follow_at_limit(lua_State *L, qs_call *k, int uv, const char *which);

/* Starts following: the state table holds the ids of the array at ids (or
 * the one string id there), in order, each once. */
static void follow_start(lua_State *L, qs_call *k, int uv, int ids)
{
    lua_newtable(L);
    lua_setfield(L, uv, "tracks");
    lua_newtable(L);
    lua_setfield(L, uv, "order");
    lua_newtable(L);
    lua_setfield(L, uv, "finished");
    lua_newtable(L);
    lua_setfield(L, uv, "lookups");
    if (lua_type(L, ids) == LUA_TSTRING) {
        qs_track_new(L, uv, ids);
    } else {
        size_t n = qs_rawlen(L, ids), i;
        for (i = 1; i <= n; i++) {
            lua_rawgeti(L, ids, (int)i);
            qs_track_get(L, uv, lua_gettop(L));
            if (lua_isnil(L, -1)) qs_track_new(L, uv, lua_gettop(L) - 1);
            lua_pop(L, 2);
        }
    }
    k->phase = PHASE_LOGS;
    k->page = 0;
    k->follow_cap = qs_now() + k->follow_timeout;
    /* no follow outlives its timeout plus one attempt's, whatever call_timeout says */
    qs_call_bound(k, k->follow_cap + k->req.conf->timeout_ms / 1000.0, follow_at_limit);
}

/* ---- follow: requests ----------------------------------------------------- */

/* The ids of this round: those not done, in order, into uv.pending. */
static size_t pending_ids(lua_State *L, int uv)
{
    size_t n, i, m = 0;
    lua_newtable(L);
    lua_getfield(L, uv, "order");
    n = qs_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, (int)i);
        qs_track_get(L, uv, lua_gettop(L));
        lua_getfield(L, -1, "done");
        if (!lua_toboolean(L, -1)) {
            lua_pushvalue(L, -3);
            lua_rawseti(L, -6, (int)++m);
        }
        lua_pop(L, 3);
    }
    lua_pop(L, 1);
    lua_setfield(L, uv, "pending");
    return m;
}

/* The logs request of the chunk of pending ids from k->page: one id as
 * `messageId`, more as `messageIds` with pages of 1000 entries; `fromDate`
 * the oldest of their newest entries less SKEW_MS, so that later polls
 * read mostly what is new, and an end stamped by a slower clock too. */
static void logs_request(lua_State *L, qs_call *k, int uv)
{
    qs_buf *t = &k->req.target;
    size_t n, i, to;
    double from = -2;
    int many, paging;
    k->req.method = "GET";
    k->req.resend_ok = 1;
    qs_plan_start_target(L, k, "/v2/logs?");
    lua_getfield(L, uv, "order");
    many = qs_rawlen(L, -1) > 1;
    lua_pop(L, 1);
    lua_getfield(L, uv, "cursor");
    paging = lua_type(L, -1) == LUA_TSTRING;
    lua_pop(L, 1);
    lua_getfield(L, uv, "pending");
    n = qs_rawlen(L, -1);
    to = k->page + CHUNK < n ? k->page + CHUNK : n;
    for (i = k->page + 1; i <= to; i++) {
        size_t len;
        const char *s;
        double newest;
        lua_rawgeti(L, -1, (int)i);
        s = lua_tolstring(L, -1, &len);
        qs_query_add(L, t, many ? "messageIds" : "messageId", s, len);
        qs_track_get(L, uv, lua_gettop(L));
        lua_getfield(L, -1, "newest");
        newest = lua_tonumber(L, -1);
        if (from == -2 || newest < from) from = newest;
        lua_pop(L, 3);
    }
    lua_pop(L, 1);
    /* the pages of one request share its fromDate */
    if (paging) {
        lua_getfield(L, uv, "from");
        from = lua_tonumber(L, -1);
        lua_pop(L, 1);
    } else {
        lua_pushnumber(L, from);
        lua_setfield(L, uv, "from");
    }
    if (many) qs_query_add(L, t, "count", FOLLOW_COUNT, strlen(FOLLOW_COUNT));
    if (from >= 0) {
        char num[32];
        snprintf(num, sizeof num, "%.0f", from > SKEW_MS ? from - SKEW_MS : 0);
        qs_query_add(L, t, "fromDate", num, strlen(num));
    }
    lua_getfield(L, uv, "cursor");
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        qs_query_add(L, t, "cursor", s, len);
    }
    lua_pop(L, 1);
    qs_plan_target_done(L, k);
}

/* Starts a round: fresh paging, the pending ids, the first chunk. */
static void start_round(lua_State *L, qs_call *k, int uv)
{
    lua_pushnil(L);
    lua_setfield(L, uv, "cursor");
    lua_newtable(L);
    lua_setfield(L, uv, "seen");
    k->page = 0;
    k->phase = PHASE_LOGS;
    pending_ids(L, uv);
    logs_request(L, k, uv);
}

/* ---- follow: rounds and results ------------------------------------------ */

/* After a round: tracks that reached an end are done (and listed in
 * uv.finished); FAILED ones without a dlqId in their entry are queued for
 * a DLQ lookup. Returns how many lookups are queued. */
static size_t end_round(lua_State *L, int uv)
{
    size_t n, i;
    lua_getfield(L, uv, "pending");
    n = qs_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
        int track;
        const char *state;
        lua_rawgeti(L, -1, (int)i);
        qs_track_get(L, uv, lua_gettop(L));
        track = lua_gettop(L);
        lua_getfield(L, track, "state");
        state = lua_tostring(L, -1);
        if (qs_log_state_final(state)) {
            lua_pushboolean(L, 1);
            lua_setfield(L, track, "done");
            if (strcmp(state, "FAILED") == 0) {
                lua_getfield(L, track, "entry");
                lua_getfield(L, -1, "dlqId");
                if (lua_type(L, -1) == LUA_TSTRING) {
                    lua_setfield(L, track, "dlqId");
                } else {
                    lua_getfield(L, uv, "lookups");
                    lua_pushvalue(L, track - 1);
                    lua_rawseti(L, -2, (int)qs_rawlen(L, -2) + 1);
                    lua_pop(L, 2);
                }
                lua_pop(L, 1);
            } else {
                lua_getfield(L, uv, "finished");
                lua_pushvalue(L, track - 1);
                lua_rawseti(L, -2, (int)qs_rawlen(L, -2) + 1);
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 3);
    }
    lua_pop(L, 1);
    lua_getfield(L, uv, "lookups");
    n = qs_rawlen(L, -1);
    lua_pop(L, 1);
    return n;
}

/* Pushes what the call returns: dlq_retry's answer with `delivery`, the
 * one result of follow, or { [messageId] = result } of follow_many. */
static void push_end(lua_State *L, qs_call *k, int uv)
{
    size_t n, i;
    int single;
    lua_getfield(L, uv, "single");
    single = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, uv, "order");
    n = qs_rawlen(L, -1);
    if (single) {
        lua_rawgeti(L, -1, 1);
        qs_track_get(L, uv, lua_gettop(L));
        qs_track_push_result(L, lua_gettop(L));
        lua_replace(L, -4);
        lua_pop(L, 2);
    } else {
        lua_createtable(L, 0, (int)n);
        for (i = 1; i <= n; i++) {
            lua_rawgeti(L, -2, (int)i);
            qs_track_get(L, uv, lua_gettop(L));
            qs_track_push_result(L, lua_gettop(L));
            lua_remove(L, -2);
            lua_rawset(L, -3);
        }
        lua_remove(L, -2);
    }
    if (k->phase != PHASE_RETRY && k->plan == &qs_plan_dlq_retry) {
        lua_getfield(L, uv, "acc");
        lua_insert(L, -2);
        lua_setfield(L, -2, "delivery");
    }
}

/* What follows a successful answer while following: the next page, the
 * next chunk, a DLQ lookup, the wait before the next round (2), or the
 * end (0, pushed). */
static int follow_absorb(lua_State *L, qs_call *k, int uv, long status)
{
    if (k->phase == PHASE_LOOKUP) {
        int r = qs_lookup_absorb(L, k, uv, status);
        if (r != 0) return r;
    } else {
        size_t n;
        if (!qs_logs_page(L, k, status)) return -1;
        qs_track_merge_page(L, uv);
        lua_getfield(L, -1, "cursor");
        if (!lua_isnil(L, -1)) {
            if (qs_pages_cursor_seen(L, uv)) {
                qs_pages_cursor_repeated(L, &k->req, lua_tostring(L, -1));
                return -1;
            }
            /* pages without end: time bounds them too, but only this
             * chunk's; the round still asks about the next chunks */
            if (qs_now() < k->follow_cap) {
                lua_setfield(L, uv, "cursor");
                lua_pop(L, 1);
                logs_request(L, k, uv);
                return 1;
            }
        }
        lua_pop(L, 2);
        lua_pushnil(L);
        lua_setfield(L, uv, "cursor");
        lua_newtable(L);
        lua_setfield(L, uv, "seen");
        lua_getfield(L, uv, "pending");
        n = qs_rawlen(L, -1);
        lua_pop(L, 1);
        k->page += CHUNK;
        /* a round once started asks about every pending id: the time cap
         * is checked between rounds, never between chunks */
        if (k->page < n) {
            logs_request(L, k, uv);
            return 1;
        }
        if (end_round(L, uv) > 0) {
            k->phase = PHASE_LOOKUP;
            qs_lookup_request(L, k, uv);
            return 1;
        }
    }
    /* the round is over: all done, or time is up, or wait for the next */
    {
        double now = qs_now();
        if (pending_ids(L, uv) == 0 || now >= k->follow_cap) goto end;
        k->wait = k->follow_cap - now < k->follow_interval ? k->follow_cap - now : k->follow_interval;
        start_round(L, k, uv);
        return 2;
    }
end:
    push_end(L, k, uv);
    return 0;
}

/* Marks the result at idx with the bound that ended its follow, unless it is done. */
static void mark_limit(lua_State *L, int idx, const char *which)
{
    lua_getfield(L, idx, "done");
    if (!lua_toboolean(L, -1)) {
        lua_pushstring(L, which);
        lua_setfield(L, idx, "limit");
    }
    lua_pop(L, 1);
}

/* A bound (call.h) ended the follow: what has not ended is still pending, an
 * answer with `done = false` and `limit` = which bound; the retry's new
 * messageId stays in dlq_retry's answer. */
static int follow_at_limit(lua_State *L, qs_call *k, int uv, const char *which)
{
    int res, single;
    lua_getfield(L, uv, "single");
    single = lua_toboolean(L, -1);
    lua_pop(L, 1);
    push_end(L, k, uv);
    res = lua_gettop(L);
    if (k->plan == &qs_plan_dlq_retry) {
        lua_getfield(L, res, "delivery");
        mark_limit(L, lua_gettop(L), which);
        lua_pop(L, 1);
    } else if (single) {
        mark_limit(L, res, which);
    } else {
        lua_pushnil(L);
        while (lua_next(L, res)) {
            mark_limit(L, lua_gettop(L), which);
            lua_pop(L, 1);
        }
    }
    return 1;
}

/* ---- follow, follow_many -------------------------------------------------- */

/* The options of follow and follow_many at o: a table, or nil for the
 * defaults. */
static void follow_options(lua_State *L, qs_call *k, const qs_args *a, int o)
{
    if (lua_isnil(L, o)) {
        lua_pushboolean(L, 1);
        qs_follow_config(a, o, lua_gettop(L), k);
        lua_pop(L, 1);
    } else if (lua_type(L, o) != LUA_TTABLE) {
        qs_argerror(a, o, "options must be a table { timeout = s, interval = s }, got %s", luaL_typename(L, o));
    } else {
        qs_follow_config(a, o, o, k);
    }
    k->follow = 1;
}

/* client:follow(message_id, opts) -> { messageId, state, done, dlqId, history } */
static void build_follow(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    int o = a->base + 1;
    size_t len;
    qs_api_check_id_of(a, a->base, &len, "message id");
    follow_options(L, k, a, o);
    lua_pushboolean(L, 1);
    lua_setfield(L, uv, "single");
    follow_start(L, k, uv, a->base);
    start_round(L, k, uv);
}

static const qs_plan follow_plan = {"follow", 1, build_follow, follow_absorb, NULL, NULL, NULL};

/* client:follow_many(message_ids, opts) -> { [messageId] = result } */
static void build_follow_many(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    int ids = a->base, o = a->base + 1;
    size_t n, i, count = 0;
    if (lua_type(L, ids) != LUA_TTABLE)
        qs_argerror(a, ids, "expected an array of message ids, got %s", luaL_typename(L, ids));
    n = qs_rawlen(L, ids);
    if (n == 0) qs_argerror(a, ids, "an empty list of message ids");
    lua_pushnil(L);
    while (lua_next(L, ids)) {
        lua_pop(L, 1);
        count++;
    }
    if (count != n) qs_argerror(a, ids, "an array of ids must not have other keys");
    for (i = 1; i <= n; i++) {
        size_t len;
        int top = lua_gettop(L);
        lua_rawgeti(L, ids, (int)i);
        if (lua_type(L, -1) != LUA_TSTRING) qs_argerror(a, ids, "message id #%d is not a string", (int)i);
        {
            qs_args la = *a;
            la.base = a->base + (top + 1 - ids);
            qs_api_check_id_of(&la, top + 1, &len, "message id");
        }
        lua_pop(L, 1);
    }
    follow_options(L, k, a, o);
    follow_start(L, k, uv, ids);
    start_round(L, k, uv);
}

const qs_plan qs_plan_follow_many = {"follow_many", 1, build_follow_many, follow_absorb, NULL, NULL, NULL};

/* ---- dlq_retry with follow ------------------------------------------------ */

int qs_follow_retry_absorb(lua_State *L, qs_call *k, int uv, long status)
{
    int res;
    if (k->phase != PHASE_RETRY) return follow_absorb(L, k, uv, status);
    if (!qs_result_publish(L, &k->req, status)) return -1;
    res = lua_gettop(L);
    lua_pushvalue(L, res);
    lua_setfield(L, uv, "acc");
    lua_pushboolean(L, 1);
    lua_setfield(L, uv, "single");
    /* the polls carry none of the retry's option headers */
    k->req.headers.n = k->req.opt_headers;
    if (k->req.headers.p) k->req.headers.p[k->req.headers.n] = '\0';
    lua_getfield(L, res, "messageId");
    follow_start(L, k, uv, lua_gettop(L));
    lua_settop(L, res - 1);
    start_round(L, k, uv);
    return 1;
}

int qs_follow_wants_state(lua_State *L, const qs_args *a)
{
    int o = a->base + 1, want;
    if (lua_type(L, o) != LUA_TTABLE) return 0;
    lua_getfield(L, o, "follow");
    want = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return want;
}

int qs_follow_next_finished(lua_State *L, qs_call *k, int idx, size_t *fired)
{
    int uv;
    if (!k->has_state) return 0;
    qs_getuv(L, idx);
    uv = lua_gettop(L);
    lua_getfield(L, uv, "finished");
    lua_rawgeti(L, -1, (int)(*fired + 1));
    if (lua_isnil(L, -1)) {
        lua_settop(L, uv - 1);
        return 0;
    }
    ++*fired;
    qs_track_get(L, uv, lua_gettop(L));
    qs_track_push_result(L, lua_gettop(L));
    lua_remove(L, -2);
    lua_replace(L, uv + 1);
    lua_replace(L, uv);
    lua_settop(L, uv + 1);
    return 1;
}

const qs_api qs_follow_apis[] = {
    {"follow", NULL, &follow_plan},
    {"follow_many", NULL, &qs_plan_follow_many},
    {NULL, NULL, NULL},
};
