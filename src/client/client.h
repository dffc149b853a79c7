/* The client: its configuration and the libcurl engine that carries its
 * connection cache. Nothing per call lives here, and the client knows
 * nothing of the API functions or of async requests: code that keeps state
 * per client (async.c) hooks its teardown in. */
#ifndef QS_CLIENT_H
#define QS_CLIENT_H

#include <lua.h>
#include "core/conf.h"
#include "base/version.h"

#define QS_CLIENT_MT "qstash.client"

typedef struct qs_client qs_client;
struct qs_engine; /* engine.h: only the code that moves bytes includes it */

/* Called once when the client closes (close(), __gc, `<close>`), with the
 * client userdata at stack index idx, before the engine is closed. */
typedef void (*qs_close_hook)(lua_State *L, qs_client *c, int idx);

struct qs_client {
    qs_conf *conf;             /* NULL until loaded */
    struct qs_engine *eng;     /* NULL until made */
    unsigned long long rng;    /* seeds each call's jitter generator */
    int closed;
    int safe;                  /* created by qstash.safe: failures return nil, err */
    void *ext;                 /* state of the code that set on_close */
    qs_close_hook on_close;
};

/* Checks that the value at idx is an open client (raising otherwise). */
qs_client *qs_client_check(lua_State *L, int idx);

/* Checks that the value at idx is a client, open or not. */
qs_client *qs_client_at(lua_State *L, int idx);

/* qstash.new(config): pushes a client (its user value a new table for the
 * hooked code), or (safe) nil, err for a config error. */
int qs_client_new(lua_State *L, int cfg_idx, int safe);

/* A seed for a new call's generator. */
unsigned long long qs_client_seed(qs_client *c);

/* Raises "qstash: the client is closed" when it is. */
void qs_client_check_open(lua_State *L, const qs_client *c);

void qs_client_register(lua_State *L);

#endif
