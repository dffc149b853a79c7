/* A whole call: attempts with backoff, 429 waits, and the error it ends in. */
#ifndef QS_CALL_H
#define QS_CALL_H

#include <lua.h>
#include "client.h"
#include "engine.h"

typedef struct qs_call {
    qs_request req;
    int resend_ok;   /* 1: repeating after an unknown outcome is safe */
} qs_call;

/* Runs the request prepared in c->url, c->path and c->headers. On success
 * returns 1 with the status in *status and the body in c->body; on failure
 * pushes an error table and returns 0. Raises only for out-of-memory. */
int qs_call_run(lua_State *L, qs_client *c, const qs_call *call, long *status);

/* Pushes the `config` error for a client without a token, if so, and returns 0; else 1. */
int qs_call_have_token(lua_State *L, qs_client *c);

#endif
