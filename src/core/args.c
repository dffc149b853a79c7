/* Argument errors and "did you mean" suggestions (see args.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <lauxlib.h>
#include "core/args.h"

int qs_argerror(const qs_args *a, int idx, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return luaL_error(a->L, "bad argument #%d to '%s' (%s)", idx - a->base + 1, a->fname, msg);
}

/* Optimal string alignment distance: edits, with adjacent swaps counting one
 * ("retires" is one step from "retries"). Names are short: cap at 63. */
static size_t osa_distance(const char *s, const char *t)
{
    size_t d[64][64];
    size_t n = strlen(s), m = strlen(t), i, j;
    if (n > 63) n = 63;
    if (m > 63) m = 63;
    for (i = 0; i <= n; i++) d[i][0] = i;
    for (j = 0; j <= m; j++) d[0][j] = j;
    for (i = 1; i <= n; i++) {
        for (j = 1; j <= m; j++) {
            size_t cost = s[i - 1] == t[j - 1] ? 0 : 1;
            size_t best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best) best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && s[i - 1] == t[j - 2] && s[i - 2] == t[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[n][m];
}

const char *qs_closest(const char *key, const char *const *known)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1, limit = strlen(key) / 3 + 1;
    if (limit < 2) limit = 2;
    for (; *known; known++) {
        size_t d = osa_distance(key, *known);
        if (d < best_d) {
            best_d = d;
            best = *known;
        }
    }
    return best_d <= limit ? best : NULL;
}

/* The key as Lua source would show it: control bytes (NUL included) and
 * quotes escaped, cut at 80 bytes. */
static void printable_key(const char *name, size_t len, char *out, size_t outsz)
{
    size_t i, o = 0;
    for (i = 0; i < len && o + 5 < outsz && i < 80; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch < 0x20 || ch == 0x7f || ch == '\\' || ch == '\'')
            o += (size_t)snprintf(out + o, outsz - o, ch == '\\' || ch == '\'' ? "\\%c" : "\\%u", ch);
        else
            out[o++] = (char)ch;
    }
    out[o] = '\0';
}

void qs_check_keys(const qs_args *a, int argidx, int idx, const char *what,
                   const char *const *known)
{
    qs_check_keys_seen(a, argidx, idx, what, known);
}

unsigned long long qs_check_keys_seen(const qs_args *a, int argidx, int idx, const char *what,
                                      const char *const *known)
{
    lua_State *L = a->L;
    unsigned long long seen = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        const char *const *k;
        const char *name, *hint;
        char shown[96];
        size_t len;
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            qs_argerror(a, argidx, "%s keys must be strings, got a %s key", what,
                        luaL_typename(L, -1));
        }
        name = lua_tolstring(L, -1, &len);
        /* byte for byte: "retries\0x" is not "retries" */
        for (k = known; *k; k++)
            if (strlen(*k) == len && memcmp(*k, name, len) == 0) break;
        if (*k) {
            if (k - known < 64) seen |= 1ULL << (k - known);
            continue;
        }
        printable_key(name, len, shown, sizeof shown);
        /* a key with a NUL byte reads as a known name cut short: no suggestion */
        if (strlen(name) != len)
            qs_argerror(a, argidx, "unknown %s '%s' (the key holds a NUL byte)", what, shown);
        hint = qs_closest(name, known);
        if (hint)
            qs_argerror(a, argidx, "unknown %s '%s'; did you mean '%s'?", what, shown, hint);
        qs_argerror(a, argidx, "unknown %s '%s'", what, shown);
    }
    return seen;
}
