/* Following messages to their end (follow.c): follow, follow_many, and
 * dlq_retry's and dlq_retry_each's `follow`. */
#ifndef QS_FOLLOW_H
#define QS_FOLLOW_H

#include "api/api.h"

extern const qs_api qs_follow_apis[];

/* follow_many's plan: dlq_retry_each follows its new messages with it. */
extern const qs_plan qs_plan_follow_many;

/* Reads a follow configuration (true, false, or { timeout = s, interval =
 * s }) at v into k (k->follow, k->follow_timeout, k->follow_interval);
 * argument errors name argidx. */
void qs_follow_config(const qs_args *a, int argidx, int v, qs_call *k);

/* dlq_retry's hooks when it follows: whether the arguments ask for it
 * (opts.follow), and what follows each answer (the retry's, then the
 * polls'). */
int qs_follow_wants_state(lua_State *L, const qs_args *a);
int qs_follow_retry_absorb(lua_State *L, qs_call *k, int uv, long status);

/* While a follow_many call at idx runs: pushes the id and the result of
 * the next message that reached its end since *fired (and counts it), or
 * returns 0 with nothing pushed. */
int qs_follow_next_finished(lua_State *L, qs_call *k, int idx, size_t *fired);

#endif
