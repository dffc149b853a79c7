/* A followed message's track in a follow's state table (follow.c): its
 * entries as they come in over the polls, the state they give, and the
 * result made of them. A track is { messageId, hist = entries, keys =
 * { [time|state] = true }, newest = the newest time seen, state, entry =
 * the entry that gave it, at = its time, dlqId, done }. */
#include <stdio.h>
#include <string.h>
#include <lauxlib.h>
#include "base/compat.h"
#include "core/filters.h"
#include "api/follow_track.h"

/* Pushes uv.tracks[id] (nil if the id is not followed). */
void qs_track_get(lua_State *L, int uv, int id)
{
    lua_getfield(L, uv, "tracks");
    lua_pushvalue(L, id);
    lua_rawget(L, -2);
    lua_remove(L, -2);
}

void qs_track_new(lua_State *L, int uv, int id)
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
void qs_track_merge_page(lua_State *L, int uv)
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
        qs_track_get(L, uv, lua_gettop(L));
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
void qs_track_push_result(lua_State *L, int track)
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
