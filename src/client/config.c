/* Client configuration from the qstash.new{} table and the environment
 * (see design.md, "Client configuration"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h> /* the version, for the default User-Agent */
#include <lauxlib.h>
#include <math.h>
#include "client/config.h"
#include "core/errors.h"
#include "core/url.h"

static const char *const config_keys[] = {
    "token", "base_url", "dev", "timeout", "connect_timeout", "retry", "token_in_query",
    "user_agent", "ca_file", "proxy", "max_response_bytes", "http_version", "call_timeout",
    "max_requests", NULL};
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

/* QStash's regions, as QSTASH_REGION and the Upstash-Region header name them
 * once '-' is read as '_' and letters are upper-cased (qstash-js
 * multi-region/utils.ts). Only these select <REGION>_* variables, so a
 * header value never chooses which variable is read. */
static const char *const regions[] = {"EU_CENTRAL_1", "US_EAST_1", NULL};

const char *qs_config_region(const char *value, size_t len)
{
    int r;
    if (!value) return NULL;
    for (r = 0; regions[r]; r++) {
        const char *name = regions[r];
        size_t i;
        if (strlen(name) != len) continue;
        for (i = 0; i < len; i++) {
            unsigned char ch = (unsigned char)value[i];
            if (ch == '-') ch = '_';
            else if (ch >= 'a' && ch <= 'z') ch = (unsigned char)(ch - 'a' + 'A');
            if (ch != (unsigned char)name[i]) break;
        }
        if (i == len) return name;
    }
    return NULL;
}

int qs_config_dev_flag(const char *value)
{
    if (!value || !*value || strcmp(value, "0") == 0 || strcmp(value, "false") == 0) return 0;
    if (strcmp(value, "1") == 0 || strcmp(value, "true") == 0) return 1;
    return -1;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* The URL and token that the environment offers, always from one source:
 * dev mode's, else <REGION>_QSTASH_URL and <REGION>_QSTASH_TOKEN when
 * QSTASH_REGION names a region and both are set, else QSTASH_URL and
 * QSTASH_TOKEN (qstash-js multi-region/outgoing.ts). The table's token and
 * base_url replace members of this pair; a URL never gets the token of
 * another environment source. */
typedef struct {
    const char *url, *token; /* NULL when unset */
    char url_name[64];       /* the variable url came from, for errors */
    char dev_url[64];
    char looked[400];        /* for a missing token: where to put one */
} env_pair;

/* Fills p. Returns 0, or -1 with a config error pushed. */
static int env_credentials(lua_State *L, int dev, env_pair *p)
{
    const char *s, *region;
    memset(p, 0, sizeof *p);
    if (dev) {
        const char *port = env("QSTASH_DEV_PORT");
        long n = 8080;
        if (port) {
            char *end;
            errno = 0;
            n = strtol(port, &end, 10);
            if (errno || *end || n < 1 || n > 65535)
                return config_error(L, "QSTASH_DEV_PORT must be a port number (got '%.100s')", port);
        }
        snprintf(p->dev_url, sizeof p->dev_url, "http://127.0.0.1:%ld", n);
        p->url = p->dev_url;
        p->token = QS_DEV_TOKEN;
        snprintf(p->url_name, sizeof p->url_name, "the dev server URL");
        return 0;
    }
    s = env("QSTASH_REGION");
    region = s ? qs_config_region(s, strlen(s)) : NULL;
    if (region) {
        char un[64], tn[64];
        const char *url, *token;
        snprintf(un, sizeof un, "%s_QSTASH_URL", region);
        snprintf(tn, sizeof tn, "%s_QSTASH_TOKEN", region);
        url = env(un);
        token = env(tn);
        if (url && token) {
            p->url = url;
            p->token = token;
            snprintf(p->url_name, sizeof p->url_name, "%s", un);
            return 0;
        }
        snprintf(p->looked, sizeof p->looked,
                 "QSTASH_TOKEN, or both %s and %s (QSTASH_REGION is %s)", un, tn, region);
    } else if (s) {
        snprintf(p->looked, sizeof p->looked,
                 "QSTASH_TOKEN (QSTASH_REGION '%.64s' is not a region: EU_CENTRAL_1 or US_EAST_1)", s);
    } else {
        snprintf(p->looked, sizeof p->looked, "QSTASH_TOKEN");
    }
    p->url = env("QSTASH_URL");
    p->token = env("QSTASH_TOKEN");
    snprintf(p->url_name, sizeof p->url_name, "QSTASH_URL");
    return 0;
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
    env_pair pair;
    int dev = -1; /* -1: not given in the table */
    double timeout = 30, connect_timeout = 10;

    c->attempts = 4;
    c->base_delay = 0.2;
    c->max_delay = 5;
    c->max_response_bytes = 8LL * 1024 * 1024;
    c->call_timeout = 300;
    c->max_requests = 10000;

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
        opt_seconds(a, idx, idx, "call_timeout", &c->call_timeout, 0);
        lua_getfield(L, idx, "max_requests");
        if (!lua_isnil(L, -1)) {
            double v = lua_tonumber(L, -1);
            if (lua_type(L, -1) != LUA_TNUMBER || !(v >= 1 && v <= 1e9) || v != floor(v))
                qs_argerror(a, idx, "'max_requests' must be an integer from 1 to 1000000000");
            c->max_requests = (long)v;
        }
        lua_pop(L, 1);
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
        lua_getfield(L, idx, "http_version");
        if (!lua_isnil(L, -1)) {
            static const char *const versions[] = {"auto", "1.1", "2", NULL};
            const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
            int i;
            for (i = 0; v && versions[i] && strcmp(v, versions[i]) != 0; i++) {}
            if (!v || !versions[i]) qs_argerror(a, idx, "'http_version' must be \"1.1\", \"2\" or \"auto\"");
            c->http_version = (qs_http_version)i;
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
        dev = qs_config_dev_flag(s);
        if (dev < 0) return config_error(L, "QSTASH_DEV must be 1, true, 0 or false (got '%.100s')", s);
    }
    if (env_credentials(L, dev, &pair) != 0) return -1;
    if (!base_url && pair.url) {
        if ((why = check_base_url(pair.url)) != NULL) {
            char msg[256];
            snprintf(msg, sizeof msg, "%s %s", pair.url_name, why);
            return config_error(L, "%s", msg);
        }
        base_url = pair.url;
    }
    if (!token) token = pair.token;
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
                 pair.looked);
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
