/* Responses: JSON decoded by lua-cjson, normalised for Lua, and shaped into
 * the results QStash documents. */
#ifndef QS_RESPONSE_H
#define QS_RESPONSE_H

#include <stddef.h>
#include <lua.h>

/* Loads lua-cjson and keeps a private instance (call from luaopen). */
void qs_json_init(lua_State *L);

/* Decodes JSON text. Success: pushes the value (JSON null becomes nil, even
 * inside tables; integral numbers become integers where Lua has them) and
 * returns 0. Failure: pushes the decoder's message and returns -1. Any
 * other error raised meanwhile (memory, or a hook such as the interpreter's
 * Ctrl-C "interrupted!") is raised again as itself, never made a decode error. */
int qs_json_decode(lua_State *L, const char *s, size_t n);

/* Encodes the value at idx. Success: pushes the JSON text, returns 0.
 * Failure: pushes the encoder's message and returns -1; other errors as
 * qs_json_decode. */
int qs_json_encode(lua_State *L, int idx);

/* Checks that the table at the top is a PublishResponse: `messageId` a
 * string, `deduplicated` made a boolean. Returns NULL, or what is wrong. */
const char *qs_shape_publish_response(lua_State *L);

#endif
