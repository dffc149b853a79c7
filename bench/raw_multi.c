/* Reference for concurrent calls: one libcurl multi handle keeping CONC
 * transfers in flight (CONC easy handles, each reused for the next id) until
 * N POST {base}/v2/dlq/retry/id-<i> requests have completed. Over https the
 * transfers wait for HTTP/2 multiplexing (PIPEWAIT) instead of opening a
 * connection each. Usage: raw_multi BASE_URL N CONC WARMUP [CA_FILE [HTTP_VERSION]]
 * (HTTP_VERSION: "1.1" or "2"; libcurl's default when left out or empty)
 * Prints "RESULT calls=N wall=S cpu=S proto=P" and exits 1 on any failure. */
#include "common.h"

typedef struct slot {
    CURL *e;
    sink s;
    long id;
    char url[512];
} slot;

static const char *base;
static long next_id, last_id;

static void start(CURLM *m, slot *t)
{
    t->id = next_id++;
    snprintf(t->url, sizeof t->url, "%s/v2/dlq/retry/id-%ld", base, t->id);
    curl_easy_setopt(t->e, CURLOPT_URL, t->url);
    t->s.n = 0;
    curl_multi_add_handle(m, t->e);
}

/* Runs ids [from, to] with up to conc in flight; 0 or -1. */
static int run(CURLM *m, slot *slots, long conc, long from, long to, long *ver)
{
    long i, done = 0, total = to - from + 1;
    int running = 0, left;
    CURLMsg *msg;
    next_id = from;
    last_id = to;
    for (i = 0; i < conc && next_id <= last_id; i++) start(m, &slots[i]);
    while (done < total) {
        if (curl_multi_perform(m, &running) != CURLM_OK) return -1;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            slot *t = NULL;
            long status = 0;
            if (msg->msg != CURLMSG_DONE) continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
            if (msg->data.result != CURLE_OK) {
                fprintf(stderr, "raw_multi: id %ld: %s\n", t->id, curl_easy_strerror(msg->data.result));
                return -1;
            }
            curl_easy_getinfo(t->e, CURLINFO_RESPONSE_CODE, &status);
            curl_easy_getinfo(t->e, CURLINFO_HTTP_VERSION, ver);
            if (status < 200 || status > 202 || !body_ok(&t->s)) {
                fprintf(stderr, "raw_multi: id %ld: HTTP %ld\n", t->id, status);
                return -1;
            }
            curl_multi_remove_handle(m, t->e);
            done++;
            if (next_id <= last_id) start(m, t);
        }
        if (done < total && curl_multi_poll(m, NULL, 0, 1000, NULL) != CURLM_OK) return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *ca, *version;
    long n, conc, warm, i, ver = 0;
    double t0, c0, t1, c1;
    CURLM *m;
    slot *slots;
    struct curl_slist *h;

    if (argc < 5) {
        fprintf(stderr, "usage: raw_multi BASE_URL N CONC WARMUP [CA_FILE [HTTP_VERSION]]\n");
        return 2;
    }
    base = argv[1];
    n = atol(argv[2]);
    conc = atol(argv[3]);
    warm = atol(argv[4]);
    ca = argc > 5 ? argv[5] : NULL;
    version = argc > 6 ? argv[6] : NULL;
    if (conc < 1) conc = 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    m = curl_multi_init();
    h = bench_headers();
    slots = calloc((size_t)conc, sizeof *slots);
    if (!slots) return 1;
    for (i = 0; i < conc; i++) {
        slots[i].e = curl_easy_init();
        bench_setup(slots[i].e, h, ca, &slots[i].s);
        bench_http_version(slots[i].e, version);
        curl_easy_setopt(slots[i].e, CURLOPT_PRIVATE, (char *)&slots[i]);
        curl_easy_setopt(slots[i].e, CURLOPT_PIPEWAIT, 1L);
    }
    if (warm > 0 && run(m, slots, conc, -warm, -1, &ver)) return 1;
    t0 = now_mono();
    c0 = cpu_self();
    if (run(m, slots, conc, 1, n, &ver)) return 1;
    t1 = now_mono();
    c1 = cpu_self();
    printf("RESULT calls=%ld wall=%.6f cpu=%.6f proto=%s\n", n, t1 - t0, c1 - c0, http_version_name(ver));
    for (i = 0; i < conc; i++) curl_easy_cleanup(slots[i].e);
    free(slots);
    curl_multi_cleanup(m);
    curl_slist_free_all(h);
    curl_global_cleanup();
    return 0;
}
