/* The short path for flat JSON objects (see json_flat.h). Every check here
 * errs towards "not mine": whatever is left out goes to lua-cjson, so a
 * doubtful case costs time, never a different result. */
#include <string.h>
#include "core/json_flat.h"

/* lua-cjson's whitespace */
static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* A string at p (on its opening quote) without escapes, control bytes or
 * bytes outside printable ASCII: its bytes and the end past the closing
 * quote, or NULL. */
static const char *plain_string(const char *p, const char *end, const char **s, size_t *len)
{
    const char *q;
    if (p >= end || *p != '"') return NULL;
    for (q = ++p; q < end && *q != '"'; q++) {
        unsigned char ch = (unsigned char)*q;
        if (ch < 0x20 || ch > 0x7e || ch == '\\') return NULL;
    }
    if (q >= end) return NULL;
    *s = p;
    *len = (size_t)(q - p);
    return q + 1;
}

/* Whether p is where a value ends: a delimiter of the object or the end of
 * the input (lua-cjson would read a letter or digit there as a bad token). */
static int value_ends(const char *p, const char *end)
{
    return p >= end || *p == ',' || *p == '}' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r';
}

/* Pushes the value at p; the end past it, or NULL (nothing pushed). */
static const char *push_value(lua_State *L, const char *p, const char *end)
{
    const char *s;
    size_t len;
    if (p >= end) return NULL;
    if (*p == '"') {
        if (!(p = plain_string(p, end, &s, &len))) return NULL;
        lua_pushlstring(L, s, len);
        return p;
    }
    if (end - p >= 4 && memcmp(p, "true", 4) == 0 && value_ends(p + 4, end)) {
        lua_pushboolean(L, 1);
        return p + 4;
    }
    if (end - p >= 5 && memcmp(p, "false", 5) == 0 && value_ends(p + 5, end)) {
        lua_pushboolean(L, 0);
        return p + 5;
    }
    if (*p >= '0' && *p <= '9') {
        /* digits only: an integer below 2^53, an integer after normalising
         * (a number in Lua 5.1, as lua-cjson gives it there) */
        long long v = 0;
        int digits = 0;
        if (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9') return NULL; /* cjson refuses it */
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
            if (++digits > 15) return NULL;
            v = v * 10 + (*p - '0');
        }
        if (!value_ends(p, end)) return NULL; /* a fraction, an exponent, or junk */
#if LUA_VERSION_NUM >= 503
        lua_pushinteger(L, (lua_Integer)v);
#else
        lua_pushnumber(L, (lua_Number)v);
#endif
        return p;
    }
    return NULL; /* null, nested values, signs: lua-cjson's */
}

/* The hash size to make the table with. lua-cjson makes an empty table
 * and grows it key by key; for one or two keys, a table made with room for
 * them comes out the same (each key lands in an empty part of the same
 * size, in the same order) without the two resizes. Beyond two, the
 * resizes reinsert keys in another order than one by one, so it starts
 * empty as lua-cjson's does. The keys are counted by the colons outside
 * strings (a string with an escaped quote is never taken, so quotes
 * toggle exactly). */
static int small_object(const char *p, const char *end)
{
    int keys = 0, in_string = 0;
    for (; p < end; p++) {
        if (*p == '"') in_string = !in_string;
        else if (*p == ':' && !in_string && ++keys > 2) return 0;
    }
    return keys;
}

int qs_json_flat(lua_State *L, const char *s, size_t n)
{
    const char *p = s, *end = s + n, *key;
    size_t klen;
    int top = lua_gettop(L);
    p = skip_ws(p, end);
    if (p >= end || *p != '{' || !lua_checkstack(L, 3)) return 0;
    lua_createtable(L, 0, small_object(p, end));
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}') {
        p++;
    } else {
        for (;;) {
            if (!(p = plain_string(p, end, &key, &klen))) goto other;
            p = skip_ws(p, end);
            if (p >= end || *p != ':') goto other;
            lua_pushlstring(L, key, klen);
            if (!(p = push_value(L, skip_ws(p + 1, end), end))) goto other;
            lua_rawset(L, -3);
            p = skip_ws(p, end);
            if (p < end && *p == ',') {
                p = skip_ws(p + 1, end);
                continue;
            }
            if (p < end && *p == '}') {
                p++;
                break;
            }
            goto other;
        }
    }
    if (skip_ws(p, end) == end) return 1;
other:
    lua_settop(L, top);
    return 0;
}
