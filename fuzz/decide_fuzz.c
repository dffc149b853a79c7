/* libFuzzer harness for qs_decide and qs_rate_limit_wait (src/core/decide.c): the
 * fuzz bytes give a request's state and configuration, an attempt's outcome
 * (failure, sends, status) and the seven rate-limit header values. Checks
 * the contract of design.md ("Errors", "Retries and time", "Architecture"):
 * the kind is one of the design's kinds; 200-202 answered is done and
 * nothing else is; an answered 4xx other than 429 is never retried; every
 * send counts as an attempt and never more than allowed; a request that is
 * not safe to resend is never repeated after it may have been sent; a
 * retry's wait is finite, >= 0, at most max_delay and inside the deadline;
 * ambiguity never goes away; a 429 alone adds none.
 *
 * Input layout: [failure][sends][status selector + bytes][flags][attempts
 * made][attempts allowed][delays][deadline], then per header a selector
 * byte: a dictionary value or a length (0-63) and raw bytes. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/decide.h"

#define FAIL(...) do { fprintf(stderr, "decide_fuzz: " __VA_ARGS__); fputc('\n', stderr); abort(); } while (0)
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define WALL 1700000000.0
#define NOW 1000.0

typedef struct rd {
    const uint8_t *p;
    size_t n;
} rd;

static unsigned u8(rd *r)
{
    if (!r->n) return 0;
    r->n--;
    return *r->p++;
}

static const char *const header_dict[] = {
    "120", "0", "1.5", "30", "-1", "1e9", "999999999", "nan", "inf", "1e308", "0x10", " 5",
    "5 ", "Wed, 21 Oct 2015 07:28:00 GMT", "Tue, 14 Nov 2023 22:13:30 GMT",
    "Fri, 31 Dec 9999 23:59:59 GMT", "Thu, 01 Jan 1970 00:00:00 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
    "Sun Nov  6 08:49:37 1994", "1700000060", "1700000060000", "1699999999", "1000000000001",
    "999999999999999999", "1e18", "100", "", "burst", "daily",
};

static const char *const kinds[] = {
    "not_found", "unauthorized", "bad_request", "quota", "rate_limited", "server", "http",
    "timeout", "network", "decode", "too_large", "config", "cancelled", "signature",
};

static long read_status(rd *r)
{
    static const long common[] = {200, 201, 202, 203, 204, 199, 299, 300, 304, 400, 401, 403,
                                  404, 408, 409, 412, 413, 429, 499, 500, 502, 503, 504, 599,
                                  600, 0, -1, 100, 999};
    unsigned k = u8(r);
    if (k < 200) return common[k % COUNT(common)];
    if (k < 250) return (long)(u8(r) << 8 | u8(r)) % 1000;
    {
        uint32_t v = (uint32_t)u8(r) << 24 | (uint32_t)u8(r) << 16 | (uint32_t)u8(r) << 8 | u8(r);
        return (long)(int32_t)v;
    }
}

static void read_header(rd *r, char *out)
{
    unsigned k = u8(r);
    if (k < 128) {
        const char *s = header_dict[k % COUNT(header_dict)];
        snprintf(out, QS_HVAL_MAX, "%s", s);
    } else {
        size_t n = (k - 128) % QS_HVAL_MAX, i;
        for (i = 0; i < n; i++) out[i] = (char)u8(r);
        out[n] = '\0';
    }
}

static void check(const qs_req *r, const qs_outcome *o, qs_decision d)
{
    const qs_conf *c = r->conf;
    int answered = o->failure == QS_FAIL_NONE;
    int sent = o->sends > 0;
    size_t i;
    if (d.verb != QS_DONE && d.verb != QS_FAIL && d.verb != QS_RETRY) FAIL("verb %d", (int)d.verb);
    if (d.attempts != r->attempts + (o->sends > 1 ? o->sends : 1))
        FAIL("attempts %d after %d with %d sends", d.attempts, r->attempts, o->sends);
    if (r->ambiguous && !d.ambiguous) FAIL("ambiguity went away");
    if (o->sends > 1 && !d.ambiguous) FAIL("a repeated send is not ambiguous");
    if (answered && o->status >= 200 && o->status <= 202) {
        if (d.verb != QS_DONE) FAIL("status %ld answered is not done", o->status);
        return;
    }
    if (d.verb == QS_DONE) FAIL("done for failure %d status %ld", (int)o->failure, o->status);
    if (!d.kind) FAIL("no kind");
    for (i = 0; i < COUNT(kinds); i++)
        if (strcmp(d.kind, kinds[i]) == 0) break;
    if (i == COUNT(kinds)) FAIL("kind '%s' is not one of the design's", d.kind);
    if (o->failure == QS_FAIL_TOO_LARGE && (strcmp(d.kind, "too_large") || d.verb != QS_FAIL))
        FAIL("too_large reported as %s", d.kind);
    if (o->failure == QS_FAIL_TIMEOUT && strcmp(d.kind, "timeout")) FAIL("timeout kind %s", d.kind);
    if ((o->failure == QS_FAIL_NETWORK || o->failure == QS_FAIL_PERMANENT) && strcmp(d.kind, "network"))
        FAIL("network kind %s", d.kind);
    if (o->failure == QS_FAIL_PERMANENT && d.verb == QS_RETRY) FAIL("a permanent failure retried");
    if (!answered && o->failure != QS_FAIL_TOO_LARGE && sent && !d.ambiguous) FAIL("sent failure not ambiguous");
    if (!answered && o->failure != QS_FAIL_TOO_LARGE && !sent && d.ambiguous != (r->ambiguous || o->sends > 1))
        FAIL("unsent failure made ambiguous");
    if (answered) {
        if (o->status >= 400 && o->status <= 499 && o->status != 429 && d.verb == QS_RETRY)
            FAIL("4xx %ld retried", o->status);
        if (o->status == 429 && (strcmp(d.kind, "rate_limited") || !d.rate_limited))
            FAIL("429: %s", d.kind);
        if (o->status == 429 && d.ambiguous != (r->ambiguous || o->sends > 1)) FAIL("429 made ambiguous");
        if (o->status >= 500 && o->status <= 599 && (strcmp(d.kind, "server") || !d.ambiguous))
            FAIL("5xx %ld: %s", o->status, d.kind);
        if (o->status == 404 && strcmp(d.kind, "not_found")) FAIL("404: %s", d.kind);
        if ((o->status == 401 || o->status == 403) && strcmp(d.kind, "unauthorized")) FAIL("401/403: %s", d.kind);
        if (o->status == 400 && strcmp(d.kind, "bad_request")) FAIL("400: %s", d.kind);
        if (o->status == 412 && strcmp(d.kind, "quota")) FAIL("412: %s", d.kind);
        if (d.verb == QS_RETRY && !(o->status == 429 || (o->status >= 500 && o->status <= 599)))
            FAIL("status %ld retried", o->status);
    }
    if (d.verb != QS_RETRY) return;
    if (d.attempts >= c->attempts) FAIL("retry beyond %d attempts", c->attempts);
    if (!r->resend_ok && (sent && (!answered || o->status >= 500)))
        FAIL("a request unsafe to resend is repeated after it may have been sent");
    if (!(isfinite(d.wait) && d.wait >= 0 && d.wait <= c->max_delay)) FAIL("wait %g", d.wait);
    if (!(NOW + d.wait < r->deadline)) FAIL("retry after the deadline");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd rb;
    qs_conf conf;
    qs_req req;
    qs_outcome o;
    unsigned flags, i;
    double wait;
    rb.p = data;
    rb.n = size;
    memset(&conf, 0, sizeof conf);
    memset(&req, 0, sizeof req);
    memset(&o, 0, sizeof o);
    o.failure = (qs_failure)(u8(&rb) % 5);
    o.sends = (int)(u8(&rb) % 8);
    o.status = read_status(&rb);
    flags = u8(&rb);
    req.resend_ok = flags & 1;
    req.ambiguous = (flags >> 1) & 1;
    req.attempts = (int)(u8(&rb) % 110);
    conf.attempts = 1 + (int)(u8(&rb) % 100);
    conf.base_delay = (u8(&rb) % 64) / 8.0;
    conf.max_delay = (u8(&rb) % 128) / 4.0;
    conf.timeout_ms = 1 + (long)u8(&rb) * 100;
    req.conf = &conf;
    req.deadline = NOW + (u8(&rb) % 200) - 20;
    for (i = 0; i < QS_H_COUNT; i++) read_header(&rb, o.hvals[i]);
    check(&req, &o, qs_decide(&req, &o, NOW, WALL, (u8(&rb) % 256) / 256.0));

    wait = qs_rate_limit_wait((const char(*)[QS_HVAL_MAX])o.hvals, WALL);
    if (!(wait == -1 || (isfinite(wait) && wait >= 0)))
        FAIL("wait %g for Retry-After '%s', resets '%s' / '%s'", wait, o.hvals[QS_H_RETRY_AFTER],
             o.hvals[QS_H_BURST_RESET], o.hvals[QS_H_DAILY_RESET]);
    /* nothing usable -> -1; a plain number of seconds is taken as it is */
    if (!o.hvals[QS_H_RETRY_AFTER][0] && !o.hvals[QS_H_BURST_RESET][0] && !o.hvals[QS_H_DAILY_RESET][0] &&
        wait != -1)
        FAIL("a wait of %g without headers", wait);
    {
        char *end;
        double ra = strtod(o.hvals[QS_H_RETRY_AFTER], &end);
        if (end != o.hvals[QS_H_RETRY_AFTER] && *end == '\0' && ra >= 0 && ra < 1e9 && wait != ra)
            FAIL("Retry-After '%s' gave %g", o.hvals[QS_H_RETRY_AFTER], wait);
    }
    return 0;
}
