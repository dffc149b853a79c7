/* What follows an attempt: done, another try after a wait, or a failure
 * (see decide.h). Pure functions. */
/* strptime (X/Open) and timegm (glibc), beside _POSIX_C_SOURCE */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/decide.h"

const char *qs_status_kind(long status)
{
    static const struct {
        long status;
        const char *kind;
    } rows[] = {
        {400, "bad_request"}, {401, "unauthorized"}, {403, "unauthorized"},
        {404, "not_found"},   {412, "quota"},        {429, "rate_limited"},
    };
    size_t i;
    for (i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (rows[i].status == status) return rows[i].kind;
    return status >= 500 && status <= 599 ? "server" : "http";
}

/* An HTTP date (RFC 9110: IMF-fixdate, or the obsolete RFC 850 and asctime
 * forms) in unix seconds, or -1. */
static double http_date(const char *s)
{
    static const char *const formats[] = {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
                                          "%a %b %e %H:%M:%S %Y"};
    size_t i;
    for (i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        struct tm tm;
        const char *end;
        memset(&tm, 0, sizeof tm);
        end = strptime(s, formats[i], &tm);
        if (end && *end == '\0') {
            time_t t = timegm(&tm);
            if (t != (time_t)-1) return (double)t;
        }
    }
    return -1;
}

/* A decimal number taking the whole text, or -1. */
static double whole_number(const char *s, double max)
{
    char *end;
    double v;
    if (!s[0]) return -1;
    v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v >= 0) || !(v < max)) return -1;
    return v;
}

double qs_rate_limit_wait(const char (*hvals)[QS_HVAL_MAX], double wall)
{
    const char *ra = hvals[QS_H_RETRY_AFTER];
    const char *reset = hvals[QS_H_BURST_RESET][0] ? hvals[QS_H_BURST_RESET] : hvals[QS_H_DAILY_RESET];
    double v;
    if (ra[0]) {
        if ((v = whole_number(ra, 1e9)) >= 0) return v;
        if ((v = http_date(ra)) >= 0) return v > wall ? v - wall : 0;
    }
    if ((v = whole_number(reset, 1e18)) >= 0) {
        if (v > 1e12) v /= 1000.0; /* milliseconds */
        return v > wall ? v - wall : 0;
    }
    return -1;
}

/* Exponential backoff from base_delay with full jitter, capped at max_delay,
 * after `attempts` tries. */
static double backoff(const qs_conf *c, int attempts, double rnd)
{
    double cap = c->base_delay * pow(2.0, attempts > 60 ? 60 : attempts - 1);
    if (cap > c->max_delay) cap = c->max_delay;
    return rnd * cap;
}

qs_decision qs_decide(const qs_req *r, const qs_outcome *o, double now, double wall, double rnd)
{
    const qs_conf *c = r->conf;
    qs_decision d;
    int unknown = 0, retryable = 0;
    d.verb = QS_FAIL;
    d.kind = "http";
    d.wait = -1;
    d.rate_limited = 0;
    d.out_of_time = 0;
    /* every send is an attempt, the transport's own resends included */
    d.attempts = r->attempts + (o->sends > 1 ? o->sends : 1);
    /* a send repeated by the transport: the earlier one died unanswered */
    d.ambiguous = r->ambiguous || o->sends > 1;
    switch (o->failure) {
    case QS_FAIL_TOO_LARGE:
        d.kind = "too_large"; /* a status line arrived: the server's answer is known */
        return d;
    case QS_FAIL_TIMEOUT:
    case QS_FAIL_NETWORK:
    case QS_FAIL_PERMANENT:
        d.kind = o->failure == QS_FAIL_TIMEOUT ? "timeout" : "network";
        unknown = o->sends > 0;
        retryable = o->failure != QS_FAIL_PERMANENT;
        break;
    case QS_FAIL_NONE:
        if (o->status >= 200 && o->status <= 202) {
            d.verb = QS_DONE;
            d.kind = NULL;
            return d;
        }
        d.kind = qs_status_kind(o->status);
        if (o->status == 429) {
            retryable = d.rate_limited = 1;
            d.wait = qs_rate_limit_wait(o->hvals, wall);
        } else if (o->status >= 500 && o->status <= 599) {
            retryable = unknown = 1; /* the server may have acted before failing */
        }
        break;
    }
    if (unknown) d.ambiguous = 1;
    if (!retryable || d.attempts >= c->attempts) return d;
    if (unknown && !r->resend_ok) return d; /* repeating could do it twice */
    if (d.rate_limited && d.wait > c->max_delay) return d; /* too long: tell the caller when */
    if (!d.rate_limited || d.wait < 0) d.wait = backoff(c, d.attempts, rnd);
    if (now + d.wait >= r->deadline) {
        d.out_of_time = 1; /* no time left for another attempt */
        return d;
    }
    d.verb = QS_RETRY;
    return d;
}
