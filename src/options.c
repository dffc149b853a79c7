/* Options -> QStash configuration headers, validated before anything is
 * sent (design.md, "Options"). Header lines go into a client-owned buffer,
 * so an argument error raised half-way leaks nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <lauxlib.h>
#include "compat.h"
#include "options.h"

const char *const qs_option_keys[] = {
    "retries", "retry_delay", "delay", "not_before", "timeout", "method", "callback",
    "failure_callback", "callback_options", "failure_callback_options", "deduplication_id",
    "content_based_deduplication", "flow_control", "label", "redact", "headers",
    "content_type", NULL};
const char *const qs_callback_option_keys[] = {"method", "timeout", "retries", "retry_delay",
                                            "headers", NULL};
const char *const qs_flow_control_keys[] = {"key", "parallelism", "rate", "period", NULL};
const char *const qs_redact_keys[] = {"body", "header", NULL};

typedef struct ctx {
    const qs_args *a;
    int argidx;     /* the options argument, for messages */
    qs_buf *out;
} ctx;

static int is_tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

void qs_opts_add_header(const qs_args *a, int argidx, qs_buf *out, const char *prefix,
                        const char *name, size_t nlen, const char *value, size_t vlen,
                        const char *what)
{
    size_t i;
    if (nlen == 0) qs_argerror(a, argidx, "%s: header name must not be empty", what);
    for (i = 0; i < nlen; i++)
        if (!is_tchar((unsigned char)name[i]))
            qs_argerror(a, argidx, "%s: header name '%s' is not a valid token", what, name);
    for (i = 0; i < vlen; i++)
        if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0')
            qs_argerror(a, argidx, "%s: header value must not contain CR, LF or NUL", what);
    if (qs_buf_adds(out, prefix) || qs_buf_add(out, name, nlen) || qs_buf_add(out, ": ", 2) ||
        qs_buf_add(out, value, vlen) || qs_buf_addc(out, '\0'))
        luaL_error(a->L, "not enough memory");
}

static void add(ctx *x, const char *name, const char *value, const char *what)
{
    qs_opts_add_header(x->a, x->argidx, x->out, "", name, strlen(name), value, strlen(value), what);
}

/* An integral number (an integral float such as 3.0 is fine) >= min. */
static long long get_integer(ctx *x, int idx, const char *what, long long min)
{
    lua_State *L = x->a->L;
    double d;
    if (lua_type(L, idx) != LUA_TNUMBER)
        qs_argerror(x->a, x->argidx, "option '%s' must be an integer >= %lld", what, min);
    d = lua_tonumber(L, idx);
    if (d != floor(d) || d < (double)min || d > 9007199254740991.0)
        qs_argerror(x->a, x->argidx, "option '%s' must be an integer >= %lld", what, min);
    return (long long)d;
}

static const char *get_string(ctx *x, int idx, const char *what, size_t *len)
{
    lua_State *L = x->a->L;
    const char *s;
    size_t i, n;
    if (lua_type(L, idx) != LUA_TSTRING)
        qs_argerror(x->a, x->argidx, "option '%s' must be a string, got %s", what,
                    luaL_typename(L, idx));
    s = lua_tolstring(L, idx, &n);
    if (n == 0) qs_argerror(x->a, x->argidx, "option '%s' must not be empty", what);
    for (i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            qs_argerror(x->a, x->argidx, "option '%s' must not contain CR, LF or NUL", what);
    if (len) *len = n;
    return s;
}

/* Whole seconds (N -> "Ns") or a duration string like "1d10h30m" over `units`. */
static void get_duration(ctx *x, int idx, const char *what, const char *units, char *out, size_t outsz)
{
    lua_State *L = x->a->L;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        double d = lua_tonumber(L, idx);
        if (d != floor(d) || d < 0 || d > 1e12)
            qs_argerror(x->a, x->argidx, "option '%s' must be whole seconds >= 0 or a duration like '10s'", what);
        snprintf(out, outsz, "%llds", (long long)d);
    } else if (lua_type(L, idx) == LUA_TSTRING) {
        size_t n, i = 0;
        const char *s = lua_tolstring(L, idx, &n);
        int ok = n > 0 && n < outsz;
        while (ok && i < n) {
            size_t digits = 0;
            while (i < n && s[i] >= '0' && s[i] <= '9') i++, digits++;
            if (digits == 0 || i >= n || !strchr(units, s[i]) || s[i] == '\0') ok = 0;
            i++;
        }
        if (!ok)
            qs_argerror(x->a, x->argidx, "option '%s' must be a duration of [0-9]+[%s] parts, like '10s' or '1h30m'", what, units);
        memcpy(out, s, n);
        out[n] = '\0';
    } else {
        qs_argerror(x->a, x->argidx, "option '%s' must be whole seconds or a duration string", what);
    }
}

static const char *get_method(ctx *x, int idx, const char *what, char *out)
{
    static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};
    size_t n, i;
    const char *s = get_string(x, idx, what, &n);
    if (n < 8) {
        for (i = 0; i < n; i++) out[i] = (char)((s[i] >= 'a' && s[i] <= 'z') ? s[i] - 32 : s[i]);
        out[n] = '\0';
        for (i = 0; methods[i]; i++)
            if (strcmp(out, methods[i]) == 0) return out;
    }
    qs_argerror(x->a, x->argidx, "option '%s' must be GET, POST, PUT, PATCH or DELETE", what);
    return NULL;
}

static void check_http_url(ctx *x, const char *s, size_t n, const char *what)
{
    size_t i, skip = strncmp(s, "https://", 8) == 0 ? 8 : strncmp(s, "http://", 7) == 0 ? 7 : 0;
    if (!skip || n <= skip || s[skip] == '/')
        qs_argerror(x->a, x->argidx, "option '%s' must be an http:// or https:// URL", what);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f)
            qs_argerror(x->a, x->argidx, "option '%s' must not contain spaces or control bytes", what);
    }
}

/* Sorted names make the header order, and so the request, deterministic. */
static int cmp_names(const void *p, const void *q)
{
    return strcmp(*(const char *const *)p, *(const char *const *)q);
}

/* headers = { Name = "value" } -> <prefix><Name>: value; names starting with
 * "Upstash-" are sent as they are. With content_type, a Content-Type entry is
 * the publish body's type instead. */
static void forward_headers(ctx *x, int idx, const char *what, const char *prefix,
                            const char **content_type)
{
    lua_State *L = x->a->L;
    size_t count = 0, i;
    const char **names;
    if (lua_type(L, idx) != LUA_TTABLE)
        qs_argerror(x->a, x->argidx, "option '%s' must be a table of name = value", what);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        size_t nlen;
        if (lua_type(L, -2) != LUA_TSTRING)
            qs_argerror(x->a, x->argidx, "option '%s' must have string names", what);
        if (lua_type(L, -1) != LUA_TSTRING)
            qs_argerror(x->a, x->argidx, "option '%s': the value of '%s' must be a string", what,
                        lua_tostring(L, -2));
        /* names are used as C strings below: a NUL would cut them short */
        if (strlen(lua_tolstring(L, -2, &nlen)) != nlen)
            qs_argerror(x->a, x->argidx, "%s: header name '%s' is not a valid token", what,
                        lua_tostring(L, -2));
        count++;
        lua_pop(L, 1);
    }
    if (count == 0) return;
    /* Lua-owned scratch: freed by the collector even if an error is raised. */
    names = (const char **)qs_newudata(L, count * sizeof *names);
    i = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        names[i++] = lua_tostring(L, -1); /* kept alive by the table */
    }
    qsort(names, count, sizeof *names, cmp_names);
    for (i = 0; i < count; i++) {
        size_t vlen, nlen = strlen(names[i]);
        const char *v;
        lua_getfield(L, idx, names[i]);
        v = lua_tolstring(L, -1, &vlen);
        lua_pop(L, 1);
        if (content_type && strcasecmp(names[i], "Content-Type") == 0) {
            /* used as a C string: a NUL would cut it short */
            if (strlen(v) != vlen || strpbrk(v, "\r\n"))
                qs_argerror(x->a, x->argidx, "%s: header value must not contain CR, LF or NUL", what);
            *content_type = v;
            continue;
        }
        if (nlen >= 8 && strncasecmp(names[i], "Upstash-", 8) == 0)
            qs_opts_add_header(x->a, x->argidx, x->out, "", names[i], nlen, v, vlen, what);
        else
            qs_opts_add_header(x->a, x->argidx, x->out, prefix, names[i], nlen, v, vlen, what);
    }
    lua_pop(L, 1);
}

static void callback_options(ctx *x, int idx, const char *what, const char *family)
{
    lua_State *L = x->a->L;
    char name[96], buf[64];
    if (lua_type(L, idx) != LUA_TTABLE)
        qs_argerror(x->a, x->argidx, "option '%s' must be a table", what);
    {
        char kwhat[64];
        snprintf(kwhat, sizeof kwhat, "%s key", what);
        qs_check_keys(x->a, x->argidx, idx, kwhat, qs_callback_option_keys);
    }
    lua_getfield(L, idx, "method");
    if (!lua_isnil(L, -1)) {
        snprintf(name, sizeof name, "%s-Method", family);
        add(x, name, get_method(x, -1, what, buf), what);
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "timeout");
    if (!lua_isnil(L, -1)) {
        get_duration(x, lua_gettop(L), what, "smh", buf, sizeof buf);
        snprintf(name, sizeof name, "%s-Timeout", family);
        add(x, name, buf, what);
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "retries");
    if (!lua_isnil(L, -1)) {
        snprintf(buf, sizeof buf, "%lld", get_integer(x, -1, what, 0));
        snprintf(name, sizeof name, "%s-Retries", family);
        add(x, name, buf, what);
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "retry_delay");
    if (!lua_isnil(L, -1)) {
        snprintf(name, sizeof name, "%s-Retry-Delay", family);
        add(x, name, get_string(x, -1, what, NULL), what);
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "headers");
    if (!lua_isnil(L, -1)) {
        snprintf(name, sizeof name, "%s-Forward-", family);
        forward_headers(x, lua_gettop(L), what, name, NULL);
    }
    lua_pop(L, 1);
}

static void flow_control(ctx *x, int idx)
{
    lua_State *L = x->a->L;
    char value[160] = "", part[64];
    int have_limit = 0;
    if (lua_type(L, idx) != LUA_TTABLE)
        qs_argerror(x->a, x->argidx, "option 'flow_control' must be a table {key, parallelism, rate, period}");
    qs_check_keys(x->a, x->argidx, idx, "flow_control key", qs_flow_control_keys);
    lua_getfield(L, idx, "key");
    if (lua_isnil(L, -1)) qs_argerror(x->a, x->argidx, "option 'flow_control' needs a key");
    add(x, "Upstash-Flow-Control-Key", get_string(x, -1, "flow_control.key", NULL), "flow_control.key");
    lua_pop(L, 1);
    lua_getfield(L, idx, "parallelism");
    if (!lua_isnil(L, -1)) {
        snprintf(value, sizeof value, "parallelism=%lld", get_integer(x, -1, "flow_control.parallelism", 1));
        have_limit = 1;
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "rate");
    if (!lua_isnil(L, -1)) {
        snprintf(part, sizeof part, "%srate=%lld", value[0] ? ", " : "",
                 get_integer(x, -1, "flow_control.rate", 1));
        strcat(value, part);
        have_limit = 1;
    }
    lua_pop(L, 1);
    if (!have_limit)
        qs_argerror(x->a, x->argidx, "option 'flow_control' needs parallelism or rate");
    lua_getfield(L, idx, "period");
    if (!lua_isnil(L, -1)) {
        char d[40];
        get_duration(x, lua_gettop(L), "flow_control.period", "smhd", d, sizeof d);
        snprintf(part, sizeof part, ", period=%s", d);
        strcat(value, part);
    }
    lua_pop(L, 1);
    add(x, "Upstash-Flow-Control-Value", value, "flow_control");
}

static void check_label(ctx *x, int idx)
{
    size_t n;
    const char *s = get_string(x, idx, "label", &n);
    if (memchr(s, ',', n)) qs_argerror(x->a, x->argidx, "option 'label': a label must not contain a comma");
}

static void labels(ctx *x, int idx)
{
    lua_State *L = x->a->L;
    luaL_Buffer b;
    size_t n, i;
    if (lua_type(L, idx) == LUA_TSTRING) {
        check_label(x, idx);
        add(x, "Upstash-Label", lua_tostring(L, idx), "label");
        return;
    }
    if (lua_type(L, idx) != LUA_TTABLE)
        qs_argerror(x->a, x->argidx, "option 'label' must be a string or an array of strings");
    n = qs_rawlen(L, idx);
    if (n == 0) qs_argerror(x->a, x->argidx, "option 'label' must not be an empty array");
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, (int)i);
        check_label(x, lua_gettop(L));
        lua_pop(L, 1);
    }
    luaL_buffinit(L, &b);
    for (i = 1; i <= n; i++) {
        if (i > 1) luaL_addchar(&b, ',');
        lua_rawgeti(L, idx, (int)i);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    add(x, "Upstash-Label", lua_tostring(L, -1), "label");
    lua_pop(L, 1);
}

static void redact(ctx *x, int idx)
{
    lua_State *L = x->a->L;
    luaL_Buffer b;
    int any = 0;
    if (lua_type(L, idx) != LUA_TTABLE)
        qs_argerror(x->a, x->argidx, "option 'redact' must be a table {body = true, header = true or {names}}");
    qs_check_keys(x->a, x->argidx, idx, "redact key", qs_redact_keys);
    lua_getfield(L, idx, "body");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TBOOLEAN)
        qs_argerror(x->a, x->argidx, "option 'redact.body' must be a boolean");
    any = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, idx, "header");
    luaL_buffinit(L, &b); /* uses the stack above the 'header' value */
    if (any) luaL_addstring(&b, "body");
    luaL_pushresult(&b);
    /* stack: header value, the fields so far */
    {
        int hidx = lua_gettop(L) - 1;
        int t = lua_type(L, hidx);
        if (t == LUA_TBOOLEAN) {
            if (lua_toboolean(L, hidx)) {
                lua_pushstring(L, any ? ",header" : "header");
                lua_concat(L, 2);
                any = 1;
            }
        } else if (t == LUA_TTABLE) {
            size_t n = qs_rawlen(L, hidx), i, k;
            if (n == 0) qs_argerror(x->a, x->argidx, "option 'redact.header' must not be an empty array");
            for (i = 1; i <= n; i++) {
                const char *name;
                size_t nlen;
                lua_rawgeti(L, hidx, (int)i);
                if (lua_type(L, -1) != LUA_TSTRING)
                    qs_argerror(x->a, x->argidx, "option 'redact.header' must be true or an array of header names");
                name = lua_tolstring(L, -1, &nlen);
                for (k = 0; k < nlen; k++)
                    if (!is_tchar((unsigned char)name[k]))
                        qs_argerror(x->a, x->argidx, "option 'redact.header': '%s' is not a header name", name);
                if (nlen == 0) qs_argerror(x->a, x->argidx, "option 'redact.header': empty header name");
                lua_pushfstring(L, "%sheader[%s]", any ? "," : "", name);
                lua_remove(L, -2);
                lua_concat(L, 2);
                any = 1;
            }
        } else if (t != LUA_TNIL) {
            qs_argerror(x->a, x->argidx, "option 'redact.header' must be true or an array of header names");
        }
    }
    if (!any) qs_argerror(x->a, x->argidx, "option 'redact' must set body = true and/or header");
    add(x, "Upstash-Redact-Fields", lua_tostring(L, -1), "redact");
    lua_pop(L, 2);
}

void qs_opts_marshal(const qs_args *a, int idx, qs_buf *out, int publish, const char **content_type)
{
    lua_State *L = a->L;
    ctx x;
    char buf[64];
    int top = lua_gettop(L);
    x.a = a;
    x.argidx = idx;
    x.out = out;
    if (content_type) *content_type = NULL;
    if (lua_isnoneornil(L, idx)) return;
    if (lua_type(L, idx) != LUA_TTABLE)
        qs_argerror(a, idx, "options must be a table, got %s", luaL_typename(L, idx));
    qs_check_keys(a, idx, idx, "option", qs_option_keys);

#define FIELD(key) (lua_settop(L, top), lua_getfield(L, idx, key), !lua_isnil(L, -1))
    if (FIELD("retries")) {
        snprintf(buf, sizeof buf, "%lld", get_integer(&x, -1, "retries", 0));
        add(&x, "Upstash-Retries", buf, "retries");
    }
    if (FIELD("retry_delay")) add(&x, "Upstash-Retry-Delay", get_string(&x, -1, "retry_delay", NULL), "retry_delay");
    if (FIELD("delay")) {
        get_duration(&x, lua_gettop(L), "delay", "smhd", buf, sizeof buf);
        add(&x, "Upstash-Delay", buf, "delay");
    }
    if (FIELD("not_before")) {
        long long v = get_integer(&x, -1, "not_before", 0);
        if (v >= 1000000000000LL)
            qs_argerror(a, idx, "option 'not_before' is unix seconds; %lld looks like milliseconds", v);
        snprintf(buf, sizeof buf, "%lld", v);
        add(&x, "Upstash-Not-Before", buf, "not_before");
    }
    if (FIELD("timeout")) {
        get_duration(&x, lua_gettop(L), "timeout", "smh", buf, sizeof buf);
        add(&x, "Upstash-Timeout", buf, "timeout");
    }
    if (FIELD("method")) add(&x, "Upstash-Method", get_method(&x, -1, "method", buf), "method");
    if (FIELD("callback")) {
        size_t n;
        const char *s = get_string(&x, -1, "callback", &n);
        check_http_url(&x, s, n, "callback");
        add(&x, "Upstash-Callback", s, "callback");
    }
    if (FIELD("failure_callback")) {
        size_t n;
        const char *s = get_string(&x, -1, "failure_callback", &n);
        check_http_url(&x, s, n, "failure_callback");
        add(&x, "Upstash-Failure-Callback", s, "failure_callback");
    }
    if (FIELD("callback_options"))
        callback_options(&x, lua_gettop(L), "callback_options", "Upstash-Callback");
    if (FIELD("failure_callback_options"))
        callback_options(&x, lua_gettop(L), "failure_callback_options", "Upstash-Failure-Callback");
    if (FIELD("deduplication_id"))
        add(&x, "Upstash-Deduplication-Id", get_string(&x, -1, "deduplication_id", NULL), "deduplication_id");
    if (FIELD("content_based_deduplication")) {
        if (lua_type(L, -1) != LUA_TBOOLEAN)
            qs_argerror(a, idx, "option 'content_based_deduplication' must be a boolean");
        add(&x, "Upstash-Content-Based-Deduplication", lua_toboolean(L, -1) ? "true" : "false",
            "content_based_deduplication");
    }
    if (FIELD("flow_control")) flow_control(&x, lua_gettop(L));
    if (FIELD("label")) labels(&x, lua_gettop(L));
    if (FIELD("redact")) redact(&x, lua_gettop(L));
    if (FIELD("content_type")) {
        if (!publish) qs_argerror(a, idx, "option 'content_type' applies to publish only");
        *content_type = get_string(&x, -1, "content_type", NULL);
    }
    if (FIELD("headers")) {
        const char *ct = NULL;
        forward_headers(&x, lua_gettop(L), "headers", "Upstash-Forward-", publish ? &ct : NULL);
        if (ct && content_type && !*content_type) *content_type = ct;
    }
#undef FIELD
    lua_settop(L, top);
}
