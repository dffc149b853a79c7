/* A client's configuration, immutable once made, shared by reference: the
 * client holds one reference and every call it starts holds another, so a
 * call keeps what it needs even when its client is closed half-way (by a
 * finalizer, a callback or a metamethod). No libcurl and no Lua in here. */
#ifndef QS_CONF_H
#define QS_CONF_H

#include <stddef.h>

/* Which HTTP version requests ask for over TLS (cleartext is HTTP/1.1). */
typedef enum {
    QS_HTTP_AUTO, /* HTTP/1.1 for one request at a time, HTTP/2 for concurrent ones */
    QS_HTTP_1_1,
    QS_HTTP_2
} qs_http_version;

typedef struct qs_conf {
    int refs;
    char *token;               /* NULL: missing, reported at call time */
    char *missing_token;       /* the message naming the variables looked at */
    char *base_url;            /* without a trailing '/' */
    size_t origin_len;         /* length of "scheme://host[:port]" in base_url */
    char *auth_header;         /* "Authorization: Bearer <token>" (NULL without a token) */
    char *ua_header;           /* "User-Agent: ..." */
    char *ca_file;
    char *proxy;
    int no_proxy;              /* no proxy option and no proxy variable at creation */
    int https;                 /* the base URL is https: (TLS options apply) */
    int token_in_query;
    long timeout_ms;           /* one attempt, >= 1 */
    long connect_timeout_ms;   /* >= 1 */
    int attempts;              /* >= 1 */
    double base_delay;         /* seconds */
    double max_delay;          /* seconds */
    long long max_response_bytes;
    qs_http_version http_version;
    double call_timeout;       /* seconds: the whole-call deadline (a follow has its own) */
    long max_requests;         /* HTTP requests one call may send, attempts and pages included */
} qs_conf;

/* A zeroed configuration with one reference, or NULL when out of memory. */
qs_conf *qs_conf_new(void);

qs_conf *qs_conf_ref(qs_conf *c);

/* Drops a reference; the last one frees it. NULL is fine. */
void qs_conf_unref(qs_conf *c);

/* The longest any call of this configuration may take: every attempt at its
 * limit, and every wait between them at max_delay (design.md, "Retries and
 * time"), in seconds. */
double qs_conf_call_budget(const qs_conf *c);

#endif
