/* Classifying attempts (see classify.c). */
#ifndef QS_CLASSIFY_H
#define QS_CLASSIFY_H

#include "client.h"
#include "engine.h"

typedef enum { QS_OUT_OK, QS_OUT_FAIL, QS_OUT_RETRY } qs_outcome;

typedef struct qs_verdict {
    qs_outcome what;
    const char *kind;  /* the error kind when not QS_OUT_OK */
    int unknown;       /* the server may have acted on the request */
} qs_verdict;

qs_verdict qs_classify(const qs_attempt *at);

/* Seconds to wait after a 429 as its headers say (Retry-After in seconds or
 * as an HTTP date, else Burst-RateLimit-Reset / RateLimit-Reset in unix
 * seconds or milliseconds), or -1 when they say nothing usable. `now` is
 * the wall clock in unix seconds. */
double qs_rate_limit_wait(const char (*hvals)[QS_HVAL_MAX], double now);

#endif
