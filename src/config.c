/* Client configuration from the qstash.new{} table and the environment
 * (see design.md, "Client configuration"). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <math.h>
#include "config.h"
#include "errors.h"
#include "url.h"

static const char *const config_keys[] = {
    "token", "base_url", "dev", "timeout", "connect_timeout", "retry", "token_in_query",
    "user_agent", "ca_file", "proxy", "max_response_bytes", NULL};
static const char *const retry_keys[] = {"attempts", "base_delay", "max_delay", NULL};

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* Replaces *slot with a copy of s (raising on OOM: the client owns *slot). */
static void set_string(lua_State *L, char **slot, const char *s)
{
    char *p = s ? dupstr(s) : NULL;
    if (s && !p) luaL_error(L, "not enough memory");
    free(*slot);
    *slot = p;
}

static int has_ctl(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f) return 1;
    }
    return 0;
}

/* A base URL: http(s) with a host, no query, fragment or credentials, and
 * http:// only for a loopback host. NULL, or why not. */
static const char *check_base_url(const char *url)
{
    return qs_url_check(url, strlen(url),
                        QS_URL_NO_QUERY | QS_URL_NO_FRAGMENT | QS_URL_NO_USERINFO | QS_URL_LOOPBACK_HTTP);
}

/* Reads a table field as a positive number of seconds, or leaves *out alone when nil. */
static void opt_seconds(const qs_args *a, int argidx, int idx, const char *key, double *out,
                        int allow_zero)
{
    lua_State *L = a->L;
    lua_getfield(L, idx, key);
    if (!lua_isnil(L, -1)) {
        double v;
        if (lua_type(L, -1) != LUA_TNUMBER)
            qs_argerror(a, argidx, "'%s' must be a number of seconds", key);
        v = lua_tonumber(L, -1);
        if (!(v > 0 || (allow_zero && v == 0)) || v > 86400.0 * 365)
            qs_argerror(a, argidx, "'%s' must be a %s number of seconds", key,
                        allow_zero ? "non-negative" : "positive");
        *out = v;
    }
    lua_pop(L, 1);
}

/* The string at table[key] (NULL for nil), pushed on the stack (nil too). */
static const char *opt_string(const qs_args *a, int idx, const char *key)
{
    lua_State *L = a->L;
    const char *s = NULL;
    lua_getfield(L, idx, key);
    if (!lua_isnil(L, -1)) {
        size_t n;
        if (lua_type(L, -1) != LUA_TSTRING) qs_argerror(a, idx, "'%s' must be a string", key);
        s = lua_tolstring(L, -1, &n);
        if (n == 0) qs_argerror(a, idx, "'%s' must not be empty", key);
        if (has_ctl(s, n)) qs_argerror(a, idx, "'%s' must not contain control bytes", key);
    }
    /* left on the stack, which keeps it alive: a table with an __index
     * metamethod may hand out strings that nothing else holds */
    return s;
}

static int config_error(lua_State *L, const char *fmt, const char *detail)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, detail);
    qs_error_push(L, "config", msg);
    return -1;
}

/* Normalises QSTASH_REGION ("us-east-1" -> "US_EAST_1"). 0 ok, -1 invalid. */
static int region_prefix(const char *region, char *out, size_t outsz)
{
    size_t i, n = strlen(region);
    if (n == 0 || n >= outsz) return -1;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)region[i];
        if (ch == '-') ch = '_';
        else if (isalnum(ch) || ch == '_') ch = (unsigned char)toupper(ch);
        else return -1;
        out[i] = (char)ch;
    }
    out[n] = '\0';
    return 0;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Whether any variable libcurl reads for a proxy of an http(s) URL is set
 * (it ignores upper-case HTTP_PROXY). Read once: with none, every request
 * says "no proxy" itself instead of libcurl looking them all up each time. */
static int any_proxy_variable(void)
{
    static const char *const names[] = {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy",
                                        "ALL_PROXY", NULL};
    int i;
    for (i = 0; names[i]; i++)
        if (getenv(names[i])) return 1;
    return 0;
}

int qs_config_load(lua_State *L, qs_conf *c, int idx, const qs_args *a)
{
    const char *token = NULL, *base_url = NULL, *user_agent = NULL, *s, *why;
    char looked[512] = "", url_buf[64], region[64], rt[96], ru[96];
    int dev = -1; /* -1: not given in the table */
    double timeout = 30, connect_timeout = 10;

    c->attempts = 4;
    c->base_delay = 0.2;
    c->max_delay = 5;
    c->max_response_bytes = 8LL * 1024 * 1024;

    if (idx) {
        qs_check_keys(a, idx, idx, "config key", config_keys);
        token = opt_string(a, idx, "token");
        base_url = opt_string(a, idx, "base_url");
        lua_getfield(L, idx, "dev");
        if (!lua_isnil(L, -1)) {
            if (lua_type(L, -1) != LUA_TBOOLEAN) qs_argerror(a, idx, "'dev' must be a boolean");
            dev = lua_toboolean(L, -1);
        }
        lua_pop(L, 1);
        opt_seconds(a, idx, idx, "timeout", &timeout, 0);
        opt_seconds(a, idx, idx, "connect_timeout", &connect_timeout, 0);
        lua_getfield(L, idx, "retry");
        if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
            c->attempts = 1;
        } else if (lua_type(L, -1) == LUA_TTABLE) {
            int r = lua_gettop(L);
            double attempts = c->attempts;
            qs_check_keys(a, idx, r, "retry key", retry_keys);
            lua_getfield(L, r, "attempts");
            if (!lua_isnil(L, -1)) {
                attempts = lua_tonumber(L, -1);
                /* the range first: no conversion of NaN or 1e300 */
                if (lua_type(L, -1) != LUA_TNUMBER || !(attempts >= 1 && attempts <= 100) ||
                    attempts != floor(attempts))
                    qs_argerror(a, idx, "'retry.attempts' must be an integer from 1 to 100");
            }
            lua_pop(L, 1);
            c->attempts = (int)attempts;
            opt_seconds(a, idx, r, "base_delay", &c->base_delay, 1);
            opt_seconds(a, idx, r, "max_delay", &c->max_delay, 1);
        } else if (!lua_isnil(L, -1)) {
            qs_argerror(a, idx, "'retry' must be a table or false");
        }
        lua_pop(L, 1);
        lua_getfield(L, idx, "token_in_query");
        if (!lua_isnil(L, -1)) {
            if (lua_type(L, -1) != LUA_TBOOLEAN) qs_argerror(a, idx, "'token_in_query' must be a boolean");
            c->token_in_query = lua_toboolean(L, -1);
        }
        lua_pop(L, 1);
        lua_getfield(L, idx, "max_response_bytes");
        if (!lua_isnil(L, -1)) {
            double v = lua_tonumber(L, -1);
            if (lua_type(L, -1) != LUA_TNUMBER || !(v >= 1 && v <= 1e15) || v != floor(v))
                qs_argerror(a, idx, "'max_response_bytes' must be a positive integer");
            c->max_response_bytes = (long long)v;
        }
        lua_pop(L, 1);
        user_agent = opt_string(a, idx, "user_agent");
        set_string(L, &c->ca_file, opt_string(a, idx, "ca_file"));
        set_string(L, &c->proxy, opt_string(a, idx, "proxy"));
        if (base_url && (why = check_base_url(base_url)) != NULL)
            qs_argerror(a, idx, "'base_url' %s", why);
    }
    /* up to the next millisecond: a positive limit never rounds to 0, which
     * libcurl reads as "no limit" */
    c->timeout_ms = (long)ceil(timeout * 1000);
    c->connect_timeout_ms = (long)ceil(connect_timeout * 1000);

    /* dev mode: the table, else QSTASH_DEV */
    if (dev < 0) {
        s = getenv("QSTASH_DEV");
        if (!s || !*s || strcmp(s, "0") == 0 || strcmp(s, "false") == 0) dev = 0;
        else if (strcmp(s, "1") == 0 || strcmp(s, "true") == 0) dev = 1;
        else return config_error(L, "QSTASH_DEV must be 1, true, 0 or false (got '%.100s')", s);
    }
    if (dev) {
        const char *port = env("QSTASH_DEV_PORT");
        long p = 8080;
        if (port) {
            char *end;
            errno = 0;
            p = strtol(port, &end, 10);
            if (errno || *end || p < 1 || p > 65535)
                return config_error(L, "QSTASH_DEV_PORT must be a port number (got '%.100s')", port);
        }
        snprintf(url_buf, sizeof url_buf, "http://127.0.0.1:%ld", p);
        if (!base_url) base_url = url_buf;
        if (!token) token = QS_DEV_TOKEN;
    }

    /* the region's variables, then the plain ones */
    s = env("QSTASH_REGION");
    if (s && !dev && (!token || !base_url)) {
        if (region_prefix(s, region, sizeof region))
            return config_error(L, "QSTASH_REGION is not a region name (got '%.100s')", s);
        snprintf(rt, sizeof rt, "%s_QSTASH_TOKEN", region);
        snprintf(ru, sizeof ru, "%s_QSTASH_URL", region);
        if (!token) {
            token = env(rt);
            snprintf(looked, sizeof looked, "%s, ", rt);
        }
        if (!base_url && (base_url = env(ru)) != NULL && (why = check_base_url(base_url)))
            return config_error(L, "%s is not a usable URL", ru);
    }
    if (!token) {
        token = env("QSTASH_TOKEN");
        strcat(looked, "QSTASH_TOKEN");
    }
    if (!base_url) {
        base_url = env("QSTASH_URL");
        if (base_url && (why = check_base_url(base_url)) != NULL) {
            char msg[256];
            snprintf(msg, sizeof msg, "QSTASH_URL %s", why);
            return config_error(L, "%s", msg);
        }
    }
    if (!base_url) base_url = QS_DEFAULT_URL;
    if (token && has_ctl(token, strlen(token)))
        return config_error(L, "%s", "the QStash token contains control bytes");

    set_string(L, &c->token, token);
    set_string(L, &c->base_url, base_url);
    {
        size_t n = strlen(c->base_url);
        if (n > 0 && c->base_url[n - 1] == '/') c->base_url[n - 1] = '\0';
    }
    if (!token) {
        char msg[700];
        snprintf(msg, sizeof msg,
                 "no QStash token: pass token to qstash.new{...}, set dev = true, or set %s",
                 looked);
        set_string(L, &c->missing_token, msg);
    } else {
        size_t n = strlen(token) + sizeof "Authorization: Bearer ";
        free(c->auth_header);
        c->auth_header = malloc(n);
        if (!c->auth_header) return luaL_error(L, "not enough memory");
        snprintf(c->auth_header, n, "Authorization: Bearer %s", token);
    }
    c->https = strncmp(c->base_url, "https://", 8) == 0;
    c->no_proxy = !c->proxy && !any_proxy_variable();
    {
        const char *host = strstr(c->base_url, "://"), *slash = strchr(host + 3, '/');
        c->origin_len = slash ? (size_t)(slash - c->base_url) : strlen(c->base_url);
    }
    {
        char ua[128];
        size_t n;
        if (!user_agent) {
            snprintf(ua, sizeof ua, "lua-qstash/%s libcurl/%s", QS_VERSION,
                     curl_version_info(CURLVERSION_NOW)->version);
            user_agent = ua;
        }
        n = strlen(user_agent) + sizeof "User-Agent: ";
        free(c->ua_header);
        c->ua_header = malloc(n);
        if (!c->ua_header) return luaL_error(L, "not enough memory");
        snprintf(c->ua_header, n, "User-Agent: %s", user_agent);
    }
    return 0;
}
