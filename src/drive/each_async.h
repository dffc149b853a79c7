/* dlq_retry_each through client:async (design.md, "Event loops"):
 * client:async("dlq_retry_each", ids, opts, batch_opts, callback) returns a
 * batch handle at once; the drive calls (poll, wait, a host loop's hooks)
 * run the retries, `concurrency` at a time, each a client:async call of
 * its own, then (opts.follow) the follow of the retried messages as one
 * follow_many. callback(out, err) gets dlq_retry_each's result, or the
 * error it would raise. */
#ifndef QS_EACH_ASYNC_H
#define QS_EACH_ASYNC_H

#include <lua.h>
#include "api/api.h"

/* The entry of client:async for dlq_retry_each: a->base is the ids; the
 * callback is at the top of the stack, the client at a->base - 2. Pushes
 * the batch handle. */
int qs_each_async(lua_State *L, qs_client *c, const qs_args *a);

/* Creates the metatable of batch handles (call once from luaopen). */
void qs_each_async_register(lua_State *L);

#endif
