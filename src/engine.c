/* One HTTP attempt over libcurl (see engine.h). Every call, sequential or
 * not, runs through the client's multi handle, which owns the connection
 * cache: sequential calls reuse one keep-alive (and TLS) connection. */
#include <string.h>
#include <strings.h>
#include "engine.h"

static const char *const captured[QS_H_COUNT] = {
    "retry-after",          "burst-ratelimit-limit", "burst-ratelimit-remaining",
    "burst-ratelimit-reset", "ratelimit-limit",      "ratelimit-remaining",
    "ratelimit-reset"};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    qs_client *c = (qs_client *)ud;
    size_t len = size * nmemb;
    if ((long long)(c->body.n + len) > c->max_response_bytes) {
        c->too_large = 1;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    if (qs_buf_add(&c->body, ptr, len)) return 0;
    return len;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    qs_client *c = (qs_client *)ud;
    size_t len = size * nmemb, i;
    if (len >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        /* a new response (after a 1xx): forget earlier headers */
        memset(c->hvals, 0, sizeof c->hvals);
        return len;
    }
    for (i = 0; i < QS_H_COUNT; i++) {
        size_t n = strlen(captured[i]);
        if (len > n && ptr[n] == ':' && strncasecmp(ptr, captured[i], n) == 0) {
            const char *v = ptr + n + 1, *end = ptr + len;
            size_t vlen;
            while (v < end && (*v == ' ' || *v == '\t')) v++;
            while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
                end--;
            vlen = (size_t)(end - v);
            if (vlen >= QS_HVAL_MAX) vlen = QS_HVAL_MAX - 1;
            memcpy(c->hvals[i], v, vlen);
            c->hvals[i][vlen] = '\0';
            break;
        }
    }
    return len;
}

static int build_slist(qs_client *c, const qs_request *r)
{
    struct curl_slist *l = NULL, *t;
    size_t off = 0;
    char ua[300];
    curl_slist_free_all(c->slist);
    c->slist = NULL;
#define ADD(s) do { if (!(t = curl_slist_append(l, (s)))) goto oom; l = t; } while (0)
    if (!c->token_in_query) ADD(c->auth_header);
    /* libcurl would add "Content-Type: application/x-www-form-urlencoded"
     * to a POST and "Expect: 100-continue" to a large one: neither is ours. */
    if (r->content_type) {
        /* the publish body's type, checked by the caller */
        qs_buf tmp = {0, 0, 0};
        if (qs_buf_adds(&tmp, "Content-Type: ") || qs_buf_adds(&tmp, r->content_type)) {
            qs_buf_free(&tmp);
            goto oom;
        }
        t = curl_slist_append(l, tmp.p);
        qs_buf_free(&tmp);
        if (!t) goto oom;
        l = t;
    } else {
        ADD("Content-Type:");
    }
    ADD("Expect:");
    if (strlen(c->user_agent) < sizeof ua - 20) {
        memcpy(ua, "User-Agent: ", 12);
        strcpy(ua + 12, c->user_agent);
        ADD(ua);
    }
    while (off < c->headers.n) {
        const char *line = c->headers.p + off;
        ADD(line);
        off += strlen(line) + 1;
    }
#undef ADD
    c->slist = l;
    return 0;
oom:
    curl_slist_free_all(l);
    return -1;
}

static void set_options(qs_client *c, const qs_request *r)
{
    CURL *e = c->easy;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, c->url.p);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    /* A connection idle this long is not reused: libcurl silently resends a
     * request whose reused connection died before any answer. */
    curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, 30L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_response_bytes);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->slist);
    if (c->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
    if (c->proxy) curl_easy_setopt(e, CURLOPT_PROXY, c->proxy);
    if (strcmp(r->method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(r->method, "POST") == 0) {
        /* A NULL body would make libcurl read stdin: always give one. */
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    }
}

int qs_engine_perform(qs_client *c, const qs_request *r, qs_attempt *out)
{
    CURLMsg *msg;
    int running = 1, left;
    CURLMcode mc = CURLM_OK;
    curl_off_t sent = 0;

    memset(out, 0, sizeof *out);
    qs_buf_clear(&c->body);
    memset(c->hvals, 0, sizeof c->hvals);
    c->errbuf[0] = '\0';
    c->too_large = 0;
    if (qs_buf_terminate(&c->body) || build_slist(c, r)) return -1;
    set_options(c, r);

    out->code = CURLE_FAILED_INIT;
    if (curl_multi_add_handle(c->multi, c->easy) != CURLM_OK) return 0;
    while (running && mc == CURLM_OK) {
        mc = curl_multi_perform(c->multi, &running);
        if (mc == CURLM_OK && running) mc = curl_multi_poll(c->multi, NULL, 0, 1000, NULL);
    }
    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == c->easy) out->code = msg->data.result;
    }
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &out->status);
    /* Whether the server may have acted on the request: bytes of it reached
     * the socket, or the transfer got as far as sending (libcurl resends on a
     * fresh connection when a reused one dies, and may then report 0 bytes). */
    {
        long req_size = 0;
        curl_off_t pretransfer = 0;
        curl_easy_getinfo(c->easy, CURLINFO_REQUEST_SIZE, &req_size);
        curl_easy_getinfo(c->easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
        sent = req_size > 0 || pretransfer > 0;
    }
    out->sent = sent != 0;
    out->too_large = c->too_large || out->code == CURLE_FILESIZE_EXCEEDED;
    curl_multi_remove_handle(c->multi, c->easy);
    if (mc != CURLM_OK && out->code == CURLE_OK) out->code = CURLE_FAILED_INIT;
    return 0;
}
