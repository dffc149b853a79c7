/* Async requests and batches: dlq_retry_async, poll, pending, wait,
 * handle:cancel, dlq_retry_each (design.md, "Concurrency"). */
#ifndef QS_ASYNC_H
#define QS_ASYNC_H

#include <stddef.h>
#include <lua.h>
#include "api/api.h"
#include "client/client.h"

extern const qs_api qs_async_apis[];

/* dlq_retry_each's checks, shared with its async form (each_async.c):
 * the distinct ids of the array at ids, pushed as a list (returns how
 * many); the batch options at cfg (concurrency returned; on_result and
 * on_progress left at those stack slots). */
size_t qs_each_distinct_ids(lua_State *L, const qs_args *a, int ids);
size_t qs_each_options(lua_State *L, const qs_args *a, int cfg, int on_result, int on_progress);

/* For the host loop's hooks (loop_hooks.c): */
/* Readies the client's set of requests (after a fork: this process's). */
void qs_async_ready(lua_State *L, qs_client *c);
/* The same, for a new hook (client:on_io): it hears of the next new request. */
void qs_async_new_hook(lua_State *L, qs_client *c);
/* Requests not yet delivered. */
int qs_async_pending(const qs_client *c);
/* When the requests next need a drive (monotonic seconds), or < 0: only
 * when libcurl says so. */
double qs_async_due(const qs_client *c);
/* A drive that never waits: the n sockets at fds (CURL_CSELECT_* bits at
 * evs) go to libcurl first; with poll_all, every socket ready now does too.
 * Pushes how many callbacks ran, raises a callback's error; returns 1. */
int qs_async_drive_now(lua_State *L, qs_client *c, int cidx, const int *fds, const int *evs, int n, int poll_all);

/* Creates the metatables of request handles (call once from luaopen). */
void qs_async_register(lua_State *L);

#endif
