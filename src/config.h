/* Client configuration: the qstash.new{} table and the environment. */
#ifndef QS_CONFIG_H
#define QS_CONFIG_H

#include <lua.h>
#include "args.h"
#include "client.h"
#include "conf.h"

/* QStash's public dev-server token (documented, not a secret). */
#define QS_DEV_TOKEN "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="
#define QS_DEFAULT_URL "https://qstash.upstash.io"

/* Fills c from the table at cfg_idx (or none when cfg_idx is 0) and the
 * environment. Wrong table values raise argument errors. A bad environment
 * pushes a `config` error and returns -1; 0 on success. The stack may grow:
 * the caller restores it. */
int qs_config_load(lua_State *L, qs_conf *c, int cfg_idx, const qs_args *a);

#endif
