/* Options -> QStash configuration headers, validated before anything is
 * sent (design.md, "Options"), driven by the rows of options.h. Header lines
 * go into the request's own buffer, which its call frees even when an
 * argument error is raised half-way. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <lauxlib.h>
#include "base/compat.h"
#include "core/options.h"
#include "core/url.h"

#define KEY(key, header, kind) key,
const char *const qs_option_keys[] = {QS_OPTION_ROWS(KEY) NULL};
const char *const qs_callback_option_keys[] = {QS_CALLBACK_ROWS(KEY) NULL};
#undef KEY
const char *const qs_flow_control_keys[] = {"key", "parallelism", "rate", "period", NULL};
const char *const qs_redact_keys[] = {"body", "header", NULL};

typedef struct row {
    const char *key;
    const char *header;
    qs_opt_kind kind;
} row;

#define ROW(key, header, kind) {key, header, kind},
static const row option_rows[] = {QS_OPTION_ROWS(ROW)};
static const row callback_rows[] = {QS_CALLBACK_ROWS(ROW)};
#undef ROW

typedef struct ctx {
    const qs_args *a;
    int argidx;     /* the options argument, for messages */
    qs_buf *out;
    qs_opts_mode mode;
    int ct;         /* stack slot of the body's Content-Type (nil: none yet) */
    int dedup;      /* a deduplication_id was given */
} ctx;

#define NAME_MAX_LEN 256

const char *qs_name_problem(const char *s, size_t n)
{
    size_t i;
    if (n == 0) return "must not be empty";
    if (n > NAME_MAX_LEN) return "is longer than 256 bytes";
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return "must not be '.' or '..'";
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return "may hold only letters, digits, '_', '.' and '-'";
    }
    return NULL;
}

static int is_json(qs_opts_mode m)
{
    return m == QS_OPTS_PUBLISH_JSON || m == QS_OPTS_SCHEDULE_JSON;
}

static int is_schedule(qs_opts_mode m)
{
    return m == QS_OPTS_SCHEDULE || m == QS_OPTS_SCHEDULE_JSON;
}

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

/* An integral number (an integral float such as 3.0 is fine) >= min. The
 * range is checked before any conversion: NaN and huge values fail it. */
static long long get_integer(ctx *x, int idx, const char *what, long long min)
{
    lua_State *L = x->a->L;
    double d;
    if (lua_type(L, idx) != LUA_TNUMBER)
        qs_argerror(x->a, x->argidx, "option '%s' must be an integer >= %lld", what, min);
    d = lua_tonumber(L, idx);
    if (!(d >= (double)min && d <= 9007199254740991.0) || d != floor(d))
        qs_argerror(x->a, x->argidx, "option '%s' must be an integer >= %lld", what, min);
    return (long long)d;
}

/* A flow-control limit: an integer from 1 to QS_FLOW_LIMIT_MAX. */
static long long get_flow_limit(ctx *x, int idx, const char *what)
{
    lua_State *L = x->a->L;
    double d = lua_type(L, idx) == LUA_TNUMBER ? lua_tonumber(L, idx) : 0;
    if (!(d >= 1 && d <= QS_FLOW_LIMIT_MAX) || d != floor(d))
        qs_argerror(x->a, x->argidx, "option '%s' must be an integer from 1 to %d", what,
                    QS_FLOW_LIMIT_MAX);
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
        if (!(d >= 0 && d <= 1e12) || d != floor(d))
            qs_argerror(x->a, x->argidx, "option '%s' must be whole seconds >= 0 or a duration like '10s'", what);
        snprintf(out, outsz, "%llds", (long long)d);
    } else if (lua_type(L, idx) == LUA_TSTRING) {
        size_t n, i = 0;
        const char *s = lua_tolstring(L, idx, &n);
        int ok = n > 0 && n < outsz;
        while (ok && i < n) {
            size_t digits = 0;
            while (i < n && s[i] >= '0' && s[i] <= '9') i++, digits++;
            if (digits == 0 || i >= n || s[i] == '\0' || !strchr(units, s[i])) ok = 0;
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

typedef struct pair {
    const char *pre, *name, *value; /* pre: the prefix the name is sent with */
    size_t plen, nlen, vlen;
} pair;

/* The i-th byte of the name a pair is sent under (prefix, then name), lower-cased. */
static int sent_byte(const pair *p, size_t i)
{
    int c = (unsigned char)(i < p->plen ? p->pre[i] : p->name[i - p->plen]);
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Compares the names pairs are sent under, ignoring case as HTTP does. */
static int cmp_sent_names(const pair *a, const pair *b)
{
    size_t i, na = a->plen + a->nlen, nb = b->plen + b->nlen;
    for (i = 0; i < na && i < nb; i++) {
        int d = sent_byte(a, i) - sent_byte(b, i);
        if (d) return d;
    }
    return na < nb ? -1 : na > nb;
}

/* Sorted names make the header order, and so the request, deterministic;
 * names equal but for case end up next to each other. */
static int cmp_names(const void *p, const void *q)
{
    int d = cmp_sent_names((const pair *)p, (const pair *)q);
    return d ? d : strcmp(((const pair *)p)->name, ((const pair *)q)->name);
}

/* headers = { Name = "value" } -> <prefix><Name>: value; names starting with
 * "Upstash-" are sent as they are. At the top level of publish options, a
 * Content-Type entry is the body's type instead. The pairs are copied into a
 * private table first: whatever a finalizer does to the caller's table later,
 * the strings used here stay alive and unchanged. */
static void forward_headers(ctx *x, int idx, const char *what, const char *prefix, int top)
{
    lua_State *L = x->a->L;
    size_t count = 0, i;
    int copy;
    pair *pairs;
    if (lua_type(L, idx) != LUA_TTABLE)
        qs_argerror(x->a, x->argidx, "option '%s' must be a table of name = value", what);
    lua_newtable(L);
    copy = lua_gettop(L);
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
        lua_rawseti(L, copy, (int)(2 * count + 2)); /* the value */
        lua_pushvalue(L, -1);
        lua_rawseti(L, copy, (int)(2 * count + 1)); /* the name; the key stays for lua_next */
        count++;
    }
    if (count == 0) {
        lua_pop(L, 1);
        return;
    }
    /* Lua-owned scratch: freed by the collector even if an error is raised. */
    pairs = (pair *)qs_newudata(L, count * sizeof *pairs);
    for (i = 0; i < count; i++) {
        lua_rawgeti(L, copy, (int)(2 * i + 1));
        pairs[i].name = lua_tolstring(L, -1, &pairs[i].nlen); /* kept alive by the copy */
        lua_rawgeti(L, copy, (int)(2 * i + 2));
        pairs[i].value = lua_tolstring(L, -1, &pairs[i].vlen);
        pairs[i].pre = pairs[i].nlen >= 8 && strncasecmp(pairs[i].name, "Upstash-", 8) == 0 ? "" : prefix;
        pairs[i].plen = strlen(pairs[i].pre);
        lua_pop(L, 2);
    }
    qsort(pairs, count, sizeof *pairs, cmp_names);
    for (i = 0; i < count; i++) {
        const pair *p = &pairs[i];
        /* HTTP names ignore case: two entries for one header would leave the
         * server to pick one of them */
        if (i > 0 && cmp_sent_names(&pairs[i - 1], p) == 0)
            qs_argerror(x->a, x->argidx, "option '%s': '%s' and '%s' name the same header", what,
                        pairs[i - 1].name, p->name);
        if (top && x->mode != QS_OPTS_RETRY && strcasecmp(p->name, "Content-Type") == 0) {
            if (is_json(x->mode))
                qs_argerror(x->a, x->argidx, "%s always sends Content-Type: application/json", x->a->fname);
            /* the content_type option wins over this entry */
            if (lua_isnil(L, x->ct)) {
                lua_pushlstring(L, p->value, p->vlen);
                lua_replace(L, x->ct);
            }
            continue;
        }
        qs_opts_add_header(x->a, x->argidx, x->out, p->pre, p->name, p->nlen, p->value, p->vlen, what);
    }
    lua_pop(L, 2);
}

static void put_value(ctx *x, const row *r, const char *header, const char *what, int v, int top);

/* callback_options: the callback rows, written as the family's headers. */
static void callback_options(ctx *x, int idx, const char *what, const char *family)
{
    lua_State *L = x->a->L;
    size_t i;
    if (lua_type(L, idx) != LUA_TTABLE)
        qs_argerror(x->a, x->argidx, "option '%s' must be a table", what);
    {
        char kwhat[64];
        snprintf(kwhat, sizeof kwhat, "%s key", what);
        qs_check_keys(x->a, x->argidx, idx, kwhat, qs_callback_option_keys);
    }
    for (i = 0; i < sizeof callback_rows / sizeof callback_rows[0]; i++) {
        const row *r = &callback_rows[i];
        char header[96], kwhat[96];
        lua_getfield(L, idx, r->key);
        if (!lua_isnil(L, -1)) {
            snprintf(header, sizeof header, "%s%s", family, r->header);
            snprintf(kwhat, sizeof kwhat, "%s.%s", what, r->key);
            put_value(x, r, header, kwhat, lua_gettop(L), 0);
        }
        lua_pop(L, 1);
    }
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
        snprintf(value, sizeof value, "parallelism=%lld", get_flow_limit(x, -1, "flow_control.parallelism"));
        have_limit = 1;
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "rate");
    if (!lua_isnil(L, -1)) {
        snprintf(part, sizeof part, "%srate=%lld", value[0] ? ", " : "",
                 get_flow_limit(x, -1, "flow_control.rate"));
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

static void labels(ctx *x, int idx, const char *header)
{
    lua_State *L = x->a->L;
    luaL_Buffer b;
    size_t n, i;
    if (lua_type(L, idx) == LUA_TSTRING) {
        check_label(x, idx);
        add(x, header, lua_tostring(L, idx), "label");
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
    add(x, header, lua_tostring(L, -1), "label");
    lua_pop(L, 1);
}

static void redact(ctx *x, int idx, const char *header)
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
    add(x, header, lua_tostring(L, -1), "redact");
    lua_pop(L, 2);
}

/* Checks the value at v of row r and writes its header(s); `top`: a row of
 * the options table itself (not of a nested one). */
static void put_value(ctx *x, const row *r, const char *header, const char *what, int v, int top)
{
    lua_State *L = x->a->L;
    char buf[64];
    size_t n;
    const char *s;
    switch (r->kind) {
    case QS_OPT_COUNT:
        snprintf(buf, sizeof buf, "%lld", get_integer(x, v, what, 0));
        add(x, header, buf, what);
        break;
    case QS_OPT_STRING:
        add(x, header, get_string(x, v, what, NULL), what);
        break;
    case QS_OPT_DELAY:
    case QS_OPT_TIMEOUT:
        get_duration(x, v, what, r->kind == QS_OPT_DELAY ? "smhd" : "smh", buf, sizeof buf);
        add(x, header, buf, what);
        break;
    case QS_OPT_UNIX_SECONDS: {
        long long t = get_integer(x, v, what, 0);
        if (t >= 1000000000000LL)
            qs_argerror(x->a, x->argidx, "option '%s' is unix seconds; %lld looks like milliseconds", what, t);
        snprintf(buf, sizeof buf, "%lld", t);
        add(x, header, buf, what);
        break;
    }
    case QS_OPT_METHOD:
        add(x, header, get_method(x, v, what, buf), what);
        break;
    case QS_OPT_URL: {
        const char *why;
        s = get_string(x, v, what, &n);
        if ((why = qs_url_check(s, n, 0)) != NULL) qs_argerror(x->a, x->argidx, "option '%s' %s", what, why);
        add(x, header, s, what);
        break;
    }
    case QS_OPT_BOOLEAN:
        if (lua_type(L, v) != LUA_TBOOLEAN) qs_argerror(x->a, x->argidx, "option '%s' must be a boolean", what);
        add(x, header, lua_toboolean(L, v) ? "true" : "false", what);
        break;
    case QS_OPT_CALLBACK:
        callback_options(x, v, what, header);
        break;
    case QS_OPT_FLOW_CONTROL:
        flow_control(x, v);
        break;
    case QS_OPT_LABEL:
        labels(x, v, header);
        break;
    case QS_OPT_REDACT:
        redact(x, v, header);
        break;
    case QS_OPT_CONTENT_TYPE:
        if (x->mode == QS_OPTS_RETRY) qs_argerror(x->a, x->argidx, "option 'content_type' applies to publish only");
        if (is_json(x->mode))
            qs_argerror(x->a, x->argidx, "%s always sends Content-Type: application/json", x->a->fname);
        get_string(x, v, what, NULL);
        lua_pushvalue(L, v);
        lua_replace(L, x->ct); /* written last; kept alive on the stack meanwhile */
        break;
    case QS_OPT_HEADERS:
        forward_headers(x, v, what, header, top);
        break;
    case QS_OPT_FOLLOW:
        /* read by the plan (dlq_retry); it sends nothing */
        if (x->mode != QS_OPTS_RETRY) qs_argerror(x->a, x->argidx, "option 'follow' applies to dlq_retry only");
        if (lua_type(L, v) != LUA_TBOOLEAN && lua_type(L, v) != LUA_TTABLE)
            qs_argerror(x->a, x->argidx, "option 'follow' must be true or a table { timeout = s, interval = s }");
        break;
    case QS_OPT_NAME: {
        const char *why;
        if (!is_schedule(x->mode))
            qs_argerror(x->a, x->argidx, "option '%s' applies to schedule_create and schedule_create_json only%s",
                        what, strcmp(what, "queue") == 0 ? " (enqueue takes the queue as its first argument)" : "");
        s = get_string(x, v, what, &n);
        if ((why = qs_name_problem(s, n)) != NULL) qs_argerror(x->a, x->argidx, "option '%s' %s", what, why);
        add(x, header, s, what);
        break;
    }
    }
}

/* Compares header lines by name, ignoring case. */
static int cmp_line_names(const void *p, const void *q)
{
    const char *a = *(const char *const *)p, *b = *(const char *const *)q;
    for (; *a != ':' && *b != ':'; a++, b++) {
        int ca = (unsigned char)*a, cb = (unsigned char)*b;
        if (ca >= 'A' && ca <= 'Z') ca += 32;
        if (cb >= 'A' && cb <= 'Z') cb += 32;
        if (ca != cb) return ca - cb;
    }
    return (*a != ':') - (*b != ':');
}

/* Orders header lines by name ignoring case, then as bytes. */
static int cmp_lines(const void *p, const void *q)
{
    int d = cmp_line_names(p, q);
    return d ? d : strcmp(*(const char *const *)p, *(const char *const *)q);
}

/* One header, one line: `retries` with headers = { ["Upstash-Retries"] = ... },
 * or "X" in headers with "Upstash-Forward-X", would send two lines and
 * leave the server to pick one. The lines from `from` on are checked. */
static void refuse_repeated_names(const qs_args *a, int idx, const qs_buf *out, size_t from)
{
    const char *small[16], **lines = small;
    size_t n = 0, i;
    for (i = from; i < out->n; i += strlen(out->p + i) + 1) n++;
    if (n < 2) return;
    if (n > sizeof small / sizeof small[0]) lines = (const char **)qs_newudata(a->L, n * sizeof *lines);
    n = 0;
    for (i = from; i < out->n; i += strlen(out->p + i) + 1) lines[n++] = out->p + i;
    qsort(lines, n, sizeof *lines, cmp_lines);
    for (i = 1; i < n; i++)
        if (cmp_line_names(&lines[i - 1], &lines[i]) == 0)
            qs_argerror(a, idx, "the options set header '%.*s' twice (as '%.*s' too; header names ignore case)",
                        (int)(strchr(lines[i - 1], ':') - lines[i - 1]), lines[i - 1],
                        (int)(strchr(lines[i], ':') - lines[i]), lines[i]);
}

int qs_opts_marshal(const qs_args *a, int idx, qs_buf *out, qs_opts_mode mode)
{
    lua_State *L = a->L;
    ctx x;
    size_t i, from = out->n;
    int top = lua_gettop(L);
    x.a = a;
    x.argidx = idx;
    x.out = out;
    x.mode = mode;
    x.dedup = 0;
    lua_pushnil(L);
    x.ct = lua_gettop(L);
    if (!lua_isnoneornil(L, idx)) {
        if (lua_type(L, idx) != LUA_TTABLE)
            qs_argerror(a, idx, "options must be a table, got %s", luaL_typename(L, idx));
        /* A plain table is read for the keys it holds only; one with a
         * metatable for every row, since __index may answer any of them. */
        unsigned long long seen = qs_check_keys_seen(a, idx, idx, "option", qs_option_keys);
        int plain = !lua_getmetatable(L, idx);
        if (!plain) lua_pop(L, 1);
        for (i = 0; i < sizeof option_rows / sizeof option_rows[0]; i++) {
            const row *r = &option_rows[i];
            if (plain && !(seen & (1ULL << i))) continue;
            lua_settop(L, x.ct);
            lua_getfield(L, idx, r->key);
            if (lua_isnil(L, -1)) continue;
            if (r->kind == QS_OPT_STRING && strcmp(r->key, "deduplication_id") == 0) x.dedup = 1;
            put_value(&x, r, r->header, r->key, lua_gettop(L), 1);
        }
        lua_settop(L, x.ct);
    }
    if (is_json(mode)) {
        lua_pushliteral(L, "application/json");
        lua_replace(L, x.ct);
    }
    if (!lua_isnil(L, x.ct)) {
        size_t n;
        const char *ct = lua_tolstring(L, x.ct, &n);
        qs_opts_add_header(a, idx, out, "", "Content-Type", 12, ct, n, "content_type");
    }
    refuse_repeated_names(a, idx, out, from);
    lua_settop(L, top);
    return x.dedup;
}
