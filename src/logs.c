/* The logs API and following a message to its end, as plans (call.h).
 *
 * logs(filter) reads one page of GET /v2/logs; log_entries(filter) walks
 * every page. follow(id) polls the logs of one message until it reaches
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
#include "clock.h"
#include "compat.h"
#include "dlq.h"
#include "filters.h"
#include "logs.h"
#include "pages.h"
#include "plan.h"
#include "result.h"

#define CHUNK 100          /* message ids per logs request of follow_many */
#define FOLLOW_COUNT "1000" /* entries per page when following many */

enum { PHASE_RETRY, PHASE_LOGS, PHASE_LOOKUP };

/* ---- logs, log_entries --------------------------------------------------- */

/* client:logs(filter) -> { logs = { entry, ... }, cursor = "..." or nil } */
static void build_logs(lua_State *L, qs_call *k, const qs_args *a, int uv)
{
    (void)uv;
    qs_plan_list_target(L, k, a, "/v2/logs?", QS_FSET_LOGS);
}

/* Makes the page at the top { logs = array, cursor = string or nil }:
 * QStash's OpenAPI names the array `logs`, its docs and qstash-js `events`.
 * 1, or 0 with a decode error pushed instead. */
static int logs_page(lua_State *L, qs_call *k, long status)
{
    if (!qs_plan_json_object(L, k, status)) return 0;
    lua_getfield(L, -1, "logs");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_getfield(L, -1, "events");
    }
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
    } else if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 2);
        qs_result_shape_error(L, &k->req, status, "logs is not an array");
        return 0;
    }
    lua_setfield(L, -2, "logs");
    lua_pushnil(L);
    lua_setfield(L, -2, "events");
    qs_pages_normalise_cursor(L);
    return 1;
}

static int absorb_logs(lua_State *L, qs_call *k, int uv, long status)
{
    (void)uv;
    return logs_page(L, k, status) ? 0 : -1;
}

static const qs_plan logs_plan = {"logs", 0, build_logs, absorb_logs, NULL};
static const qs_pager logs_pager = {&logs_plan, "logs", QS_FSET_LOGS};

/* client:log_entries(filter) -> iterator over every entry across pages */
static int log_entries(lua_State *L, qs_client *c, const qs_args *a)
{
    (void)c;
    return qs_pages_iterate(L, a, &logs_pager);
}

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

/* ---- follow: tracks ----------------------------------------------------- */

/* Pushes uv.tracks[id] (nil if the id is not followed). */
static void get_track(lua_State *L, int uv, int id)
{
    lua_getfield(L, uv, "tracks");
    lua_pushvalue(L, id);
    lua_rawget(L, -2);
    lua_remove(L, -2);
}

static void new_track(lua_State *L, int uv, int id)
{
    lua_getfield(L, uv, "tracks");
    lua_pushvalue(L, id);
    lua_createtable(L, 0, 8);
    lua_pushvalue(L, id);
    lua_setfield(L, -2, "messageId");
    lua_newtable(L);
    lua_setfield(L, -2, "hist");
    lua_newtable(L);
    lua_setfield(L, -2, "keys");
    lua_pushnumber(L, -1);
    lua_setfield(L, -2, "newest");
    lua_rawset(L, -3);
    lua_pop(L, 1);
    lua_getfield(L, uv, "order");
    lua_pushvalue(L, id);
    lua_rawseti(L, -2, (int)qs_rawlen(L, -2) + 1);
    lua_pop(L, 1);
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
        new_track(L, uv, ids);
    } else {
        size_t n = qs_rawlen(L, ids), i;
        for (i = 1; i <= n; i++) {
            lua_rawgeti(L, ids, (int)i);
            get_track(L, uv, lua_gettop(L));
            if (lua_isnil(L, -1)) new_track(L, uv, lua_gettop(L) - 1);
            lua_pop(L, 2);
        }
    }
    k->phase = PHASE_LOGS;
    k->page = 0;
    k->follow_cap = qs_now() + k->follow_timeout;
    /* no follow outlives its timeout plus one attempt's, whatever call_timeout says */
    qs_call_bound(k, k->follow_cap + k->req.conf->timeout_ms / 1000.0, follow_at_limit);
}

/* An entry's time as a number (QStash's docs show it as a string of
 * digits), or -1 for none, a negative one, or one past 2^53 (no
 * millisecond time is; it would not convert to an integer). Read raw: a
 * history handed to a callback may come back to be sorted again with
 * anything in it, and sorting must neither raise nor run its code. */
static double entry_time(lua_State *L, int e)
{
    double t = -1;
    if (lua_type(L, e) != LUA_TTABLE) return -1;
    lua_pushliteral(L, "time");
    lua_rawget(L, e);
    if (lua_type(L, -1) == LUA_TNUMBER || (lua_type(L, -1) == LUA_TSTRING && lua_tonumber(L, -1) != 0))
        t = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return t >= 0 && t <= 9007199254740992.0 ? t : -1;
}

/* Whether an entry of the track at `track` at time t in `state` gives the
 * track's state (then it becomes its `entry`). A message that reached an
 * end (DELIVERED, FAILED, CANCELLED) has ended: once an end is among its
 * entries, only another end with a time as new or newer replaces it,
 * whatever later-stamped entries say (QStash's nodes stamp with their own
 * clocks: CREATED@T, DELIVERED@T+1, ACTIVE@T+2 is a delivered message).
 * Before an end, the newest entry gives the state; at one time, the one
 * merged last (a page is merged oldest first). The track keeps the time of
 * its state in `at`. */
static int better_state(lua_State *L, int track, double t, const char *state)
{
    int final = qs_log_state_final(state), had_final, better;
    double at;
    lua_getfield(L, track, "state");
    had_final = lua_type(L, -1) == LUA_TSTRING && qs_log_state_final(lua_tostring(L, -1));
    lua_getfield(L, track, "at");
    at = lua_isnil(L, -1) ? -1 : lua_tonumber(L, -1);
    lua_pop(L, 2);
    better = had_final ? final && t >= at : t >= at || final;
    if (better) {
        lua_pushnumber(L, t);
        lua_setfield(L, track, "at");
    }
    return better;
}

/* Adds the entries of the page's `logs` (page at the top) to the tracks of
 * their messages (better_state says which gives the state); entries of
 * messages not followed are ignored, and one seen in an earlier poll (the
 * same time and state) is not added again. `newest` is the newest time
 * seen, whatever its state (the next poll's fromDate). */
static void merge_entries(lua_State *L, int uv)
{
    int page = lua_gettop(L), logs, e;
    size_t n, i;
    lua_getfield(L, page, "logs");
    logs = lua_gettop(L);
    n = qs_rawlen(L, logs);
    /* oldest first (a page is newest first): entries of one millisecond
     * keep their order in the history */
    for (i = n; i >= 1; i--) {
        double t;
        const char *state;
        int track;
        lua_settop(L, logs);
        lua_rawgeti(L, logs, (int)i);
        e = lua_gettop(L);
        if (lua_type(L, e) != LUA_TTABLE) continue;
        lua_getfield(L, e, "messageId");
        if (lua_type(L, -1) != LUA_TSTRING) continue;
        get_track(L, uv, lua_gettop(L));
        if (lua_isnil(L, -1)) continue;
        track = lua_gettop(L);
        t = entry_time(L, e);
        lua_getfield(L, e, "state");
        if (lua_type(L, -1) != LUA_TSTRING || t < 0) continue;
        /* the docs show lower-case states: compare and report upper case */
        {
            size_t sl, j;
            char up[32], key[64];
            const char *s = lua_tolstring(L, -1, &sl);
            if (sl >= sizeof up) continue;
            for (j = 0; j < sl; j++) up[j] = (char)(s[j] >= 'a' && s[j] <= 'z' ? s[j] - 32 : s[j]);
            up[sl] = '\0';
            lua_pushstring(L, up);
            lua_setfield(L, e, "state");
            qs_pushint(L, (long long)t);
            lua_setfield(L, e, "time");
            snprintf(key, sizeof key, "%.0f|%s", t, up);
            lua_pushstring(L, key);
        }
        /* seen before? */
        lua_getfield(L, track, "keys");
        lua_pushvalue(L, -2);
        lua_rawget(L, -2);
        if (lua_toboolean(L, -1)) continue;
        lua_pop(L, 1);
        lua_pushvalue(L, -2);
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
        lua_getfield(L, track, "hist");
        lua_pushvalue(L, e);
        lua_rawseti(L, -2, (int)qs_rawlen(L, -2) + 1);
        lua_getfield(L, e, "state");
        state = lua_tostring(L, -1);
        if (better_state(L, track, t, state)) {
            lua_pushstring(L, state);
            lua_setfield(L, track, "state");
            lua_pushvalue(L, e);
            lua_setfield(L, track, "entry");
        }
        lua_getfield(L, track, "newest");
        if (t > lua_tonumber(L, -1)) {
            lua_pushnumber(L, t);
            lua_setfield(L, track, "newest");
        }
    }
    lua_settop(L, page);
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
        get_track(L, uv, lua_gettop(L));
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
 * the oldest of their newest entries (every one of them has been seen), so
 * that later polls read only what is new. */
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
        get_track(L, uv, lua_gettop(L));
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
        snprintf(num, sizeof num, "%.0f", from);
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

/* Where the queue of lookups stands: uv.lookups[uv.lookup_at] is the next
 * (an index, not a shift of the array per lookup: a round with thousands of
 * FAILED messages stays linear). */
static size_t lookup_at(lua_State *L, int uv)
{
    size_t at;
    lua_getfield(L, uv, "lookup_at");
    at = lua_isnil(L, -1) ? 1 : (size_t)lua_tonumber(L, -1);
    lua_pop(L, 1);
    return at;
}

/* The DLQ lookup of the next FAILED id in uv.lookups: its entry's dlqId. */
static void lookup_request(lua_State *L, qs_call *k, int uv)
{
    size_t len;
    const char *s;
    k->req.method = "GET";
    k->req.resend_ok = 1;
    qs_plan_start_target(L, k, "/v2/dlq?");
    lua_getfield(L, uv, "lookups");
    lua_rawgeti(L, -1, (int)lookup_at(L, uv));
    s = lua_tolstring(L, -1, &len);
    qs_query_add(L, &k->req.target, "messageId", s, len);
    lua_pop(L, 2);
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

/* ---- follow: results -------------------------------------------------------- */

/* One history entry while sorting: its time and its place before. */
typedef struct timed {
    double t;
    size_t at;
} timed;

/* Merges the sorted runs a[lo..mid) and a[mid..hi) into b[lo..hi); of two
 * at one time, the left one first (stable). */
static void merge_runs(const timed *a, timed *b, size_t lo, size_t mid, size_t hi)
{
    size_t i = lo, j = mid, o = lo;
    while (i < mid && j < hi) b[o++] = a[j].t < a[i].t ? a[j++] : a[i++];
    while (i < mid) b[o++] = a[i++];
    while (j < hi) b[o++] = a[j++];
}

/* Sorts the array at the top by each entry's time, stable, in O(n log n)
 * (one logs page may hold tens of thousands of entries in any order): a
 * bottom-up merge sort of (time, place) pairs in a userdata, which the
 * collector frees whatever happens, then the entries put back in order. */
static void sort_by_time(lua_State *L)
{
    int h = lua_gettop(L), tmp;
    size_t n = qs_rawlen(L, h), i, w;
    timed *a, *b;
    if (n < 2) return;
    a = (timed *)qs_newudata(L, 2 * n * sizeof(timed));
    b = a + n;
    for (i = 0; i < n; i++) {
        lua_rawgeti(L, h, (int)i + 1);
        a[i].t = entry_time(L, lua_gettop(L));
        a[i].at = i + 1;
        lua_pop(L, 1);
    }
    for (w = 1; w < n; w *= 2) {
        timed *swap;
        for (i = 0; i < n; i += 2 * w) {
            size_t mid = i + w < n ? i + w : n, hi = i + 2 * w < n ? i + 2 * w : n;
            merge_runs(a, b, i, mid, hi);
        }
        swap = a;
        a = b;
        b = swap;
    }
    /* the entries in their new order, then back into the array */
    lua_createtable(L, (int)n, 0);
    tmp = lua_gettop(L);
    for (i = 0; i < n; i++) {
        lua_rawgeti(L, h, (int)a[i].at);
        lua_rawseti(L, tmp, (int)i + 1);
    }
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, tmp, (int)i);
        lua_rawseti(L, h, (int)i);
    }
    lua_settop(L, h);
}

/* Pushes the result of the track at idx: { messageId, state, done, dlqId,
 * history }. */
static void push_result(lua_State *L, int track)
{
    lua_createtable(L, 0, 5);
    lua_getfield(L, track, "messageId");
    lua_setfield(L, -2, "messageId");
    lua_getfield(L, track, "state");
    lua_setfield(L, -2, "state");
    lua_getfield(L, track, "state");
    lua_pushboolean(L, qs_log_state_final(lua_tostring(L, -1)));
    lua_setfield(L, -3, "done");
    lua_pop(L, 1);
    lua_getfield(L, track, "dlqId");
    if (lua_isnil(L, -1)) {
        /* time ran out before its DLQ lookup: the log entry's, if any (the
         * entry giving the state is one of this message's own; only a
         * FAILED one puts the message in the DLQ) */
        int failed;
        lua_pop(L, 1);
        lua_getfield(L, track, "state");
        failed = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "FAILED") == 0;
        lua_pop(L, 1);
        lua_getfield(L, track, "entry");
        if (failed && lua_type(L, -1) == LUA_TTABLE) lua_getfield(L, -1, "dlqId");
        else lua_pushnil(L);
        lua_remove(L, -2);
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 1);
            lua_pushnil(L);
        }
    }
    lua_setfield(L, -2, "dlqId");
    lua_getfield(L, track, "hist");
    sort_by_time(L);
    lua_setfield(L, -2, "history");
}

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
        get_track(L, uv, lua_gettop(L));
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
        get_track(L, uv, lua_gettop(L));
        push_result(L, lua_gettop(L));
        lua_replace(L, -4);
        lua_pop(L, 2);
    } else {
        lua_createtable(L, 0, (int)n);
        for (i = 1; i <= n; i++) {
            lua_rawgeti(L, -2, (int)i);
            get_track(L, uv, lua_gettop(L));
            push_result(L, lua_gettop(L));
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

/* The dlqId of the track at `track` from the DLQ lookup's `messages` at
 * `msgs`: only from an entry of that very message (any in the page), since
 * a server or proxy that ignores the filter would otherwise hand the caller
 * another message's entry to retry or delete. None: dlqId stays nil. */
static void lookup_dlq_id(lua_State *L, int track, int msgs)
{
    size_t n = qs_rawlen(L, msgs), i;
    lua_getfield(L, track, "messageId");
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, msgs, (int)i);
        if (lua_type(L, -1) == LUA_TTABLE) {
            lua_getfield(L, -1, "messageId");
            if (lua_type(L, -1) == LUA_TSTRING && lua_rawequal(L, -1, -3)) {
                lua_getfield(L, -2, "dlqId");
                if (lua_type(L, -1) == LUA_TSTRING) {
                    lua_setfield(L, track, "dlqId");
                    lua_pop(L, 2);
                    break;
                }
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* What follows a successful answer while following: the next page, the
 * next chunk, a DLQ lookup, the wait before the next round (2), or the
 * end (0, pushed). */
static int follow_absorb(lua_State *L, qs_call *k, int uv, long status)
{
    if (k->phase == PHASE_LOOKUP) {
        size_t at, n;
        if (!qs_plan_json_object(L, k, status)) return -1;
        at = lookup_at(L, uv);
        lua_getfield(L, uv, "lookups");
        lua_rawgeti(L, -1, (int)at);
        get_track(L, uv, lua_gettop(L));
        lua_getfield(L, -4, "messages");
        if (lua_type(L, -1) == LUA_TTABLE) lookup_dlq_id(L, lua_gettop(L) - 1, lua_gettop(L));
        lua_pop(L, 2);
        /* done with this one: off the queue, onto the finished */
        lua_getfield(L, uv, "finished");
        lua_insert(L, -2);
        lua_rawseti(L, -2, (int)qs_rawlen(L, -2) + 1);
        lua_pop(L, 1);
        n = qs_rawlen(L, -1);
        lua_pop(L, 2);
        if (at < n) {
            lua_pushnumber(L, (lua_Number)(at + 1));
            lua_setfield(L, uv, "lookup_at");
            lookup_request(L, k, uv);
            return 1;
        }
        /* the queue is drained: empty for the next round */
        lua_newtable(L);
        lua_setfield(L, uv, "lookups");
        lua_pushnil(L);
        lua_setfield(L, uv, "lookup_at");
    } else {
        size_t n;
        if (!logs_page(L, k, status)) return -1;
        merge_entries(L, uv);
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
            lookup_request(L, k, uv);
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

static const qs_plan follow_plan = {"follow", 1, build_follow, follow_absorb, NULL};

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

const qs_plan qs_plan_follow_many = {"follow_many", 1, build_follow_many, follow_absorb, NULL};

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
    get_track(L, uv, lua_gettop(L));
    push_result(L, lua_gettop(L));
    lua_remove(L, -2);
    lua_replace(L, uv + 1);
    lua_replace(L, uv);
    lua_settop(L, uv + 1);
    return 1;
}

const qs_api qs_logs_apis[] = {
    {"logs", NULL, &logs_plan},
    {"log_entries", log_entries, NULL},
    {"follow", NULL, &follow_plan},
    {"follow_many", NULL, &qs_plan_follow_many},
    {NULL, NULL, NULL},
};
