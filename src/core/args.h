/* Argument errors in Lua's own style, with the argument numbered as the
 * caller wrote it (the same for client:f(a) and qstash.f(a)). */
#ifndef QS_ARGS_H
#define QS_ARGS_H

#include <lua.h>

/* Where the user's arguments start on the stack, and the function's name. */
typedef struct qs_args {
    lua_State *L;
    int base;          /* stack index of the user's argument #1 */
    const char *fname; /* e.g. "dlq_retry" */
} qs_args;

/* Raises "bad argument #N to 'fname' (message)" for the argument at stack index idx. */
int qs_argerror(const qs_args *a, int idx, const char *fmt, ...);

/* The known name closest to `key` (for "did you mean"), or NULL. */
const char *qs_closest(const char *key, const char *const *known);

/* Raises for every string key of the table at idx that is not in `known`,
 * suggesting the closest known one. `what` names the table ("option"). */
void qs_check_keys(const qs_args *a, int argidx, int idx, const char *what,
                   const char *const *known);

/* The same, and returns which of the first 64 known keys the table holds
 * (bit i: known[i]), as its own keys (not through a metamethod). */
unsigned long long qs_check_keys_seen(const qs_args *a, int argidx, int idx, const char *what,
                                      const char *const *known);

#endif
