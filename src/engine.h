/* One HTTP attempt through the client's libcurl multi handle. */
#ifndef QS_ENGINE_H
#define QS_ENGINE_H

#include "client.h"

typedef struct qs_request {
    const char *method;     /* "GET", "POST" or "DELETE" */
    const char *body;       /* request body (may be NULL with body_len 0) */
    size_t body_len;
    const char *content_type; /* NULL: no Content-Type is sent */
} qs_request;

typedef struct qs_attempt {
    CURLcode code;          /* CURLE_OK when a response was read */
    long status;            /* 0 when no status line arrived */
    int sent;               /* 1 when request bytes reached the socket */
    int too_large;          /* the body passed max_response_bytes */
} qs_attempt;

/* Performs one attempt of the request at c->url with the header lines in
 * c->headers. The response body lands in c->body and the headers the client
 * acts on in c->hvals. Never calls Lua. Returns 0, or -1 when out of memory. */
int qs_engine_perform(qs_client *c, const qs_request *r, qs_attempt *out);

#endif
