/* libFuzzer harness for qs_filters_marshal (src/core/filters.c): the fuzz bytes
 * become a filter table (DLQ bulk or paging, logs, bulk cancel), marshalled under
 * lua_pcall. Argument errors are expected; on success the query must hold
 * only key=value pairs joined by '&', with values of RFC 3986 unreserved
 * characters and %XX escapes, and nothing but known filter keys may have
 * been accepted.
 *
 * Input layout: byte 0 = mode (bit 0 and bit 6: the endpoint, as
 * qs_filter_set: DLQ bulk, DLQ list, logs, bulk cancel; bits 1-3: a string
 * instead of a table when all set; bits 4-5: the prefix), then the table
 * (see lua_input.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include "core/filters.h"

static const char *const paging_keys[] = {
    "message_id", "url", "url_group", "schedule_id", "queue_name", "from_date", "to_date",
    "response_status", "caller_ip", "label", "flow_control_key", "dlq_ids", "count", "cursor",
    NULL};
static const char *const bulk_keys[] = {
    "message_id", "url", "url_group", "schedule_id", "queue_name", "from_date", "to_date",
    "response_status", "caller_ip", "label", "flow_control_key", "dlq_ids", "all", NULL};
static const char *const logs_keys[] = {
    "message_id", "message_ids", "state", "url", "url_group", "schedule_id", "queue_name", "from_date",
    "to_date", "caller_ip", "label", "flow_control_key", "host", "path", "count", "cursor", NULL};
static const char *const cancel_keys[] = {
    "url", "url_group", "schedule_id", "queue_name", "from_date", "to_date", "caller_ip", "label",
    "flow_control_key", "host", "path", "all", NULL};
static const char *const *const keys_of_set[] = {bulk_keys, paging_keys, logs_keys, cancel_keys};

/* key -> query parameter, for the "a set filter is sent" check */
static const char *const params[][2] = {
    {"message_id", "messageId"}, {"url", "url"}, {"url_group", "topicName"},
    {"schedule_id", "scheduleId"}, {"queue_name", "queueName"}, {"from_date", "fromDate"},
    {"to_date", "toDate"}, {"response_status", "responseStatus"}, {"caller_ip", "callerIp"},
    {"label", "label"}, {"flow_control_key", "flowControlKey"}, {"dlq_ids", "dlqIds"},
    {"count", "count"}, {"message_ids", "messageIds"}, {"state", "state"}, {"host", "host"},
    {"path", "path"},
};

static const char *const key_dict_filters[] = {
    "message_id", "url", "url_group", "schedule_id", "queue_name", "from_date", "to_date",
    "response_status", "caller_ip", "label", "flow_control_key", "dlq_ids", "count", "cursor",
    "all", "urls", "messageId", "cursr", "Count", "", "x", "message_ids", "state", "host", "path",
};

static const char *const str_dict_filters[] = {
    "msg_123", "https://example.com/a?x=1&y=2", "my-group", "scd_1", "queue-1",
    "1725323658779-0", "10.0.0.1", "::1", "label-a", "a b", "a&b=c", "100%", "~._-",
    "\xc3\xa9", "\xff", "", "a\tb", "a\x7f", "cursor-1", "500", "GET", "DELIVERED", "IN_PROGRESS",
    "delivered", "CANCEL_REQUESTED", ",", " , ", ",,", "\xc2\xa0", ", \xe3\x80\x80",
};

#define KEY_DICT key_dict_filters
#define STR_DICT str_dict_filters
#include "lua_input.c"

#define FAIL(...) do { fprintf(stderr, "filters_fuzz: " __VA_ARGS__); fputc('\n', stderr); abort(); } while (0)

static qs_buf out_buf;

/* (filters, set, prefix) -> number written */
static int call_marshal(lua_State *L)
{
    qs_args a;
    int set = (int)lua_tointeger(L, 2), top, written;
    size_t plen;
    const char *prefix = lua_tolstring(L, 3, &plen);
    lua_settop(L, 3);
    top = lua_gettop(L);
    a.L = L;
    a.base = 1;
    a.fname = set == 1 ? "dlq_messages" : set == 2 ? "logs" : set == 3 ? "cancel_many" : "dlq_retry_all";
    qs_buf_clear(&out_buf);
    if (plen && qs_buf_add(&out_buf, prefix, plen)) abort();
    if (lua_type(L, 1) != LUA_TTABLE) return 0; /* the callers check the type first */
    written = qs_filters_marshal(&a, 1, 1, &out_buf, set);
    if (lua_gettop(L) != top) FAIL("stack not balanced: %d -> %d", top, lua_gettop(L));
    lua_pushinteger(L, written);
    return 1;
}

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

static int hexdigit(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* "k=v&k=v": keys of letters, values unreserved or %XX. */
static void check_query(const char *q, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t k = i;
        while (i < n && ((q[i] >= 'a' && q[i] <= 'z') || (q[i] >= 'A' && q[i] <= 'Z'))) i++;
        if (i == k || i >= n || q[i] != '=') FAIL("bad key at %zu in '%.*s'", k, (int)n, q);
        i++;
        while (i < n && q[i] != '&') {
            if (q[i] == '%') {
                if (i + 2 >= n || !hexdigit(q[i + 1]) || !hexdigit(q[i + 2]))
                    FAIL("bad escape in '%.*s'", (int)n, q);
                i += 3;
            } else if (unreserved((unsigned char)q[i])) {
                i++;
            } else {
                FAIL("byte 0x%02x at %zu in the query '%.*s'", (unsigned char)q[i], i, (int)n, q);
            }
        }
        if (i < n) {
            i++; /* '&' */
            if (i == n) FAIL("trailing '&' in '%.*s'", (int)n, q);
        }
    }
}

static int unhex(char c)
{
    return c <= '9' ? c - '0' : c - 'A' + 10;
}

/* Every filter value sent names something: after percent-decoding, a value of only
 * ',' and ' ' would read as no filter at all (QStash splits at commas and
 * trims), i.e. every message. */
static void check_values(const char *q, size_t n)
{
    size_t i = 0;
    while (i < n) {
        int something = 0;
        size_t key = i;
        while (i < n && q[i] != '=') i++;
        /* a cursor is opaque, never split */
        if (i - key == 6 && memcmp(q + key, "cursor", 6) == 0) something = 1;
        i++;
        while (i < n && q[i] != '&') {
            char c = q[i];
            if (c == '%') {
                c = (char)(unhex(q[i + 1]) * 16 + unhex(q[i + 2]));
                i += 3;
            } else {
                i++;
            }
            if (c != ',' && c != ' ') something = 1;
        }
        if (!something) FAIL("a value of only separators was sent in '%.*s'", (int)n, q);
        i++;
    }
}

static int contains_param(const char *q, size_t n, const char *param)
{
    size_t pl = strlen(param), i;
    for (i = 0; i + pl < n; i++)
        if ((i == 0 || q[i - 1] == '&' || q[i - 1] == '?') && memcmp(q + i, param, pl) == 0 &&
            q[i + pl] == '=')
            return 1;
    return 0;
}

static int known(const char *const *list, const char *s, size_t n)
{
    for (; *list; list++)
        if (strlen(*list) == n && memcmp(*list, s, n) == 0) return 1;
    return 0;
}

static void check_success(lua_State *L, int filters, int fset, const char *prefix,
                          lua_Integer written)
{
    size_t plen = strlen(prefix), n, i;
    const char *q;
    int set = 0;
    if (out_buf.n < plen || (plen && memcmp(out_buf.p, prefix, plen) != 0)) FAIL("the prefix changed");
    if (out_buf.n && out_buf.p[out_buf.n] != '\0') FAIL("query not NUL-terminated");
    q = out_buf.p ? out_buf.p + plen : "";
    n = out_buf.n - plen;
    /* after something other than '?', the first pair is joined with '&' */
    if (n && plen && prefix[plen - 1] != '?') {
        if (q[0] != '&') FAIL("no '&' after '%s'", prefix);
        q++, n--;
    }
    check_query(q, n);
    check_values(q, n);
    if (memchr(q, '\0', n)) FAIL("NUL in the query");
    lua_pushnil(L);
    while (lua_next(L, filters)) {
        size_t kn;
        const char *k;
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) FAIL("a non-string filter key was accepted");
        k = lua_tolstring(L, -1, &kn);
        if (!known(keys_of_set[fset], k, kn))
            FAIL("unknown filter '%s' (%zu bytes) was accepted", k, kn);
    }
    for (i = 0; i < sizeof params / sizeof params[0]; i++) {
        lua_getfield(L, filters, params[i][0]);
        if (!lua_isnil(L, -1)) {
            if (!contains_param(q, n, params[i][1]))
                FAIL("filter '%s' set but no %s= in '%.*s'", params[i][0], params[i][1], (int)n, q);
            if (strcmp(params[i][0], "count") != 0) set++;
        }
        lua_pop(L, 1);
    }
    if (written != set) FAIL("%lld filters written, %d set", (long long)written, set);
}

static lua_State *state;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd r;
    unsigned mode;
    int set;
    const char *prefix;
    static const char *const prefixes[] = {"", "?", "/v2/dlq?", "cursor=x"};
    if (!state) {
        state = luaL_newstate();
        if (!state) abort();
    }
    r.p = data;
    r.n = size;
    mode = u8(&r);
    set = (int)((mode & 1) | ((mode >> 5) & 2));
    lua_settop(state, 0);
    if ((mode >> 1) % 8 == 7) push_string(state, &r);
    else read_table(state, &r, 0);                                /* 1: filters */
    lua_pushcfunction(state, call_marshal);
    lua_pushvalue(state, 1);
    lua_pushinteger(state, set);
    prefix = prefixes[(mode >> 4) & 3];
    lua_pushstring(state, prefix);
    if (lua_pcall(state, 3, 1, 0) == 0) {
        if (lua_gettop(state) != 2) FAIL("stack not balanced");
        if (!lua_isnil(state, 2)) check_success(state, 1, set, prefix, lua_tointeger(state, 2));
    } else {
        if (lua_type(state, -1) != LUA_TSTRING) FAIL("an error that is not a string");
        if (strncmp(lua_tostring(state, -1), "bad argument #", 14) != 0)
            FAIL("unexpected error: %s", lua_tostring(state, -1));
    }
    lua_settop(state, 0);
    return 0;
}
