/* The request value (see request.h). */
#include <math.h>
#include <string.h>
#include "core/request.h"

const char *const qs_captured_headers[QS_H_COUNT] = {
    "retry-after",           "burst-ratelimit-limit", "burst-ratelimit-remaining",
    "burst-ratelimit-reset", "ratelimit-limit",       "ratelimit-remaining",
    "ratelimit-reset"};

static int add_line(qs_buf *b, const char *line)
{
    return qs_buf_add(b, line, strlen(line) + 1);
}

int qs_req_init(qs_req *r, qs_conf *conf, const char *method, unsigned long long seed)
{
    memset(r, 0, sizeof *r);
    r->conf = qs_conf_ref(conf);
    r->method = method;
    r->rng = seed;
    if (!conf->token_in_query && conf->auth_header && add_line(&r->headers, conf->auth_header))
        return -1;
    if (add_line(&r->headers, conf->ua_header)) return -1;
    r->opt_headers = r->headers.n;
    return 0;
}

int qs_req_set_target(qs_req *r, const char *target, size_t len)
{
    const qs_conf *c = r->conf;
    int fail = 0;
    /* target may point into r->target itself */
    if (target != r->target.p) {
        qs_buf_clear(&r->target);
        fail |= qs_buf_add(&r->target, target, len);
    }
    qs_buf_clear(&r->url);
    fail |= qs_buf_adds(&r->url, c->base_url);
    fail |= qs_buf_add(&r->url, r->target.p, r->target.n);
    if (c->token_in_query && c->token) {
        fail |= qs_buf_adds(&r->url, memchr(r->target.p, '?', r->target.n) ? "&qstash_token=" : "?qstash_token=");
        fail |= qs_buf_add_pct(&r->url, c->token, strlen(c->token));
    }
    return fail ? -1 : 0;
}

int qs_req_content_type(qs_req *r, const char *ct, size_t len)
{
    if (qs_buf_adds(&r->headers, "Content-Type: ") || qs_buf_add(&r->headers, ct, len) ||
        qs_buf_addc(&r->headers, '\0'))
        return -1;
    return 0;
}

void qs_req_start_clock(qs_req *r, double now)
{
    r->deadline = now + qs_conf_call_budget(r->conf);
}

long qs_req_attempt_ms(const qs_req *r, long limit_ms, double now)
{
    double left = (r->deadline - now) * 1000.0;
    if (!(left > 0)) return 0;
    if (left < (double)limit_ms) limit_ms = (long)ceil(left);
    return limit_ms < 1 ? 1 : limit_ms;
}

int qs_req_copy(qs_req *dst, const qs_req *src, int with_target)
{
    *dst = *src;
    memset(&dst->target, 0, sizeof dst->target);
    memset(&dst->url, 0, sizeof dst->url);
    memset(&dst->headers, 0, sizeof dst->headers);
    memset(&dst->body, 0, sizeof dst->body);
    memset(&dst->resp, 0, sizeof dst->resp);
    qs_conf_ref(dst->conf);
    /* (an empty buffer stays unallocated) */
    if ((with_target && (qs_buf_add(&dst->target, src->target.p, src->target.n) ||
                         qs_buf_add(&dst->url, src->url.p, src->url.n))) ||
        qs_buf_add(&dst->headers, src->headers.p, src->headers.n) ||
        (src->body.n && qs_buf_add(&dst->body, src->body.p, src->body.n)))
        return -1;
    return 0;
}

void qs_req_move(qs_req *dst, qs_req *src)
{
    *dst = *src;
    memset(&src->target, 0, sizeof src->target);
    memset(&src->url, 0, sizeof src->url);
    memset(&src->headers, 0, sizeof src->headers);
    memset(&src->body, 0, sizeof src->body);
    memset(&src->resp, 0, sizeof src->resp);
    src->conf = NULL;
}

void qs_req_trim(qs_req *r)
{
    qs_buf_free(&r->url);
    qs_buf_free(&r->headers);
    qs_buf_free(&r->body);
    qs_buf_free(&r->resp);
}

void qs_req_free(qs_req *r)
{
    qs_buf_free(&r->target);
    qs_buf_free(&r->url);
    qs_buf_free(&r->headers);
    qs_buf_free(&r->body);
    qs_buf_free(&r->resp);
    qs_conf_unref(r->conf);
    r->conf = NULL;
}

static unsigned long long splitmix64(unsigned long long *x)
{
    unsigned long long z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

double qs_req_random(qs_req *r)
{
    return (double)(splitmix64(&r->rng) >> 11) * (1.0 / 9007199254740992.0);
}
