/* What the plans of the API functions share: building a request's target,
 * reading a JSON answer. Lua-aware; no libcurl. */
#ifndef QS_PLAN_H
#define QS_PLAN_H

#include <lua.h>
#include "call/call.h"

/* Raises Lua's memory error. */
void qs_plan_oom(lua_State *L);

/* Starts the call's target with `path` (the query follows). */
void qs_plan_start_target(lua_State *L, qs_call *k, const char *path);

/* Ends the target (a '?' with nothing after it dropped) and sets the URL. */
void qs_plan_target_done(lua_State *L, qs_call *k);

/* A GET of a list: `path` (ending in '?') with the filters of the table
 * at a->base (nil allowed) for the endpoint `set` (qs_filter_set); reading
 * twice is harmless, so it may be repeated after an unknown outcome. */
void qs_plan_list_target(lua_State *L, qs_call *k, const qs_args *a, const char *path, int set);

/* Decodes the answer as a JSON object: pushes it and returns 1, or pushes
 * a `decode` error and returns 0. */
int qs_plan_json_object(lua_State *L, qs_call *k, long status);

#endif
