/* Async requests and batches: dlq_retry_async, poll, pending, wait,
 * handle:cancel, dlq_retry_each (design.md, "Concurrency"). */
#ifndef QS_ASYNC_H
#define QS_ASYNC_H

#include <lua.h>
#include "api.h"
#include "client.h"

extern const qs_api qs_async_apis[];

/* Creates the request handle metatable (call once from luaopen). */
void qs_async_register(lua_State *L);

/* Drops every request of a client that is being closed: their callbacks
 * are not called. Frees their libcurl handles. */
void qs_async_close_all(lua_State *L, qs_client *c);

#endif
