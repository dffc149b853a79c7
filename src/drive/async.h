/* Async requests and batches: dlq_retry_async, poll, pending, wait,
 * handle:cancel, dlq_retry_each (design.md, "Concurrency"). */
#ifndef QS_ASYNC_H
#define QS_ASYNC_H

#include <stddef.h>
#include <lua.h>
#include "api/api.h"

extern const qs_api qs_async_apis[];

/* dlq_retry_each's checks, shared with its async form (each_async.c):
 * the distinct ids of the array at ids, pushed as a list (returns how
 * many); the batch options at cfg (concurrency returned; on_result and
 * on_progress left at those stack slots). */
size_t qs_each_distinct_ids(lua_State *L, const qs_args *a, int ids);
size_t qs_each_options(lua_State *L, const qs_args *a, int cfg, int on_result, int on_progress);

/* Creates the metatables of request handles (call once from luaopen). */
void qs_async_register(lua_State *L);

#endif
