/* The few POSIX calls the fork specs need (fork, wait, sleep, alarm), for
 * interpreters that Debian's lua-posix is not built for (Lua 5.4). Built by
 * spec/support/fork.lua into build/; test support only, not part of the
 * module. Same names and results as lua-posix's posix.unistd and
 * posix.sys.wait, so the specs read the same either way. */
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>

static int l_fork(lua_State *L)
{
    pid_t pid = fork();
    if (pid < 0) {
        lua_pushnil(L);
        lua_pushstring(L, "fork failed");
        return 2;
    }
    lua_pushinteger(L, (lua_Integer)pid);
    return 1;
}

/* wait(pid) -> pid, "exited" | "killed" | "stopped", code or signal */
static int l_wait(lua_State *L)
{
    int status = 0;
    pid_t pid = waitpid((pid_t)luaL_optinteger(L, 1, -1), &status, 0);
    if (pid < 0) {
        lua_pushnil(L);
        lua_pushstring(L, "waitpid failed");
        return 2;
    }
    lua_pushinteger(L, (lua_Integer)pid);
    if (WIFEXITED(status)) {
        lua_pushliteral(L, "exited");
        lua_pushinteger(L, WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        lua_pushliteral(L, "killed");
        lua_pushinteger(L, WTERMSIG(status));
    } else {
        lua_pushliteral(L, "stopped");
        lua_pushinteger(L, WSTOPSIG(status));
    }
    return 3;
}

static int l_sleep(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)sleep((unsigned)luaL_checkinteger(L, 1)));
    return 1;
}

static int l_alarm(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)alarm((unsigned)luaL_checkinteger(L, 1)));
    return 1;
}

int luaopen_spec_posix(lua_State *L);
int luaopen_spec_posix(lua_State *L)
{
    static const luaL_Reg unistd[] = {{"fork", l_fork}, {"sleep", l_sleep}, {"alarm", l_alarm}, {NULL, NULL}};
    lua_newtable(L);
    lua_newtable(L);
    luaL_setfuncs(L, unistd, 0);
    lua_setfield(L, -2, "unistd");
    lua_newtable(L);
    lua_pushcfunction(L, l_wait);
    lua_setfield(L, -2, "wait");
    lua_setfield(L, -2, "wait");
    return 1;
}
