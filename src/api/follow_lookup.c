/* A follow's DLQ lookups (follow.c): a message that ended FAILED is back in
 * the DLQ under a new id; when its log entry does not carry that dlqId, one
 * GET /v2/dlq?messageId=... per such message reads it. The queue is
 * uv.lookups, the next at uv.lookup_at. */
#include <lauxlib.h>
#include "base/compat.h"
#include "core/filters.h"
#include "api/follow_lookup.h"
#include "api/follow_track.h"
#include "api/plan.h"

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
void qs_lookup_request(lua_State *L, qs_call *k, int uv)
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

/* The answer to a DLQ lookup: the dlqId of the track it was for (only from
 * that message's own entry), then the next lookup (1, its request set), an
 * error (-1, pushed), or 0 when the queue is drained. */
int qs_lookup_absorb(lua_State *L, qs_call *k, int uv, long status)
{
    size_t at, n;
    if (!qs_plan_json_object(L, k, status)) return -1;
    at = lookup_at(L, uv);
    lua_getfield(L, uv, "lookups");
    lua_rawgeti(L, -1, (int)at);
    qs_track_get(L, uv, lua_gettop(L));
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
        qs_lookup_request(L, k, uv);
        return 1;
    }
    /* the queue is drained: empty for the next round */
    lua_newtable(L);
    lua_setfield(L, uv, "lookups");
    lua_pushnil(L);
    lua_setfield(L, uv, "lookup_at");
    return 0;
}
