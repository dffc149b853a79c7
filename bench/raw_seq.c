/* Reference for sequential calls: one libcurl easy handle reused for N
 * POST {base}/v2/dlq/retry/id-<i> requests (keep-alive, and one TLS session
 * over https). Usage: raw_seq BASE_URL N WARMUP [CA_FILE [HTTP_VERSION]]
 * (HTTP_VERSION: "1.1" or "2"; libcurl's default when left out or empty)
 * Prints "RESULT calls=N wall=S cpu=S proto=P" and exits 1 on any failure. */
#include "common.h"

static int one(CURL *e, const char *base, long i, sink *s)
{
    char url[512];
    long status = 0;
    CURLcode rc;
    snprintf(url, sizeof url, "%s/v2/dlq/retry/id-%ld", base, i);
    curl_easy_setopt(e, CURLOPT_URL, url);
    s->n = 0;
    rc = curl_easy_perform(e);
    if (rc != CURLE_OK) {
        fprintf(stderr, "raw_seq: request %ld: %s\n", i, curl_easy_strerror(rc));
        return -1;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 202 || !body_ok(s)) {
        fprintf(stderr, "raw_seq: request %ld: HTTP %ld\n", i, status);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *base, *ca, *version;
    long n, warm, i, ver = 0;
    double t0, c0, t1, c1;
    CURL *e;
    struct curl_slist *h;
    static sink s;

    if (argc < 4) {
        fprintf(stderr, "usage: raw_seq BASE_URL N WARMUP [CA_FILE [HTTP_VERSION]]\n");
        return 2;
    }
    base = argv[1];
    n = atol(argv[2]);
    warm = atol(argv[3]);
    ca = argc > 4 ? argv[4] : NULL;
    version = argc > 5 ? argv[5] : NULL;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    e = curl_easy_init();
    h = bench_headers();
    bench_setup(e, h, ca, &s);
    bench_http_version(e, version);
    for (i = 1; i <= warm; i++)
        if (one(e, base, -i, &s)) return 1;
    t0 = now_mono();
    c0 = cpu_self();
    for (i = 1; i <= n; i++)
        if (one(e, base, i, &s)) return 1;
    t1 = now_mono();
    c1 = cpu_self();
    curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &ver);
    printf("RESULT calls=%ld wall=%.6f cpu=%.6f proto=%s\n", n, t1 - t0, c1 - c0, http_version_name(ver));
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    curl_global_cleanup();
    return 0;
}
