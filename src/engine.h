/* The libcurl transport: it executes attempts of requests (request.h) and
 * reports how each ended (a qs_outcome). It moves bytes and decides nothing:
 * it knows neither the API functions nor what an outcome means. One multi
 * handle owns the connection cache; idle easy handles wait in a pool. */
#ifndef QS_ENGINE_H
#define QS_ENGINE_H

#include <sys/types.h>
#include <curl/curl.h>
#include "buf.h"
#include "request.h"

#define QS_POOL_MAX 128

/* An easy handle with what is cached on it between requests. */
typedef struct qs_handle {
    CURL *easy;
    struct curl_slist *slist; /* request headers, rebuilt only when they change */
    qs_buf hkey;              /* what slist was built from */
    CURLU *uh;                /* the base URL parsed once, with the last target on it */
    int ready;                /* reset, with the options every request shares set */
    int in_multi;             /* a finished transfer still added to the multi handle */
} qs_handle;

/* One attempt in flight: a handle lent by the pool and the request it serves. */
typedef struct qs_xfer {
    qs_handle h;
    qs_req *req;              /* receives the body in req->resp */
    unsigned gen;             /* the engine generation (process) that started it */
    int in_multi;
    int done;                 /* libcurl finished it: see result */
    int sends;                /* times libcurl was about to send the request */
    int max_sends;            /* beyond this many, a send is refused */
    int too_large;
    int sock_errno;           /* errno of a socket that could not be opened */
    CURLcode result;
    char errbuf[CURL_ERROR_SIZE];
} qs_xfer;

typedef struct qs_engine {
    CURLM *multi;
    qs_conf *conf;            /* a reference: scheme, TLS roots, proxy */
    CURLU *base_uh;           /* the base URL parsed once (NULL: URLs go as text) */
    qs_handle pool[QS_POOL_MAX];
    int npool;
    pid_t pid;                /* the process that made the handles */
    unsigned fork_gen;        /* the fork generation when they were made */
    unsigned gen;             /* bumped whenever the handles are made anew */
} qs_engine;

/* curl_global_init once per process (and the fork hook). 0, or -1. */
int qs_engine_global_init(void);

/* Makes the multi handle. 0, or -1 when out of memory. */
int qs_engine_init(qs_engine *e, qs_conf *conf);

/* Makes sure the handles belong to this process: in a forked child the
 * inherited ones are forgotten (never used or cleaned up: they share
 * sockets and TLS state with the parent) and new ones made. 0, or -1. */
int qs_engine_ready(qs_engine *e);

/* Whether x was started in another process (before a fork). */
int qs_engine_inherited(const qs_engine *e, const qs_xfer *x);

/* Starts one attempt of r: the handle comes from the pool, r->resp is
 * emptied for the body. `pipewait`: prefer waiting for an HTTP/2 connection
 * to share. When the call's deadline has passed, or the attempt cannot
 * start, x is done at once with a failure. `now` is the monotonic clock.
 * -1 only when out of memory. */
int qs_engine_start(qs_engine *e, qs_xfer *x, qs_req *r, int pipewait, double now);

/* Drives every transfer: marks finished ones done, then waits up to
 * `wait_s` for activity when none finished. */
void qs_engine_drive(qs_engine *e, double wait_s);

/* Reads how the attempt ended into o and gives the handle back. */
void qs_engine_finish(qs_engine *e, qs_xfer *x, qs_outcome *o);

/* Stops an attempt (whether done or not) and gives its handle back,
 * without an outcome. */
void qs_engine_abandon(qs_engine *e, qs_xfer *x);

/* One synchronous attempt of r; other transfers progress meanwhile, and an
 * idle handle is reset for the next call while the answer is awaited. Never
 * calls Lua. 0, or -1 when out of memory. */
int qs_engine_perform(qs_engine *e, qs_req *r, qs_outcome *o, double now);

/* Frees the handles (or forgets them, in a forked child); idempotent. */
void qs_engine_close(qs_engine *e);

#endif
