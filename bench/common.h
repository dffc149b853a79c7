/* Shared by the raw libcurl reference programs: clocks, a response sink and
 * the request setup that mirrors what lua-qstash sends for a DLQ retry
 * (POST, Authorization: Bearer, empty body with Content-Length: 0, no
 * Content-Type, no Expect, a User-Agent of the same length). */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <curl/curl.h>

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_self(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* The response body of one transfer, kept (as the client keeps it). */
typedef struct sink {
    char buf[4096];
    size_t n;
} sink;

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    sink *s = (sink *)ud;
    size_t len = size * nmemb;
    if (s->n + len > sizeof s->buf) return 0;
    memcpy(s->buf + s->n, p, len);
    s->n += len;
    return len;
}

static struct curl_slist *bench_headers(void)
{
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Authorization: Bearer bench");
    h = curl_slist_append(h, "Content-Type:");
    h = curl_slist_append(h, "Expect:");
    return h;
}

/* Options set once per handle; only the URL changes between requests. */
static void bench_setup(CURL *e, struct curl_slist *h, const char *ca, sink *s)
{
    char ua[64];
    snprintf(ua, sizeof ua, "raw-bench/0.1.0 libcurl/%s", curl_version_info(CURLVERSION_NOW)->version);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_USERAGENT, ua);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (ca && *ca) curl_easy_setopt(e, CURLOPT_CAINFO, ca);
}

/* The HTTP version to ask for: "1.1", "2" (over TLS; cleartext stays
 * HTTP/1.1), or NULL / "" for libcurl's default (HTTP/2 over TLS where ALPN
 * offers it, since libcurl 7.62). */
static void bench_http_version(CURL *e, const char *v)
{
    if (v && strcmp(v, "1.1") == 0) curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    else if (v && strcmp(v, "2") == 0) curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
}

static int body_ok(const sink *s)
{
    static const char want[] = "\"messageId\":\"msg_bench\"";
    size_t i, w = sizeof want - 1;
    for (i = 0; i + w <= s->n; i++)
        if (memcmp(s->buf + i, want, w) == 0) return 1;
    return 0;
}

static const char *http_version_name(long v)
{
    switch (v) {
    case CURL_HTTP_VERSION_1_0: return "http/1.0";
    case CURL_HTTP_VERSION_1_1: return "http/1.1";
    case CURL_HTTP_VERSION_2_0: return "h2";
    case CURL_HTTP_VERSION_3: return "h3";
    default: return "?";
    }
}

#endif
