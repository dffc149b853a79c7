/* What an attempt's outcome means: success, a failure to report, or one
 * worth another try; and how long a 429 asks us to wait. Pure functions,
 * fuzzed by fuzz/classify_fuzz.c. */
#include <stdlib.h>
#include <time.h>
#include "classify.h"

static int permanent_transport(CURLcode code)
{
    switch (code) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CIPHER:
    case CURLE_NOT_BUILT_IN:
        return 1;
    default:
        return 0;
    }
}

qs_verdict qs_classify(const qs_attempt *at)
{
    qs_verdict v = {QS_OUT_FAIL, "http", 0};
    if (at->too_large) {
        v.kind = "too_large";
        /* a status line arrived: the server answered, so its outcome is known */
        return v;
    }
    if (at->code != CURLE_OK) {
        v.kind = at->code == CURLE_OPERATION_TIMEDOUT ? "timeout" : "network";
        v.unknown = at->sent;
        v.what = permanent_transport(at->code) ? QS_OUT_FAIL : QS_OUT_RETRY;
        return v;
    }
    if (at->status >= 200 && at->status <= 202) {
        v.what = QS_OUT_OK;
        return v;
    }
    switch (at->status) {
    case 400: v.kind = "bad_request"; break;
    case 401:
    case 403: v.kind = "unauthorized"; break;
    case 404: v.kind = "not_found"; break;
    case 412: v.kind = "quota"; break;
    case 429: v.kind = "rate_limited"; v.what = QS_OUT_RETRY; break;
    default:
        if (at->status >= 500 && at->status <= 599) {
            v.kind = "server";
            v.what = QS_OUT_RETRY;
            v.unknown = 1;
        }
    }
    return v;
}

double qs_rate_limit_wait(const char (*hvals)[QS_HVAL_MAX], double now)
{
    const char *ra = hvals[QS_H_RETRY_AFTER];
    const char *reset = hvals[QS_H_BURST_RESET][0] ? hvals[QS_H_BURST_RESET] : hvals[QS_H_DAILY_RESET];
    char *end;
    double v;
    if (ra[0]) {
        v = strtod(ra, &end);
        if (end != ra && *end == '\0' && v >= 0 && v < 1e9) return v;
        {
            time_t when = curl_getdate(ra, NULL);
            if (when != (time_t)-1) {
                v = (double)when - now;
                return v > 0 ? v : 0;
            }
        }
    }
    if (reset[0]) {
        v = strtod(reset, &end);
        if (end != reset && *end == '\0' && v >= 0 && v < 1e18) {
            if (v > 1e12) v /= 1000.0; /* milliseconds */
            return v > now ? v - now : 0;
        }
    }
    return -1;
}
