/* The Lua values a request ends in: its decoded result, or the error object
 * (design.md, "Results" and "Errors"). Lua-aware; no libcurl. */
#ifndef QS_RESULT_H
#define QS_RESULT_H

#include <lua.h>
#include "core/decide.h"
#include "core/request.h"

/* Pushes the error object of a request that failed as decided in d. */
void qs_result_error(lua_State *L, const qs_req *r, const qs_outcome *o, const qs_decision *d);

/* Pushes a `decode` error: a successful answer whose body is not what the
 * API documents. */
void qs_result_shape_error(lua_State *L, const qs_req *r, long status, const char *why);

/* Decodes the response body as JSON: pushes the value and returns 1, or
 * pushes a `decode` error and returns 0. */
int qs_result_json(lua_State *L, const qs_req *r, long status);

/* Checks the value at the top: a table the API documents, or what it
 * names is wrong (NULL when it is right). */
typedef const char *(*qs_shape_fn)(lua_State *L);

/* Decodes the body as JSON and checks it with `shape`: one object, or, when
 * `array_of` names what the array holds ("queues"), a JSON array of them.
 * 1: the value pushed; 0: a `decode` error pushed instead. */
int qs_result_shaped(lua_State *L, const qs_req *r, long status, qs_shape_fn shape, const char *array_of);

/* Decodes a PublishResponse (dlq_retry's result). 1: result pushed; 0: error. */
int qs_result_publish(lua_State *L, const qs_req *r, long status);

/* Pushes the `config` error of a client without a token. */
void qs_result_no_token(lua_State *L, const qs_req *r);

/* Pushes the `cancelled` error of a request stopped before it finished:
 * `ambiguous` when it may have been sent. */
void qs_result_cancelled(lua_State *L, const qs_req *r, const char *why, int ambiguous);

/* Pushes the `limit` error of a call ended by a whole-call bound: `which`
 * is "deadline" or "requests", `requests` how many it sent; r is the
 * request that would have gone next (or failed at the bound). */
void qs_result_limit(lua_State *L, const qs_req *r, const char *which, long requests, int ambiguous);

#endif
