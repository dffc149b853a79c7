/* A follow's DLQ lookups (follow_lookup.c). */
#ifndef QS_FOLLOW_LOOKUP_H
#define QS_FOLLOW_LOOKUP_H

#include <lua.h>
#include "call/call.h"

/* Sets k's request to the DLQ lookup of the next id in uv.lookups. */
void qs_lookup_request(lua_State *L, qs_call *k, int uv);

/* Reads a lookup's answer: 1 when the next lookup's request is set, -1
 * with an error pushed, 0 when every queued lookup is done. */
int qs_lookup_absorb(lua_State *L, qs_call *k, int uv, long status);

#endif
