/* Client lifecycle: creation from a config, the libcurl handles, close/__gc,
 * fork safety and the jitter generator. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <lauxlib.h>
#include "async.h"
#include "client.h"
#include "compat.h"
#include "config.h"
#include "errors.h"

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_OK;

/* Bumped in every forked child: a client notices a fork without a syscall
 * per call. */
static volatile unsigned fork_gen = 0;

static void on_fork_child(void)
{
    fork_gen++;
}

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_atfork(NULL, NULL, on_fork_child);
}

static int make_handles(qs_client *c)
{
    c->multi = curl_multi_init();
    c->sync.easy = curl_easy_init();
    c->standby = curl_easy_init();
    c->sync.ready = c->standby_ready = c->standby_in_multi = 0;
    if (!c->multi || !c->sync.easy || !c->standby) {
        if (c->multi) curl_multi_cleanup(c->multi);
        if (c->sync.easy) curl_easy_cleanup(c->sync.easy);
        if (c->standby) curl_easy_cleanup(c->standby);
        c->multi = NULL;
        c->sync.easy = c->standby = NULL;
        return -1;
    }
    /* The cache keeps a connection per concurrent transfer (HTTP/1.1), and
     * HTTP/2 streams share one connection where the server offers it. */
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 128L);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 128L);
    c->pid = getpid();
    c->fork_gen = fork_gen;
    return 0;
}

/* Whether this process made the client's handles. The fork generation
 * answers without a syscall unless a fork happened since they were made. */
static int own_handles(const qs_client *c)
{
    return c->fork_gen == fork_gen || c->pid == getpid();
}

int qs_client_ready(qs_client *c)
{
    if (c->multi && own_handles(c)) {
        c->fork_gen = fork_gen; /* after a fork in the parent: no getpid() again */
        return 0;
    }
    /* In a forked child the inherited handles share sockets and TLS state
     * with the parent: abandon them (never clean up) and start afresh. */
    c->multi = NULL;
    c->sync.easy = c->standby = NULL;
    c->sync.slist = NULL;
    c->sync.in_multi = 0;
    qs_buf_clear(&c->sync.hkey);
    c->nspares = 0;
    return make_handles(c);
}

int qs_client_take_spare(qs_client *c, qs_xfer *x)
{
    if (c->nspares > 0) {
        struct qs_spare *sp = &c->spares[--c->nspares];
        x->easy = sp->easy;
        x->slist = sp->slist;
        x->hkey = sp->hkey;
        x->body = sp->body;
        x->url = sp->url;
        x->path = sp->path;
        x->uh = sp->uh;
        qs_buf_clear(&x->url);
        qs_buf_clear(&x->path);
        memset(sp, 0, sizeof *sp);
        return 0;
    }
    x->easy = curl_easy_init();
    return x->easy ? 0 : -1;
}

void qs_client_give_spare(qs_client *c, qs_xfer *x)
{
    if (!c->closed && x->easy && c->nspares < QS_SPARES_MAX && own_handles(c)) {
        struct qs_spare *sp = &c->spares[c->nspares++];
        sp->easy = x->easy;
        sp->slist = x->slist;
        sp->hkey = x->hkey;
        sp->body = x->body;
        sp->url = x->url;
        sp->path = x->path;
        sp->uh = x->uh;
        x->uh = NULL;
        x->easy = NULL;
        x->slist = NULL;
        memset(&x->hkey, 0, sizeof x->hkey);
        memset(&x->body, 0, sizeof x->body);
        memset(&x->url, 0, sizeof x->url);
        memset(&x->path, 0, sizeof x->path);
    }
    qs_xfer_free(x);
}

static void free_spares(qs_client *c, int owned)
{
    while (c->nspares > 0) {
        struct qs_spare *sp = &c->spares[--c->nspares];
        if (owned) {
            curl_easy_cleanup(sp->easy);
            curl_slist_free_all(sp->slist);
        }
        qs_buf_free(&sp->hkey);
        qs_buf_free(&sp->body);
        qs_buf_free(&sp->url);
        qs_buf_free(&sp->path);
        curl_url_cleanup(sp->uh);
    }
}

void qs_client_release(qs_client *c)
{
    int owned = own_handles(c);
    if (c->closed) return;
    c->closed = 1;
    free_spares(c, owned);
    if (owned) {
        if (c->sync.in_multi) curl_multi_remove_handle(c->multi, c->sync.easy);
        if (c->standby_in_multi) curl_multi_remove_handle(c->multi, c->standby);
        qs_xfer_free(&c->sync);
        if (c->standby) curl_easy_cleanup(c->standby);
        if (c->multi) curl_multi_cleanup(c->multi);
    } else {
        /* the parent's handles: never touched in a child */
        c->sync.easy = c->standby = NULL;
        c->sync.slist = NULL;
        qs_xfer_free(&c->sync);
    }
    c->standby = NULL;
    c->multi = NULL;
    free(c->token);
    free(c->missing_token);
    free(c->base_url);
    free(c->auth_header);
    free(c->user_agent);
    free(c->ca_file);
    free(c->proxy);
    free(c->ua_header);
    curl_url_cleanup(c->base_uh);
    c->base_uh = NULL;
    c->token = c->missing_token = c->base_url = c->auth_header = NULL;
    c->user_agent = c->ca_file = c->proxy = c->ua_header = NULL;
    qs_buf_free(&c->headers);
    qs_buf_free(&c->query);
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

double qs_client_random(qs_client *c)
{
    return (double)(splitmix64(&c->rng) >> 11) * (1.0 / 9007199254740992.0);
}

qs_client *qs_client_check(lua_State *L, int idx)
{
    qs_client *c = (qs_client *)luaL_checkudata(L, idx, QS_CLIENT_MT);
    if (c->closed) luaL_error(L, "qstash: the client is closed");
    return c;
}

int qs_client_new(lua_State *L, int cfg_idx, int safe)
{
    qs_args a;
    struct timespec ts;
    qs_client *c;
    a.L = L;
    a.base = 1;
    a.fname = "new";
    if (cfg_idx && !lua_isnoneornil(L, cfg_idx) && lua_type(L, cfg_idx) != LUA_TTABLE)
        qs_argerror(&a, cfg_idx, "config must be a table, got %s", luaL_typename(L, cfg_idx));
    if (cfg_idx && lua_isnoneornil(L, cfg_idx)) cfg_idx = 0;
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) return luaL_error(L, "qstash: curl_global_init failed");

    c = (qs_client *)qs_newudata(L, sizeof *c);
    memset(c, 0, sizeof *c);
    c->closed = 1; /* nothing to release until the handles exist */
    luaL_getmetatable(L, QS_CLIENT_MT);
    lua_setmetatable(L, -2);
    c->closed = 0;
    c->pid = getpid();
    c->safe = safe;
    clock_gettime(CLOCK_REALTIME, &ts);
    c->rng = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40) ^
             (uint64_t)(uintptr_t)c;
    if (qs_config_load(L, c, cfg_idx, &a) != 0) {
        /* a config error table is on the stack, above the client */
        lua_remove(L, -2);
        qs_client_release(c);
        return qs_error_finish(L, safe);
    }
    if (make_handles(c) != 0) return luaL_error(L, "qstash: cannot create libcurl handles");
    return 1;
}

static int client_close(lua_State *L)
{
    qs_client *c = (qs_client *)luaL_checkudata(L, 1, QS_CLIENT_MT);
    if (!c->closed) qs_async_close_all(L, c);
    qs_client_release(c);
    return 0;
}

static int client_tostring(lua_State *L)
{
    qs_client *c = (qs_client *)luaL_checkudata(L, 1, QS_CLIENT_MT);
    if (c->closed) lua_pushfstring(L, "qstash.client (closed): %p", (void *)c);
    else lua_pushfstring(L, "qstash.client (%s): %p", c->base_url, (void *)c);
    return 1;
}

void qs_client_register(lua_State *L)
{
    /* The metatable; methods are added by the module entry into __index. */
    if (luaL_newmetatable(L, QS_CLIENT_MT)) {
        lua_pushcfunction(L, client_close);
        lua_setfield(L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
        lua_pushcfunction(L, client_close);
        lua_setfield(L, -2, "__close");
#endif
        lua_pushcfunction(L, client_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_newtable(L);
        lua_pushcfunction(L, client_close);
        lua_setfield(L, -2, "close");
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}
