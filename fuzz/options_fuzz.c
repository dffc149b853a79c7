/* libFuzzer harness for qs_opts_marshal (src/core/options.c): the fuzz bytes are
 * decoded into an options table, marshalled under lua_pcall, and the header
 * lines checked against the contract in design.md ("Options"). Argument
 * errors are expected outcomes; a contract violation abort()s.
 *
 * Input layout: byte 0 = mode (bit 0 publish, bits 1-3 argument shape),
 * then the table: a count byte and, per entry, a key choice and a value
 * (see read_key / read_value). Running out of bytes ends every loop. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <lua.h>
#include <lauxlib.h>
#include "core/options.h"

/* The known keys come from src/core/options.c itself, so the two cannot drift. */
#define top_keys qs_option_keys
#define callback_keys qs_callback_option_keys
#define flow_keys qs_flow_control_keys
#define redact_keys qs_redact_keys

/* Key choices: every known name at every level, misspellings, header names. */
static const char *const key_dict_opts[] = {
    "retries", "retry_delay", "delay", "not_before", "timeout", "method", "callback",
    "failure_callback", "callback_options", "failure_callback_options", "deduplication_id",
    "content_based_deduplication", "flow_control", "label", "redact", "headers",
    "content_type", "key", "parallelism", "rate", "period", "body", "header",
    "retires", "Retries", "dealy", "headrs", "flowcontrol", "lable", "bodyy", "", "x",
    "Content-Type", "content-type", "X-Tenant", "Upstash-Custom", "upstash-lower", "Upstash-",
    "Bad Name", "X\r\nY", "X:Y", "\xc3\xa9t\xc3\xa9", "Authorization",
};

/* Value choices for strings. */
static const char *const str_dict_opts[] = {
    "10s", "0s", "1d10h30m", "5m", "1h", "2d", "30", "s", "10x", "10", "1h30", "10S", "",
    "GET", "post", "Patch", "put", "delete", "DELETE", "HEAD", "GETTTTTTT",
    "https://example.com/cb", "http://localhost:1/x", "https:///x", "ftp://x", "http://",
    "https://a b", "https://\xe4\xb8\xad.example/\xff", "3000 * retried", "pow(2, retried)",
    "text/plain", "application/json", "key-1", "dedup-1", "label-a", "a,b", "X-Tenant",
    "Upstash-Foo", "Content-Type", "true", " ", "\xff\xfe", "a\rb", "a\nb", "v\r\nX-Evil: 1",
};

#define KEY_DICT key_dict_opts
#define STR_DICT str_dict_opts
#include "lua_input.c"

/* ---------------------------------------------------------------------------
 * The call under test and the checks. */

static qs_buf out_buf; /* like the client's reused header buffer */

/* upvalue-free C function: (id, opts, publish) -> whether deduplication_id was seen */
static int call_marshal(lua_State *L)
{
    qs_args a;
    int publish = lua_toboolean(L, 3), dedup;
    int top;
    lua_settop(L, 3);
    top = lua_gettop(L);
    a.L = L;
    a.base = 1;
    a.fname = publish ? "publish" : "dlq_retry";
    qs_buf_clear(&out_buf);
    dedup = qs_opts_marshal(&a, 2, &out_buf, publish ? QS_OPTS_PUBLISH : QS_OPTS_RETRY);
    if (lua_gettop(L) != top) {
        fprintf(stderr, "stack not balanced: %d -> %d\n", top, lua_gettop(L));
        abort();
    }
    lua_pushboolean(L, dedup);
    return 1;
}

#define FAIL(...) do { fprintf(stderr, "options_fuzz: " __VA_ARGS__); fputc('\n', stderr); abort(); } while (0)

typedef struct line {
    const char *p;
    size_t n;
} line;

static line lines[4096];
static size_t nlines;
static const char *content_type; /* the Content-Type line's value, if any */
static size_t content_type_len;

static int is_tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void split_lines(void)
{
    size_t i = 0;
    nlines = 0;
    content_type = NULL;
    if (out_buf.n && out_buf.p[out_buf.n - 1] != '\0') FAIL("last header line not NUL-terminated");
    while (i < out_buf.n) {
        const char *s = out_buf.p + i;
        size_t n = strlen(s), k;
        const char *colon = memchr(s, ':', n);
        if (nlines == COUNT(lines)) FAIL("too many lines");
        lines[nlines].p = s;
        lines[nlines].n = n;
        nlines++;
        if (!colon || colon == s) FAIL("line without a name: '%s'", s);
        if ((size_t)(colon - s) + 1 >= n || colon[1] != ' ') FAIL("no ': ' after the name: '%s'", s);
        for (k = 0; s + k < colon; k++)
            if (!is_tchar((unsigned char)s[k])) FAIL("name is not a token: '%s'", s);
        for (k = 0; k < n; k++)
            if (s[k] == '\r' || s[k] == '\n') FAIL("CR or LF in a line: '%s'", s);
        i += n + 1;
        if (strncmp(s, "Content-Type: ", 14) == 0) {
            /* the publish body's type: the last line, once */
            if (content_type || i != out_buf.n) FAIL("Content-Type not last, or twice");
            content_type = s + 14;
            content_type_len = n - 14;
            nlines--;
            continue;
        }
        if (strncasecmp(s, "Upstash-", 8) != 0) FAIL("not an Upstash- header: '%s'", s);
    }
    /* one header, one line: names ignore case */
    for (i = 0; i < nlines; i++) {
        size_t j, ni = (size_t)((const char *)memchr(lines[i].p, ':', lines[i].n) - lines[i].p);
        for (j = i + 1; j < nlines; j++)
            if (lines[j].n > ni && lines[j].p[ni] == ':' && strncasecmp(lines[i].p, lines[j].p, ni) == 0)
                FAIL("header named twice: '%s' and '%s'", lines[i].p, lines[j].p);
    }
}

/* The value of the first line named `name` (exactly), or NULL. */
static const char *header(const char *name)
{
    size_t i, nl = strlen(name);
    for (i = 0; i < nlines; i++)
        if (lines[i].n > nl + 1 && memcmp(lines[i].p, name, nl) == 0 && lines[i].p[nl] == ':')
            return lines[i].p + nl + 2;
    return NULL;
}

static int have_line(const char *p, size_t n)
{
    size_t i;
    for (i = 0; i < nlines; i++)
        if (lines[i].n == n && memcmp(lines[i].p, p, n) == 0) return 1;
    return 0;
}

static int known(const char *const *list, const char *s, size_t n)
{
    for (; *list; list++)
        if (strlen(*list) == n && memcmp(*list, s, n) == 0) return 1;
    return 0;
}

/* Every key of the table at idx is one of `list`, byte for byte. */
static void check_keys(lua_State *L, int idx, const char *const *list, const char *what)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        size_t n;
        const char *s;
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) FAIL("%s: a non-string key was accepted", what);
        s = lua_tolstring(L, -1, &n);
        if (!known(list, s, n)) FAIL("%s: unknown key '%s' (%zu bytes) was accepted", what, s, n);
    }
}

static int is_digits(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

/* ^(%d+[units])+$ */
static int is_duration(const char *s, const char *units)
{
    if (!*s) return 0;
    while (*s) {
        const char *d = s;
        while (*s >= '0' && *s <= '9') s++;
        if (s == d || !*s || !strchr(units, *s)) return 0;
        s++;
    }
    return 1;
}

static int is_method(const char *s)
{
    return !strcmp(s, "GET") || !strcmp(s, "POST") || !strcmp(s, "PUT") || !strcmp(s, "PATCH") ||
           !strcmp(s, "DELETE");
}

/* Each name = value of the headers table at idx is sent exactly as given. */
static void check_forwarded(lua_State *L, int idx, const char *prefix, int publish)
{
    static char want[8192];
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        size_t kn, vn, pn;
        const char *k, *v;
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            FAIL("headers: a non-string name or value was accepted");
        k = lua_tolstring(L, -2, &kn);
        v = lua_tolstring(L, -1, &vn);
        if (publish && kn == 12 && strncasecmp(k, "Content-Type", 12) == 0) {
            /* the publish body's type: checked via content_type */
            if (!content_type) FAIL("headers['%s'] lost", k);
            lua_pop(L, 1);
            continue;
        }
        pn = (kn >= 8 && strncasecmp(k, "Upstash-", 8) == 0) ? 0 : strlen(prefix);
        if (pn + kn + 2 + vn > sizeof want) FAIL("header too long for the check");
        memcpy(want, prefix, pn);
        memcpy(want + pn, k, kn);
        memcpy(want + pn + kn, ": ", 2);
        memcpy(want + pn + kn + 2, v, vn);
        if (!have_line(want, pn + kn + 2 + vn))
            FAIL("header %s%.*s (%zu-byte name, %zu-byte value) not sent as given", pn ? prefix : "",
                 (int)kn, k, kn, vn);
        lua_pop(L, 1);
    }
}

/* The content type comes from content_type or headers['Content-Type'], whole. */
static void check_content_type(lua_State *L, int opts)
{
    size_t n;
    const char *s;
    int found = 0;
    lua_getfield(L, opts, "content_type");
    if (lua_type(L, -1) == LUA_TSTRING) {
        s = lua_tolstring(L, -1, &n);
        if (!content_type || n != content_type_len || memcmp(s, content_type, n) != 0)
            FAIL("content_type not sent as given");
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    lua_getfield(L, opts, "headers");
    if (lua_type(L, -1) == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            size_t kn;
            const char *k = lua_tolstring(L, -2, &kn);
            s = lua_tolstring(L, -1, &n);
            if (kn == 12 && strncasecmp(k, "Content-Type", 12) == 0) {
                found = 1;
                if (!content_type || n != content_type_len || memcmp(s, content_type, n) != 0)
                    FAIL("headers['%s'] not sent whole as the content type", k);
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    if (!found && content_type) FAIL("content type from nowhere");
}

static void check_callback_family(lua_State *L, int idx, const char *family)
{
    char name[96];
    const char *v;
    int t = lua_gettop(L);
    check_keys(L, idx, callback_keys, family);
    lua_getfield(L, idx, "method");
    snprintf(name, sizeof name, "%s-Method", family);
    v = header(name);
    if (!lua_isnil(L, -1) && (!v || !is_method(v))) FAIL("%s missing or bad", name);
    lua_getfield(L, idx, "timeout");
    snprintf(name, sizeof name, "%s-Timeout", family);
    v = header(name);
    if (!lua_isnil(L, -1) && (!v || !is_duration(v, "smh"))) FAIL("%s missing or bad", name);
    lua_getfield(L, idx, "retries");
    snprintf(name, sizeof name, "%s-Retries", family);
    v = header(name);
    if (!lua_isnil(L, -1) && (!v || !is_digits(v))) FAIL("%s missing or bad", name);
    lua_getfield(L, idx, "retry_delay");
    snprintf(name, sizeof name, "%s-Retry-Delay", family);
    if (!lua_isnil(L, -1) && !header(name)) FAIL("%s missing", name);
    lua_getfield(L, idx, "headers");
    if (!lua_isnil(L, -1)) {
        snprintf(name, sizeof name, "%s-Forward-", family);
        check_forwarded(L, lua_gettop(L), name, 0);
    }
    lua_settop(L, t);
}

/* Pushes opts[k]; returns whether it is set. */
static int field(lua_State *L, int opts, const char *k)
{
    lua_getfield(L, opts, k);
    return !lua_isnil(L, -1);
}

static int is_url(const char *v)
{
    return v && (!strncmp(v, "http://", 7) || !strncmp(v, "https://", 8));
}

static void check_success(lua_State *L, int opts, int publish, int dedup)
{
    const char *v;
    int top = lua_gettop(L);
    split_lines();
    if (lua_type(L, opts) != LUA_TTABLE) {
        if (out_buf.n || dedup) FAIL("headers without options");
        return;
    }
    check_keys(L, opts, top_keys, "option");
    if (field(L, opts, "retries") && (!(v = header("Upstash-Retries")) || !is_digits(v)))
        FAIL("retries");
    if (field(L, opts, "retry_delay") && !header("Upstash-Retry-Delay")) FAIL("retry_delay");
    if (field(L, opts, "delay") && (!(v = header("Upstash-Delay")) || !is_duration(v, "smhd")))
        FAIL("delay");
    if (field(L, opts, "not_before")) {
        v = header("Upstash-Not-Before");
        if (!v || !is_digits(v) || strlen(v) > 12) FAIL("not_before '%s'", v ? v : "(none)");
    }
    if (field(L, opts, "timeout") && (!(v = header("Upstash-Timeout")) || !is_duration(v, "smh")))
        FAIL("timeout");
    if (field(L, opts, "method") && (!(v = header("Upstash-Method")) || !is_method(v)))
        FAIL("method");
    if (field(L, opts, "callback") && !is_url(header("Upstash-Callback"))) FAIL("callback");
    if (field(L, opts, "failure_callback") && !is_url(header("Upstash-Failure-Callback")))
        FAIL("failure_callback");
    if (field(L, opts, "deduplication_id") != dedup) FAIL("deduplication_id seen wrongly");
    if (dedup && !header("Upstash-Deduplication-Id")) FAIL("deduplication_id");
    if (field(L, opts, "content_based_deduplication")) {
        v = header("Upstash-Content-Based-Deduplication");
        if (!v || (strcmp(v, "true") && strcmp(v, "false"))) FAIL("content_based_deduplication");
    }
    if (field(L, opts, "flow_control")) {
        check_keys(L, lua_gettop(L), flow_keys, "flow_control");
        if (!header("Upstash-Flow-Control-Key")) FAIL("flow_control key");
        v = header("Upstash-Flow-Control-Value");
        if (!v || (strncmp(v, "parallelism=", 12) && strncmp(v, "rate=", 5)))
            FAIL("flow_control value");
    }
    if (field(L, opts, "label")) {
        v = header("Upstash-Label");
        if (!v || !*v || *v == ',') FAIL("label");
    }
    if (field(L, opts, "redact")) {
        check_keys(L, lua_gettop(L), redact_keys, "redact");
        v = header("Upstash-Redact-Fields");
        if (!v || (strncmp(v, "body", 4) && strncmp(v, "header", 6))) FAIL("redact");
    }
    if (field(L, opts, "callback_options"))
        check_callback_family(L, lua_gettop(L), "Upstash-Callback");
    if (field(L, opts, "failure_callback_options"))
        check_callback_family(L, lua_gettop(L), "Upstash-Failure-Callback");
    if (field(L, opts, "headers"))
        check_forwarded(L, lua_gettop(L), "Upstash-Forward-", publish);
    if (!publish && (field(L, opts, "content_type") || content_type)) FAIL("content_type accepted outside publish");
    if (publish) check_content_type(L, opts);
    lua_settop(L, top);
}

static lua_State *state;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd r;
    unsigned mode;
    int publish, shape, top;
    if (!state) {
        state = luaL_newstate();
        if (!state) abort();
    }
    r.p = data;
    r.n = size;
    mode = u8(&r);
    publish = mode & 1;
    shape = (mode >> 1) & 7;
    lua_settop(state, 0);
    lua_pushcfunction(state, call_marshal);
    lua_pushliteral(state, "1725323658779-0");
    switch (shape) {
    case 0: lua_pushnil(state); break;
    case 1: push_string(state, &r); break;
    case 2: push_integer(state, &r); break;
    default: read_table(state, &r, 0); break;
    }
    lua_pushboolean(state, publish);
    /* keep the options reachable after the call for the checks */
    lua_pushvalue(state, 3);
    lua_insert(state, 1);
    top = lua_gettop(state);
    if (lua_pcall(state, 3, 1, 0) == 0) {
        int dedup = lua_toboolean(state, -1);
        lua_pop(state, 1);
        if (lua_gettop(state) != top - 4) abort();
        check_success(state, 1, publish, dedup);
    } else {
        if (lua_type(state, -1) != LUA_TSTRING) FAIL("an error that is not a string");
        if (strncmp(lua_tostring(state, -1), "bad argument #", 14) != 0)
            FAIL("unexpected error: %s", lua_tostring(state, -1));
    }
    lua_settop(state, 0);
    return 0;
}
