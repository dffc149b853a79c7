/* Receiving: verification of the Upstash-Signature JWT (HS256) that QStash
 * sends with every delivery. */
#ifndef QS_VERIFY_H
#define QS_VERIFY_H

#include <lua.h>

/* Longest token accepted; anything longer is `malformed`. */
#define QS_VERIFY_MAX_TOKEN 16384

/* qstash.verify(params): upvalue 1 is a boolean "safe" (true in qstash.safe: failures return nil, err). */
int qs_verify(lua_State *L);

#endif
