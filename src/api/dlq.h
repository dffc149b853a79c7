/* The DLQ API functions (dlq.c). */
#ifndef QS_DLQ_H
#define QS_DLQ_H

#include "api/api.h"

extern const qs_api qs_dlq_apis[];

/* dlq_retry's plan: async requests build their requests with it too. */
extern const qs_plan qs_plan_dlq_retry;

/* What a bulk call over ids or a filter names in its errors, and the
 * filters it takes. */
typedef struct qs_bulk {
    const char *id_what; /* "DLQ id", "message id" */
    const char *one;     /* the function for one id: "dlq_delete" */
    int filter_set;      /* qs_filter_set */
} qs_bulk;

/* Reads what a bulk call targets into the call's state (uv): explicit ids
 * (a private copy in uv.ids: an array without other keys, each checked as
 * one id) or a filter (its query in uv.filter; `{ all = true }` for every
 * message, `{}` raises). */
void qs_bulk_target(lua_State *L, const qs_args *a, int uv, const qs_bulk *b);

/* Adds the next ids (at most 100, from k->page on) of the array at `ids`
 * to the call's target as repeated `param` keys, and moves k->page on. */
void qs_bulk_add_ids(lua_State *L, qs_call *k, int ids, const char *param);

#endif
