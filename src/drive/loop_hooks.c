/* The hooks for a host's event loop (docs/api.md, "Event loops"): the
 * client reports which sockets to watch and when it needs a timer, as
 * libcurl reports them to the engine, and the host hands back what is
 * ready; the drives themselves are async.c's. The adapters
 * (lua/qstash/loop/) are built on these. */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <lauxlib.h>
#include "drive/loop_hooks.h"
#include "drive/async.h"
#include "base/clock.h"
#include "base/compat.h"
#include "engine/engine.h"

/* client:on_io(fn | nil): fn(client, "changed" | "closed") runs when the
 * client's fds or timer may have changed outside a drive call, and when it
 * closes; the engine keeps libcurl's socket reports for io_changes. */
static int on_io(lua_State *L, qs_client *c, const qs_args *a)
{
    int on = !lua_isnoneornil(L, a->base);
    if (on && lua_type(L, a->base) != LUA_TFUNCTION)
        qs_argerror(a, a->base, "expected a function or nil, got %s", luaL_typename(L, a->base));
    qs_client_check_open(L, c);
    qs_async_new_hook(L, c); /* its close hook tells fn "closed" */
    qs_getuv(L, a->base - 1);
    lua_pushvalue(L, a->base);
    lua_setfield(L, -2, "io_hook");
    lua_pop(L, 1);
    if (qs_engine_hook(c->eng, on) != 0) return luaL_error(L, "not enough memory");
    return 0;
}

/* client:io_changes() -> { { fd = n, events = "r" | "w" | "rw" | "", fresh = bool }, ... }:
 * what changed in the fds to watch since last asked ("": libcurl needs
 * nothing of the fd for now, an idle keep-alive socket keeps its number;
 * fresh: the socket was closed, drop the old watch of that fd first, it may
 * be another socket now). */
static int io_changes(lua_State *L, qs_client *c, const qs_args *a)
{
    qs_engine *e = c->eng;
    int i, n = (!c->closed && e) ? e->nchg : 0;
    (void)a;
    lua_createtable(L, n, 0);
    for (i = 0; i < n; i++) {
        const qs_change *ch = &e->chg[i];
        lua_createtable(L, 0, 3);
        qs_pushint(L, (long long)ch->fd);
        lua_setfield(L, -2, "fd");
        lua_pushstring(L, (ch->events & QS_EV_IN) ? ((ch->events & QS_EV_OUT) ? "rw" : "r")
                                                : ((ch->events & QS_EV_OUT) ? "w" : ""));
        lua_setfield(L, -2, "events");
        lua_pushboolean(L, ch->fresh);
        lua_setfield(L, -2, "fresh");
        lua_rawseti(L, -2, i + 1);
    }
    if (e) e->nchg = 0;
    return 1;
}

/* client:io_fd() -> fd, or nil and why: one descriptor, readable while a
 * socket of the client is ready (Linux: an epoll set). A host that watches
 * it for readability drives the client with io_poll when it is, and needs
 * neither io_changes (empty from now on) nor a watch per socket. The same
 * number until the client closes or its hook goes off (on_io(nil)); after
 * a fork, the child's client has a number of its own. */
static int io_fd(lua_State *L, qs_client *c, const qs_args *a)
{
    int fd;
    (void)a;
    qs_client_check_open(L, c);
    qs_async_ready(L, c); /* (after a fork: the child's engine first) */
    if (!c->eng->hooked) return luaL_error(L, "qstash: io_fd needs a hook first (client:on_io)");
    fd = qs_engine_io_fd(c->eng);
    if (fd < 0) {
        lua_pushnil(L);
        lua_pushstring(L, errno == ENOSYS ? "no epoll on this system: watch each socket (io_changes)"
                                          : strerror(errno));
        return 2;
    }
    qs_pushint(L, fd);
    return 1;
}

/* client:io_timeout() -> seconds until io_timer is due, or nil: nothing in
 * flight, or nothing but transfers waiting on their fds. */
static int io_timeout(lua_State *L, qs_client *c, const qs_args *a)
{
    double at, now;
    (void)a;
    if (qs_async_pending(c) == 0) {
        lua_pushnil(L);
        return 1;
    }
    at = qs_async_due(c);
    {
        double t = qs_engine_next_timer(c->eng);
        if (t >= 0 && (at < 0 || t < at)) at = t;
    }
    if (at < 0) {
        lua_pushnil(L);
        return 1;
    }
    now = qs_now();
    lua_pushnumber(L, at > now ? at - now : 0);
    return 1;
}


/* The most sockets one io_ready call takes (the rest: another call). */
#define QS_READY_MAX 256

/* client:io_ready(fd, events [, fd, events ...]) -> how many callbacks ran:
 * the host found each fd ready; events has "r" (readable), "w" (writable),
 * "e" (an error). Every socket ready in one turn of the host's loop in one
 * call: one drive takes them all in. */
static int io_ready(lua_State *L, qs_client *c, const qs_args *a)
{
    int fds[QS_READY_MAX], evs[QS_READY_MAX], n = 0, i, top = lua_gettop(L);
    if (top < a->base + 1 || (top - a->base + 1) % 2 != 0)
        qs_argerror(a, top < a->base + 1 ? a->base + 1 : top + 1, "events expected after each fd");
    if ((top - a->base + 1) / 2 > QS_READY_MAX)
        qs_argerror(a, a->base + 2 * QS_READY_MAX, "at most %d sockets in one call", QS_READY_MAX);
    /* every pair is checked before any goes to libcurl */
    for (i = a->base; i < top; i += 2, n++) {
        double fd = lua_tonumber(L, i);
        const char *ev;
        if (lua_type(L, i) != LUA_TNUMBER || !(fd >= 0 && fd <= 1e9) || fd != floor(fd))
            qs_argerror(a, i, "fd must be a file descriptor number");
        if (lua_type(L, i + 1) != LUA_TSTRING)
            qs_argerror(a, i + 1, "events must be a string of \"r\", \"w\", \"e\"");
        ev = lua_tostring(L, i + 1);
        fds[n] = (int)fd;
        evs[n] = (strchr(ev, 'r') ? CURL_CSELECT_IN : 0) | (strchr(ev, 'w') ? CURL_CSELECT_OUT : 0) |
                 (strchr(ev, 'e') ? CURL_CSELECT_ERR : 0);
    }
    return qs_async_drive_now(L, c, a->base - 1, fds, evs, n, 0);
}

/* client:io_timer() -> how many callbacks ran: the timer io_timeout asked
 * for fired. */
static int io_timer(lua_State *L, qs_client *c, const qs_args *a)
{
    return qs_async_drive_now(L, c, a->base - 1, NULL, NULL, 0, 0);
}

/* client:io_poll() -> how many callbacks ran: some socket of the client is
 * ready, and the client looks which (a poll without waiting), for loops
 * that do not report every ready socket of a turn at once (cqueues). */
static int io_poll(lua_State *L, qs_client *c, const qs_args *a)
{
    return qs_async_drive_now(L, c, a->base - 1, NULL, NULL, 0, 1);
}

/* client:_stats() -> { stalled_waits = n }: the engine's count of waits
 * begun while results were already in (docs/development.md). For
 * specs: not part of the API. */
static int stats(lua_State *L, qs_client *c, const qs_args *a)
{
    (void)a;
    lua_createtable(L, 0, 1);
    qs_pushint(L, c->eng ? (long long)c->eng->stalled_waits : 0);
    lua_setfield(L, -2, "stalled_waits");
    qs_pushint(L, c->eng ? (long long)c->eng->hooked_waits : 0);
    lua_setfield(L, -2, "loop_waits");
    return 1;
}

const qs_api qs_loop_hook_apis[] = {
    {"on_io", on_io, NULL},
    {"io_changes", io_changes, NULL},
    {"io_fd", io_fd, NULL},
    {"io_timeout", io_timeout, NULL},
    {"io_ready", io_ready, NULL},
    {"io_timer", io_timer, NULL},
    {"io_poll", io_poll, NULL},
    {"_stats", stats, NULL},
    {NULL, NULL, NULL},
};
