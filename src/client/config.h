/* Client configuration: the qstash.new{} table and the environment. */
#ifndef QS_CONFIG_H
#define QS_CONFIG_H

#include <stddef.h>
#include <lua.h>
#include "core/args.h"
#include "client/client.h"
#include "core/conf.h"

/* QStash's public dev-server token (documented, not a secret). */
#define QS_DEV_TOKEN "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="
#define QS_DEFAULT_URL "https://qstash.upstash.io"
/* The emulator's (and QStash's local dev server's) public signing keys:
 * anyone can sign with them, so they are only for dev mode. */
#define QS_DEV_CURRENT_SIGNING_KEY "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
#define QS_DEV_NEXT_SIGNING_KEY "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"

/* Fills c from the table at cfg_idx (or none when cfg_idx is 0) and the
 * environment. Wrong table values raise argument errors. A bad environment
 * pushes a `config` error and returns -1; 0 on success. The stack may grow:
 * the caller restores it. */
int qs_config_load(lua_State *L, qs_conf *c, int cfg_idx, const qs_args *a);

/* The canonical name (EU_CENTRAL_1, US_EAST_1) of a region as QSTASH_REGION
 * or the Upstash-Region header spell it (us-east-1, US_EAST_1, ...), or NULL
 * when value[0..len) names no region. */
const char *qs_config_region(const char *value, size_t len);

/* QSTASH_DEV's value: 1 for 1/true, 0 for unset/empty/0/false, -1 otherwise. */
int qs_config_dev_flag(const char *value);

#endif
