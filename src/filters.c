/* DLQ filters -> query strings. Multi-value filters go out as repeated keys;
 * an empty array raises, since a missing filter means "every message". */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <lauxlib.h>
#include "compat.h"
#include "filters.h"

typedef enum { F_STRING, F_STRINGS, F_MS, F_STATUSES, F_COUNT, F_CURSOR } ftype;

typedef struct filter {
    const char *key;   /* Lua name */
    const char *param; /* query parameter */
    ftype type;
} filter;

static const filter filters[] = {
    {"message_id", "messageId", F_STRING},
    {"url", "url", F_STRINGS},
    {"url_group", "topicName", F_STRINGS},
    {"schedule_id", "scheduleId", F_STRINGS},
    {"queue_name", "queueName", F_STRINGS},
    {"from_date", "fromDate", F_MS},
    {"to_date", "toDate", F_MS},
    {"response_status", "responseStatus", F_STATUSES},
    {"caller_ip", "callerIp", F_STRINGS},
    {"label", "label", F_STRINGS},
    {"flow_control_key", "flowControlKey", F_STRINGS},
    {"dlq_ids", "dlqIds", F_STRINGS},
    {"count", "count", F_COUNT},
    {"cursor", "cursor", F_CURSOR},
    {NULL, NULL, F_STRING},
};

static const char *const paging_keys[] = {
    "message_id", "url", "url_group", "schedule_id", "queue_name", "from_date", "to_date",
    "response_status", "caller_ip", "label", "flow_control_key", "dlq_ids", "count", "cursor",
    NULL};
static const char *const bulk_keys[] = {
    "message_id", "url", "url_group", "schedule_id", "queue_name", "from_date", "to_date",
    "response_status", "caller_ip", "label", "flow_control_key", "dlq_ids", "all", NULL};

void qs_query_add(lua_State *L, qs_buf *out, const char *key, const char *value, size_t len)
{
    if ((out->n > 0 && out->p[out->n - 1] != '?' && qs_buf_addc(out, '&')) || qs_buf_adds(out, key) || qs_buf_addc(out, '=') ||
        qs_buf_add_pct(out, value, len))
        luaL_error(L, "not enough memory");
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

int qs_filters_marshal(const qs_args *a, int argidx, int idx, qs_buf *out, int paging)
{
    lua_State *L = a->L;
    const filter *f;
    int written = 0;
    char num[32];
    qs_check_keys(a, argidx, idx, "filter", paging ? paging_keys : bulk_keys);
    for (f = filters; f->key; f++) {
        int v;
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
        case F_COUNT:
            snprintf(num, sizeof num, "%lld", get_int(a, argidx, f, v, 1, 100));
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
