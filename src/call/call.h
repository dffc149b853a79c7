/* A call: one API function's request value and what follows each of its
 * attempts, as a state machine that any transport drives (design.md,
 * "Architecture"): next() says send, wait, done or failed; feed() takes how
 * an attempt ended. A call is a userdata that owns all its memory (its
 * request buffers in C, its Lua state in its user value table), so nothing
 * of it lives in the client, and closing the client half-way cannot pull
 * anything from under it. Lua-aware; no libcurl. */
#ifndef QS_CALL_H
#define QS_CALL_H

#include <lua.h>
#include "core/args.h"
#include "client/client.h"
#include "core/decide.h"
#include "core/request.h"

#define QS_CALL_MT "qstash.call"

typedef struct qs_call qs_call;

/* What a call does when a whole-call bound ends it (see qs_call_bound):
 * pushes its result and returns 1 (a follow: "still pending" is an answer),
 * or returns 0 and pushes nothing (the call raises the `limit` error). `uv`
 * is the call's state table, `which` "deadline" or "requests". */
typedef int (*qs_at_limit)(lua_State *L, qs_call *k, int uv, const char *which);

/* The most arguments a plan reads (enqueue: queue, destination, body, options). */
#define QS_PLAN_ARGS 4

/* What one API function does with the network, as rows of data: how its
 * arguments become the first request, and what a successful answer becomes
 * (possibly the request of a next page). */
typedef struct qs_plan {
    const char *name;
    int stateful;   /* has Lua state between requests (pages): a table of its own */
    /* Reads every argument (raising argument errors) into k->req: method,
     * target, header lines, body, resend safety. The call's Lua state table
     * is at stack index uv (0 unless stateful). Reads only Lua values, never
     * the client. */
    void (*build)(lua_State *L, qs_call *k, const qs_args *a, int uv);
    /* After a successful attempt (status 200-202): 1 when another request
     * follows at once (k->req was given its target), 2 when it follows
     * after k->wait seconds (a poll: "wait", why "poll"), 0 when the result
     * is complete and pushed, -1 when an error is pushed. */
    int (*absorb)(lua_State *L, qs_call *k, int uv, long status);
    /* Optional, for plans that need Lua state only for some arguments
     * (dlq_retry with `follow`): whether this call gets a state table. */
    int (*wants_state)(lua_State *L, const qs_args *a);
    /* For a family of plans served by one build function (the requests on
     * one resource: get, delete, pause, resume): the row's HTTP method, and
     * what follows the resource's name in the target ("" or "/pause"). */
    const char *method;
    const char *tail;
} qs_plan;

typedef enum {
    QS_K_SEND,   /* k->req is ready to go */
    QS_K_SENT,   /* sent: awaiting how it ended (feed) */
    QS_K_WAIT,   /* k->wait seconds before it goes again */
    QS_K_DONE,   /* ended with a result */
    QS_K_FAILED  /* ended with an error */
} qs_call_state;

struct qs_call {
    qs_req req;
    const qs_plan *plan;
    qs_call_state state;
    int started;             /* the first request was checked (token) */
    double wait;             /* QS_K_WAIT: seconds */
    int rate_limited;        /* QS_K_WAIT: after a 429 */
    int polling;             /* QS_K_WAIT: between two polls of a follow */
    int restart;             /* the next send is a new request: its clock starts then */
    int has_state;           /* the call has a state table (its user value) */
    int follow;              /* follow the new message (dlq_retry's `follow`) */
    double follow_timeout;   /* seconds: how long a follow waits in all */
    double follow_interval;  /* seconds between two polls */
    double follow_cap;       /* monotonic seconds: no poll starts after it */
    int phase;               /* the plan's own phase (follow: retry, logs, dlq lookup) */
    qs_outcome *out;         /* how the last attempt ended (C memory: it is large, and no
                                business of the collector's) */
    size_t page;             /* the plan's own counter (ids sent so far, pages) */
    int end_ref;             /* the result or error, kept for step() asked again */
    /* Whole-call bounds, over every request the call sends (attempts and
     * pages): a monotonic deadline (0 until the call starts, when it becomes
     * now + call_timeout unless something set it before) and a count. */
    double deadline;
    long requests;           /* requests sent so far (the transport's resends included) */
    long max_requests;
    qs_at_limit at_limit;    /* NULL: a bound ends the call with a `limit` error */
    int busy;                /* a step is running on it (Lua may run inside: step.c) */
    int collected;           /* its __gc ran (called by hand): nothing of it is left to use */
};

/* Pushes a new call of `plan` for client c (a reference to its
 * configuration), builds it from the arguments at a, and checks the client
 * is still open afterwards (metamethods run while building may close it).
 * Raises argument errors. Returns the call; it is at the top. */
qs_call *qs_call_new(lua_State *L, qs_client *c, const qs_plan *plan, const qs_args *a);

/* The same, built in the call at stack index `spare` when it is one (a
 * call whose request a caller moved out, kept for the next: async.c) and
 * the new call needs no Lua state; else (spare 0 or nil) in a new one. No
 * userdata made, marked for collection and finalized per call for a
 * caller that builds a request only to move it out. */
qs_call *qs_call_new_into(lua_State *L, qs_client *c, const qs_plan *plan, const qs_args *a, int spare);

/* What is next for the call k at stack index idx: asked first, and again
 * after each wait that qs_call_feed announced (the wait is over then).
 * QS_K_SEND: k->req is to be sent (the caller marks it sent, then feeds how
 * it ended). QS_K_DONE / QS_K_FAILED: the result or the error is pushed (a
 * call asked again after its end pushes it again, if it was kept with
 * qs_call_keep). */
qs_call_state qs_call_next(lua_State *L, qs_call *k, int idx);

/* Marks the request sent: an outcome is awaited. */
void qs_call_sent(qs_call *k);

/* Feeds how the attempt ended (*k->out, and the body in k->req.resp).
 * Returns what follows: QS_K_SEND (the next request, at once), QS_K_WAIT
 * (k->wait seconds first, then qs_call_next), or QS_K_DONE / QS_K_FAILED
 * with the value pushed. */
qs_call_state qs_call_feed(lua_State *L, qs_call *k, int idx);

/* Keeps the value at the top (the end just pushed) for later asks. */
void qs_call_keep(lua_State *L, qs_call *k);

/* Gives the call a deadline of its own (a follow: its timeout plus one
 * attempt's, whatever call_timeout says) and what it does when a bound ends
 * it. Takes effect for the next request. */
void qs_call_bound(qs_call *k, double deadline, qs_at_limit at_limit);

/* The call at idx (raising for any other value). */
qs_call *qs_call_at(lua_State *L, int idx);

/* Frees the bulky C memory of a finished call now (its userdata, target and
 * counts stay until it is collected). */
void qs_call_release(qs_call *k);

void qs_call_register(lua_State *L);

#endif
