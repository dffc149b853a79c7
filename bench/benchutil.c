/* A tiny Lua module for the bench's Lua contenders: a monotonic wall clock
 * and the process's CPU time (user + system, every thread), so that a
 * contender can time its request loop without its start-up. */
#include <sys/resource.h>
#include <time.h>
#include <lua.h>
#include <lauxlib.h>

static int b_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

static int b_cpu(lua_State *L)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    lua_pushnumber(L, (lua_Number)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                          (lua_Number)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
    return 1;
}

int luaopen_benchutil(lua_State *L);
int luaopen_benchutil(lua_State *L)
{
    lua_newtable(L);
    lua_pushcfunction(L, b_now);
    lua_setfield(L, -2, "now");
    lua_pushcfunction(L, b_cpu);
    lua_setfield(L, -2, "cpu");
    return 1;
}
