/* The client: configuration, the libcurl handles that carry its connection
 * cache, and the per-call buffers it reuses. */
#ifndef QS_CLIENT_H
#define QS_CLIENT_H

#include <stdint.h>
#include <sys/types.h>
#include <curl/curl.h>
#include <lua.h>
#include "buf.h"
#include "engine.h"

#define QS_VERSION "0.1.0"
#define QS_CLIENT_MT "qstash.client"
#define QS_SPARES_MAX 128

typedef struct qs_client {
    CURLM *multi;              /* owns the connection cache (and TLS sessions) */
    CURL *standby;             /* synchronous calls' other handle (see qs_engine_perform) */
    int standby_ready;         /* standby is reset, with the client's shared options set */
    int standby_in_multi;      /* standby's finished transfer is still in the multi handle */
    pid_t pid;                 /* the process that created the handles */
    int closed;
    int safe;                  /* created by qstash.safe: failures return nil, err */

    /* configuration */
    char *token;               /* NULL: missing, reported at call time */
    char *missing_token;       /* the message naming the variables looked at */
    char *base_url;            /* without a trailing '/' */
    char *auth_header;         /* "Authorization: Bearer <token>" */
    char *user_agent;
    char *ca_file;
    char *proxy;
    int no_proxy;              /* no proxy option and no proxy variable at creation */
    int https;                 /* the base URL is https: (TLS options apply) */
    CURLU *base_uh;            /* the base URL parsed once (NULL: libcurl parses each URL) */
    size_t origin_len;         /* length of "scheme://host[:port]" in base_url */
    long timeout_ms;
    long connect_timeout_ms;
    int token_in_query;
    int attempts;              /* >= 1 */
    double base_delay;         /* seconds */
    double max_delay;          /* seconds */
    long long max_response_bytes;
    uint64_t rng;              /* per-client jitter generator state */

    char *ua_header;           /* "User-Agent: ..." */

    /* per-call state, reused */
    qs_buf headers;            /* request header lines, each NUL-terminated */
    qs_buf query;              /* path and query being built */
    qs_xfer sync;              /* the transfer of synchronous calls */
    int last_attempts;         /* attempts made by the last call */

    /* idle libcurl handles (and their buffers) kept for the next async request */
    struct qs_spare {
        CURL *easy;
        struct curl_slist *slist;
        qs_buf hkey;
        qs_buf body;
        qs_buf url;
        qs_buf path;
        CURLU *uh;
    } spares[QS_SPARES_MAX];
    int nspares;
    unsigned fork_gen;         /* qs_fork_gen when the handles were made */

    /* async requests (see async.c) */
    struct qs_async *active;   /* every request not yet completed to Lua */
    int pending;               /* how many */
    double pause_until;        /* monotonic time before which none starts (429) */
    int in_poll;               /* poll is running callbacks */
} qs_client;

/* Checks that the value at idx is an open client (raising otherwise). */
qs_client *qs_client_check(lua_State *L, int idx);

/* qstash.new(config): pushes a client, or (safe) nil, err for a config error. */
int qs_client_new(lua_State *L, int cfg_idx, int safe);

/* Frees every resource; idempotent. */
void qs_client_release(qs_client *c);

/* Makes sure the handles belong to this process (rebuilds them after fork). 0 or -1. */
int qs_client_ready(qs_client *c);

/* Takes an idle transfer's handle and buffers into x (0), or creates a
 * handle (0), or -1 when out of memory. */
int qs_client_take_spare(qs_client *c, qs_xfer *x);

/* Gives x's handle and buffers back for reuse (or frees them); frees the rest of x. */
void qs_client_give_spare(qs_client *c, qs_xfer *x);

/* Uniform random double in [0, 1) from the client's generator. */
double qs_client_random(qs_client *c);

void qs_client_register(lua_State *L);

#endif
