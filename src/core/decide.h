/* The decision after an attempt: a pure function of the request, what the
 * attempt came to, the clocks and a random number (design.md, "Retries and
 * time"). No I/O, no Lua, no clock read inside; fuzzed by
 * fuzz/decide_fuzz.c. */
#ifndef QS_DECIDE_H
#define QS_DECIDE_H

#include "core/request.h"

typedef enum { QS_DONE, QS_RETRY, QS_FAIL } qs_verb;

typedef struct qs_decision {
    qs_verb verb;
    const char *kind;   /* QS_FAIL: the error kind (design.md, "Errors") */
    double wait;        /* QS_RETRY: seconds before the next attempt; QS_FAIL after a
                           429: the wait it asked for, or -1 when unknown */
    int rate_limited;   /* the attempt answered 429 (a batch pauses all its starts) */
    int attempts;       /* the request's attempts after this one */
    int ambiguous;      /* the request's ambiguity after this one */
    int out_of_time;    /* QS_FAIL: another attempt was due, but its wait ends past the
                           request's deadline (the caller says whose deadline that was) */
} qs_decision;

/* Decides what follows an attempt of r that ended as o. `now` is the
 * monotonic clock, `wall` the wall clock in unix seconds (429 headers speak
 * in it), `rnd` a uniform number in [0, 1) for the jitter. */
qs_decision qs_decide(const qs_req *r, const qs_outcome *o, double now, double wall, double rnd);

/* The error kind of an answered status (not_found, server, ...), "http"
 * for a status no other kind covers. */
const char *qs_status_kind(long status);

/* Seconds to wait after a 429 as its headers say (Retry-After in seconds or
 * as an HTTP date, else Burst-RateLimit-Reset / RateLimit-Reset in unix
 * seconds or milliseconds), or -1 when they say nothing usable. */
double qs_rate_limit_wait(const char (*hvals)[QS_HVAL_MAX], double wall);

#endif
