/* The DLQ API: retry one message (the heart of the module), and the rest of
 * the dead-letter queue endpoints. */
#include <string.h>
#include <lauxlib.h>
#include "api.h"
#include "call.h"
#include "dlq.h"
#include "errors.h"
#include "options.h"
#include "response.h"

/* client:dlq_retry(id, opts) -> { messageId = ..., deduplicated = false } */
static int dlq_retry(lua_State *L, qs_client *c, const qs_args *a)
{
    qs_call call;
    long status = 0;
    const char *why;

    qs_buf_clear(&c->query);
    if (qs_buf_adds(&c->query, "/v2/dlq/retry/")) return luaL_error(L, "not enough memory");
    qs_api_add_id(a, a->base, &c->query);
    qs_buf_clear(&c->headers);
    qs_opts_marshal(a, a->base + 1, &c->headers, 0, NULL);
    if (!qs_call_have_token(L, c)) return qs_error_finish(L, c->safe);
    qs_api_target(L, c, c->query.p, c->query.n);

    memset(&call, 0, sizeof call);
    call.req.method = "POST";
    /* A DLQ entry is consumed once: after an unknown outcome a repeat either
     * succeeds or answers 404, which is reported as ambiguous. */
    call.resend_ok = 1;
    if (!qs_call_run(L, c, &call, &status)) return qs_error_finish(L, c->safe);
    if (!qs_api_decode(L, c, "POST", status)) return qs_error_finish(L, c->safe);
    if ((why = qs_shape_publish_response(L)) != NULL) {
        lua_pop(L, 1);
        qs_api_shape_error(L, c, "POST", status, why);
        return qs_error_finish(L, c->safe);
    }
    return 1;
}

const qs_api qs_dlq_apis[] = {
    {"dlq_retry", dlq_retry},
    {NULL, NULL},
};
