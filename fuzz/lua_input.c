/* Shared by the Lua-table harnesses (#included, not a harness itself):
 * turns fuzz bytes into Lua values. The including file defines KEY_DICT and
 * STR_DICT, arrays of meaningful key and string choices, so that every known
 * option and filter name, and values close to the valid ones, are one byte
 * away; raw bytes (CR, LF, NUL, high bytes) come in through the other choices.
 * Running out of input reads zeros, which ends every loop. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <lua.h>

typedef struct rd {
    const uint8_t *p;
    size_t n;
} rd;

static unsigned u8(rd *r)
{
    if (!r->n) return 0;
    r->n--;
    return *r->p++;
}

static uint64_t u64(rd *r)
{
    uint64_t v = 0;
    int i;
    for (i = 0; i < 8; i++) v = (v << 8) | u8(r);
    return v;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void read_value(lua_State *L, rd *r, int depth);

static void push_key(lua_State *L, rd *r)
{
    unsigned k = u8(r);
    if (k < COUNT(KEY_DICT)) {
        lua_pushstring(L, KEY_DICT[k]);
    } else if (k < 200) {
        /* a known key with extra raw bytes appended (e.g. "retries\0") */
        const char *base = KEY_DICT[k % COUNT(KEY_DICT)];
        char tmp[96];
        size_t bl = strlen(base), extra = u8(r) % 4, i;
        memcpy(tmp, base, bl);
        for (i = 0; i < extra; i++) tmp[bl + i] = (char)u8(r);
        lua_pushlstring(L, tmp, bl + extra);
    } else if (k < 215) {
        lua_pushinteger(L, (lua_Integer)(k - 200)); /* array-ish or bad keys */
    } else if (k < 218) {
        lua_pushboolean(L, k & 1);
    } else {
        char tmp[80]; /* past the 63 bytes "did you mean" compares */
        size_t n = u8(r) % sizeof tmp, i;
        for (i = 0; i < n; i++) tmp[i] = (char)u8(r);
        lua_pushlstring(L, tmp, n);
    }
}

static void push_string(lua_State *L, rd *r)
{
    unsigned k = u8(r);
    if (k < 128) {
        lua_pushstring(L, STR_DICT[k % COUNT(STR_DICT)]);
    } else if (k < 192) {
        /* dictionary string plus raw bytes: "10s" + "\n", URLs + control bytes */
        const char *base = STR_DICT[k % COUNT(STR_DICT)];
        char tmp[128];
        size_t bl = strlen(base), extra = u8(r) % 8, i;
        memcpy(tmp, base, bl);
        for (i = 0; i < extra; i++) tmp[bl + i] = (char)u8(r);
        lua_pushlstring(L, tmp, bl + extra);
    } else {
        char tmp[96];
        size_t n = u8(r) % sizeof tmp, i;
        for (i = 0; i < n; i++) tmp[i] = (char)u8(r);
        lua_pushlstring(L, tmp, n);
    }
}

static void push_integer(lua_State *L, rd *r)
{
    static const lua_Integer special[] = {0, 1, 3, 10, 100, 999999999999LL, 1000000000000LL,
                                          1725323658779LL, 9007199254740991LL,
                                          9007199254740992LL, INT64_MAX, INT64_MIN, -1,
                                          1000000000000LL + 1, 1700000000};
    unsigned k = u8(r);
    if (k < 128) lua_pushinteger(L, (lua_Integer)(int8_t)u8(r));
    else if (k < 240) lua_pushinteger(L, special[k % COUNT(special)]);
    else lua_pushinteger(L, (lua_Integer)u64(r));
}

static void push_float(lua_State *L, rd *r)
{
    static const double special[] = {3.0, 2.5, -0.0, 0.0, -1.0, 1e12, 1e12 + 1, 1e13,
                                     9007199254740991.0, 9007199254740992.0, 1e300, 0.5,
                                     999999999999.0, 1000000000000.0, 1e18, 1e19};
    unsigned k = u8(r);
    if (k < 200) {
        lua_pushnumber(L, special[k % COUNT(special)]);
    } else if (k < 210) {
        lua_pushnumber(L, k & 1 ? HUGE_VAL : -HUGE_VAL);
    } else if (k < 220) {
        lua_pushnumber(L, NAN);
    } else {
        uint64_t bits = u64(r);
        double d;
        memcpy(&d, &bits, sizeof d);
        lua_pushnumber(L, d);
    }
}

/* A table of `n` entries with fuzz-chosen keys and values. */
static void read_table(lua_State *L, rd *r, int depth)
{
    unsigned n = u8(r) % 8, i;
    lua_createtable(L, 0, (int)n);
    for (i = 0; i < n && r->n; i++) {
        push_key(L, r);
        read_value(L, r, depth + 1);
        if (lua_isnil(L, -1)) lua_pop(L, 2);
        else lua_rawset(L, -3);
    }
}

/* An array 1..n (n may be 0). */
static void read_array(lua_State *L, rd *r, int depth)
{
    unsigned n = u8(r) % 6, i;
    lua_createtable(L, (int)n, 0);
    for (i = 1; i <= n; i++) {
        if (u8(r) < 200) push_string(L, r);
        else read_value(L, r, depth + 1);
        if (lua_isnil(L, -1)) lua_pop(L, 1);
        else lua_rawseti(L, -2, (lua_Integer)i);
    }
}

static void read_value(lua_State *L, rd *r, int depth)
{
    unsigned t = u8(r) % 10;
    if (depth > 4 && (t == 6 || t == 7)) t = 3;
    switch (t) {
    case 0:
    case 1: push_integer(L, r); break;
    case 2: push_float(L, r); break;
    case 3:
    case 4:
    case 5: push_string(L, r); break;
    case 6: read_table(L, r, depth); break;
    case 7: read_array(L, r, depth); break;
    case 8: lua_pushboolean(L, u8(r) & 1); break;
    default: lua_pushnil(L); break;
    }
}

