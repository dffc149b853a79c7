/* HTTP attempts over libcurl (see engine.h). Every call, sequential or
 * not, runs through the client's multi handle, which owns the connection
 * cache: sequential calls reuse one keep-alive (and TLS) connection, and
 * concurrent ones share HTTP/2 connections where the server offers them. */
#include <string.h>
#include "client.h"
#include "engine.h"

static const char *const captured[QS_H_COUNT] = {
    "retry-after",           "burst-ratelimit-limit", "burst-ratelimit-remaining",
    "burst-ratelimit-reset", "ratelimit-limit",       "ratelimit-remaining",
    "ratelimit-reset"};

/* libcurl callbacks: C only, never Lua. */
static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    qs_xfer *x = (qs_xfer *)ud;
    size_t len = size * nmemb;
    if ((long long)(x->body.n + len) > x->max_response_bytes) {
        x->too_large = 1;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    if (qs_buf_add(&x->body, ptr, len)) return 0;
    return len;
}

/* A body this small never gets "Expect: 100-continue" from any libcurl. */
#define EXPECT_FREE_BODY 1024

static struct curl_slist *add_line(struct curl_slist *l, const char *line, int *oom)
{
    struct curl_slist *t = curl_slist_append(l, line);
    if (!t) *oom = 1;
    return t ? t : l;
}

/* The first byte of a header key: whether there is a content type, and
 * whether the body is large enough to need "Expect:". */
static char hkey_tag(const char *ct, int big)
{
    return ct ? (big ? 'C' : 'c') : (big ? 'N' : 'n');
}

/* Whether x->slist was built from these header lines, content type and
 * body size class (whether it carries "Expect:"). */
static int same_headers(const qs_client *c, const qs_xfer *x, const char *ct, int big)
{
    size_t ctlen = ct ? strlen(ct) + 1 : 0;
    if (!x->slist || x->hkey.n != 1 + ctlen + c->headers.n) return 0;
    if (x->hkey.p[0] != hkey_tag(ct, big)) return 0;
    if (ctlen && memcmp(x->hkey.p + 1, ct, ctlen) != 0) return 0;
    return c->headers.n == 0 || memcmp(x->hkey.p + 1 + ctlen, c->headers.p, c->headers.n) == 0;
}

int qs_engine_headers(qs_client *c, qs_xfer *x, const qs_request *r)
{
    struct curl_slist *l = NULL;
    size_t off = 0;
    int oom = 0;
    /* sequential calls with the same options reuse the list as it is */
    if (same_headers(c, x, r->content_type, r->body_len > EXPECT_FREE_BODY)) return 0;
    curl_slist_free_all(x->slist);
    x->slist = NULL;
    qs_buf_clear(&x->hkey);
    if (!c->token_in_query) l = add_line(l, c->auth_header, &oom);
    /* libcurl would add "Content-Type: application/x-www-form-urlencoded"
     * to a POST and "Expect: 100-continue" to a large one: neither is ours. */
    if (r->content_type) {
        qs_buf tmp = {0, 0, 0};
        if (qs_buf_adds(&tmp, "Content-Type: ") || qs_buf_adds(&tmp, r->content_type)) oom = 1;
        else l = add_line(l, tmp.p, &oom);
        qs_buf_free(&tmp);
    } else {
        l = add_line(l, "Content-Type:", &oom);
    }
    /* libcurl (7.x: over 1 MiB; older: over 1 KiB) would wait for a
     * "100 Continue" before sending a larger body */
    if (r->body_len > EXPECT_FREE_BODY) l = add_line(l, "Expect:", &oom);
    l = add_line(l, c->ua_header, &oom);
    while (off < c->headers.n) {
        const char *line = c->headers.p + off;
        l = add_line(l, line, &oom);
        off += strlen(line) + 1;
    }
    if (!oom && (qs_buf_addc(&x->hkey, hkey_tag(r->content_type, r->body_len > EXPECT_FREE_BODY)) ||
                 (r->content_type && qs_buf_add(&x->hkey, r->content_type, strlen(r->content_type) + 1)) ||
                 qs_buf_add(&x->hkey, c->headers.p ? c->headers.p : "", c->headers.n)))
        oom = 1;
    if (oom) {
        curl_slist_free_all(l);
        qs_buf_clear(&x->hkey);
        return -1;
    }
    x->slist = l;
    return 0;
}

/* Resets e (a handle about to serve x) and sets the options that every
 * request of this client shares. */
static void prepare(qs_client *c, qs_xfer *x, CURL *e)
{
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    /* Only the base URL's scheme. Redirects are never followed, so they
     * need no protocol list of their own. */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, c->https ? "https" : "http");
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
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_response_bytes);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x == &c->sync ? NULL : (void *)x);
    /* HTTP/2 only over TLS (never cleartext h2). */
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    if (c->ca_file && c->https) curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
    if (c->proxy) {
        curl_easy_setopt(e, CURLOPT_PROXY, c->proxy);
    } else if (c->no_proxy) {
        /* no proxy variable was set: skip libcurl's lookups of them */
        curl_easy_setopt(e, CURLOPT_PROXY, "");
        curl_easy_setopt(e, CURLOPT_NOPROXY, "");
    }
}

/* Whether the path and query can be set on a parsed URL as they are: no
 * '%' (libcurl lower-cases percent-encodings set that way, and the bytes
 * sent must be ours), no space or control byte, and no '#' (never built:
 * ids and filters are percent-encoded, destinations and base URLs refuse it;
 * so a whole parse leaves no fragment behind either). */
static int plain_target(const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch <= 0x20 || ch >= 0x7f || ch == '%' || ch == '#') return 0;
    }
    return 1;
}

/* Puts x->url on x->uh, so that libcurl does not parse the URL of every
 * request itself. Every URL starts with the base URL: a plain target (a DLQ
 * id of digits and '-', say) only replaces the path and query of a copy of
 * the base URL parsed once; any other URL is parsed whole. 0, or -1 to pass
 * the URL to libcurl as text. */
static int set_target(qs_client *c, qs_xfer *x)
{
    char *rest, *q;
    CURLUcode uc;
    if (!c->base_uh || x->url.n < c->origin_len) return -1;
    if (!x->uh && !(x->uh = curl_url_dup(c->base_uh))) return -1;
    rest = x->url.p + c->origin_len;
    if (!plain_target(rest))
        return curl_url_set(x->uh, CURLUPART_URL, x->url.p, CURLU_PATH_AS_IS) == CURLUE_OK ? 0 : -1;
    q = strchr(rest, '?');
    if (q) *q = '\0';
    uc = curl_url_set(x->uh, CURLUPART_PATH, *rest ? rest : "/", 0);
    if (q) *q = '?';
    if (uc == CURLUE_OK) uc = curl_url_set(x->uh, CURLUPART_QUERY, q ? q + 1 : NULL, 0);
    return uc == CURLUE_OK ? 0 : -1;
}

int qs_engine_setup(qs_client *c, qs_xfer *x, const qs_request *r, int pipewait)
{
    CURL *e = x->easy;
    qs_buf_clear(&x->body);
    if (qs_buf_terminate(&x->body)) return -1;
    x->errbuf[0] = '\0';
    x->too_large = 0;
    x->done = 0;
    x->result = CURLE_OK;
    x->max_response_bytes = c->max_response_bytes;

    /* every use of a handle starts from a reset one */
    if (!x->ready) prepare(c, x, e);
    x->ready = 0;
    /* The text too: the parsed URL overrides it, and libcurl then need not
     * rebuild the text from the parsed one. */
    curl_easy_setopt(e, CURLOPT_URL, x->url.p);
    if (set_target(c, x) == 0) curl_easy_setopt(e, CURLOPT_CURLU, x->uh);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->slist);
    /* Wait to multiplex on an HTTP/2 connection, only where there can be
     * one (TLS): over http:// libcurl would hold every further request
     * until the first answer arrives. */
    if (pipewait && c->https) curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    if (strcmp(r->method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(r->method, "POST") == 0) {
        /* A NULL body would make libcurl read stdin: always give one. */
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    }
    return 0;
}

/* The rate-limit headers of the final response (not of a 1xx), the last
 * of each name winning. libcurl keeps every header of a transfer, so they
 * are read once it ends, and only for an error: a header callback would run
 * for every line of every response. */
static void capture_headers(qs_xfer *x)
{
    size_t i;
    for (i = 0; i < QS_H_COUNT; i++) {
        struct curl_header *h = NULL;
        size_t vlen;
        if (curl_easy_header(x->easy, captured[i], 0, CURLH_HEADER, -1, &h) != CURLHE_OK) continue;
        if (h->amount > 1 &&
            curl_easy_header(x->easy, captured[i], h->amount - 1, CURLH_HEADER, -1, &h) != CURLHE_OK)
            continue;
        vlen = strlen(h->value);
        if (vlen >= QS_HVAL_MAX) vlen = QS_HVAL_MAX - 1;
        memcpy(x->hvals[i], h->value, vlen);
        x->hvals[i][vlen] = '\0';
    }
}

void qs_engine_outcome(qs_xfer *x, qs_attempt *out)
{
    long req_size = 0;
    curl_off_t pretransfer = 0;
    memset(out, 0, sizeof *out);
    out->code = x->result;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &out->status);
    /* Whether the server may have acted on the request: bytes of it reached
     * the socket, or the transfer got as far as sending (libcurl resends on a
     * fresh connection when a reused one dies, and may then report 0 bytes). */
    curl_easy_getinfo(x->easy, CURLINFO_REQUEST_SIZE, &req_size);
    curl_easy_getinfo(x->easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
    out->sent = req_size > 0 || pretransfer > 0;
    out->too_large = x->too_large || out->code == CURLE_FILESIZE_EXCEEDED;
    {
        size_t i; /* emptied, not wiped: 7 bytes instead of 448 on every call */
        for (i = 0; i < QS_H_COUNT; i++) x->hvals[i][0] = '\0';
    }
    if (out->status < 200 || out->status > 299) capture_headers(x);
}

void qs_engine_collect(qs_client *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        qs_xfer *x = NULL;
        if (msg->msg != CURLMSG_DONE) continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (!x) x = &c->sync;
        x->done = 1;
        x->result = msg->data.result;
    }
}

int qs_engine_perform(qs_client *c, const qs_request *r, qs_attempt *out)
{
    qs_xfer *x = &c->sync;
    int running = 1;
    CURLMcode mc = CURLM_OK;

    if (x->in_multi) {
        /* its last transfer ended and no wait came to take it out since */
        curl_multi_remove_handle(c->multi, x->easy);
        x->in_multi = 0;
    }
    if (qs_engine_headers(c, x, r) || qs_engine_setup(c, x, r, 0)) return -1;
    x->result = CURLE_FAILED_INIT;
    if (curl_multi_add_handle(c->multi, x->easy) != CURLM_OK) {
        qs_engine_outcome(x, out);
        return 0;
    }
    x->in_multi = 1;
    while (!x->done && mc == CURLM_OK) {
        mc = curl_multi_perform(c->multi, &running);
        qs_engine_collect(c);
        if (mc == CURLM_OK && !x->done && running) {
            /* The request is on its way: reset the other handle for the
             * next call while the answer is awaited, off the critical path. */
            if (c->standby && !c->standby_ready) {
                if (c->standby_in_multi) curl_multi_remove_handle(c->multi, c->standby);
                c->standby_in_multi = 0;
                prepare(c, x, c->standby);
                c->standby_ready = 1;
            }
            mc = curl_multi_poll(c->multi, NULL, 0, 1000, NULL);
        }
        if (!running && !x->done) break;
    }
    if (!x->done) x->result = CURLE_FAILED_INIT;
    qs_engine_outcome(x, out);
    if (!x->done || !c->standby) {
        curl_multi_remove_handle(c->multi, x->easy); /* stops it, if it still runs */
        x->in_multi = 0;
    }
    if (c->standby) {
        /* The next call takes the other handle; this one waits its turn. A
         * finished transfer holds no connection, so taking its handle out of
         * the multi handle also waits for the next call's wait. */
        CURL *used = x->easy;
        int used_in_multi = x->in_multi;
        x->easy = c->standby;
        x->ready = c->standby_ready;
        x->in_multi = c->standby_in_multi;
        c->standby = used;
        c->standby_ready = 0;
        c->standby_in_multi = used_in_multi;
    }
    return 0;
}

void qs_xfer_free(qs_xfer *x)
{
    if (x->easy) curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->slist);
    x->easy = NULL;
    x->slist = NULL;
    qs_buf_free(&x->url);
    qs_buf_free(&x->path);
    qs_buf_free(&x->body);
    qs_buf_free(&x->hkey);
    curl_url_cleanup(x->uh);
    x->uh = NULL;
}
