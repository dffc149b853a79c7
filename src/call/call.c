/* The call state machine (see call.h). The decision after each attempt is
 * qs_decide's; this file applies it: it reads the clocks, keeps the counts,
 * and turns the ends into Lua values through the plan and result.c. */
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "call/call.h"
#include "base/clock.h"
#include "base/compat.h"
#include "core/errors.h"
#include "call/result.h"

qs_call *qs_call_at(lua_State *L, int idx)
{
    return (qs_call *)luaL_checkudata(L, idx, QS_CALL_MT);
}

qs_call *qs_call_new(lua_State *L, qs_client *c, const qs_plan *plan, const qs_args *a)
{
    return qs_call_new_into(L, c, plan, a, 0);
}

qs_call *qs_call_new_into(lua_State *L, qs_client *c, const qs_plan *plan, const qs_args *a, int spare)
{
    qs_call *k;
    int idx, uv = 0, stateful;
    /* arguments left out read as nil, not as the call pushed above them */
    if (lua_gettop(L) < a->base + QS_PLAN_ARGS - 1) lua_settop(L, a->base + QS_PLAN_ARGS - 1);
    stateful = plan->stateful || (plan->wants_state && plan->wants_state(L, a));
    /* asking may have run a metamethod that closed the client */
    qs_client_check_open(L, c);
    if (!stateful && spare && lua_type(L, spare) == LUA_TUSERDATA) {
        /* a shell whose request was moved out: what is left of it goes */
        lua_pushvalue(L, spare);
        k = (qs_call *)lua_touserdata(L, -1);
        qs_req_free(&k->req);
        free(k->out);
        luaL_unref(L, LUA_REGISTRYINDEX, k->end_ref);
        idx = lua_gettop(L);
        memset(k, 0, sizeof *k);
    } else {
        k = (qs_call *)(stateful ? qs_newudata_t(L, sizeof *k) : qs_newudata(L, sizeof *k));
        idx = lua_gettop(L);
        memset(k, 0, sizeof *k);
        luaL_getmetatable(L, QS_CALL_MT);
        lua_setmetatable(L, idx);
    }
    k->end_ref = LUA_NOREF;
    k->has_state = stateful;
    k->max_requests = c->conf->max_requests;
    if (stateful) {
        lua_newtable(L);
        qs_setuv(L, idx);
    }
    /* the configuration is shared by reference: the call keeps it alive */
    if (qs_req_init(&k->req, c->conf, "GET", qs_client_seed(c)) != 0) luaL_error(L, "not enough memory");
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

/* Starts the clock of the request about to go: its own budget (attempts,
 * waits), never past the call's deadline, so that the engine and the
 * caller-driven transport clamp each attempt to what is left of the call. */
static void start_clock(qs_call *k, double now)
{
    qs_req_start_clock(&k->req, now);
    if (k->deadline > 0 && k->req.deadline > k->deadline) k->req.deadline = k->deadline;
}

void qs_call_bound(qs_call *k, double deadline, qs_at_limit at_limit)
{
    k->deadline = deadline;
    k->at_limit = at_limit;
}

/* The whole-call bound that stops the call before one more request of
 * `wait` seconds from now, or NULL. */
static const char *bound_reached(const qs_call *k, double now, double wait)
{
    if (k->requests >= k->max_requests) return "requests";
    if (now + wait >= k->deadline) return "deadline";
    return NULL;
}

/* The one place a bound ends a call: the plan's at_limit pushes a result
 * (a follow's "still pending"), else the `limit` error goes with what was
 * done so far. */
static qs_call_state end_at_limit(lua_State *L, qs_call *k, int idx, const char *which, int ambiguous)
{
    int top = lua_gettop(L);
    if (k->at_limit && k->has_state) {
        qs_getuv(L, idx);
        if (k->at_limit(L, k, top + 1, which)) {
            lua_replace(L, top + 1);
            lua_settop(L, top + 1);
            return k->state = QS_K_DONE;
        }
        lua_settop(L, top);
    }
    qs_result_limit(L, &k->req, which, k->requests, ambiguous);
    add_partial(L, k, idx);
    return k->state = QS_K_FAILED;
}

qs_call_state qs_call_next(lua_State *L, qs_call *k, int idx)
{
    double now;
    const char *which;
    switch (k->state) {
    case QS_K_WAIT:
        /* feed announced the wait, and the caller has waited: on to the
         * send (answering "wait" again here had every wait taken twice) */
        k->state = QS_K_SEND;
        /* fall through */
    case QS_K_SEND:
        /* the outcome of its attempts, made with the first: a call whose
         * request goes out as a plain job (async.c) never needs one */
        if (!k->out && !(k->out = (qs_outcome *)malloc(sizeof *k->out))) luaL_error(L, "not enough memory");
        now = qs_now();
        if (!k->started) {
            k->started = 1;
            if (!k->req.conf->token) {
                qs_result_no_token(L, &k->req);
                return k->state = QS_K_FAILED;
            }
            /* the call's deadline, unless it has one of its own (a follow) */
            if (k->deadline == 0) k->deadline = now + k->req.conf->call_timeout;
            start_clock(k, now);
        } else if (k->restart) {
            /* a poll after its wait: a request of its own, with its own time */
            k->restart = 0;
            start_clock(k, now);
        }
        if ((which = bound_reached(k, now, 0)) != NULL) return end_at_limit(L, k, idx, which, k->req.ambiguous);
        if (qs_req_attempt_ms(&k->req, k->req.conf->timeout_ms, now) == 0) {
            /* the request's time ran out: this attempt ends before it starts */
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
    double now = qs_now();
    if (k->state != QS_K_SENT) luaL_error(L, "qstash: the call has no request in flight");
    d = qs_decide(&k->req, k->out, now, qs_wall(), qs_req_random(&k->req));
    k->req.attempts = d.attempts;
    k->req.ambiguous = d.ambiguous;
    /* the requests that went out (0: the attempt failed before sending), the
     * transport's own resends included */
    k->requests += k->out->sends;
    /* the request's deadline was the call's: its end is the call's bound, not
     * the attempt's failure (a wait past it is not slept) */
    if (d.verb == QS_FAIL && k->req.deadline >= k->deadline &&
        (d.out_of_time || (k->out->failure == QS_FAIL_TIMEOUT && now >= k->deadline)))
        return end_at_limit(L, k, idx, "deadline", d.ambiguous);
    if (d.verb == QS_RETRY && k->requests >= k->max_requests)
        return end_at_limit(L, k, idx, "requests", d.ambiguous);
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
        {
            /* a poll that could not start in time is not waited for */
            const char *which = bound_reached(k, qs_now(), k->wait);
            if (which) return end_at_limit(L, k, idx, which, 0);
        }
        return k->state = QS_K_WAIT;
    case 1: {
        /* the next page: a request of its own, with its own attempts, if
         * the bounds leave room for it (the transports send at once) */
        const char *which;
        lua_settop(L, top);
        k->req.attempts = 0;
        k->req.ambiguous = 0;
        now = qs_now();
        start_clock(k, now);
        if ((which = bound_reached(k, now, 0)) != NULL) return end_at_limit(L, k, idx, which, 0);
        return k->state = QS_K_SEND;
    }
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
