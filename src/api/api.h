/* The API layer: registration of the API functions in both variants, the
 * one place that decides between raising and returning nil, err, and the
 * DLQ id checks the API functions share. */
#ifndef QS_API_H
#define QS_API_H

#include <lua.h>
#include "core/args.h"
#include "call/call.h"
#include "client/client.h"

/* An API function of its own logic: the client is at stack index
 * a->base - 1, the user's arguments start at a->base. It ends through
 * qs_api_finish. */
typedef int (*qs_api_fn)(lua_State *L, qs_client *c, const qs_args *a);

/* A row: either a plan (a call run over the engine: most API functions) or
 * a function of its own (async, iterators, prepare). */
typedef struct qs_api {
    const char *name;
    qs_api_fn fn;
    const qs_plan *plan;
} qs_api;

/* Adds each API to the table at the top twice over: as client methods (into
 * the client metatable's __index) and as module functions using the default
 * client of the `safe` variant. Plans also become known to prepare. */
void qs_api_register(lua_State *L, const qs_api *apis, int safe);

/* The plan registered under `name`, or NULL. */
const qs_plan *qs_api_plan(lua_State *L, const char *name);

/* The end of every API function: ok (the value at the top is returned), or
 * the error at the top is raised, or returned as nil, err when `safe`. */
int qs_api_finish(lua_State *L, int safe, int ok);

/* Pushes an empty buffer owned by the collector (a userdata whose __gc
 * frees it): scratch space that an argument error cannot leak. */
qs_buf *qs_api_scratch(lua_State *L);

/* Creates the metatables of the API layer (call once from luaopen). */
void qs_api_init(lua_State *L);

/* Checks a DLQ id (string; not empty, '.', '..', over 512 bytes, or holding
 * control bytes) and appends it percent-encoded as one path segment. */
void qs_api_add_id(const qs_args *a, int idx, qs_buf *out);

/* The checks of qs_api_add_id alone: returns the id and its length. */
const char *qs_api_check_id(const qs_args *a, int idx, size_t *len);

/* The same for an id of another kind, named by `what` ("message id"). */
const char *qs_api_check_id_of(const qs_args *a, int idx, size_t *len, const char *what);
void qs_api_add_id_of(const qs_args *a, int idx, qs_buf *out, const char *what);

#endif
