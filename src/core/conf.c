/* Shared, immutable client configuration (see conf.h). */
#include <stdlib.h>
#include "core/conf.h"

qs_conf *qs_conf_new(void)
{
    qs_conf *c = (qs_conf *)calloc(1, sizeof *c);
    if (c) c->refs = 1;
    return c;
}

qs_conf *qs_conf_ref(qs_conf *c)
{
    c->refs++;
    return c;
}

void qs_conf_unref(qs_conf *c)
{
    if (!c || --c->refs > 0) return;
    free(c->token);
    free(c->missing_token);
    free(c->base_url);
    free(c->auth_header);
    free(c->ua_header);
    free(c->ca_file);
    free(c->proxy);
    free(c);
}

double qs_conf_call_budget(const qs_conf *c)
{
    return c->attempts * (c->timeout_ms / 1000.0 + c->max_delay) + 1.0;
}
