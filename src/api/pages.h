/* Paged reads: QStash's cursors ("" or absent: the end), the guard against
 * a cursor that repeats an earlier one (a server cycling a -> b -> a would
 * have a loop send the same requests for ever), and the iterator over every
 * item across pages (dlq_messages, log_entries). */
#ifndef QS_PAGES_H
#define QS_PAGES_H

#include <lua.h>
#include "api/api.h"

/* A paged list: the plan of one page, the array field of its result, and
 * the filters it takes. */
typedef struct qs_pager {
    const qs_plan *plan;
    const char *field;  /* "messages", "logs" */
    int filter_set;     /* qs_filter_set */
} qs_pager;

/* Replaces an empty or non-string cursor by nil in the result at the top. */
void qs_pages_normalise_cursor(lua_State *L);

/* With a cursor at the top: whether the `seen` set of the table at `t`
 * holds it already; if not, it is recorded there. The stack is unchanged. */
int qs_pages_cursor_seen(lua_State *L, int t);

/* Pushes the `decode` error of a cursor seen before. */
void qs_pages_cursor_repeated(lua_State *L, const qs_req *r, const char *cursor);

/* Pushes an iterator over every item of every page of pg, starting at the
 * params' cursor, if any. It raises on failure in both variants: a nil
 * would silently end the loop. The client is at a->base - 1. */
int qs_pages_iterate(lua_State *L, const qs_args *a, const qs_pager *pg);

#endif
