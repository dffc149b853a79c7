/* Filters -> query strings: the DLQ's (GET/DELETE /v2/dlq, POST
 * /v2/dlq/retry), the logs' (GET /v2/logs) and bulk cancel's (DELETE
 * /v2/messages). One table of rows says which endpoint takes which filter. */
#ifndef QS_FILTERS_H
#define QS_FILTERS_H

#include "core/args.h"
#include "base/buf.h"

/* Which endpoint the filters are for (the values 0 and 1 are the DLQ's bulk
 * and paging flavours, as the fuzzer names them). */
typedef enum {
    QS_FSET_DLQ_BULK = 0, /* DELETE /v2/dlq, POST /v2/dlq/retry: filters and `all` */
    QS_FSET_DLQ_LIST = 1, /* GET /v2/dlq: filters, `count` (1..100), `cursor` */
    QS_FSET_LOGS = 2,     /* GET /v2/logs: filters, `count` (1..1000), `cursor` */
    QS_FSET_CANCEL = 3    /* DELETE /v2/messages: filters and `all` */
} qs_filter_set;

/* Appends the filters of the table at idx as query parameters to out (no
 * leading '?'; '&' between), checking every key and value for `set`.
 * Returns how many filter parameters were written (count and cursor not
 * counted; `all` is the caller's to read). */
int qs_filters_marshal(const qs_args *a, int argidx, int idx, qs_buf *out, int set);

/* Appends key=value (percent-encoded), after a '&' unless out is empty or ends in '?'. */
void qs_query_add(lua_State *L, qs_buf *out, const char *key, const char *value, size_t len);

/* The log states QStash documents, and whether one ends a message's life
 * (DELIVERED, FAILED, CANCELLED). NULL-ended. */
extern const char *const qs_log_states[];
int qs_log_state_final(const char *state);

#endif
