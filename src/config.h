/* Client configuration: the qstash.new{} table and the environment. */
#ifndef QS_CONFIG_H
#define QS_CONFIG_H

#include <lua.h>
#include "args.h"
#include "client.h"

/* QStash's public dev-server token (documented, not a secret). */
#define QS_DEV_TOKEN "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="
#define QS_DEFAULT_URL "https://qstash.upstash.io"

/* Fills c from the table at cfg_idx (or none when cfg_idx is 0) and the
 * environment. Wrong table values raise argument errors. A bad environment
 * pushes a `config` error and returns -1; 0 on success. */
int qs_config_load(lua_State *L, qs_client *c, int cfg_idx, const qs_args *a);

/* Checks a base URL: http(s), host present, http only for loopback hosts,
 * no whitespace or control bytes. Returns NULL when fine, else why not. */
const char *qs_config_check_url(const char *url, int require_loopback_for_http);

#endif
