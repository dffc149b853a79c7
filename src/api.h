/* Shared plumbing of the API functions: registration in both variants,
 * URLs and paths, and decoding of successful responses. */
#ifndef QS_API_H
#define QS_API_H

#include <lua.h>
#include "args.h"
#include "client.h"

/* An API function: the client is at stack index a->base - 1, the user's
 * arguments start at a->base. */
typedef int (*qs_api_fn)(lua_State *L, qs_client *c, const qs_args *a);

typedef struct qs_api {
    const char *name;
    qs_api_fn fn;
} qs_api;

/* Adds each API to the table at the top twice over: as client methods (into
 * the client metatable's __index) and as module functions using the default
 * client of the `safe` variant. */
void qs_api_register(lua_State *L, const qs_api *apis, int safe);

/* Sets c->path to `path` (already encoded; never holding the token) and
 * c->url to the base URL, the path, and the token query when configured. */
void qs_api_target(lua_State *L, qs_client *c, const char *path, size_t len);

/* Checks a DLQ id (string; not empty, '.', '..', over 512 bytes, or holding
 * control bytes) and appends it percent-encoded as one path segment. */
void qs_api_add_id(const qs_args *a, int idx, qs_buf *out);

/* The checks of qs_api_add_id alone: returns the id and its length. */
const char *qs_api_check_id(const qs_args *a, int idx, size_t *len);

/* Decodes the JSON body of a successful response and pushes it; on failure
 * pushes a `decode` error and returns 0. */
int qs_api_decode(lua_State *L, qs_client *c, const qs_xfer *x, const char *method, long status);

/* Pushes a `decode` error for a body of the wrong shape. */
void qs_api_shape_error(lua_State *L, qs_client *c, const qs_xfer *x, const char *method,
                        long status, const char *why);

#endif
