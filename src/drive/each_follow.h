/* dlq_retry_each with opts.follow: after the batch's retries, its new
 * messages are followed together (follow_many: one logs request per 100
 * messages per round), and each id's on_result runs when its message ends. */
#ifndef QS_EACH_FOLLOW_H
#define QS_EACH_FOLLOW_H

#include <stddef.h>
#include <lua.h>
#include "call/call.h"
#include "client/client.h"

/* What the batch hands over: its distinct ids (list), their results (the
 * PublishResponses of the retried ones, awaiting `delivery`), the callbacks
 * (stack slots, nil when not given), and its counters. */
typedef struct qs_each_batch {
    int list, results, on_result, on_progress;
    size_t *ok, *done, total;
    int *err_ref;  /* the first error a callback raised (LUA_NOREF: none) */
} qs_each_batch;

/* Follows every retried id of the batch with the template's follow
 * configuration, running the callbacks as messages end. When the client
 * was closed or a callback failed, the rest count as retried, without
 * `delivery` and without callbacks. */
void qs_each_follow(lua_State *L, qs_client *c, const qs_call *tmpl, qs_each_batch *b);

#endif
