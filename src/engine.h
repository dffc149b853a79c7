/* HTTP attempts through the client's libcurl multi handle. A transfer
 * (qs_xfer) holds what one request needs while it is in flight; the client
 * has one for synchronous calls, and each async request has its own. */
#ifndef QS_ENGINE_H
#define QS_ENGINE_H

#include <curl/curl.h>
#include "buf.h"

/* Response headers the client acts on (429 waits, error fields). */
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

struct qs_client;

typedef struct qs_request {
    const char *method;       /* "GET", "POST" or "DELETE" */
    const char *body;         /* request body (may be NULL with body_len 0) */
    size_t body_len;
    const char *content_type; /* NULL: no Content-Type is sent */
} qs_request;

typedef struct qs_attempt {
    CURLcode code;            /* CURLE_OK when a response was read */
    long status;              /* 0 when no status line arrived */
    int sent;                 /* the server may have received the request */
    int too_large;            /* the body passed max_response_bytes */
} qs_attempt;

typedef struct qs_xfer {
    CURL *easy;
    struct curl_slist *slist; /* request headers, built once per request */
    qs_buf hkey;              /* what slist was built from: reused while it matches */
    qs_buf url;               /* full URL (may carry the token query) */
    CURLU *uh;                /* the same, parsed: the base URL's, with url's path and query */
    qs_buf path;              /* path and query shown in errors (never the token) */
    qs_buf body;              /* response body */
    char errbuf[CURL_ERROR_SIZE];
    char hvals[QS_H_COUNT][QS_HVAL_MAX];
    long long max_response_bytes;
    int too_large;
    int in_multi;             /* added to the multi handle */
    int done;                 /* libcurl finished it; result in `result` */
    int ready;                /* easy is reset, with the client's shared options set */
    CURLcode result;
} qs_xfer;

/* Builds x->slist from the client's auth, User-Agent and the header lines
 * in c->headers, plus Content-Type. 0, or -1 when out of memory. */
int qs_engine_headers(struct qs_client *c, qs_xfer *x, const qs_request *r);

/* Sets every option of an attempt on x->easy (reset first, unless that was
 * done ahead: x->ready) and clears the response. `pipewait`: prefer waiting
 * for an HTTP/2 connection to share. */
int qs_engine_setup(struct qs_client *c, qs_xfer *x, const qs_request *r, int pipewait);

/* Reads the outcome of a finished (or removed) transfer into out. */
void qs_engine_outcome(qs_xfer *x, qs_attempt *out);

/* Marks finished transfers done (x->done, x->result) from libcurl's
 * messages; the synchronous transfer is the one with a NULL private. */
void qs_engine_collect(struct qs_client *c);

/* One synchronous attempt of the request at c->sync. Other transfers of
 * the client progress meanwhile. Synchronous calls alternate between two
 * handles: while one transfer waits for its answer, the other handle is
 * reset for the next call. Never calls Lua. 0, or -1 when out of memory. */
int qs_engine_perform(struct qs_client *c, const qs_request *r, qs_attempt *out);

void qs_xfer_free(qs_xfer *x);

#endif
