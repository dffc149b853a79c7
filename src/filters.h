/* DLQ filters -> query strings (GET/DELETE /v2/dlq, POST /v2/dlq/retry). */
#ifndef QS_FILTERS_H
#define QS_FILTERS_H

#include "args.h"
#include "buf.h"

/* Appends the filters of the table at idx as query parameters to out (no
 * leading '?'; '&' between). `paging` allows `count` and `cursor`. Returns
 * how many filter parameters were written (count/cursor not counted). */
int qs_filters_marshal(const qs_args *a, int argidx, int idx, qs_buf *out, int paging);

/* Appends key=value (percent-encoded), after a '&' unless out is empty or ends in '?'. */
void qs_query_add(lua_State *L, qs_buf *out, const char *key, const char *value, size_t len);

#endif
