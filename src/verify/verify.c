/* qstash.verify{...}: checks an Upstash-Signature JWT against the raw request
 * body (see verify.h and the "Receiving" section of the design).
 *
 * Every intermediate value lives on the Lua stack (decoded parts are Lua
 * strings, the decode scratch space is a userdata), so no C memory is ever
 * held when an error is raised. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <limits.h>
#include <lua.h>
#include <lauxlib.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "base/compat.h"
#include "client/config.h"
#include "core/args.h"
#include "core/errors.h"
#include "core/response.h"
#include "verify/verify.h"


#define SHA256_LEN 32
#define SHA256_B64_LEN 43 /* base64url of 32 bytes, without padding */

/* Fixed stack slots. */
enum {
    A_PARAMS = 1,
    A_SIG,
    A_BODY,
    A_URL,
    A_CUR,
    A_NEXT,
    A_TOL,
    A_REGION,
    A_DEV,
    S_SCRATCH,
    S_HEADER_JSON,
    S_PAYLOAD_JSON,
    S_HEADER,
    S_PAYLOAD
};

static const char *const known_keys[] = {
    "signature", "body", "url", "current_signing_key", "next_signing_key", "clock_tolerance",
    "region", "dev", NULL
};

static const char B64URL[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* ---- base64url ---------------------------------------------------------- */

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/* Strict base64url (RFC 4648 section 5) decoding of in[0..n): only the
 * URL-safe alphabet, `=` padding either absent or exactly right, and unused
 * trailing bits zero (one canonical spelling per byte string). `out` must
 * hold at least n / 4 * 3 + 3 bytes. Returns 1 on success. */
static int b64url_decode(const char *in, size_t n, unsigned char *out, size_t *outlen)
{
    size_t m = n, pad, i, o = 0;
    unsigned long acc = 0;
    int bits = 0;
    while (m > 0 && in[m - 1] == '=') m--;
    pad = n - m;
    if (m % 4 == 1) return 0;
    if (pad > 0 && (pad > 2 || m % 4 == 0 || (m + pad) % 4 != 0)) return 0;
    for (i = 0; i < m; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0) return 0;
        acc = (acc << 6) | (unsigned long)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1UL << bits) - 1;
        }
    }
    if (acc != 0) return 0;
    *outlen = o;
    return 1;
}

/* base64url without padding; out must hold (n + 2) / 3 * 4 bytes. */
static size_t b64url_encode(const unsigned char *in, size_t n, char *out)
{
    size_t i, o = 0;
    for (i = 0; i + 2 < n; i += 3) {
        unsigned long v = ((unsigned long)in[i] << 16) | ((unsigned long)in[i + 1] << 8) | in[i + 2];
        out[o++] = B64URL[(v >> 18) & 63];
        out[o++] = B64URL[(v >> 12) & 63];
        out[o++] = B64URL[(v >> 6) & 63];
        out[o++] = B64URL[v & 63];
    }
    if (n - i == 1) {
        unsigned long v = (unsigned long)in[i] << 16;
        out[o++] = B64URL[(v >> 18) & 63];
        out[o++] = B64URL[(v >> 12) & 63];
    } else if (n - i == 2) {
        unsigned long v = ((unsigned long)in[i] << 16) | ((unsigned long)in[i + 1] << 8);
        out[o++] = B64URL[(v >> 18) & 63];
        out[o++] = B64URL[(v >> 12) & 63];
        out[o++] = B64URL[(v >> 6) & 63];
    }
    return o;
}

/* ---- failures ----------------------------------------------------------- */

/* Raises (or returns nil, err for the safe variant) a `signature` error. */
static int fail(lua_State *L, int safe, const char *reason, const char *message)
{
    qs_error_push(L, "signature", message);
    qs_error_setstr(L, "reason", reason, strlen(reason));
    return qs_error_finish(L, safe);
}

/* ---- arguments ---------------------------------------------------------- */

static void rawgetfield(lua_State *L, int idx, const char *k)
{
    idx = qs_absindex(L, idx);
    lua_pushstring(L, k);
    lua_rawget(L, idx);
}

/* Arguments are numbered as the caller wrote them: the params table is #1. */
static qs_args verify_args(lua_State *L)
{
    qs_args a;
    a.L = L;
    a.base = A_PARAMS;
    a.fname = "verify";
    return a;
}

static void check_string(lua_State *L, int idx, const char *name, int required, int nonempty)
{
    qs_args a = verify_args(L);
    int t = lua_type(L, idx);
    if (t == LUA_TNIL && !required) return;
    if (t != LUA_TSTRING)
        qs_argerror(&a, A_PARAMS, "field '%s' must be a %sstring (got %s)", name, nonempty ? "non-empty " : "",
                    lua_typename(L, t));
    if (nonempty && qs_rawlen(L, idx) == 0)
        qs_argerror(&a, A_PARAMS, "field '%s' must be a non-empty string", name);
}

static lua_Number check_tolerance(lua_State *L)
{
    lua_Number n;
    if (lua_isnil(L, A_TOL)) return 0;
    if (lua_type(L, A_TOL) == LUA_TNUMBER) {
        n = lua_tonumber(L, A_TOL);
        /* rejects negatives, NaN and infinities */
        if (n >= 0 && n - n == 0) return n;
    }
    {
        qs_args a = verify_args(L);
        qs_argerror(&a, A_PARAMS, "field 'clock_tolerance' must be a finite number >= 0 (seconds)");
    }
    return 0;
}

static const char *nonempty_env(const char *name)
{
    const char *v = getenv(name);
    return (v && *v) ? v : NULL;
}

static void set_keys(lua_State *L, const char *cur, const char *next)
{
    if (cur) lua_pushstring(L, cur); else lua_pushnil(L);
    lua_replace(L, A_CUR);
    if (next) lua_pushstring(L, next); else lua_pushnil(L);
    lua_replace(L, A_NEXT);
}

/* Dev mode: the call's `dev` when given, else QSTASH_DEV. A QSTASH_DEV that
 * is neither on nor off raises a `config` error, in both variants: the
 * receiver is misconfigured whatever the request. */
static int dev_mode(lua_State *L)
{
    const char *s;
    int dev;
    if (lua_isboolean(L, A_DEV)) return lua_toboolean(L, A_DEV);
    s = getenv("QSTASH_DEV");
    dev = qs_config_dev_flag(s);
    if (dev < 0) {
        qs_error_push(L, "config",
                      lua_pushfstring(L, "QSTASH_DEV must be 1, true, 0 or false (got '%s')", s));
        lua_error(L);
    }
    return dev;
}

/* The canonical region named by the call's `region` (the delivery's
 * Upstash-Region header), or NULL when absent or not a region. */
static const char *delivery_region(lua_State *L)
{
    size_t n;
    const char *s;
    if (lua_isnil(L, A_REGION)) return NULL;
    s = lua_tolstring(L, A_REGION, &n);
    return qs_config_region(s, n);
}

/* The signing keys, in the order of qstash-js multi-region/incoming.ts:
 * 1. dev mode: the emulator's public keys (they override keys in the call);
 * 2. the keys given in the call (both, or the one given);
 * 3. when QSTASH_REGION names a region and the delivery's region is a
 *    region: <REGION>_QSTASH_CURRENT_SIGNING_KEY and _NEXT_ of the delivery's
 *    region, only when both are set;
 * 4. QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY (either will do).
 * Keys never mix sources. Empty variables count as unset. None at all raises. */
static void resolve_keys(lua_State *L)
{
    const char *home, *region = NULL, *cur, *next;
    char cur_name[64], next_name[64];
    if (dev_mode(L)) {
        set_keys(L, QS_DEV_CURRENT_SIGNING_KEY, QS_DEV_NEXT_SIGNING_KEY);
        return;
    }
    if (!lua_isnil(L, A_CUR) || !lua_isnil(L, A_NEXT)) return;
    home = nonempty_env("QSTASH_REGION");
    home = home ? qs_config_region(home, strlen(home)) : NULL;
    if (home && (region = delivery_region(L)) != NULL) {
        snprintf(cur_name, sizeof cur_name, "%s_QSTASH_CURRENT_SIGNING_KEY", region);
        snprintf(next_name, sizeof next_name, "%s_QSTASH_NEXT_SIGNING_KEY", region);
        cur = nonempty_env(cur_name);
        next = nonempty_env(next_name);
        if (cur && next) {
            set_keys(L, cur, next);
            return;
        }
    }
    cur = nonempty_env("QSTASH_CURRENT_SIGNING_KEY");
    next = nonempty_env("QSTASH_NEXT_SIGNING_KEY");
    if (cur || next) {
        set_keys(L, cur, next);
        return;
    }
    {
        qs_args a = verify_args(L);
        if (home && region)
            qs_argerror(&a, A_PARAMS,
                        "no signing key: pass current_signing_key and next_signing_key, set "
                        "QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY, or set both %s and %s "
                        "(the delivery's region)", cur_name, next_name);
        if (home)
            qs_argerror(&a, A_PARAMS,
                        "no signing key: pass current_signing_key and next_signing_key, set "
                        "QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY, or, for deliveries that "
                        "name their region (EU_CENTRAL_1, US_EAST_1), set both "
                        "<REGION>_QSTASH_CURRENT_SIGNING_KEY and <REGION>_QSTASH_NEXT_SIGNING_KEY");
        qs_argerror(&a, A_PARAMS,
                    "no signing key: pass current_signing_key and next_signing_key, or set "
                    "QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY");
    }
}

/* ---- JSON (lua-cjson, through the module's shared decoder) --------------- */

/* Decodes the JSON text at json_idx. Pushes the normalized table and returns
 * 1 when it is a JSON object; pushes nothing and returns 0 otherwise. */
static int decode_object(lua_State *L, int json_idx)
{
    size_t n, i = 0;
    const char *s = lua_tolstring(L, json_idx, &n);
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    if (i == n || s[i] != '{') return 0; /* arrays, scalars, empty text */
    /* the same decoder and normalisation as every response (no cjson.null,
     * integral numbers as integers), so both read numbers alike */
    if (qs_json_decode(L, s, n) != 0 || !lua_istable(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

/* ---- checks ------------------------------------------------------------- */

/* Decodes part [p, p + n) into the scratch userdata and pushes it as a string. */
static int push_part(lua_State *L, const char *p, size_t n)
{
    unsigned char *scratch = (unsigned char *)lua_touserdata(L, S_SCRATCH);
    size_t len;
    if (!b64url_decode(p, n, scratch, &len)) return 0;
    lua_pushlstring(L, (const char *)scratch, len);
    return 1;
}

static int hmac_matches(lua_State *L, int key_idx, const char *input, size_t input_len,
                        const unsigned char *sig)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    size_t key_len;
    const char *key;
    if (lua_isnil(L, key_idx)) return 0;
    key = lua_tolstring(L, key_idx, &key_len);
    if (key_len > INT_MAX) return 0;
    if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)input, input_len, mac, &mac_len))
        luaL_error(L, "qstash.verify: HMAC-SHA256 failed in libcrypto");
    if (mac_len != SHA256_LEN) luaL_error(L, "qstash.verify: HMAC-SHA256 gave %d bytes", (int)mac_len);
    return CRYPTO_memcmp(mac, sig, SHA256_LEN) == 0;
}

static size_t strip_padding(const char *s, size_t n)
{
    while (n > 0 && s[n - 1] == '=') n--;
    return n;
}

int qs_verify(lua_State *L)
{
    int safe = lua_toboolean(L, lua_upvalueindex(1));
    const char *tok, *dot1, *dot2, *end, *s;
    size_t tok_len, n, body_len;
    lua_Number tol, now;
    unsigned char digest[SHA256_LEN];
    unsigned int digest_len = 0;
    char expected[SHA256_B64_LEN + 4];

    qs_args a = verify_args(L);
    if (lua_type(L, A_PARAMS) != LUA_TTABLE)
        qs_argerror(&a, A_PARAMS, "table expected, got %s", luaL_typename(L, A_PARAMS));
    lua_settop(L, A_PARAMS);
    luaL_checkstack(L, 40, "qstash.verify");
    qs_check_keys(&a, A_PARAMS, A_PARAMS, "parameter", known_keys);
    rawgetfield(L, A_PARAMS, "signature");
    rawgetfield(L, A_PARAMS, "body");
    rawgetfield(L, A_PARAMS, "url");
    rawgetfield(L, A_PARAMS, "current_signing_key");
    rawgetfield(L, A_PARAMS, "next_signing_key");
    rawgetfield(L, A_PARAMS, "clock_tolerance");
    rawgetfield(L, A_PARAMS, "region");
    rawgetfield(L, A_PARAMS, "dev");
    check_string(L, A_SIG, "signature", 0, 0);
    check_string(L, A_BODY, "body", 1, 0);
    check_string(L, A_URL, "url", 0, 0);
    check_string(L, A_CUR, "current_signing_key", 0, 1);
    check_string(L, A_NEXT, "next_signing_key", 0, 1);
    check_string(L, A_REGION, "region", 0, 0);
    if (!lua_isnil(L, A_DEV) && !lua_isboolean(L, A_DEV))
        qs_argerror(&a, A_PARAMS, "field 'dev' must be a boolean (got %s)", luaL_typename(L, A_DEV));
    tol = check_tolerance(L);
    /* before the signature: a receiver without keys fails every request */
    resolve_keys(L);

    /* 1. a signature: nil or "" is what a request without the header gives */
    if (lua_isnil(L, A_SIG) || qs_rawlen(L, A_SIG) == 0)
        return fail(L, safe, "missing", "no signature (the Upstash-Signature header is missing or empty)");

    /* 2. three base64url parts, header and payload JSON objects */
    tok = lua_tolstring(L, A_SIG, &tok_len);
    if (tok_len > QS_VERIFY_MAX_TOKEN)
        return fail(L, safe, "malformed",
                    lua_pushfstring(L, "token longer than %d bytes", (int)QS_VERIFY_MAX_TOKEN));
    end = tok + tok_len;
    dot1 = memchr(tok, '.', tok_len);
    dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1)) : NULL;
    if (!dot1 || !dot2 || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)))
        return fail(L, safe, "malformed", "token does not have three dot-separated parts");
    qs_newudata(L, tok_len / 4 * 3 + 3); /* S_SCRATCH */
    if (!push_part(L, tok, (size_t)(dot1 - tok))) /* S_HEADER_JSON */
        return fail(L, safe, "malformed", "header is not base64url");
    if (!push_part(L, dot1 + 1, (size_t)(dot2 - dot1 - 1))) /* S_PAYLOAD_JSON */
        return fail(L, safe, "malformed", "payload is not base64url");
    if (!push_part(L, dot2 + 1, (size_t)(end - dot2 - 1))) /* S_SIG_BYTES, below */
        return fail(L, safe, "malformed", "signature part is not base64url");
    /* the tables go below the signature bytes, into S_HEADER and S_PAYLOAD */
    if (!decode_object(L, S_HEADER_JSON)) return fail(L, safe, "malformed", "header is not a JSON object");
    lua_insert(L, S_HEADER);
    if (!decode_object(L, S_PAYLOAD_JSON)) return fail(L, safe, "malformed", "payload is not a JSON object");
    lua_insert(L, S_PAYLOAD);
    /* stack: ..., S_HEADER, S_PAYLOAD, signature bytes */

    /* 3. alg */
    rawgetfield(L, S_HEADER, "alg");
    s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
    if (!s || n != 5 || memcmp(s, "HS256", 5) != 0)
        return fail(L, safe, "bad_signature", "token alg is not HS256");
    lua_pop(L, 1);

    /* 4. HMAC-SHA256 with the current key, else the next key */
    {
        const unsigned char *sig = (const unsigned char *)lua_tolstring(L, S_PAYLOAD + 1, &n);
        size_t input_len = (size_t)(dot2 - tok);
        if (n != SHA256_LEN || (!hmac_matches(L, A_CUR, tok, input_len, sig) &&
                                !hmac_matches(L, A_NEXT, tok, input_len, sig)))
            return fail(L, safe, "bad_signature", "signature does not match the current or next signing key");
    }

    /* 5. issuer */
    rawgetfield(L, S_PAYLOAD, "iss");
    s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
    if (!s || n != 7 || memcmp(s, "Upstash", 7) != 0)
        return fail(L, safe, "wrong_issuer", "token issuer (iss) is not Upstash");
    lua_pop(L, 1);

    /* 6. exp: valid while now < exp + tolerance (jose, PyJWT and golang-jwt
     * reject at exactly exp + tolerance); 7. nbf: valid from nbf - tolerance */
    now = (lua_Number)time(NULL);
    rawgetfield(L, S_PAYLOAD, "exp");
    if (lua_type(L, -1) != LUA_TNUMBER) return fail(L, safe, "expired", "token has no numeric exp claim");
    if (!(now < lua_tonumber(L, -1) + tol))
        return fail(L, safe, "expired", lua_pushfstring(L, "token expired (exp %f, now %f, tolerance %f)",
                                                        lua_tonumber(L, -1), now, tol));
    lua_pop(L, 1);
    rawgetfield(L, S_PAYLOAD, "nbf");
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            return fail(L, safe, "not_yet_valid", "token nbf claim is not a number");
        if (!(now >= lua_tonumber(L, -1) - tol))
            return fail(L, safe, "not_yet_valid",
                        lua_pushfstring(L, "token not valid before %f (now %f, tolerance %f)",
                                        lua_tonumber(L, -1), now, tol));
    }
    lua_pop(L, 1);

    /* 8. subject */
    if (!lua_isnil(L, A_URL)) {
        size_t url_len;
        const char *url = lua_tolstring(L, A_URL, &url_len);
        rawgetfield(L, S_PAYLOAD, "sub");
        s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
        if (!s || n != url_len || memcmp(s, url, n) != 0)
            return fail(L, safe, "url_mismatch", "token subject (sub) is not the given url");
        lua_pop(L, 1);
    }

    /* 9. body hash */
    s = lua_tolstring(L, A_BODY, &body_len);
    if (!EVP_Digest(s, body_len, digest, &digest_len, EVP_sha256(), NULL) || digest_len != SHA256_LEN)
        return luaL_error(L, "qstash.verify: SHA-256 failed in libcrypto");
    b64url_encode(digest, SHA256_LEN, expected);
    rawgetfield(L, S_PAYLOAD, "body");
    s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
    if (s) n = strip_padding(s, n);
    if (!s || n != SHA256_B64_LEN || CRYPTO_memcmp(s, expected, SHA256_B64_LEN) != 0)
        return fail(L, safe, "body_mismatch", "token body claim is not the SHA-256 of the body");
    lua_pop(L, 1);

    lua_pushvalue(L, S_PAYLOAD);
    return 1;
}
