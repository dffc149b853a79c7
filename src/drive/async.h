/* Async requests and batches: dlq_retry_async, poll, pending, wait,
 * handle:cancel, dlq_retry_each (design.md, "Concurrency"). */
#ifndef QS_ASYNC_H
#define QS_ASYNC_H

#include <lua.h>
#include "api/api.h"

extern const qs_api qs_async_apis[];

/* Creates the metatables of request handles (call once from luaopen). */
void qs_async_register(lua_State *L);

#endif
