/* A short path for the JSON most answers are: one flat object, such as a
 * publish or retry answer ({"messageId":"msg_..","deduplicated":false}).
 * It builds the very table lua-cjson's decode followed by the normalising
 * of response.c would (same keys, values and types, inserted in the same
 * order into a table made the same way), without the Lua string of the
 * body, the protected call and the walk over the result. Anything it does
 * not take whole is left to lua-cjson, which then decides (and words any
 * error) as always. */
#ifndef QS_JSON_FLAT_H
#define QS_JSON_FLAT_H

#include <stddef.h>
#include <lua.h>

/* Pushes the table of s[0..n) and returns 1 when s is an object whose keys
 * are strings and whose values are strings, true, false or integers
 * (0 to 15 digits, no sign), strings without escapes, control bytes or
 * bytes above 0x7e; otherwise pushes nothing and returns 0. */
int qs_json_flat(lua_State *L, const char *s, size_t n);

#endif
