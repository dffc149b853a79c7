/* Synchronous calls over the libcurl engine: the call state machine (call.h)
 * driven to its end, sleeping through its waits. */
#ifndef QS_SYNC_H
#define QS_SYNC_H

#include <lua.h>
#include "client/client.h"

struct qs_call;

/* Runs the call k, at stack index idx, to its end over c's engine. 1: the result is pushed;
 * 0: the error is pushed. Raises when the client is closed before a send
 * (by a finalizer run in between) and when memory runs out. */
int qs_sync_run(lua_State *L, qs_client *c, struct qs_call *k, int idx);

/* The same, calling hook(L, ud) before each wait (between two polls of a
 * follow, say): when it returns non-zero the run stops there and returns
 * -1 with nothing pushed. The hook may run Lua code (under pcall). */
typedef int (*qs_sync_hook)(lua_State *L, void *ud);
int qs_sync_run_hooked(lua_State *L, qs_client *c, struct qs_call *k, int idx, qs_sync_hook hook, void *ud);

#endif
