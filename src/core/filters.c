/* DLQ filters -> query strings. Multi-value filters go out as repeated keys;
 * an empty array raises, since a missing filter means "every message", and
 * so does a value (or an array item) made only of ',' and spaces, which
 * QStash's comma-separated reading turns into no filter at all. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <lauxlib.h>
#include "base/compat.h"
#include "core/filters.h"

typedef enum { F_STRING, F_STRINGS, F_MS, F_STATUSES, F_STATE, F_COUNT, F_CURSOR, F_ALL } ftype;

/* The endpoints a row applies to (bits of qs_filter_set). */
#define BULK (1u << QS_FSET_DLQ_BULK)
#define LIST (1u << QS_FSET_DLQ_LIST)
#define LOGS (1u << QS_FSET_LOGS)
#define CANCEL (1u << QS_FSET_CANCEL)
#define DLQ (BULK | LIST)
#define EVERY (DLQ | LOGS | CANCEL)

typedef struct filter {
    const char *key;   /* Lua name */
    const char *param; /* query parameter */
    ftype type;
    unsigned sets;
} filter;

static const filter filters[] = {
    {"message_id", "messageId", F_STRING, DLQ | LOGS},
    {"message_ids", "messageIds", F_STRINGS, LOGS},
    {"state", "state", F_STATE, LOGS},
    {"url", "url", F_STRINGS, EVERY},
    {"url_group", "topicName", F_STRINGS, EVERY},
    {"schedule_id", "scheduleId", F_STRINGS, EVERY},
    {"queue_name", "queueName", F_STRINGS, EVERY},
    {"from_date", "fromDate", F_MS, EVERY},
    {"to_date", "toDate", F_MS, EVERY},
    {"response_status", "responseStatus", F_STATUSES, DLQ},
    {"caller_ip", "callerIp", F_STRINGS, EVERY},
    {"label", "label", F_STRINGS, EVERY},
    {"flow_control_key", "flowControlKey", F_STRINGS, EVERY},
    {"host", "host", F_STRINGS, LOGS | CANCEL},
    {"path", "path", F_STRINGS, LOGS | CANCEL},
    {"dlq_ids", "dlqIds", F_STRINGS, DLQ},
    {"count", "count", F_COUNT, LIST | LOGS},
    {"cursor", "cursor", F_CURSOR, LIST | LOGS},
    {"all", NULL, F_ALL, BULK | CANCEL},
    {NULL, NULL, F_STRING, 0},
};

#define MAX_FILTERS (sizeof filters / sizeof filters[0])

/* QStash's page size limits: 100 for the DLQ (OpenAPI), 1000 for the logs
 * (qstash-js LogsRequest: "Max 1000"). */
static double count_max(int set)
{
    return set == QS_FSET_LOGS ? 1000 : 100;
}

const char *const qs_log_states[] = {"CREATED", "ACTIVE", "RETRY", "ERROR", "IN_PROGRESS", "DELIVERED",
                                     "FAILED", "CANCEL_REQUESTED", "CANCELLED", NULL};

int qs_log_state_final(const char *state)
{
    return state && (strcmp(state, "DELIVERED") == 0 || strcmp(state, "FAILED") == 0 ||
                     strcmp(state, "CANCELLED") == 0);
}

void qs_query_add(lua_State *L, qs_buf *out, const char *key, const char *value, size_t len)
{
    if ((out->n > 0 && out->p[out->n - 1] != '?' && qs_buf_addc(out, '&')) || qs_buf_adds(out, key) || qs_buf_addc(out, '=') ||
        qs_buf_add_pct(out, value, len))
        luaL_error(L, "not enough memory");
}

/* The UTF-8 forms of the Unicode spaces (White_Space beyond ASCII) that a
 * server may trim from a value as it trims ' ' (Go's strings.TrimSpace and
 * Python's str.strip both do). */
static const char *const unicode_spaces[] = {
    "\xc2\x85", "\xc2\xa0", "\xe1\x9a\x80", "\xe2\x80\x80", "\xe2\x80\x81", "\xe2\x80\x82",
    "\xe2\x80\x83", "\xe2\x80\x84", "\xe2\x80\x85", "\xe2\x80\x86", "\xe2\x80\x87", "\xe2\x80\x88",
    "\xe2\x80\x89", "\xe2\x80\x8a", "\xe2\x80\xa8", "\xe2\x80\xa9", "\xe2\x80\xaf", "\xe2\x81\x9f",
    "\xe3\x80\x80", NULL,
};

/* The length of the Unicode space at s (n bytes left), or 0. */
static size_t unicode_space(const char *s, size_t n)
{
    const char *const *u;
    for (u = unicode_spaces; *u; u++) {
        size_t k = strlen(*u);
        if (n >= k && memcmp(s, *u, k) == 0) return k;
    }
    return 0;
}

/* Whether a value names something: QStash reads a filter value as a
 * comma-separated list and trims each item, so a value made only of ',' and
 * spaces reads as no filter at all (every message). */
static int names_something(const char *s, size_t n)
{
    size_t i = 0, sp;
    while (i < n) {
        if (s[i] == ',' || s[i] == ' ') {
            i++;
        } else if ((sp = unicode_space(s + i, n - i)) > 0) {
            i += sp;
        } else {
            return 1;
        }
    }
    return 0;
}

static void add_string(const qs_args *a, int argidx, qs_buf *out, const filter *f, int vidx)
{
    size_t n, i;
    const char *s;
    if (lua_type(a->L, vidx) != LUA_TSTRING)
        qs_argerror(a, argidx, "filter '%s' must be a string%s", f->key,
                    f->type == F_STRINGS ? " or an array of strings" : "");
    s = lua_tolstring(a->L, vidx, &n);
    if (n == 0) qs_argerror(a, argidx, "filter '%s' must not be empty", f->key);
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            qs_argerror(a, argidx, "filter '%s' must not contain control bytes", f->key);
    if (!names_something(s, n))
        qs_argerror(a, argidx, "filter '%s' holds only separators and spaces (that would match every message)",
                    f->key);
    /* a single-valued filter names one thing: a ',' would make it a list */
    if (f->type == F_STRING && memchr(s, ',', n))
        qs_argerror(a, argidx, "filter '%s' must be one value, without ','", f->key);
    qs_query_add(a->L, out, f->param, s, n);
}

static long long get_int(const qs_args *a, int argidx, const filter *f, int vidx, double lo, double hi)
{
    double d;
    if (lua_type(a->L, vidx) != LUA_TNUMBER) goto bad;
    d = lua_tonumber(a->L, vidx);
    if (d != floor(d) || d < lo || d > hi) goto bad;
    return (long long)d;
bad:
    return qs_argerror(a, argidx, "filter '%s' must be an integer from %.0f to %.0f", f->key, lo, hi);
}

static void add_state(const qs_args *a, int argidx, qs_buf *out, const filter *f, int vidx)
{
    const char *const *s;
    const char *v = lua_type(a->L, vidx) == LUA_TSTRING ? lua_tostring(a->L, vidx) : NULL;
    for (s = qs_log_states; v && *s; s++)
        if (strcmp(*s, v) == 0) {
            qs_query_add(a->L, out, f->param, v, strlen(v));
            return;
        }
    qs_argerror(a, argidx, "filter 'state' must be one of CREATED, ACTIVE, RETRY, ERROR, IN_PROGRESS, "
                           "DELIVERED, FAILED, CANCEL_REQUESTED, CANCELLED");
}

int qs_filters_marshal(const qs_args *a, int argidx, int idx, qs_buf *out, int set)
{
    lua_State *L = a->L;
    const filter *f;
    const char *known[MAX_FILTERS];
    size_t nk = 0;
    int written = 0;
    char num[32];
    for (f = filters; f->key; f++)
        if (f->sets & (1u << set)) known[nk++] = f->key;
    known[nk] = NULL;
    qs_check_keys(a, argidx, idx, "filter", known);
    for (f = filters; f->key; f++) {
        int v;
        if (!(f->sets & (1u << set)) || f->type == F_ALL) continue;
        lua_getfield(L, idx, f->key);
        v = lua_gettop(L);
        if (lua_isnil(L, v)) {
            lua_pop(L, 1);
            continue;
        }
        switch (f->type) {
        case F_STRING:
            add_string(a, argidx, out, f, v);
            written++;
            break;
        case F_STRINGS:
        case F_STATUSES:
            if (lua_type(L, v) == LUA_TTABLE) {
                size_t n = qs_rawlen(L, v), i;
                if (n == 0)
                    qs_argerror(a, argidx, "filter '%s' must not be an empty array (that would match every message)", f->key);
                for (i = 1; i <= n; i++) {
                    lua_rawgeti(L, v, (int)i);
                    if (f->type == F_STRINGS) {
                        add_string(a, argidx, out, f, lua_gettop(L));
                    } else {
                        snprintf(num, sizeof num, "%lld", get_int(a, argidx, f, -1, 100, 599));
                        qs_query_add(L, out, f->param, num, strlen(num));
                    }
                    lua_pop(L, 1);
                }
            } else if (f->type == F_STRINGS) {
                add_string(a, argidx, out, f, v);
            } else {
                snprintf(num, sizeof num, "%lld", get_int(a, argidx, f, v, 100, 599));
                qs_query_add(L, out, f->param, num, strlen(num));
            }
            written++;
            break;
        case F_MS:
            snprintf(num, sizeof num, "%lld", get_int(a, argidx, f, v, 0, 9007199254740991.0));
            qs_query_add(L, out, f->param, num, strlen(num));
            written++;
            break;
        case F_STATE:
            add_state(a, argidx, out, f, v);
            written++;
            break;
        case F_ALL:
            break;
        case F_COUNT:
            snprintf(num, sizeof num, "%lld", get_int(a, argidx, f, v, 1, count_max(set)));
            qs_query_add(L, out, f->param, num, strlen(num));
            break;
        case F_CURSOR:
            if (lua_type(L, v) != LUA_TSTRING) qs_argerror(a, argidx, "filter 'cursor' must be a string");
            if (qs_rawlen(L, v) > 0) {
                size_t n;
                const char *s = lua_tolstring(L, v, &n);
                qs_query_add(L, out, f->param, s, n);
            }
            break;
        }
        lua_pop(L, 1);
    }
    return written;
}
