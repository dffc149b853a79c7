/* lua-qstash: the public C entry points, for hosts that embed Lua and
 * register the module themselves (luaL_requiref(L, "qstash", luaopen_qstash, 0)). */
#ifndef QSTASH_H
#define QSTASH_H

#include <lua.h>

int luaopen_qstash(lua_State *L);
int luaopen_qstash_safe(lua_State *L);

#endif
