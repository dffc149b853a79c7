/* Synchronous calls over the libcurl engine: the call state machine (call.h)
 * driven to its end, sleeping through its waits. */
#ifndef QS_SYNC_H
#define QS_SYNC_H

#include <lua.h>
#include "client.h"

struct qs_call;

/* Runs the call k, at stack index idx, to its end over c's engine. 1: the result is pushed;
 * 0: the error is pushed. Raises when the client is closed before a send
 * (by a finalizer run in between) and when memory runs out. */
int qs_sync_run(lua_State *L, qs_client *c, struct qs_call *k, int idx);

#endif
