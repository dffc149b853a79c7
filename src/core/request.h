/* The request value: everything one call sends and counts, owned by the call
 * (design.md, "Architecture"). It is built from the Lua arguments in one step,
 * then handed to a transport (libcurl, or the caller through call:step) and
 * to the decision after each attempt. No libcurl and no Lua in here. */
#ifndef QS_REQUEST_H
#define QS_REQUEST_H

#include <stddef.h>
#include "base/buf.h"
#include "core/conf.h"

/* Response headers the decision acts on (429 waits, error fields). */
enum {
    QS_H_RETRY_AFTER,
    QS_H_BURST_LIMIT,
    QS_H_BURST_REMAINING,
    QS_H_BURST_RESET,
    QS_H_DAILY_LIMIT,
    QS_H_DAILY_REMAINING,
    QS_H_DAILY_RESET,
    QS_H_COUNT
};
#define QS_HVAL_MAX 64

/* Their names, lower case, in the order above. */
extern const char *const qs_captured_headers[QS_H_COUNT];

/* How an attempt ended, in transport-neutral terms. */
typedef enum {
    QS_FAIL_NONE,      /* a whole response was read: see status */
    QS_FAIL_TIMEOUT,   /* the attempt's time ran out */
    QS_FAIL_NETWORK,   /* connection or protocol failure; repeating may help */
    QS_FAIL_PERMANENT, /* a failure repeating cannot mend (TLS verification, bad URL) */
    QS_FAIL_TOO_LARGE  /* the body passed max_response_bytes (a status line arrived) */
} qs_failure;

#define QS_MESSAGE_MAX 512

typedef struct qs_outcome {
    qs_failure failure;
    int sends;                 /* times the request went out in this attempt: 0 = never
                                  (failed before sending); above 1 when the transport
                                  resent it by itself on a new connection */
    long status;               /* 0 when no status line arrived */
    long code;                 /* the transport's own error code (libcurl's), 0 if none */
    char message[QS_MESSAGE_MAX]; /* the transport's error text ("" if none) */
    char hvals[QS_H_COUNT][QS_HVAL_MAX]; /* captured headers of the final response */
} qs_outcome;

typedef struct qs_req {
    qs_conf *conf;             /* the client's configuration (a reference) */
    const char *method;        /* "GET", "POST" or "DELETE" (static) */
    qs_buf target;             /* path and query, shown in errors: never the token */
    qs_buf url;                /* base URL + target (+ the token query when configured) */
    qs_buf headers;            /* every header line to send, each "Name: value\0" */
    size_t opt_headers;        /* where the lines of the call's options start in `headers` */
    qs_buf body;               /* request body (may be empty) */
    qs_buf resp;               /* the last attempt's response body */
    int resend_ok;             /* repeating after an unknown outcome is safe */
    int attempts;              /* sends and tries made so far, over the whole call */
    int ambiguous;             /* some earlier send's outcome is unknown */
    double deadline;           /* monotonic seconds: no attempt starts or runs past it */
    unsigned long long rng;    /* jitter generator state, seeded per call */
} qs_req;

/* Starts a request of `conf` (taking a reference): method, no target yet,
 * the header lines every request carries (Authorization unless the token
 * goes in the query, User-Agent). 0, or -1 when out of memory. */
int qs_req_init(qs_req *r, qs_conf *conf, const char *method, unsigned long long seed);

/* Sets the target (path and query, already encoded) and the URL from it. */
int qs_req_set_target(qs_req *r, const char *target, size_t len);

/* Appends "Content-Type: <ct>" to the header lines. */
int qs_req_content_type(qs_req *r, const char *ct, size_t len);

/* Starts the clock of a call: the deadline bounds all its attempts and waits. */
void qs_req_start_clock(qs_req *r, double now);

/* The time one attempt may take from `now`, in milliseconds (>= 1 while any
 * is left, so that a tiny limit is never libcurl's "no limit"), or 0 when the
 * deadline has passed. `limit_ms` is the configured per-attempt limit. */
long qs_req_attempt_ms(const qs_req *r, long limit_ms, double now);

/* A copy of src (for batches of one template), its target and URL too
 * unless the copy gets its own (with_target 0). 0, or -1 when out of
 * memory: dst is then to be freed. */
int qs_req_copy(qs_req *dst, const qs_req *src, int with_target);

/* dst takes over what src owns (its buffers and configuration reference):
 * src is left empty, freeing it frees nothing. For a request built once
 * and sent from elsewhere (no copy of its buffers). */
void qs_req_move(qs_req *dst, qs_req *src);

/* Frees the bulky buffers of a finished request (URL, headers, bodies),
 * keeping its target, counts and configuration for the error it may be
 * part of. */
void qs_req_trim(qs_req *r);

/* Frees what the request owns and drops its configuration reference. */
void qs_req_free(qs_req *r);

/* Uniform double in [0, 1) from the request's generator. */
double qs_req_random(qs_req *r);

#endif
