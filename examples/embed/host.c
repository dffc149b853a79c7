/* A small C program that embeds Lua 5.4 and links lua-qstash statically.
 *
 *   embed-host SCRIPT [ARGS...]
 *
 * It creates a Lua state, opens the standard libraries, registers the
 * module (`require "qstash"` and `require "qstash.safe"` both resolve to
 * the copy linked into this program, never to a qstash.so on package.cpath),
 * adds a tiny `host` module of its own (a monotonic clock and a sleep, as a
 * game or tool engine would provide), and runs SCRIPT with ARGS in the global
 * `arg` table (as the `lua` interpreter does) and as `...`.
 *
 * Exit status: the integer SCRIPT returns (0 when it returns nothing or
 * true, 1 for false); 1 with a traceback on stderr when a Lua error escapes.
 *
 * lua-cjson, which the module loads with `require "cjson"`, is found through
 * package.cpath like any C module: Debian's default path for Lua 5.4 already
 * includes /usr/lib/x86_64-linux-gnu/lua/5.4/, and LUA_CPATH_5_4 / LUA_CPATH
 * are honoured as in the stand-alone interpreter.
 *
 * Build: make embed   (see the Makefile; it links build/lua5.4/libqstash.a) */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "qstash.h"

#ifndef LUA_PRELOAD_TABLE
#define LUA_PRELOAD_TABLE "_PRELOAD"
#endif

/* ---- the host's own functions: require "host" ---------------------------- */

/* host.now() -> seconds from a monotonic clock (a float) */
static int host_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* host.sleep(seconds): sleeps, resuming after signals; 0 returns at once */
static int host_sleep(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    struct timespec ts;
    luaL_argcheck(L, s >= 0 && s <= 86400, 1, "seconds must be between 0 and 86400");
    ts.tv_sec = (time_t)floor(s);
    ts.tv_nsec = (long)((s - floor(s)) * 1e9);
    if (ts.tv_nsec > 999999999L) ts.tv_nsec = 999999999L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    return 0;
}

static int luaopen_host(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"now", host_now},
        {"sleep", host_sleep},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    return 1;
}

/* ---- error handling --------------------------------------------------------- */

/* Message handler for lua_pcall: runs where the error was raised, before the
 * stack unwinds, and turns the error into "message\nstack traceback:...".
 * Error objects with __tostring (such as qstash's error tables) are printed
 * through it. */
static int msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* ---- the protected main ----------------------------------------------------- */

/* Runs in protected mode (see main), so that an error anywhere (a missing
 * lua-cjson while the module opens, a syntax error in the script, an error
 * raised by the script) reaches the message handler instead of lua_atpanic.
 * Arguments: argc (an integer) and argv (a light userdata). Returns the
 * script's exit status. */
static int host_main(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = (char **)lua_touserdata(L, 2);
    int i, nres, base;

    luaL_openlibs(L);

    /* require "qstash": opens the module now and stores it in
     * package.loaded.qstash (0: no global variable). */
    luaL_requiref(L, "qstash", luaopen_qstash, 0);
    lua_pop(L, 1);

    /* require "qstash.safe": opened on first use, from package.preload, which
     * the searchers consult before package.path and package.cpath. */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_qstash_safe);
    lua_setfield(L, -2, "qstash.safe");
    lua_pop(L, 1);

    luaL_requiref(L, "host", luaopen_host, 0);
    lua_pop(L, 1);

    /* arg[0] = script, arg[1..n] = its arguments */
    lua_createtable(L, argc - 2, 1);
    for (i = 1; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - 1);
    }
    lua_setglobal(L, "arg");

    if (luaL_loadfile(L, argv[1]) != LUA_OK) lua_error(L);
    base = lua_gettop(L);
    luaL_checkstack(L, argc, "too many arguments");
    for (i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
    lua_call(L, argc - 2, LUA_MULTRET);

    nres = lua_gettop(L) - base + 1;
    if (nres <= 0 || lua_isnil(L, base) || (lua_isboolean(L, base) && lua_toboolean(L, base))) {
        lua_pushinteger(L, EXIT_SUCCESS);
    } else if (lua_isboolean(L, base)) {
        lua_pushinteger(L, EXIT_FAILURE);
    } else if (lua_isinteger(L, base)) {
        lua_pushinteger(L, lua_tointeger(L, base) & 0xff);
    } else {
        return luaL_error(L, "%s returned a %s; expected an exit status (integer or boolean)",
                          argv[1], luaL_typename(L, base));
    }
    return 1;
}

int main(int argc, char **argv)
{
    lua_State *L;
    int status;

    if (argc < 2) {
        fprintf(stderr, "usage: %s SCRIPT [ARGS...]\n", argc > 0 ? argv[0] : "embed-host");
        return 2;
    }

    L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "%s: cannot create a Lua state: not enough memory\n", argv[0]);
        return 1;
    }

    lua_pushcfunction(L, msghandler);
    lua_pushcfunction(L, host_main);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    if (lua_pcall(L, 2, 1, 1) != LUA_OK) {
        fprintf(stderr, "%s: %s\n", argv[0], lua_tostring(L, -1));
        status = EXIT_FAILURE;
    } else {
        status = (int)lua_tointeger(L, -1);
    }

    /* Runs every pending __gc (qstash clients close their libcurl handles). */
    lua_close(L);
    return status;
}
