/* Structured error objects (see errors.h). */
#include <stdio.h>
#include <string.h>
#include <lauxlib.h>
#include "core/errors.h"
#include "base/compat.h"

static void add_field(lua_State *L, luaL_Buffer *b, const char *field,
                      const char *before, const char *after)
{
    lua_getfield(L, 1, field);
    if (lua_type(L, -1) == LUA_TSTRING && qs_rawlen(L, -1) > 0) {
        const char *s = lua_tostring(L, -1);
        lua_pop(L, 1); /* the string stays alive in the table */
        luaL_addstring(b, before);
        luaL_addstring(b, s);
        luaL_addstring(b, after);
    } else {
        lua_pop(L, 1);
    }
}

/* A `limit` error (a whole-call bound ended the call) says what was done
 * before it: the partial fields a multi-request call copies into its
 * errors, as "; cancelled 300 so far". */
static void add_done(lua_State *L, luaL_Buffer *b)
{
    static const char *const done[] = {"cancelled", "deleted", "responses", "messageId", NULL};
    int i, said = 0;
    lua_getfield(L, 1, "kind");
    i = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "limit") == 0;
    lua_pop(L, 1);
    if (!i) return;
    for (i = 0; done[i]; i++) {
        char num[48] = "";
        lua_getfield(L, 1, done[i]);
        said |= !lua_isnil(L, -1);
        if (lua_type(L, -1) == LUA_TNUMBER)
            snprintf(num, sizeof num, "%.0f", (double)lua_tonumber(L, -1));
        else if (lua_type(L, -1) == LUA_TTABLE)
            snprintf(num, sizeof num, "%lu", (unsigned long)qs_rawlen(L, -1));
        lua_pop(L, 1);
        if (num[0]) {
            luaL_addstring(b, "; ");
            luaL_addstring(b, done[i]);
            luaL_addstring(b, " ");
            luaL_addstring(b, num);
            luaL_addstring(b, " so far");
        } else {
            add_field(L, b, done[i], "; retried as ", "");
        }
    }
    /* A call of one request (publish, batch, a list) has no count: whether
     * QStash acted on it is what was done, known or not. */
    if (!said) {
        int ambiguous;
        lua_getfield(L, 1, "ambiguous");
        ambiguous = lua_toboolean(L, -1);
        lua_pop(L, 1); /* balanced before the buffer is used again */
        luaL_addstring(b, ambiguous ? "; whether QStash acted on it is unknown (ambiguous)"
                                    : "; nothing was done");
    }
}

/* __tostring: "qstash: not_found (404) POST /v2/dlq/retry/abc: message not found" */
static int error_tostring(lua_State *L)
{
    luaL_Buffer b;
    char num[32] = "";
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "status");
    if (lua_type(L, -1) == LUA_TNUMBER)
        snprintf(num, sizeof num, " (%ld)", (long)lua_tonumber(L, -1));
    lua_pop(L, 1);
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "qstash:");
    add_field(L, &b, "kind", " ", "");
    luaL_addstring(&b, num);
    add_field(L, &b, "method", " ", "");
    add_field(L, &b, "path", " ", "");
    add_field(L, &b, "reason", " [", "]");
    add_field(L, &b, "message", ": ", "");
    add_done(L, &b);
    luaL_pushresult(&b);
    return 1;
}

void qs_errors_init(lua_State *L)
{
    if (luaL_newmetatable(L, QS_ERROR_MT)) {
        lua_pushcfunction(L, error_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "qstash.error");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
}

void qs_error_push(lua_State *L, const char *kind, const char *message)
{
    lua_createtable(L, 0, 8);
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    if (message) {
        lua_pushstring(L, message);
        lua_setfield(L, -2, "message");
    }
    luaL_getmetatable(L, QS_ERROR_MT);
    lua_setmetatable(L, -2);
}

void qs_error_setstr(lua_State *L, const char *field, const char *s, size_t len)
{
    lua_pushlstring(L, s, len);
    lua_setfield(L, -2, field);
}

void qs_error_setint(lua_State *L, const char *field, long long v)
{
    qs_pushint(L, v);
    lua_setfield(L, -2, field);
}

void qs_error_setbool(lua_State *L, const char *field, int v)
{
    lua_pushboolean(L, v);
    lua_setfield(L, -2, field);
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* The byte value of the escape at s (of len bytes), writing its length to
 * *n: "%XX" (either case; what a URL or a proxy's echo of one holds) or
 * a JSON "\u" escape of four hex digits naming a byte (below 0x100); -1
 * when there is none. */
static int escaped_byte(const char *s, size_t len, size_t *n)
{
    if (len >= 3 && s[0] == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
        *n = 3;
        return hexval(s[1]) * 16 + hexval(s[2]);
    }
    if (len >= 6 && s[0] == '\\' && s[1] == 'u' && s[2] == '0' && s[3] == '0' && hexval(s[4]) >= 0 &&
        hexval(s[5]) >= 0) {
        *n = 6;
        return hexval(s[4]) * 16 + hexval(s[5]);
    }
    return -1;
}

/* How many bytes at s spell the secret in any form a server or proxy may
 * echo it in: as is, percent-encoded, JSON-escaped ("\/", "\u00XX"), or with
 * '+' decoded to a space; 0 when it does not start at s. */
static size_t secret_at(const char *s, size_t len, const char *secret, size_t slen)
{
    size_t i = 0, k;
    for (k = 0; k < slen; k++) {
        unsigned char want = (unsigned char)secret[k];
        size_t n = 1;
        if (i < len && ((unsigned char)s[i] == want || (want == '+' && s[i] == ' '))) {
            i++;
            continue;
        }
        if (i + 1 < len && want == '/' && s[i] == '\\' && s[i + 1] == '/') {
            i += 2;
            continue;
        }
        if (i < len && escaped_byte(s + i, len - i, &n) == (int)want) {
            i += n;
            continue;
        }
        return 0;
    }
    return i;
}

void qs_error_setscrubbed(lua_State *L, const char *field, const char *s, size_t len,
                          const char *secret, size_t cap)
{
    luaL_Buffer b;
    /* A secret shorter than this is no real token: scrubbing it would only
     * garble the text. */
    size_t slen = secret && strlen(secret) >= 8 ? strlen(secret) : 0;
    size_t i = 0, out = 0;
    luaL_buffinit(L, &b);
    /* Scrub first, then cut: a secret straddling the cut is still whole in
     * the input, so no prefix of it is left behind. */
    while (i < len && out < cap) {
        size_t m = slen ? secret_at(s + i, len - i, secret, slen) : 0;
        if (m > 0) {
            size_t keep = cap - out < 10 ? cap - out : 10;
            luaL_addlstring(&b, "[REDACTED]", keep);
            out += keep;
            i += m;
        } else {
            luaL_addchar(&b, s[i]);
            out++;
            i++;
        }
    }
    luaL_pushresult(&b);
    lua_setfield(L, -2, field);
}

int qs_error_finish(lua_State *L, int safe)
{
    if (!safe) return lua_error(L);
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

int qs_is_error(lua_State *L, int idx)
{
    int same;
    if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return 0;
    luaL_getmetatable(L, QS_ERROR_MT);
    same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same;
}
