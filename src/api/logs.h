/* The logs API (logs.c). */
#ifndef QS_LOGS_H
#define QS_LOGS_H

#include "api/api.h"

extern const qs_api qs_logs_apis[];

/* Makes the decoded answer of a logs request the page { logs = array,
 * cursor = string or nil } at the top (QStash's OpenAPI names the array
 * `logs`, its docs and qstash-js `events`): 1, or 0 with a decode error
 * pushed instead. */
int qs_logs_page(lua_State *L, qs_call *k, long status);

#endif
