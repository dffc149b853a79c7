/* libFuzzer harness for qs_classify and qs_rate_limit_wait (src/classify.c):
 * the fuzz bytes give an attempt (libcurl code, HTTP status, sent,
 * too_large) and the seven rate-limit header values. Checks the contract of
 * design.md ("Errors", "Retries and time"): the kind is one of the design's
 * kinds, 200-202 with CURLE_OK is success and nothing else is, an answered
 * 4xx other than 429 is never retried, a 429 is retried and never
 * ambiguous, and a wait is -1 or a finite number of seconds >= 0.
 *
 * Input layout: [code][status selector + bytes][flags], then per header a
 * selector byte: a dictionary value or a length (0-63) and raw bytes. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../src/classify.h"

#define FAIL(...) do { fprintf(stderr, "classify_fuzz: " __VA_ARGS__); fputc('\n', stderr); abort(); } while (0)
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define NOW 1700000000.0

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

static void check_verdict(const qs_attempt *at, qs_verdict v)
{
    size_t i;
    int answered = at->code == CURLE_OK && !at->too_large;
    if (v.what != QS_OUT_OK && v.what != QS_OUT_FAIL && v.what != QS_OUT_RETRY)
        FAIL("outcome %d", (int)v.what);
    if (v.unknown != 0 && v.unknown != 1) FAIL("unknown = %d", v.unknown);
    if (answered && at->status >= 200 && at->status <= 202) {
        if (v.what != QS_OUT_OK) FAIL("status %ld with CURLE_OK is not OK", at->status);
    } else if (v.what == QS_OUT_OK) {
        FAIL("OK for code %d status %ld too_large %d", (int)at->code, at->status, at->too_large);
    }
    if (v.what == QS_OUT_OK) return;
    if (!v.kind) FAIL("no kind");
    for (i = 0; i < COUNT(kinds); i++)
        if (strcmp(v.kind, kinds[i]) == 0) break;
    if (i == COUNT(kinds)) FAIL("kind '%s' is not one of the design's", v.kind);
    if (at->too_large && strcmp(v.kind, "too_large")) FAIL("too_large reported as %s", v.kind);
    if (!answered) {
        if (!at->too_large && strcmp(v.kind, "timeout") && strcmp(v.kind, "network"))
            FAIL("transport failure %d reported as %s", (int)at->code, v.kind);
        if (!at->too_large && v.unknown != (at->sent != 0)) FAIL("ambiguity != sent");
        if (!at->too_large && at->code == CURLE_OPERATION_TIMEDOUT && strcmp(v.kind, "timeout"))
            FAIL("timeout kind");
        return;
    }
    if (at->status >= 400 && at->status <= 499 && at->status != 429 && v.what == QS_OUT_RETRY)
        FAIL("4xx %ld retried", at->status);
    if (at->status == 429 && (v.what != QS_OUT_RETRY || strcmp(v.kind, "rate_limited") || v.unknown))
        FAIL("429: %s, retry %d, unknown %d", v.kind, v.what == QS_OUT_RETRY, v.unknown);
    if (at->status >= 500 && at->status <= 599 && (v.what != QS_OUT_RETRY || strcmp(v.kind, "server")))
        FAIL("5xx %ld: %s", at->status, v.kind);
    if (at->status == 404 && strcmp(v.kind, "not_found")) FAIL("404: %s", v.kind);
    if ((at->status == 401 || at->status == 403) && strcmp(v.kind, "unauthorized")) FAIL("401/403: %s", v.kind);
    if (at->status == 400 && strcmp(v.kind, "bad_request")) FAIL("400: %s", v.kind);
    if (at->status == 412 && strcmp(v.kind, "quota")) FAIL("412: %s", v.kind);
    if (v.what == QS_OUT_RETRY && !(at->status == 429 || (at->status >= 500 && at->status <= 599)))
        FAIL("status %ld retried", at->status);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd r;
    qs_attempt at;
    qs_verdict v;
    unsigned flags, i;
    char hvals[QS_H_COUNT][QS_HVAL_MAX];
    double wait;
    r.p = data;
    r.n = size;
    memset(&at, 0, sizeof at);
    {
        unsigned c = u8(&r);
        at.code = c < 128 ? CURLE_OK : (CURLcode)(c % 100);
    }
    at.status = read_status(&r);
    flags = u8(&r);
    at.sent = flags & 1;
    at.too_large = (flags >> 1) & 1;
    memset(hvals, 0, sizeof hvals);
    for (i = 0; i < QS_H_COUNT; i++) read_header(&r, hvals[i]);

    v = qs_classify(&at);
    check_verdict(&at, v);

    wait = qs_rate_limit_wait((const char(*)[QS_HVAL_MAX])hvals, NOW);
    if (!(wait == -1 || (isfinite(wait) && wait >= 0)))
        FAIL("wait %g for Retry-After '%s', resets '%s' / '%s'", wait, hvals[QS_H_RETRY_AFTER],
             hvals[QS_H_BURST_RESET], hvals[QS_H_DAILY_RESET]);
    /* nothing usable -> -1; a plain number of seconds is taken as it is */
    if (!hvals[QS_H_RETRY_AFTER][0] && !hvals[QS_H_BURST_RESET][0] && !hvals[QS_H_DAILY_RESET][0] &&
        wait != -1)
        FAIL("a wait of %g without headers", wait);
    {
        char *end;
        double ra = strtod(hvals[QS_H_RETRY_AFTER], &end);
        if (end != hvals[QS_H_RETRY_AFTER] && *end == '\0' && ra >= 0 && ra < 1e9 && wait != ra)
            FAIL("Retry-After '%s' gave %g", hvals[QS_H_RETRY_AFTER], wait);
    }
    return 0;
}
