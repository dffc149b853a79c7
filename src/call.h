/* A whole call: attempts with backoff, 429 waits, and the error it ends in. */
#ifndef QS_CALL_H
#define QS_CALL_H

#include <lua.h>
#include "client.h"
#include "classify.h"
#include "engine.h"

typedef struct qs_call {
    qs_request req;
    int resend_ok;   /* 1: repeating after an unknown outcome is safe */
} qs_call;

/* Runs the request prepared in c->url, c->path and c->headers. On success
 * returns 1 with the status in *status and the body in c->body; on failure
 * pushes an error table and returns 0. Raises only for out-of-memory. */
int qs_call_run(lua_State *L, qs_client *c, const qs_call *call, long *status);

/* The decision after one attempt, shared by synchronous and async calls. */
enum { QS_STEP_OK, QS_STEP_FAIL, QS_STEP_RETRY };
typedef struct qs_step {
    qs_verdict v;
    double wait;     /* RETRY: seconds to wait first; after a 429, its wait or -1 */
    int ambiguous;   /* sticky: some attempt's outcome is unknown */
} qs_step;

/* Classifies attempt number `attempt` of x and says what comes next. */
int qs_call_step(qs_client *c, const qs_xfer *x, const qs_attempt *at, int attempt,
                 int resend_ok, qs_step *st);

/* Pushes the error a failed call ends in. */
void qs_call_error(lua_State *L, const qs_client *c, const qs_xfer *x, const char *method,
                   const qs_attempt *at, const qs_verdict *v, int attempts, int ambiguous,
                   double wait);

/* Monotonic clock, seconds. */
double qs_now(void);

/* Pushes the `config` error for a client without a token, if so, and returns 0; else 1. */
int qs_call_have_token(lua_State *L, qs_client *c);

#endif
