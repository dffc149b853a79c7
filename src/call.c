/* The call state machine (see call.h). The decision after each attempt is
 * qs_decide's; this file applies it: it reads the clocks, keeps the counts,
 * and turns the ends into Lua values through the plan and result.c. */
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "call.h"
#include "clock.h"
#include "compat.h"
#include "errors.h"
#include "result.h"

qs_call *qs_call_at(lua_State *L, int idx)
{
    return (qs_call *)luaL_checkudata(L, idx, QS_CALL_MT);
}

qs_call *qs_call_new(lua_State *L, qs_client *c, const qs_plan *plan, const qs_args *a)
{
    qs_call *k;
    int idx, uv = 0, stateful;
    /* arguments left out read as nil, not as the call pushed above them */
    if (lua_gettop(L) < a->base + QS_PLAN_ARGS - 1) lua_settop(L, a->base + QS_PLAN_ARGS - 1);
    stateful = plan->stateful || (plan->wants_state && plan->wants_state(L, a));
    /* asking may have run a metamethod that closed the client */
    qs_client_check_open(L, c);
    k = (qs_call *)(stateful ? qs_newudata_t(L, sizeof *k) : qs_newudata(L, sizeof *k));
    idx = lua_gettop(L);
    memset(k, 0, sizeof *k);
    k->end_ref = LUA_NOREF;
    k->has_state = stateful;
    luaL_getmetatable(L, QS_CALL_MT);
    lua_setmetatable(L, idx);
    if (stateful) {
        lua_newtable(L);
        qs_setuv(L, idx);
    }
    /* the configuration is shared by reference: the call keeps it alive */
    if (qs_req_init(&k->req, c->conf, "GET", qs_client_seed(c)) != 0 ||
        !(k->out = (qs_outcome *)malloc(sizeof *k->out)))
        luaL_error(L, "not enough memory");
    k->plan = plan;
    k->state = QS_K_SEND;
    if (stateful) {
        qs_getuv(L, idx);
        uv = lua_gettop(L);
    }
    plan->build(L, k, a, uv);
    lua_settop(L, idx);
    /* a metamethod run while reading the arguments may have closed it */
    qs_client_check_open(L, c);
    return k;
}

/* A failing page of a multi-request call carries what was done before it:
 * the fields of the partial result (`acc`) are copied into the error at the
 * top. */
static void add_partial(lua_State *L, const qs_call *k, int idx)
{
    if (!k->has_state) return;
    qs_getuv(L, idx);
    lua_getfield(L, -1, "acc");
    lua_remove(L, -2);
    if (lua_type(L, -1) == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_settable(L, -5);
        }
    }
    lua_pop(L, 1);
}

qs_call_state qs_call_next(lua_State *L, qs_call *k, int idx)
{
    switch (k->state) {
    case QS_K_WAIT:
        /* feed announced the wait, and the caller has waited: on to the
         * send (answering "wait" again here had every wait taken twice) */
        k->state = QS_K_SEND;
        /* fall through */
    case QS_K_SEND:
        if (!k->started) {
            k->started = 1;
            if (!k->req.conf->token) {
                qs_result_no_token(L, &k->req);
                return k->state = QS_K_FAILED;
            }
            qs_req_start_clock(&k->req, qs_now());
        } else if (k->restart) {
            /* a poll after its wait: a request of its own, with its own time */
            k->restart = 0;
            qs_req_start_clock(&k->req, qs_now());
        }
        if (qs_req_attempt_ms(&k->req, k->req.conf->timeout_ms, qs_now()) == 0) {
            /* the call's time ran out: this attempt ends before it starts */
            memset(k->out, 0, sizeof *k->out);
            k->out->failure = QS_FAIL_TIMEOUT;
            strcpy(k->out->message, "the call's time ran out before this attempt");
            k->state = QS_K_SENT;
            return qs_call_feed(L, k, idx);
        }
        return QS_K_SEND;
    case QS_K_SENT:
        luaL_error(L, "qstash: the call awaits how its request ended");
        return QS_K_SENT;
    default:
        lua_rawgeti(L, LUA_REGISTRYINDEX, k->end_ref);
        return k->state;
    }
}

void qs_call_sent(qs_call *k)
{
    k->state = QS_K_SENT;
}

qs_call_state qs_call_feed(lua_State *L, qs_call *k, int idx)
{
    qs_decision d;
    int uv = 0, top = lua_gettop(L);
    if (k->state != QS_K_SENT) luaL_error(L, "qstash: the call has no request in flight");
    d = qs_decide(&k->req, k->out, qs_now(), qs_wall(), qs_req_random(&k->req));
    k->req.attempts = d.attempts;
    k->req.ambiguous = d.ambiguous;
    if (d.verb == QS_RETRY) {
        k->wait = d.wait;
        k->rate_limited = d.rate_limited;
        k->polling = 0;
        return k->state = QS_K_WAIT;
    }
    if (d.verb == QS_FAIL) {
        qs_result_error(L, &k->req, k->out, &d);
        add_partial(L, k, idx);
        return k->state = QS_K_FAILED;
    }
    if (k->has_state) {
        qs_getuv(L, idx);
        uv = lua_gettop(L);
    }
    switch (k->plan->absorb(L, k, uv, k->out->status)) {
    case 2:
        /* the next poll, after k->wait */
        lua_settop(L, top);
        k->req.attempts = 0;
        k->req.ambiguous = 0;
        k->rate_limited = 0;
        k->polling = 1;
        k->restart = 1;
        return k->state = QS_K_WAIT;
    case 1:
        /* the next page: a request of its own, with its own attempts */
        lua_settop(L, top);
        k->req.attempts = 0;
        k->req.ambiguous = 0;
        qs_req_start_clock(&k->req, qs_now());
        return k->state = QS_K_SEND;
    case 0:
        k->state = QS_K_DONE;
        break;
    default:
        add_partial(L, k, idx);
        k->state = QS_K_FAILED;
        break;
    }
    /* the value alone above where the stack was */
    if (lua_gettop(L) > top + 1) {
        lua_replace(L, top + 1);
        lua_settop(L, top + 1);
    }
    return k->state;
}

void qs_call_keep(lua_State *L, qs_call *k)
{
    lua_pushvalue(L, -1);
    k->end_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

void qs_call_release(qs_call *k)
{
    qs_req_trim(&k->req);
    free(k->out);
    k->out = NULL;
}

static int call_gc(lua_State *L)
{
    qs_call *k = qs_call_at(L, 1);
    /* the collector never runs it while a step holds the call on the stack;
     * called by hand from a metamethod inside that step, it would free what
     * the step is using */
    if (k->busy) return luaL_error(L, "qstash: the call is in use by step(): it cannot be freed now");
    k->collected = 1;
    qs_req_free(&k->req);
    free(k->out);
    k->out = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, k->end_ref);
    k->end_ref = LUA_NOREF;
    return 0;
}

static int call_tostring(lua_State *L)
{
    static const char *const names[] = {"ready to send", "sent", "waiting", "done", "failed"};
    qs_call *k = qs_call_at(L, 1);
    lua_pushfstring(L, "qstash.call %s (%s): %p", k->plan->name, names[k->state], (void *)k);
    return 1;
}

void qs_call_register(lua_State *L)
{
    if (luaL_newmetatable(L, QS_CALL_MT)) {
        lua_pushcfunction(L, call_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, call_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_newtable(L);
        lua_setfield(L, -2, "__index"); /* step is added by step.c */
    }
    lua_pop(L, 1);
}
