/* Async requests and batches: dlq_retry_async, client:async, poll, pending,
 * wait, handle:cancel and dlq_retry_each (design.md, "Concurrency"), and
 * the drives a host's loop runs through its hooks (loop_hooks.c).
 *
 * One lifecycle per request: a job is C memory owned by its client's set
 * (hooked to the client: closing the client frees the set) until it is
 * delivered; then a holder on the Lua stack owns it while its result is
 * built, and it is freed before its callback runs. Lua holds no pointer to a
 * job: handles refer to it by a number, and callbacks live in the client's
 * own tables (under a slot of the job's), so a dropped client with requests in flight is
 * collected (its __gc cancels them; their callbacks do not run). No Lua runs
 * while a job sits in the set half-updated. */
#include <math.h>

#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "api/api.h"
#include "drive/async.h"
#include "drive/each_async.h"
#include "drive/each_follow.h"
#include "call/call.h"
#include "base/clock.h"
#include "base/compat.h"
#include "base/grow.h"
#include "api/dlq.h"
#include "engine/engine.h"
#include "core/errors.h"
#include "call/result.h"

#define QS_HANDLE_MT "qstash.request"
#define QS_HOLDER_MT "qstash.delivery"

/* J_OUTCOME: a call's attempt ended; its call takes the outcome next (Lua) */
enum { J_WAITING, J_RUNNING, J_FINISHED, J_CANCELLED, J_OUTCOME };

typedef struct qs_job {
    qs_req req;
    qs_xfer x;
    qs_outcome out;
    qs_decision d;            /* J_FINISHED: how it ended */
    struct qs_job *next, *prev;
    double start_at;          /* J_WAITING: not before this (monotonic) */
    lua_Integer id;           /* its handle's number (unique in the client) */
    int slot;                 /* its key in the client's tables cbs, calls and ends (0: none) */
    lua_Integer batch;        /* 0, or its batch's key */
    lua_Integer batch_idx;    /* the id's index in its batch */
    int state;
    int running;              /* x is in the engine */
    int forked;               /* inherited across a fork: the parent has its outcome */
    int cancel_ambiguous;     /* J_CANCELLED: it may have been sent */
    /* A job of client:async runs a call (its userdata in the client's table
     * `calls`): req is a copy of the call's request of the moment, and the
     * call decides after each attempt. */
    int is_call;
    int sendable;             /* J_WAITING: req is the call's next request */
    int end_ok;               /* J_FINISHED: the call's end (in `ends`) is a result */
} qs_job;

typedef struct qs_set {
    qs_job *head;
    int pending;              /* jobs not yet delivered */
    int calls;                /* of them, jobs of a call (is_call): none, no walk asks them */
    double pause_until;       /* monotonic time before which none starts (429) */
    int in_poll;              /* poll is delivering */
    unsigned eng_gen;         /* the engine generation the jobs belong to */
    /* The keys of the tables cbs, calls and ends: small numbers, each
     * given again once its job was delivered, so that those tables keep
     * their entries in their array part. Numbers that only grew (the
     * handles' own) left every insertion a rehash of the hash part. */
    int *free_slots;
    int nfree, capfree, top_slot;
    lua_Integer next_number;  /* the last number given to a handle or a batch */
    /* The host loop's hook heard of a new request since the last drive: it
     * armed its timer for now then, and another new request before that
     * drive changes nothing it watches (no socket before the drive starts
     * it, no timer sooner than now), so the hook is not called again. */
    int told_new;
} qs_set;

/* ---- jobs and the set (C only) ------------------------------------------ */

/* A key for a new job's entries: a number given back before, or a new one. */
static int take_slot(qs_set *s)
{
    return s->nfree > 0 ? s->free_slots[--s->nfree] : ++s->top_slot;
}

/* Gives a delivered job's key back (out of memory, the number is not used
 * again: a new one comes next). */
static void give_slot(qs_set *s, int slot)
{
    int *p = (int *)qs_grow(s->free_slots, &s->capfree, s->nfree, sizeof *p, 64);
    if (!p) return;
    s->free_slots = p;
    s->free_slots[s->nfree++] = slot;
}

static void job_free(qs_job *j)
{
    qs_req_free(&j->req);
    free(j);
}

static void link_job(qs_set *s, qs_job *j)
{
    j->prev = NULL;
    j->next = s->head;
    if (s->head) s->head->prev = j;
    s->head = j;
    s->pending++;
    s->calls += j->is_call;
}

static void unlink_job(qs_set *s, qs_job *j)
{
    if (j->prev) j->prev->next = j->next;
    else s->head = j->next;
    if (j->next) j->next->prev = j->prev;
    j->next = j->prev = NULL;
    s->pending--;
    s->calls -= j->is_call;
}

/* Stops a job's transfer, if it has one (a transfer of another process is
 * only forgotten). */
static void stop_transfer(qs_client *c, qs_job *j)
{
    if (!j->running) return;
    qs_engine_abandon(c->eng, &j->x);
    j->running = 0;
}

/* The client's close hook: every job is cancelled without its callback. */
static void set_close(lua_State *L, qs_client *c, int idx)
{
    qs_set *s = (qs_set *)c->ext;
    /* the host loop drops its watches first: the fds close next */
    qs_getuv(L, idx);
    if (lua_type(L, -1) == LUA_TTABLE) {
        lua_getfield(L, -1, "io_hook");
        if (lua_type(L, -1) == LUA_TFUNCTION) {
            lua_pushvalue(L, idx);
            lua_pushliteral(L, "closed");
            if (lua_pcall(L, 2, 0, 0) != 0) lua_pop(L, 1);
        } else {
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    s = (qs_set *)c->ext; /* (the hook cannot close it again: it is closing) */
    while (s->head) {
        qs_job *j = s->head;
        stop_transfer(c, j);
        unlink_job(s, j);
        job_free(j);
    }
    free(s->free_slots);
    free(s);
    c->ext = NULL;
    /* the callbacks go with the jobs */
    qs_getuv(L, idx);
    if (lua_type(L, -1) == LUA_TTABLE) {
        lua_pushnil(L);
        lua_setfield(L, -2, "cbs");
        lua_pushnil(L);
        lua_setfield(L, -2, "batches");
        lua_pushnil(L);
        lua_setfield(L, -2, "calls");
        lua_pushnil(L);
        lua_setfield(L, -2, "ends");
    }
    lua_pop(L, 1);
}

static qs_set *get_set(lua_State *L, qs_client *c)
{
    qs_set *s = (qs_set *)c->ext;
    if (s) return s;
    if (!(s = (qs_set *)calloc(1, sizeof *s))) luaL_error(L, "not enough memory");
    s->eng_gen = c->eng->gen;
    c->ext = s;
    c->on_close = set_close;
    return s;
}

/* Makes the engine this process's. After a fork, every job inherited from
 * the parent completes at once: the parent has its transfer and will learn
 * its outcome; this process never will. */
static void after_fork(lua_State *L, qs_client *c, qs_set *s)
{
    qs_job *j;
    if (qs_engine_ready(c->eng) != 0) luaL_error(L, "qstash: cannot create libcurl handles");
    if (s->eng_gen == c->eng->gen) return;
    for (j = s->head; j; j = j->next) {
        stop_transfer(c, j);
        j->forked = 1;
        j->state = J_FINISHED;
    }
    s->eng_gen = c->eng->gen;
    s->told_new = 0; /* what the parent's hook heard is not the child's */
}

static void decide_job(qs_set *s, qs_job *j, double now)
{
    qs_decision d = qs_decide(&j->req, &j->out, now, qs_wall(), qs_req_random(&j->req));
    j->req.attempts = d.attempts;
    j->req.ambiguous = d.ambiguous;
    if (d.verb == QS_RETRY) {
        j->state = J_WAITING;
        j->start_at = now + d.wait;
        /* a 429 pauses every start of this client until its wait is over */
        if (d.rate_limited && j->start_at > s->pause_until) s->pause_until = j->start_at;
    } else {
        j->state = J_FINISHED;
        j->d = d;
    }
}

/* Starts the waiting jobs whose time has come (and no 429 pause holds). */
static void start_due(qs_client *c, qs_set *s, double now)
{
    qs_job *j;
    if (now < s->pause_until) return;
    for (j = s->head; j; j = j->next) {
        if (j->state != J_WAITING || j->start_at > now || (j->is_call && !j->sendable)) continue;
        j->sendable = 0;
        if (j->req.deadline == 0) qs_req_start_clock(&j->req, now);
        j->state = J_RUNNING;
        if (qs_engine_start(c->eng, &j->x, &j->req, 1, now) != 0) {
            /* cannot start: an attempt that failed before sending */
            memset(&j->out, 0, sizeof j->out);
            j->out.failure = QS_FAIL_NETWORK;
            strcpy(j->out.message, "not enough memory to start the request");
            if (j->is_call) j->state = J_OUTCOME;
            else decide_job(s, j, now);
            continue;
        }
        j->running = 1;
    }
}

/* Decides after each finished attempt: retry later, or finished. */
static void settle(qs_client *c, qs_set *s, double now)
{
    qs_job *j;
    for (j = s->head; j; j = j->next) {
        if (j->state != J_RUNNING || !j->x.done) continue;
        qs_engine_finish(c->eng, &j->x, &j->out);
        j->running = 0;
        if (j->is_call) j->state = J_OUTCOME; /* its call decides (advance_calls) */
        else decide_job(s, j, now);
    }
}

static int completed(const qs_job *j)
{
    return j->state == J_FINISHED || j->state == J_CANCELLED;
}

static qs_job *first_completed(const qs_set *s)
{
    qs_job *j;
    for (j = s->head; j; j = j->next)
        if (completed(j)) return j;
    return NULL;
}

/* A walk over the jobs that may run Lua at each one it picks: it goes on
 * after the last job picked (the Lua run may move that one to the head),
 * and walks again from the head once it reached the end having picked
 * any (the Lua may have added jobs there), so that a drive costs a walk or
 * two, not one per job. Only a close frees jobs while Lua runs here (the
 * drive calls cannot run inside a callback). */
typedef struct walk {
    qs_job *from;
    int from_head, picked;
} walk;

static qs_job *walk_next(walk *w, const qs_set *s, int (*pick)(const qs_job *, double), double now)
{
    for (;;) {
        qs_job *j = w->from_head ? s->head : w->from;
        for (; j && !pick(j, now); j = j->next) {}
        if (j) {
            w->from = j->next;
            w->from_head = 0;
            w->picked = 1;
            return j;
        }
        if (!w->picked) return NULL;
        w->from_head = 1;
        w->picked = 0;
    }
}

static int pick_completed(const qs_job *j, double now)
{
    (void)now;
    return completed(j);
}

/* Completes a pending job with `cancelled`; 0 if it was not pending. */
static int cancel(qs_client *c, qs_job *j)
{
    if (j->state != J_WAITING && j->state != J_RUNNING && j->state != J_OUTCOME) return 0;
    j->cancel_ambiguous = j->req.ambiguous || (j->running && j->x.sends > 0) ||
                          (j->state == J_OUTCOME && j->out.sends > 0);
    stop_transfer(c, j);
    j->state = J_CANCELLED;
    return 1;
}

/* ---- delivery (Lua) ------------------------------------------------------ */

/* Owns a job taken out of its set while its result is built: an error
 * unwinding meanwhile still frees it. */
typedef struct holder {
    qs_job *job;
} holder;

static int holder_gc(lua_State *L)
{
    holder *h = (holder *)luaL_checkudata(L, 1, QS_HOLDER_MT);
    if (h->job) job_free(h->job);
    h->job = NULL;
    return 0;
}

/* Pushes the client's table `name` (cbs or batches), creating it. */
static void push_table(lua_State *L, int cidx, const char *name)
{
    qs_getuv(L, cidx);
    lua_getfield(L, -1, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, name);
    }
    lua_remove(L, -2);
}

/* Pushes the callback of j and its arguments: callback, [index,] res, err.
 * Returns how many arguments, or -1 (nothing pushed) when it has none. */
static int push_delivery(lua_State *L, int cidx, qs_job *j)
{
    int nargs = 2;
    push_table(L, cidx, j->batch ? "batches" : "cbs");
    qs_pushint(L, j->batch ? j->batch : j->slot);
    lua_rawget(L, -2);
    if (!j->batch) {
        /* a single request's callback runs once */
        qs_pushint(L, j->slot);
        lua_pushnil(L);
        lua_rawset(L, -4);
    }
    lua_remove(L, -2);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return -1;
    }
    if (j->batch) {
        qs_pushint(L, j->batch_idx);
        nargs = 3;
    }
    if (j->forked) {
        lua_pushnil(L);
        qs_result_cancelled(L, &j->req, "the process forked while this request was pending: its outcome "
                                        "is known to the parent process only", 1);
    } else if (j->state == J_CANCELLED) {
        lua_pushnil(L);
        qs_result_cancelled(L, &j->req, "the request was cancelled", j->cancel_ambiguous);
    } else if (j->is_call) {
        /* the call's end, kept in `ends` */
        push_table(L, cidx, "ends");
        qs_pushint(L, j->slot);
        lua_rawget(L, -2);
        qs_pushint(L, j->slot);
        lua_pushnil(L);
        lua_rawset(L, -4);
        lua_remove(L, -2);
        if (!j->end_ok) {
            lua_pushnil(L);
            lua_insert(L, -2);
        } else {
            lua_pushnil(L);
        }
    } else if (j->d.verb == QS_DONE) {
        if (qs_result_publish(L, &j->req, j->out.status)) {
            lua_pushnil(L);
        } else {
            lua_pushnil(L);
            lua_insert(L, -2);
        }
    } else {
        lua_pushnil(L);
        qs_result_error(L, &j->req, &j->out, &j->d);
    }
    return nargs;
}

/* Runs the callbacks of every completed job of the client at cidx. Returns
 * how many ran; the first callback error (if any) is left in *err_ref. A
 * callback may close the client: delivery stops there. */
static int deliver(lua_State *L, qs_client *c, int cidx, int *err_ref)
{
    int ran = 0, top = lua_gettop(L);
    holder *h;
    walk w = {NULL, 1, 0};
    if (c->closed || !c->ext || !first_completed((qs_set *)c->ext)) return 0;
    h = (holder *)qs_newudata(L, sizeof *h);
    h->job = NULL;
    luaL_getmetatable(L, QS_HOLDER_MT);
    lua_setmetatable(L, -2);
    for (;;) {
        qs_job *j;
        int nargs;
        /* the client may have closed during the last round's Lua code */
        if (c->closed || !(j = walk_next(&w, (qs_set *)c->ext, pick_completed, 0))) break;
        unlink_job((qs_set *)c->ext, j);
        h->job = j;
        if (j->is_call) {
            push_table(L, cidx, "calls");
            qs_pushint(L, j->slot);
            lua_pushnil(L);
            lua_rawset(L, -3);
            lua_pop(L, 1);
        }
        nargs = push_delivery(L, cidx, j);
        /* its entries are gone: the key is free for the next job */
        if (j->slot && !c->closed) give_slot((qs_set *)c->ext, j->slot);
        h->job = NULL;
        job_free(j); /* C memory first: the callback may raise */
        if (nargs < 0) continue;
        ran++;
        if (lua_pcall(L, nargs, 0, 0) != 0) {
            if (*err_ref == LUA_NOREF) *err_ref = luaL_ref(L, LUA_REGISTRYINDEX);
            else lua_pop(L, 1);
        }
    }
    lua_settop(L, top);
    return ran;
}

/* ---- calls of client:async (Lua: the call decides) ----------------------- */

/* Asks the call at 1 what follows for the job at 2 (a light userdata, out of
 * its set meanwhile): its next request (copied into the job), a wait, or
 * its end. Returns [end value,] state. Run protected: a plan's Lua (a JSON
 * hook) may raise. */
static int advance_body(lua_State *L)
{
    qs_call *k = (qs_call *)lua_touserdata(L, 1); /* (from the calls table: a call) */
    qs_job *j = (qs_job *)lua_touserdata(L, 2);
    qs_call_state st;
    lua_settop(L, 1);
    if (j->state == J_OUTCOME) {
        qs_buf t = k->req.resp;
        *k->out = j->out;
        k->req.resp = j->req.resp; /* the body, without a copy */
        j->req.resp = t;
        st = qs_call_feed(L, k, 1);
    } else {
        st = qs_call_next(L, k, 1);
    }
    if (st == QS_K_SEND) {
        qs_req r;
        if (qs_req_copy(&r, &k->req, 1) != 0) {
            qs_req_free(&r);
            return luaL_error(L, "not enough memory");
        }
        qs_req_free(&j->req);
        j->req = r;
        qs_call_sent(k);
    } else if (st == QS_K_DONE || st == QS_K_FAILED) {
        qs_call_release(k);
    }
    lua_pushinteger(L, (lua_Integer)st);
    return lua_gettop(L) - 1;
}

/* Stores the end at the top (popped) for j's delivery. */
static void store_end(lua_State *L, int cidx, qs_job *j, int ok)
{
    push_table(L, cidx, "ends");
    qs_pushint(L, j->slot);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 2);
    j->end_ok = ok;
    j->state = J_FINISHED;
}

static int needs_advance(const qs_job *j, double now)
{
    return j->is_call && (j->state == J_OUTCOME || (j->state == J_WAITING && !j->sendable && j->start_at <= now));
}

/* Lets every call job whose attempt ended, or whose wait is over, decide
 * what follows. The job leaves its set while its call runs (Lua may close
 * the client then: the job is freed with the holder). */
static void advance_calls(lua_State *L, qs_client *c, int cidx, double now)
{
    int top = lua_gettop(L);
    holder *h = NULL;
    walk w = {NULL, 1, 0};
    for (;;) {
        qs_set *s = (qs_set *)c->ext;
        qs_job *j;
        int rc;
        /* (plain jobs only, as in a batch of retries: no walk) */
        if (c->closed || !s || s->calls == 0) break;
        if (!(j = walk_next(&w, s, needs_advance, now))) break;
        if (!h) {
            h = (holder *)qs_newudata(L, sizeof *h);
            h->job = NULL;
            luaL_getmetatable(L, QS_HOLDER_MT);
            lua_setmetatable(L, -2);
        }
        unlink_job(s, j);
        h->job = j;
        lua_pushcfunction(L, advance_body);
        push_table(L, cidx, "calls");
        qs_pushint(L, j->slot);
        lua_rawget(L, -2);
        lua_remove(L, -2);
        lua_pushlightuserdata(L, j);
        s->in_poll++;
        rc = lua_pcall(L, 2, LUA_MULTRET, 0);
        if (c->closed) {
            lua_settop(L, top + 1);
            continue; /* the holder frees the job */
        }
        s->in_poll--;
        h->job = NULL;
        link_job(s, j);
        if (rc != 0) {
            store_end(L, cidx, j, 0); /* what the call raised is its error */
        } else {
            qs_call_state st = (qs_call_state)lua_tointeger(L, -1);
            lua_pop(L, 1);
            if (st == QS_K_SEND) {
                j->state = J_WAITING;
                j->sendable = 1;
                j->start_at = 0;
            } else if (st == QS_K_WAIT) {
                qs_call *k;
                push_table(L, cidx, "calls");
                qs_pushint(L, j->slot);
                lua_rawget(L, -2);
                k = (qs_call *)lua_touserdata(L, -1); /* (the calls table holds calls only) */
                lua_pop(L, 2);
                j->state = J_WAITING;
                j->start_at = qs_now() + k->wait;
                /* a 429 pauses every start of this client until its wait is over */
                if (k->rate_limited && j->start_at > s->pause_until) s->pause_until = j->start_at;
            } else {
                store_end(L, cidx, j, st == QS_K_DONE);
            }
        }
        lua_settop(L, top + 1);
    }
    if (h && c->closed && h->job) {
        job_free(h->job);
        h->job = NULL;
    }
    lua_settop(L, top);
}

/* When the set next needs a drive (monotonic seconds), or < 0: never
 * (nothing but transfers libcurl times itself). */
static double next_due(const qs_set *s)
{
    const qs_job *j;
    double wake = -1.0;
    for (j = s->head; j; j = j->next) {
        double at;
        if (j->state == J_RUNNING) continue;
        if (j->state != J_WAITING) return 0; /* to deliver, or to decide */
        at = j->start_at;
        if ((!j->is_call || j->sendable) && s->pause_until > at) at = s->pause_until;
        if (wake < 0 || at < wake) wake = at;
    }
    return wake;
}

/* One pass that never waits: calls decide what follows, due jobs start,
 * libcurl runs what is due (and, with `poll_sockets`, every socket ready
 * now: a host loop hands over its ready sockets itself), finished attempts
 * settle, and calls decide again. */
static void pass(lua_State *L, qs_client *c, int cidx, int poll_sockets)
{
    qs_set *s = (qs_set *)c->ext;
    advance_calls(L, c, cidx, qs_now());
    if (c->closed) return; /* closed by a call's Lua */
    start_due(c, s, qs_now());
    if (poll_sockets) qs_engine_drive(c->eng, 0);
    else qs_engine_timer_due(c->eng);
    settle(c, s, qs_now());
    advance_calls(L, c, cidx, qs_now());
}

/* Drives every transfer until at least one job completes or `timeout`
 * seconds pass, then runs the callbacks of all completed ones. A host
 * loop's drive (`hooked`) never waits and polls no socket: the host hands
 * over every socket it found ready, all of them in one drive. */
static int drive(lua_State *L, qs_client *c, int cidx, double timeout, int hooked, int *err_ref)
{
    double deadline = qs_now() + timeout;
    qs_set *s = get_set(L, c);
    int ran;
    after_fork(L, c, s);
    s->told_new = 0; /* the hook hears of the next new request again */
    for (;;) {
        double now, wake = deadline, due;
        pass(L, c, cidx, !hooked);
        if (c->closed) return 0; /* closed by a call's Lua: no callback runs */
        if (first_completed(s) || s->pending == 0) break;
        now = qs_now();
        if (now >= deadline) break;
        due = next_due(s);
        if (due >= 0 && due < wake) wake = due;
        if (wake > now) qs_engine_drive(c->eng, wake - now);
    }
    s->in_poll++;
    ran = deliver(L, c, cidx, err_ref);
    if (c->closed) return ran;
    s->in_poll--;
    /* what the callbacks asked for goes out now, not a drive later (their
     * own callbacks wait for the next drive: no callback runs twice here) */
    if (ran > 0) pass(L, c, cidx, 0);
    return ran;
}

static void raise_callback_error(lua_State *L, int err_ref)
{
    if (err_ref == LUA_NOREF) return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, err_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, err_ref);
    if (lua_type(L, -1) == LUA_TSTRING)
        luaL_error(L, "qstash: error in a callback: %s", lua_tostring(L, -1));
    lua_error(L);
}

static int in_poll(const qs_client *c)
{
    return c->ext && ((const qs_set *)c->ext)->in_poll > 0;
}

/* A new number for a job or a batch of the client c. */
static lua_Integer next_number(lua_State *L, qs_client *c)
{
    return ++get_set(L, c)->next_number;
}

/* Makes a job of a copy of the request r, retargeted to the DLQ id at idx
 * (when idx > 0), and adds it to the set. C only, but for reading the id. */
static void add_job(lua_State *L, qs_client *c, const qs_req *r, int idx, lua_Integer id, int slot,
                    lua_Integer batch, lua_Integer batch_idx)
{
    qs_set *s = get_set(L, c);
    qs_job *j = (qs_job *)calloc(1, sizeof *j);
    if (!j || qs_req_copy(&j->req, r, !idx) != 0) goto oom;
    if (idx) {
        size_t n;
        const char *key = lua_tolstring(L, idx, &n);
        if (qs_buf_adds(&j->req.target, "/v2/dlq/retry/") || qs_buf_add_pct(&j->req.target, key, n) ||
            qs_req_set_target(&j->req, j->req.target.p, j->req.target.n))
            goto oom;
    }
    j->id = id;
    j->slot = slot;
    j->batch = batch;
    j->batch_idx = batch_idx;
    j->state = J_WAITING;
    j->start_at = 0; /* due at once */
    link_job(s, j);
    return;
oom:
    if (j) job_free(j);
    luaL_error(L, "not enough memory");
}

/* The handle at the top keeps its client (at cidx): as its user value
 * where any value may be one (5.3 and later), in a table otherwise (5.1
 * and 5.2 take only tables there). */
static void handle_keep_client(lua_State *L, int cidx)
{
#if LUA_VERSION_NUM >= 503
    lua_pushvalue(L, cidx);
#else
    lua_createtable(L, 1, 0);
    lua_pushvalue(L, cidx);
    lua_rawseti(L, -2, 1);
#endif
    qs_setuv(L, -2);
}

/* Pushes the client the handle at hidx keeps. */
static void handle_push_client(lua_State *L, int hidx)
{
    qs_getuv(L, hidx);
#if LUA_VERSION_NUM < 503
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
#endif
}

/* Makes a job of the request of a call just built (taken over: the call
 * keeps an empty one), and adds it to the set. C only. */
static void add_job_taking(lua_State *L, qs_client *c, qs_req *r, lua_Integer id, int slot)
{
    qs_set *s = get_set(L, c);
    qs_job *j = (qs_job *)calloc(1, sizeof *j);
    if (!j) luaL_error(L, "not enough memory");
    qs_req_move(&j->req, r);
    j->id = id;
    j->slot = slot;
    j->state = J_WAITING;
    j->start_at = 0; /* due at once */
    link_job(s, j);
}

/* Registers the callback at cb under the key `slot` and pushes the handle
 * of a new number; returns the number. */
static lua_Integer new_handle(lua_State *L, qs_client *c, int cidx, int cb, int slot)
{
    lua_Integer id = next_number(L, c);
    push_table(L, cidx, "cbs");
    qs_pushint(L, slot);
    lua_pushvalue(L, cb);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    *(lua_Integer *)qs_newudata_t(L, sizeof(lua_Integer)) = id;
    handle_keep_client(L, cidx);
    luaL_getmetatable(L, QS_HANDLE_MT);
    lua_setmetatable(L, -2);
    return id;
}

/* Tells the host loop's hook (client:on_io) that the client's fds or timer
 * may have changed outside a drive call: a new request (`is_new`), a
 * cancel. Not from a callback: the drive call that runs it is the loop's,
 * which looks again afterwards. Of the new requests between two drives,
 * only the first is told (qs_set.told_new). */
static void notify(lua_State *L, qs_client *c, int cidx, int is_new)
{
    qs_set *s = (qs_set *)c->ext;
    if (in_poll(c) || c->closed) return;
    if (is_new) {
        if (s->told_new) return;
        s->told_new = 1;
    }
    qs_getuv(L, cidx);
    lua_getfield(L, -1, "io_hook");
    lua_remove(L, -2);
    if (lua_type(L, -1) != LUA_TFUNCTION) {
        lua_pop(L, 1);
        return;
    }
    lua_pushvalue(L, cidx);
    lua_pushliteral(L, "changed");
    lua_call(L, 2, 0);
}

/* The client's spare call (qs_call_new_into: a one-request retry's call is
 * built only for its request to move into a job, and then kept for the
 * next) into stack slot idx, or nil. It leaves the client's table while in
 * use: a call made meanwhile (from a metamethod of the arguments) makes one
 * of its own, and an argument error leaves it to the collector. */
static void take_spare(lua_State *L, int cidx, int idx)
{
    qs_getuv(L, cidx);
    lua_getfield(L, -1, "spare_call");
    if (!lua_isnil(L, -1)) {
        lua_pushnil(L);
        lua_setfield(L, -3, "spare_call");
    }
    lua_replace(L, idx);
    lua_pop(L, 1);
}

/* Keeps the call at idx, whose request was moved out, as the spare. */
static void keep_spare(lua_State *L, int cidx, int idx)
{
    qs_getuv(L, cidx);
    lua_pushvalue(L, idx);
    lua_setfield(L, -2, "spare_call");
    lua_pop(L, 1);
}

/* ---- the API -------------------------------------------------------------- */

/* client:dlq_retry_async(id, opts, callback) -> handle; callback(res, err) runs from poll */
static int dlq_retry_async(lua_State *L, qs_client *c, const qs_args *a)
{
    int cb = a->base + 2, cidx = a->base - 1, spare = a->base + 4, kidx, slot;
    lua_Integer id;
    qs_call *k;
    /* (the spare above every argument the plan reads) */
    lua_settop(L, spare);
    take_spare(L, cidx, spare);
    k = qs_call_new_into(L, c, &qs_plan_dlq_retry, a, spare);
    kidx = lua_gettop(L);
    if (k->follow)
        qs_argerror(a, a->base + 1, "option 'follow' applies to dlq_retry and dlq_retry_each "
                                    "(follow the messageId of the result with client:follow)");
    if (lua_type(L, cb) != LUA_TFUNCTION)
        qs_argerror(a, cb, "callback must be a function, got %s", luaL_typename(L, cb));
    if (!c->conf->token) {
        qs_result_no_token(L, &k->req);
        return qs_api_finish(L, c->safe, 0);
    }
    qs_client_check_open(L, c);
    after_fork(L, c, get_set(L, c));
    slot = take_slot((qs_set *)c->ext);
    /* the Lua side first: the callback and the handle */
    id = new_handle(L, c, cidx, cb, slot);
    /* then the job, in C only */
    add_job_taking(L, c, &k->req, id, slot);
    keep_spare(L, cidx, kidx);
    notify(L, c, cidx, 1);
    return 1;
}

/* client:async(name, ..., callback) -> handle: the API function `name` (any
 * that prepare takes) with its arguments, run by the drive calls (poll,
 * wait, io_ready, io_timer); callback(res, err) runs from them. */
static int async_call(lua_State *L, qs_client *c, const qs_args *a)
{
    int cidx = a->base - 1, top = lua_gettop(L), kidx, slot, spare;
    const qs_plan *plan;
    qs_call *k;
    qs_args fa;
    lua_Integer id;
    qs_job *j;
    if (lua_type(L, a->base) != LUA_TSTRING)
        qs_argerror(a, a->base, "the name of an API function expected, got %s", luaL_typename(L, a->base));
    if (strcmp(lua_tostring(L, a->base), "dlq_retry_each") == 0) {
        /* a batch of async calls (each_async.c) */
        qs_args ea = *a;
        if (top <= a->base + 1 || lua_type(L, top) != LUA_TFUNCTION)
            qs_argerror(a, top > a->base ? top : a->base + 1, "callback (the last argument) must be a function, got %s",
                        top > a->base + 1 ? luaL_typename(L, top) : "no value");
        qs_client_check_open(L, c);
        ea.base = a->base + 1;
        return qs_each_async(L, c, &ea);
    }
    plan = qs_api_plan(L, lua_tostring(L, a->base));
    if (!plan)
        qs_argerror(a, a->base, "'%s' cannot run with async (dlq_messages and log_entries: run "
                                "dlq_list or logs pages)", lua_tostring(L, a->base));
    if (top <= a->base || lua_type(L, top) != LUA_TFUNCTION)
        qs_argerror(a, top > a->base ? top : a->base + 1, "callback (the last argument) must be a function, got %s",
                    top > a->base ? luaL_typename(L, top) : "no value");
    /* the callback below the plan's arguments: they end where the stack does */
    lua_insert(L, a->base);
    /* the name's slot (its plan is known): the spare call of a DLQ retry */
    spare = a->base + 1;
    if (plan == &qs_plan_dlq_retry) take_spare(L, cidx, spare);
    fa.L = L;
    fa.base = a->base + 2;
    fa.fname = plan->name;
    k = qs_call_new_into(L, c, plan, &fa, plan == &qs_plan_dlq_retry ? spare : 0);
    kidx = lua_gettop(L);
    qs_client_check_open(L, c);
    after_fork(L, c, get_set(L, c));
    slot = take_slot((qs_set *)c->ext);
    id = new_handle(L, c, cidx, a->base, slot);
    /* One DLQ retry without a follow is one request and its retries: a
     * plain job, as dlq_retry_async's, decided in C after each attempt,
     * with no call to ask between them (the same result or error; without
     * a token the call reports that through the callback, below). */
    if (plan == &qs_plan_dlq_retry && !k->follow && c->conf->token) {
        add_job_taking(L, c, &k->req, id, slot);
        keep_spare(L, cidx, kidx);
        notify(L, c, cidx, 1);
        return 1;
    }
    /* (a spare the call did not use, a follow's having Lua state, stays) */
    if (plan == &qs_plan_dlq_retry && lua_type(L, spare) == LUA_TUSERDATA && !lua_rawequal(L, spare, kidx))
        keep_spare(L, cidx, spare);
    push_table(L, cidx, "calls");
    qs_pushint(L, slot);
    lua_pushvalue(L, kidx);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    j = (qs_job *)calloc(1, sizeof *j);
    /* a copy of the request for a cancelled error before the first send */
    if (!j || qs_req_copy(&j->req, &k->req, 1) != 0) {
        if (j) job_free(j);
        return luaL_error(L, "not enough memory");
    }
    j->id = id;
    j->slot = slot;
    j->is_call = 1;
    j->state = J_WAITING; /* its call says what comes first */
    link_job(get_set(L, c), j);
    notify(L, c, cidx, 1);
    return 1;
}

/* client:poll(timeout_s) -> how many callbacks ran */
static int poll_api(lua_State *L, qs_client *c, const qs_args *a)
{
    double timeout = 0;
    int ran, err_ref = LUA_NOREF;
    if (!lua_isnoneornil(L, a->base)) {
        double t = lua_tonumber(L, a->base);
        if (lua_type(L, a->base) != LUA_TNUMBER || !(t >= 0 && t <= 1e9))
            qs_argerror(a, a->base, "timeout must be a number of seconds >= 0");
        timeout = t;
    }
    if (in_poll(c)) return luaL_error(L, "qstash: poll cannot run inside a callback");
    ran = drive(L, c, a->base - 1, timeout, 0, &err_ref);
    raise_callback_error(L, err_ref);
    qs_pushint(L, ran);
    return 1;
}

/* client:pending() -> requests not yet completed */
static int pending(lua_State *L, qs_client *c, const qs_args *a)
{
    (void)a;
    if (c->ext) after_fork(L, c, (qs_set *)c->ext);
    qs_pushint(L, c->ext ? ((qs_set *)c->ext)->pending : 0);
    return 1;
}

/* client:wait() -> runs until nothing is pending; returns how many callbacks ran */
static int wait_all(lua_State *L, qs_client *c, const qs_args *a)
{
    int ran = 0, err_ref = LUA_NOREF;
    if (in_poll(c)) return luaL_error(L, "qstash: wait cannot run inside a callback");
    while (!c->closed && c->ext && ((qs_set *)c->ext)->pending > 0)
        ran += drive(L, c, a->base - 1, 1.0, 0, &err_ref);
    raise_callback_error(L, err_ref);
    qs_pushint(L, ran);
    return 1;
}

/* The job a handle refers to, or NULL when it is no longer pending. */
static qs_job *handle_job(lua_State *L, qs_client **cp)
{
    lua_Integer id = *(lua_Integer *)luaL_checkudata(L, 1, QS_HANDLE_MT);
    qs_client *c;
    qs_job *j;
    handle_push_client(L, 1);
    c = (qs_client *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    *cp = c;
    if (!c || c->closed || !c->ext) return NULL;
    for (j = ((qs_set *)c->ext)->head; j; j = j->next)
        if (j->id == id && !j->batch) return j;
    return NULL;
}

/* handle:cancel() -> true when it was still pending (its callback gets a
 * `cancelled` error from the next poll), false otherwise */
static int handle_cancel(lua_State *L)
{
    qs_client *c;
    qs_job *j = handle_job(L, &c);
    int done = j && cancel(c, j);
    if (done) {
        handle_push_client(L, 1);
        notify(L, c, lua_gettop(L), 0);
        lua_pop(L, 1);
    }
    lua_pushboolean(L, done);
    return 1;
}

static int handle_tostring(lua_State *L)
{
    static const char *const names[] = {"waiting", "running", "finished", "cancelled", "running"};
    qs_client *c;
    qs_job *j = handle_job(L, &c);
    lua_pushfstring(L, "qstash.request (%s): %p", j ? names[j->state] : "done", lua_touserdata(L, 1));
    return 1;
}

void qs_async_register(lua_State *L)
{
    qs_each_async_register(L);
    if (luaL_newmetatable(L, QS_HANDLE_MT)) {
        lua_pushcfunction(L, handle_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_newtable(L);
        lua_pushcfunction(L, handle_cancel);
        lua_setfield(L, -2, "cancel");
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, QS_HOLDER_MT)) {
        lua_pushcfunction(L, holder_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
}

/* ---- dlq_retry_each ------------------------------------------------------ */

static const char *const each_keys[] = {"concurrency", "on_result", "on_progress", NULL};

/* A batch's counters, kept in C: its one callback runs once per id. */
typedef struct each_state {
    size_t ok, failed, done, total;
    int quiet;   /* a callback failed: the rest are recorded, no callback runs */
    int follow;  /* opts.follow: a retried id ends when its new message does */
    size_t waiting; /* retried, awaiting the follow (counted in done then) */
} each_state;

/* The one callback of a batch's jobs: (index of the id, res, err).
 * Upvalues: the counters (userdata), the list of distinct ids, the results
 * table, on_result, on_progress (either may be nil). */
static int each_done(lua_State *L)
{
    each_state *s = (each_state *)lua_touserdata(L, lua_upvalueindex(1));
    int ok = lua_isnil(L, 3);
    lua_rawgeti(L, lua_upvalueindex(2), (int)lua_tointeger(L, 1));
    lua_replace(L, 1); /* args: id, res, err */
    lua_pushvalue(L, 1);
    lua_pushvalue(L, ok ? 2 : 3);
    lua_rawset(L, lua_upvalueindex(3));
    if (ok && s->follow) {
        s->waiting++; /* its callbacks run when it is followed */
        return 0;
    }
    if (ok) s->ok++;
    else s->failed++;
    s->done++;
    if (s->quiet) return 0;
    if (!lua_isnil(L, lua_upvalueindex(4))) {
        lua_pushvalue(L, lua_upvalueindex(4));
        lua_pushvalue(L, 1);
        lua_pushvalue(L, 2);
        lua_pushvalue(L, 3);
        lua_call(L, 3, 0);
    }
    if (!lua_isnil(L, lua_upvalueindex(5))) {
        lua_pushvalue(L, lua_upvalueindex(5));
        qs_pushint(L, (long long)s->done);
        qs_pushint(L, (long long)s->total);
        lua_call(L, 2, 0);
    }
    return 0;
}

/* Whether a job of the batch is still in the client's set (undelivered). */
static int batch_left(const qs_client *c, lua_Integer batch)
{
    const qs_job *j;
    for (j = c->ext ? ((const qs_set *)c->ext)->head : NULL; j; j = j->next)
        if (j->batch == batch) return 1;
    return 0;
}

/* Reads the batch options at cfg: concurrency, on_result, on_progress
 * (the functions are left at the stack slots on_result and on_progress). */
size_t qs_each_options(lua_State *L, const qs_args *a, int cfg, int on_result, int on_progress)
{
    size_t concurrency = 32;
    if (lua_isnil(L, cfg)) return concurrency;
    if (lua_type(L, cfg) != LUA_TTABLE) qs_argerror(a, cfg, "options of the batch must be a table");
    qs_check_keys(a, cfg, cfg, "batch option", each_keys);
    lua_getfield(L, cfg, "concurrency");
    if (!lua_isnil(L, -1)) {
        double d = lua_tonumber(L, -1);
        if (lua_type(L, -1) != LUA_TNUMBER || !(d >= 1 && d <= 1024) || d != floor(d))
            qs_argerror(a, cfg, "'concurrency' must be an integer from 1 to 1024");
        concurrency = (size_t)d;
    }
    lua_pop(L, 1);
    lua_getfield(L, cfg, "on_result");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TFUNCTION) qs_argerror(a, cfg, "'on_result' must be a function");
    lua_replace(L, on_result);
    lua_getfield(L, cfg, "on_progress");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TFUNCTION) qs_argerror(a, cfg, "'on_progress' must be a function");
    lua_replace(L, on_progress);
    return concurrency;
}

/* Pushes the distinct ids of the array at ids (each checked as an id), in
 * order; returns how many. */
size_t qs_each_distinct_ids(lua_State *L, const qs_args *a, int ids)
{
    size_t n = qs_rawlen(L, ids), i, count = 0, total = 0;
    int list;
    if (n == 0) qs_argerror(a, ids, "an empty list of ids");
    lua_pushnil(L);
    while (lua_next(L, ids)) {
        lua_pop(L, 1);
        count++;
    }
    if (count != n) qs_argerror(a, ids, "an array of ids must not have other keys");
    lua_createtable(L, (int)n, 0);
    list = lua_gettop(L);
    lua_createtable(L, 0, (int)n); /* seen */
    for (i = 1; i <= n; i++) {
        int top;
        lua_rawgeti(L, ids, (int)i);
        top = lua_gettop(L);
        if (lua_type(L, top) != LUA_TSTRING) qs_argerror(a, ids, "DLQ id #%d is not a string", (int)i);
        {
            qs_args la = *a;
            la.base = a->base + (top - ids);
            qs_api_check_id(&la, top, &(size_t){0});
        }
        lua_pushvalue(L, -1);
        lua_rawget(L, -3);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushvalue(L, -1);
            lua_pushboolean(L, 1);
            lua_rawset(L, -4);
            lua_rawseti(L, list, (int)++total);
        } else {
            lua_pop(L, 2);
        }
    }
    lua_pop(L, 1);
    return total;
}

/* client:dlq_retry_each(ids, opts, { concurrency = 32, on_result = fn, on_progress = fn })
 *   -> { ok = n, failed = n, results = { [id] = res or err } } */
static int dlq_retry_each(lua_State *L, qs_client *c, const qs_args *a)
{
    int ids = a->base, opts = a->base + 1, cfg = a->base + 2, cidx = a->base - 1;
    int list, results, on_result, on_progress, tmpl, err_ref = LUA_NOREF;
    lua_Integer batch;
    qs_call *tk; /* the template, at tmpl */
    each_state *st;
    size_t total, next = 1, concurrency, i;
    lua_settop(L, cfg);
    if (lua_type(L, ids) != LUA_TTABLE)
        qs_argerror(a, ids, "expected an array of DLQ ids, got %s", luaL_typename(L, ids));
    total = qs_each_distinct_ids(L, a, ids);
    list = lua_gettop(L);
    /* the request every job copies: built from the first id and the options */
    {
        qs_args ta = *a;
        lua_rawgeti(L, list, 1);
        lua_pushvalue(L, opts);
        ta.base = lua_gettop(L) - 1;
        tk = qs_call_new(L, c, &qs_plan_dlq_retry, &ta);
        tmpl = lua_gettop(L);
    }
    lua_pushnil(L);
    on_result = lua_gettop(L);
    lua_pushnil(L);
    on_progress = lua_gettop(L);
    concurrency = qs_each_options(L, a, cfg, on_result, on_progress);
    lua_createtable(L, 0, (int)total);
    results = lua_gettop(L);
    st = (each_state *)qs_newudata(L, sizeof *st);
    memset(st, 0, sizeof *st);
    st->total = total;
    st->follow = tk->follow;
    lua_pushvalue(L, list);
    lua_pushvalue(L, results);
    lua_pushvalue(L, on_result);
    lua_pushvalue(L, on_progress);
    lua_pushcclosure(L, each_done, 5); /* the batch's one callback */

    qs_client_check_open(L, c);
    if (!c->conf->token) {
        qs_result_no_token(L, &qs_call_at(L, tmpl)->req);
        return qs_api_finish(L, c->safe, 0);
    }
    if (in_poll(c)) return luaL_error(L, "qstash: dlq_retry_each cannot run inside a callback");
    batch = next_number(L, c);
    push_table(L, cidx, "batches");
    qs_pushint(L, batch);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    /* the callback (and the counters it holds) stays on this stack too: a
     * close() from a callback drops the client's reference to it */
    lua_pop(L, 1);
    qs_client_check_open(L, c);
    after_fork(L, c, get_set(L, c));

    for (;;) {
        /* keep `concurrency` jobs of this batch in flight */
        while (err_ref == LUA_NOREF && !c->closed && next <= total && next - 1 - st->done - st->waiting < concurrency) {
            lua_rawgeti(L, list, (int)next);
            add_job(L, c, &tk->req, lua_gettop(L), 0, 0, batch, (lua_Integer)next);
            lua_pop(L, 1);
            next++;
        }
        if (st->done + st->waiting >= total || c->closed) break;
        if (err_ref != LUA_NOREF) {
            /* a callback failed: cancel the rest of the batch, record them, then report */
            qs_job *j;
            for (j = ((qs_set *)c->ext)->head; j; j = j->next)
                if (j->batch == batch) cancel(c, j);
            st->quiet = 1;
            /* until none of the batch is left in the set (not by the
             * counts: the callback whose error this is may have raised
             * before counting its id, at its very call) */
            while (!c->closed && batch_left(c, batch)) {
                int ignored = LUA_NOREF;
                drive(L, c, cidx, 0.1, 0, &ignored);
                if (ignored != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, ignored);
            }
            break;
        }
        drive(L, c, cidx, 1.0, 0, &err_ref);
    }
    if (st->follow) {
        qs_each_batch fb;
        fb.list = list;
        fb.results = results;
        fb.on_result = on_result;
        fb.on_progress = on_progress;
        fb.ok = &st->ok;
        fb.done = &st->done;
        fb.total = total;
        fb.err_ref = &err_ref;
        qs_each_follow(L, c, tk, &fb);
    }
    if (!c->closed) {
        push_table(L, cidx, "batches");
        qs_pushint(L, batch);
        lua_pushnil(L);
        lua_rawset(L, -3);
        lua_pop(L, 1);
    }
    raise_callback_error(L, err_ref);
    /* closed half-way: the ids that did not finish were cancelled */
    for (i = 1; i <= total; i++) {
        qs_buf *path;
        size_t n;
        const char *key;
        lua_rawgeti(L, list, (int)i);
        lua_pushvalue(L, -1);
        lua_rawget(L, results);
        if (!lua_isnil(L, -1)) {
            lua_pop(L, 2);
            continue;
        }
        lua_pop(L, 1);
        qs_result_cancelled(L, &qs_call_at(L, tmpl)->req, "the client was closed before this request finished",
                            i < next);
        key = lua_tolstring(L, -2, &n);
        path = qs_api_scratch(L);
        if (qs_buf_adds(path, "/v2/dlq/retry/") || qs_buf_add_pct(path, key, n)) return luaL_error(L, "not enough memory");
        lua_pushlstring(L, path->p, path->n);
        lua_setfield(L, -3, "path");
        lua_pop(L, 1);
        lua_rawset(L, results);
        st->failed++;
    }
    lua_createtable(L, 0, 3);
    qs_pushint(L, (long long)st->ok);
    lua_setfield(L, -2, "ok");
    qs_pushint(L, (long long)st->failed);
    lua_setfield(L, -2, "failed");
    lua_pushvalue(L, results);
    lua_setfield(L, -2, "results");
    return 1;
}

/* ---- for the host loop's hooks (loop_hooks.c) ---------------------------- */

/* The drive of a host loop: never waits. The `n` sockets the host found
 * ready go to libcurl first (fds[i] with the CURL_CSELECT_* bits evs[i]);
 * with `poll_all`, every socket ready now does too. */
int qs_async_drive_now(lua_State *L, qs_client *c, int cidx, const int *fds, const int *evs, int n, int poll_all)
{
    int ran, i, err_ref = LUA_NOREF;
    if (in_poll(c)) return luaL_error(L, "qstash: the loop cannot drive the client inside a callback");
    if (c->closed || !c->ext) {
        qs_pushint(L, 0);
        return 1;
    }
    after_fork(L, c, (qs_set *)c->ext);
    for (i = 0; i < n; i++) qs_engine_socket_ready(c->eng, (curl_socket_t)fds[i], evs[i]);
    ran = drive(L, c, cidx, 0, !poll_all, &err_ref);
    raise_callback_error(L, err_ref);
    qs_pushint(L, ran);
    return 1;
}

void qs_async_ready(lua_State *L, qs_client *c)
{
    after_fork(L, c, get_set(L, c));
}

void qs_async_new_hook(lua_State *L, qs_client *c)
{
    qs_set *s = get_set(L, c);
    after_fork(L, c, s);
    s->told_new = 0;
}

int qs_async_pending(const qs_client *c)
{
    return (!c->closed && c->ext) ? ((const qs_set *)c->ext)->pending : 0;
}

double qs_async_due(const qs_client *c)
{
    return (!c->closed && c->ext) ? next_due((const qs_set *)c->ext) : -1.0;
}

const qs_api qs_async_apis[] = {
    {"dlq_retry_async", dlq_retry_async, NULL},
    {"poll", poll_api, NULL},
    {"pending", pending, NULL},
    {"wait", wait_all, NULL},
    {"dlq_retry_each", dlq_retry_each, NULL},
    {"async", async_call, NULL},
    {NULL, NULL, NULL},
};
