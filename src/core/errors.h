/* Structured error objects: plain tables sharing one metatable, so that
 * ngx.log, tostring and qstash.is_error all work on them. */
#ifndef QS_ERRORS_H
#define QS_ERRORS_H

#include <stddef.h>
#include <lua.h>

#define QS_ERROR_MT "qstash.error"

/* Creates the shared metatable (call once from luaopen). */
void qs_errors_init(lua_State *L);

/* Pushes a new error table { kind = kind, message = message } (message may be NULL). */
void qs_error_push(lua_State *L, const char *kind, const char *message);

/* Field setters for the error table at the top of the stack. */
void qs_error_setstr(lua_State *L, const char *field, const char *s, size_t len);
void qs_error_setint(lua_State *L, const char *field, long long v);
void qs_error_setbool(lua_State *L, const char *field, int v);

/* Like qs_error_setstr, but every occurrence of `secret` (if non-empty) is
 * replaced by "[REDACTED]" and the text is cut to at most `cap` bytes. */
void qs_error_setscrubbed(lua_State *L, const char *field, const char *s, size_t len,
                          const char *secret, size_t cap);

/* With an error table at the top: raises it (safe == 0), or leaves
 * nil, err on the stack and returns 2 for a safe function to return. */
int qs_error_finish(lua_State *L, int safe);

/* True when the value at idx is one of our error tables. */
int qs_is_error(lua_State *L, int idx);

#endif
