/* The libcurl transport (see engine.h). Every attempt, sequential or not,
 * runs through a multi handle, whose connection cache keeps the connections
 * of the HTTP version it serves: sequential calls reuse one keep-alive (and
 * TLS) connection, and concurrent ones share HTTP/2 connections where the
 * server offers them. */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "base/clock.h"
#include "base/grow.h"
#include "engine/engine.h"

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_OK;

/* Bumped in every forked child: an engine notices a fork without a syscall
 * per call. */
static volatile unsigned fork_gen = 0;

static void on_fork_child(void)
{
    fork_gen++;
}

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_atfork(NULL, NULL, on_fork_child);
}

int qs_engine_global_init(void)
{
    pthread_once(&global_once, global_init);
    return global_rc == CURLE_OK ? 0 : -1;
}

/* ---- libcurl callbacks: C only, never Lua -------------------------------- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    qs_xfer *x = (qs_xfer *)ud;
    qs_buf *b = &x->req->resp;
    size_t len = size * nmemb;
    if ((long long)(b->n + len) > x->req->conf->max_response_bytes) {
        x->too_large = 1;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    if (qs_buf_add(b, ptr, len)) return 0;
    return len;
}

/* Runs before every send of the request, libcurl's own resends on a new
 * connection (after a reused one died unanswered) included: each one is an
 * attempt the core counts, and a request that is not safe to repeat is
 * never sent twice. */
static int on_send(void *ud, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    qs_xfer *x = (qs_xfer *)ud;
    (void)primary_ip;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    if (x->sends >= x->max_sends) return CURL_PREREQFUNC_ABORT;
    x->sends++;
    return CURL_PREREQFUNC_OK;
}

static int note_change(qs_engine *e, curl_socket_t fd, short events, int removed);

/* Whether libcurl opened fd through on_open_socket and has not closed it. */
static int own_socket(const qs_engine *e, curl_socket_t fd)
{
    int i;
    for (i = 0; i < e->nsocks; i++)
        if (e->socks[i] == fd) return 1;
    return 0;
}

/* Notes a socket libcurl opened. Out of memory, it goes unnoted: it is then
 * treated as let go whenever libcurl stops watching it (see on_socket). */
static void note_open(qs_engine *e, curl_socket_t fd)
{
    curl_socket_t *p = (curl_socket_t *)qs_grow(e->socks, &e->capsocks, e->nsocks, sizeof *p, 16);
    if (!p) return;
    e->socks = p;
    e->socks[e->nsocks++] = fd;
}

/* Sockets are opened here, close-on-exec, so that a failure names its cause
 * (out of descriptors, say) instead of libcurl's "Couldn't connect". */
static curl_socket_t on_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *addr)
{
    qs_xfer *x = (qs_xfer *)ud;
    curl_socket_t s;
    (void)purpose;
    s = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
    if (s == CURL_SOCKET_BAD) x->sock_errno = errno;
    else note_open(x->e, s);
    return s;
}

/* libcurl closes its sockets here (the engine is the callback's data: a
 * connection outlives the transfer that opened it). A host loop learns
 * that the number is let go, and drops its watch before the number can
 * name a new socket. */
static int on_close_socket(void *ud, curl_socket_t fd)
{
    qs_engine *e = (qs_engine *)ud;
    int i;
    for (i = 0; i < e->nsocks; i++) {
        if (e->socks[i] == fd) {
            e->socks[i] = e->socks[--e->nsocks];
            break;
        }
    }
    /* (libcurl stopped watching it first; should it not have, the watch
     * goes now: a closed fd is never polled) */
    for (i = 0; i < e->nwatch; i++) {
        if (e->watch[i].fd == fd) {
            e->watch[i] = e->watch[--e->nwatch];
            break;
        }
    }
    /* (out of memory the note is lost, as any change of on_socket is: the
     * list grows only to the number of sockets, 8 at a time) */
    qs_iofd_drop(&e->iofd, fd);
    if (e->hooked && e->iofd.fd < 0) note_change(e, fd, 0, 1);
    return close(fd);
}

/* ---- handles ---------------------------------------------------------- */

/* Resets h and sets the options every request of this engine shares. */
static void prepare(qs_engine *e, qs_handle *h)
{
    const qs_conf *c = e->conf;
    CURL *easy = h->easy;
    curl_easy_reset(easy);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    /* Only the base URL's scheme. Redirects are never followed, so they
     * need no protocol list of their own. */
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, c->https ? "https" : "http");
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(easy, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    /* A connection idle this long is not reused. */
    curl_easy_setopt(easy, CURLOPT_MAXAGE_CONN, 30L);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, on_send);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, (void *)e);
    curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_response_bytes);
    if (c->ca_file && c->https) curl_easy_setopt(easy, CURLOPT_CAINFO, c->ca_file);
    if (c->proxy) {
        curl_easy_setopt(easy, CURLOPT_PROXY, c->proxy);
    } else if (c->no_proxy) {
        /* no proxy variable was set: skip libcurl's lookups of them */
        curl_easy_setopt(easy, CURLOPT_PROXY, "");
        curl_easy_setopt(easy, CURLOPT_NOPROXY, "");
    }
    h->ready = 1;
}

static void handle_free(qs_handle *h)
{
    if (h->easy) curl_easy_cleanup(h->easy);
    curl_slist_free_all(h->slist);
    qs_buf_free(&h->hkey);
    curl_url_cleanup(h->uh);
    memset(h, 0, sizeof *h);
}

/* Forgets what a handle of another process holds: its memory is ours to
 * free, but libcurl must not touch its connection. */
static void handle_forget(qs_handle *h)
{
    curl_slist_free_all(h->slist); /* plain memory, no socket */
    curl_url_cleanup(h->uh);
    qs_buf_free(&h->hkey);
    memset(h, 0, sizeof *h);
}

/* Takes a handle out of the multi handle where a finished transfer left it. */
static void handle_out(qs_handle *h)
{
    if (h->in_multi) curl_multi_remove_handle(h->in_multi, h->easy);
    h->in_multi = NULL;
}

/* A handle for a new attempt: a ready one from the pool if any, else any
 * from the pool, else a new one. -1 when out of memory. */
static int take_handle(qs_engine *e, qs_handle *out)
{
    int i, pick = e->npool - 1;
    for (i = e->npool - 1; i >= 0; i--)
        if (e->pool[i].ready) {
            pick = i;
            break;
        }
    if (pick >= 0) {
        *out = e->pool[pick];
        e->pool[pick] = e->pool[--e->npool];
        handle_out(out);
        return 0;
    }
    memset(out, 0, sizeof *out);
    out->easy = curl_easy_init();
    return out->easy ? 0 : -1;
}

/* Gives a handle back to the pool (or frees it when the pool is full). */
static void give_handle(qs_engine *e, qs_handle *h)
{
    if (h->easy && e->npool < QS_POOL_MAX) {
        h->ready = 0;
        e->pool[e->npool++] = *h;
    } else {
        handle_out(h);
        handle_free(h);
    }
    memset(h, 0, sizeof *h);
}

/* Readies one idle handle for the next request, off the critical path. */
static void ready_one(qs_engine *e)
{
    int i;
    for (i = 0; i < e->npool; i++)
        if (!e->pool[i].ready) {
            handle_out(&e->pool[i]);
            prepare(e, &e->pool[i]);
            return;
        }
}

/* ---- per request ------------------------------------------------------ */

/* A body this small never gets "Expect: 100-continue" from any libcurl. */
#define EXPECT_FREE_BODY 1024

static struct curl_slist *add_line(struct curl_slist *l, const char *line, int *oom)
{
    struct curl_slist *t = curl_slist_append(l, line);
    if (!t) *oom = 1;
    return t ? t : l;
}

/* Builds h->slist from the request's header lines, unless it already was
 * (sequential calls with the same options reuse the list as it is). Lines
 * libcurl would add itself and that are not ours are switched off. */
static int set_headers(qs_handle *h, const qs_req *r)
{
    struct curl_slist *l = NULL;
    char tag = r->body.n > EXPECT_FREE_BODY ? 'E' : 'n';
    size_t off = 0;
    int oom = 0, has_ct = 0;
    if (h->slist && h->hkey.n == r->headers.n + 1 && h->hkey.p[0] == tag &&
        memcmp(h->hkey.p + 1, r->headers.p, r->headers.n) == 0)
        return 0;
    curl_slist_free_all(h->slist);
    h->slist = NULL;
    qs_buf_clear(&h->hkey);
    while (off < r->headers.n) {
        const char *line = r->headers.p + off;
        if (strncmp(line, "Content-Type:", 13) == 0) has_ct = 1;
        l = add_line(l, line, &oom);
        off += strlen(line) + 1;
    }
    /* libcurl's "Content-Type: application/x-www-form-urlencoded" on a POST,
     * "Accept: * / *", and "Expect: 100-continue" before a larger body (7.x:
     * over 1 MiB; older: over 1 KiB) */
    if (!has_ct) l = add_line(l, "Content-Type:", &oom);
    l = add_line(l, "Accept:", &oom);
    if (tag == 'E') l = add_line(l, "Expect:", &oom);
    if (oom || qs_buf_addc(&h->hkey, tag) || qs_buf_add(&h->hkey, r->headers.p, r->headers.n)) {
        curl_slist_free_all(l);
        qs_buf_clear(&h->hkey);
        return -1;
    }
    h->slist = l;
    return 0;
}

/* Whether the path and query can be set on a parsed URL as they are: no
 * '%' (libcurl lower-cases percent-encodings set that way, and the bytes
 * sent must be ours), no space or control byte, and no '#'. */
static int plain_target(const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch <= 0x20 || ch >= 0x7f || ch == '%' || ch == '#') return 0;
    }
    return 1;
}

/* Puts the request's URL on h->uh, so that libcurl does not parse the URL of
 * every request itself. A plain target only replaces the path and query of a
 * copy of the base URL parsed once; any other URL is parsed whole. 0, or -1
 * to pass the URL to libcurl as text. */
static int set_target(qs_engine *e, qs_handle *h, qs_buf *url)
{
    char *rest, *q;
    CURLUcode uc;
    size_t origin = e->conf->origin_len;
    if (!e->base_uh || url->n < origin) return -1;
    if (!h->uh && !(h->uh = curl_url_dup(e->base_uh))) return -1;
    rest = url->p + origin;
    if (!plain_target(rest))
        return curl_url_set(h->uh, CURLUPART_URL, url->p, CURLU_PATH_AS_IS) == CURLUE_OK ? 0 : -1;
    q = strchr(rest, '?');
    if (q) *q = '\0';
    uc = curl_url_set(h->uh, CURLUPART_PATH, *rest ? rest : "/", 0);
    if (q) *q = '?';
    if (uc == CURLUE_OK) uc = curl_url_set(h->uh, CURLUPART_QUERY, q ? q + 1 : NULL, 0);
    return uc == CURLUE_OK ? 0 : -1;
}

/* Whether a request asks for HTTP/2: only over TLS (never cleartext h2), and
 * in auto mode only when other requests run alongside: one request at a
 * time gains nothing from h2's streams, and its framing adds work on both
 * ends (docs/benchmarks.md). */
static int wants_h2(const qs_conf *c, int concurrent)
{
    return c->https && (c->http_version == QS_HTTP_2 || (c->http_version == QS_HTTP_AUTO && concurrent));
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *ud, void *socketp);
static int on_timer(CURLM *multi, long timeout_ms, void *ud);

/* The multi handle of an HTTP version, made on first use; NULL when out of
 * memory. */
static CURLM *multi_for(qs_engine *e, int h2)
{
    qs_multi *mu = &e->multi[h2 ? QS_MULTI_H2 : QS_MULTI_H1];
    if (mu->m) return mu->m;
    if (!(mu->m = curl_multi_init())) return NULL;
    mu->e = e;
    mu->timer_at = -1.0;
    /* The cache keeps a connection per concurrent transfer (HTTP/1.1), and
     * HTTP/2 streams share one connection where the server offers it. */
    curl_multi_setopt(mu->m, CURLMOPT_MAXCONNECTS, 128L);
    curl_multi_setopt(mu->m, CURLMOPT_MAX_HOST_CONNECTIONS, 128L);
    curl_multi_setopt(mu->m, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(mu->m, CURLMOPT_SOCKETDATA, (void *)mu);
    curl_multi_setopt(mu->m, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(mu->m, CURLMOPT_TIMERDATA, (void *)mu);
    return mu->m;
}

/* Marks x done at once with a failure (nothing was sent). */
static void fail_now(qs_xfer *x, CURLcode code)
{
    x->done = 1;
    x->result = code;
}

int qs_engine_start(qs_engine *e, qs_xfer *x, qs_req *r, int concurrent, double now)
{
    const qs_conf *c = e->conf;
    int h2 = wants_h2(c, concurrent);
    CURLM *multi;
    CURL *easy;
    long limit = qs_req_attempt_ms(r, c->timeout_ms, now);
    memset(x, 0, sizeof *x);
    x->req = r;
    x->e = e;
    x->gen = e->gen;
    /* a request safe to repeat may be resent while attempts are left */
    x->max_sends = r->resend_ok ? c->attempts - r->attempts : 1;
    if (x->max_sends < 1) x->max_sends = 1;
    qs_buf_clear(&r->resp);
    if (qs_buf_terminate(&r->resp)) return -1;
    if (limit == 0) {
        fail_now(x, CURLE_OPERATION_TIMEDOUT); /* the call's time is up */
        return 0;
    }
    if (!(multi = multi_for(e, h2))) return -1;
    if (take_handle(e, &x->h) != 0) return -1;
    if (set_headers(&x->h, r) != 0) {
        give_handle(e, &x->h);
        return -1;
    }
    easy = x->h.easy;
    if (!x->h.ready) prepare(e, &x->h);
    x->h.ready = 0;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, (void *)x);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(easy, CURLOPT_PREREQDATA, x);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, x);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, limit);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms < limit ? c->connect_timeout_ms : limit);
    /* The text too: the parsed URL overrides it, and libcurl then need not
     * rebuild the text from the parsed one. */
    curl_easy_setopt(easy, CURLOPT_URL, r->url.p);
    if (set_target(e, &x->h, &r->url) == 0) curl_easy_setopt(easy, CURLOPT_CURLU, x->h.uh);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, x->h.slist);
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, h2 ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
    /* Wait to multiplex on an HTTP/2 connection, only where there can be
     * one: else libcurl would hold every further request until the first
     * answer arrives. */
    if (h2 && concurrent) curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);
    if (strcmp(r->method, "GET") == 0) {
        curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(r->method, "POST") == 0) {
        /* A NULL body would make libcurl read stdin: always give one. */
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body.n);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, r->body.p ? r->body.p : "");
    } else {
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, r->method);
        /* A DELETE may carry a JSON body (url_group_remove_endpoints). */
        if (r->body.n > 0) {
            curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body.n);
            curl_easy_setopt(easy, CURLOPT_POSTFIELDS, r->body.p);
        }
    }
    if (curl_multi_add_handle(multi, easy) != CURLM_OK) {
        fail_now(x, CURLE_FAILED_INIT);
        return 0;
    }
    x->in_multi = multi;
    return 0;
}

/* Marks the transfers libcurl finished done; how many there were. */
static int collect(qs_engine *e)
{
    int i, left, n = 0;
    for (i = 0; i < QS_MULTI_COUNT; i++) {
        CURLMsg *msg;
        if (!e->multi[i].m) continue;
        while ((msg = curl_multi_info_read(e->multi[i].m, &left)) != NULL) {
            qs_xfer *x = NULL;
            if (msg->msg != CURLMSG_DONE) continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            if (!x) continue;
            x->done = 1;
            x->result = msg->data.result;
            if (!x->collected) {
                x->collected = 1;
                e->unclaimed++;
            }
            n++;
        }
    }
    return n;
}

/* ---- driving libcurl: the engine polls, libcurl acts ------------------ */

/* Records for a host loop what fd now wants (coalesced per fd). */
static int note_change(qs_engine *e, curl_socket_t fd, short events, int removed)
{
    int i;
    for (i = 0; i < e->nchg && e->chg[i].fd != fd; i++) {}
    if (i == e->nchg) {
        qs_change *c = (qs_change *)qs_grow(e->chg, &e->capchg, e->nchg, sizeof *c, 8);
        if (!c) return -1;
        e->chg = c;
        e->chg[e->nchg].fd = fd;
        e->chg[e->nchg].fresh = 0;
        e->nchg++;
    }
    e->chg[i].events = events;
    if (removed) e->chg[i].fresh = 1;
    return 0;
}

int qs_engine_hook(qs_engine *e, int on)
{
    int i;
    e->hooked = on;
    e->nchg = 0;
    if (!on) {
        qs_iofd_close(&e->iofd);
        free(e->chg);
        e->chg = NULL;
        e->capchg = 0;
        return 0;
    }
    for (i = 0; i < e->nwatch; i++)
        if (note_change(e, e->watch[i].fd,
                        (short)((e->watch[i].events & POLLIN ? QS_EV_IN : 0) | (e->watch[i].events & POLLOUT ? QS_EV_OUT : 0)),
                        0) != 0)
            return -1;
    return 0;
}

/* libcurl says which sockets to watch (CURLMOPT_SOCKETFUNCTION). -1 (out
 * of memory) makes libcurl fail the transfer. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *ud, void *socketp)
{
    qs_multi *mu = (qs_multi *)ud;
    qs_engine *e = mu->e;
    int i;
    (void)easy;
    (void)socketp;
    for (i = 0; i < e->nwatch && e->watch[i].fd != fd; i++) {}
    if (what == CURL_POLL_REMOVE) {
        if (i < e->nwatch) e->watch[i] = e->watch[--e->nwatch];
        if (!e->hooked) return 0;
        /* a socket libcurl keeps (an idle connection) stays the same socket
         * until on_close_socket says otherwise; of any other (a resolver's)
         * the engine cannot know when it closes: let go now */
        if (e->iofd.fd < 0) return note_change(e, fd, 0, !own_socket(e, fd));
        if (!own_socket(e, fd)) qs_iofd_drop(&e->iofd, fd);
        return 0;
    }
    if (i == e->nwatch) {
        qs_watch *w = (qs_watch *)qs_grow(e->watch, &e->capwatch, e->nwatch, sizeof *w, 8);
        if (!w) return -1;
        e->watch = w;
        e->watch[e->nwatch++].fd = fd;
    }
    e->watch[i].owner = mu;
    e->watch[i].events = (short)((what & CURL_POLL_IN ? POLLIN : 0) | (what & CURL_POLL_OUT ? POLLOUT : 0));
    if (e->iofd.fd >= 0) return qs_iofd_want(&e->iofd, fd, what);
    return e->hooked ? note_change(e, fd, (short)(what & (QS_EV_IN | QS_EV_OUT)), 0) : 0;
}

/* libcurl says when to run its timers (CURLMOPT_TIMERFUNCTION). */
static int on_timer(CURLM *multi, long timeout_ms, void *ud)
{
    qs_multi *mu = (qs_multi *)ud;
    (void)multi;
    mu->timer_at = timeout_ms < 0 ? -1.0 : qs_now() + (double)timeout_ms / 1000.0;
    return 0;
}

/* The multi handle watching fd, or NULL. */
static qs_multi *owner_of(const qs_engine *e, curl_socket_t fd)
{
    int i;
    for (i = 0; i < e->nwatch; i++)
        if (e->watch[i].fd == fd) return e->watch[i].owner;
    return NULL;
}

/* When the first of libcurl's timers is due (monotonic seconds), or < 0. */
static double next_timer(const qs_engine *e)
{
    double at = -1.0;
    int i;
    for (i = 0; i < QS_MULTI_COUNT; i++) {
        double t = e->multi[i].m ? e->multi[i].timer_at : -1.0;
        if (t >= 0 && (at < 0 || t < at)) at = t;
    }
    return at;
}

/* Runs libcurl's timers that are due (new transfers start there); how many
 * transfers finished. */
static int run_due(qs_engine *e)
{
    int i, running, due = 0;
    double now = -1.0;
    for (i = 0; i < QS_MULTI_COUNT; i++) {
        qs_multi *mu = &e->multi[i];
        if (!mu->m || mu->timer_at < 0) continue;
        if (now < 0) now = qs_now();
        if (now < mu->timer_at) continue;
        mu->timer_at = -1.0; /* libcurl sets it anew as needed */
        curl_multi_socket_action(mu->m, CURL_SOCKET_TIMEOUT, 0, &running);
        due = 1;
    }
    return due ? collect(e) : 0;
}

/* A round through the io fd: only the sockets ready come back. One the
 * engine no longer watches (an idle keep-alive socket left in the set, or
 * one libcurl let go in this round) leaves the set. */
static int round_io_fd(qs_engine *e, long timeout)
{
    curl_socket_t fds[64];
    int evs[64], i, n, running;
    n = qs_iofd_ready(&e->iofd, fds, evs, 64, (int)timeout);
    for (i = 0; i < n; i++) {
        qs_multi *owner = owner_of(e, fds[i]);
        if (owner) curl_multi_socket_action(owner->m, fds[i], evs[i], &running);
        else qs_iofd_drop(&e->iofd, fds[i]);
    }
    return collect(e) + run_due(e);
}

/* One round: polls the watched sockets for up to wait_ms (less when
 * libcurl's timer is due sooner; with none watched, it sleeps: the wait
 * before a retry), hands libcurl each ready socket with its events, runs
 * the due timers; how many transfers finished. */
static int round_once(qs_engine *e, long wait_ms)
{
    int i, n, nw = e->nwatch, running;
    long timeout = wait_ms;
    double at = next_timer(e);
    if (at >= 0) {
        double left = (at - qs_now()) * 1000.0;
        if (left < (double)timeout) timeout = left <= 0 ? 0 : (long)ceil(left);
    }
    /* a host loop drives the engine: it should never wait here */
    if (e->hooked && timeout > 0) e->hooked_waits++;
    if (e->iofd.fd >= 0) return round_io_fd(e, timeout);
    if (nw > e->cappfd) {
        struct pollfd *p = (struct pollfd *)realloc(e->pfd, (size_t)e->capwatch * sizeof *p);
        if (p) {
            e->pfd = p;
            e->cappfd = e->capwatch;
        } else {
            nw = e->cappfd; /* out of memory: watch what fits, the rest next round */
        }
    }
    /* a copy: libcurl changes e->watch while it acts */
    for (i = 0; i < nw; i++) {
        e->pfd[i].fd = e->watch[i].fd;
        e->pfd[i].events = e->watch[i].events;
        e->pfd[i].revents = 0;
    }
    n = poll(e->pfd, nw > 0 ? (nfds_t)nw : 0, (int)timeout);
    for (i = 0; n > 0 && i < nw; i++) {
        short re = e->pfd[i].revents;
        qs_multi *owner = owner_of(e, e->pfd[i].fd);
        int ev = 0;
        if (!re) continue;
        n--;
        if (!owner) continue; /* no longer watched: libcurl is done with it */
        if (re & (POLLIN | POLLPRI | POLLHUP | POLLERR)) ev |= CURL_CSELECT_IN;
        if (re & (POLLOUT | POLLHUP | POLLERR)) ev |= CURL_CSELECT_OUT;
        if (re & (POLLERR | POLLNVAL)) ev |= CURL_CSELECT_ERR;
        curl_multi_socket_action(owner->m, e->pfd[i].fd, ev, &running);
    }
    return collect(e) + run_due(e);
}

void qs_engine_drive(qs_engine *e, double wait_s)
{
    double ms = wait_s * 1000.0;
    long wait_ms = ms <= 0 ? 0 : ms > 1e6 ? 1000000 : (long)ms + 1;
    /* A transfer that finished here is what the caller waits for: waiting
     * on would hold its result back for the whole wait. */
    if (run_due(e) > 0) return;
    /* should a wait begin with results in all the same, count it: the
     * specs see a stall without timing one */
    if (wait_ms > 0 && e->unclaimed > 0) e->stalled_waits++;
    round_once(e, wait_ms);
}

void qs_engine_socket_ready(qs_engine *e, curl_socket_t fd, int ev)
{
    qs_multi *owner = owner_of(e, fd);
    int running;
    if (owner) {
        curl_multi_socket_action(owner->m, fd, ev, &running);
        collect(e);
    }
    run_due(e);
}

void qs_engine_timer_due(qs_engine *e)
{
    run_due(e);
}

double qs_engine_next_timer(const qs_engine *e)
{
    return next_timer(e);
}

int qs_engine_io_fd(qs_engine *e)
{
    int i;
    if (e->iofd.fd >= 0) return e->iofd.fd;
    if (qs_iofd_open(&e->iofd) != 0) return -1;
    for (i = 0; i < e->nwatch; i++) {
        int what = (e->watch[i].events & POLLIN ? CURL_POLL_IN : 0) | (e->watch[i].events & POLLOUT ? CURL_POLL_OUT : 0);
        if (qs_iofd_want(&e->iofd, e->watch[i].fd, what) != 0) {
            qs_iofd_close(&e->iofd);
            errno = ENOMEM;
            return -1;
        }
    }
    e->nchg = 0; /* the host watches the one descriptor from now on */
    return e->iofd.fd;
}

/* The transport-neutral failure of a libcurl result. */
static qs_failure failure_of(CURLcode code, int too_large)
{
    if (too_large || code == CURLE_FILESIZE_EXCEEDED) return QS_FAIL_TOO_LARGE;
    switch (code) {
    case CURLE_OK: return QS_FAIL_NONE;
    case CURLE_OPERATION_TIMEDOUT: return QS_FAIL_TIMEOUT;
    /* repeating cannot mend these */
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CIPHER:
    case CURLE_NOT_BUILT_IN:
        return QS_FAIL_PERMANENT;
    default: return QS_FAIL_NETWORK;
    }
}

/* The rate-limit headers of the final response (not of a 1xx), the last
 * of each name winning, read once the transfer ended and only for an error. */
static void capture_headers(CURL *easy, qs_outcome *o)
{
    size_t i;
    for (i = 0; i < QS_H_COUNT; i++) {
        struct curl_header *h = NULL;
        size_t vlen;
        if (curl_easy_header(easy, qs_captured_headers[i], 0, CURLH_HEADER, -1, &h) != CURLHE_OK) continue;
        if (h->amount > 1 &&
            curl_easy_header(easy, qs_captured_headers[i], h->amount - 1, CURLH_HEADER, -1, &h) != CURLHE_OK)
            continue;
        vlen = strlen(h->value);
        if (vlen >= QS_HVAL_MAX) vlen = QS_HVAL_MAX - 1;
        memcpy(o->hvals[i], h->value, vlen);
        o->hvals[i][vlen] = '\0';
    }
}

static void describe_failure(const qs_xfer *x, qs_outcome *o)
{
    if (x->sock_errno) {
        snprintf(o->message, sizeof o->message, "cannot open a socket: %s", strerror(x->sock_errno));
    } else if (x->result == CURLE_ABORTED_BY_CALLBACK && x->sends >= x->max_sends) {
        snprintf(o->message, sizeof o->message,
                 "the connection closed before an answer, and the request is not sent again "
                 "(it may have been received)");
    } else if (x->result == CURLE_OPERATION_TIMEDOUT && !x->h.easy) {
        snprintf(o->message, sizeof o->message, "the call's time ran out before this attempt");
    } else {
        snprintf(o->message, sizeof o->message, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->result));
    }
}

void qs_engine_finish(qs_engine *e, qs_xfer *x, qs_outcome *o)
{
    int inherited = qs_engine_inherited(e, x);
    memset(o, 0, sizeof *o);
    if (!x->done || inherited) {
        x->done = 1;
        x->result = inherited ? CURLE_FAILED_INIT : x->result ? x->result : CURLE_FAILED_INIT;
    }
    o->failure = failure_of(x->result, x->too_large);
    o->code = (long)x->result;
    o->sends = x->sends;
    if (x->h.easy && !inherited) {
        curl_easy_getinfo(x->h.easy, CURLINFO_RESPONSE_CODE, &o->status);
        if (o->failure == QS_FAIL_NONE && (o->status < 200 || o->status > 299)) capture_headers(x->h.easy, o);
    }
    if (o->failure != QS_FAIL_NONE && o->failure != QS_FAIL_TOO_LARGE) describe_failure(x, o);
    qs_engine_abandon(e, x);
}

void qs_engine_abandon(qs_engine *e, qs_xfer *x)
{
    if (x->collected) {
        /* claimed; one of a forked parent's is not counted here */
        x->collected = 0;
        if (!qs_engine_inherited(e, x) && e->unclaimed > 0) e->unclaimed--;
    }
    if (!x->h.easy) return;
    if (qs_engine_inherited(e, x)) {
        handle_forget(&x->h); /* the parent's: never touched here */
        x->in_multi = NULL;
        return;
    }
    curl_easy_setopt(x->h.easy, CURLOPT_PRIVATE, NULL);
    curl_easy_setopt(x->h.easy, CURLOPT_ERRORBUFFER, NULL);
    if (x->in_multi && !x->done) {
        /* still running: stop it now */
        curl_multi_remove_handle(x->in_multi, x->h.easy);
        x->in_multi = NULL;
    }
    /* a finished transfer may stay in the multi handle until the handle is
     * next used or readied: that removal is off the critical path */
    x->h.in_multi = x->in_multi;
    x->in_multi = NULL;
    give_handle(e, &x->h);
}

int qs_engine_perform(qs_engine *e, qs_req *r, qs_outcome *o, double now)
{
    qs_xfer x;
    int readied = 0;
    if (qs_engine_start(e, &x, r, 0, now) != 0) return -1;
    /* the new transfer is due at once: it runs until it first waits */
    if (x.in_multi) run_due(e);
    while (!x.done) {
        /* libcurl has nothing to wait for, yet the transfer is not done:
         * end it (finish reports the failure) rather than wait for ever */
        if (e->nwatch == 0 && next_timer(e) < 0) break;
        /* The request is on its way: ready an idle handle for the next
         * call while the answer is awaited. */
        if (!readied) {
            ready_one(e);
            readied = 1;
        }
        round_once(e, 1000);
    }
    qs_engine_finish(e, &x, o);
    return 0;
}

/* ---- the engine ------------------------------------------------------- */

/* Starts afresh: no multi handle yet (each comes with the first request of
 * its HTTP version), nothing watched. */
static void make_live(qs_engine *e)
{
    int i;
    for (i = 0; i < QS_MULTI_COUNT; i++) {
        e->multi[i].m = NULL;
        e->multi[i].timer_at = -1.0;
        e->multi[i].e = e;
    }
    e->nwatch = 0;
    e->nsocks = 0; /* a forked parent's sockets are never closed here */
    e->unclaimed = 0; /* a forked parent's transfers are not this process's */
    e->live = 1;
    e->pid = getpid();
    e->fork_gen = fork_gen;
    e->gen++;
}

/* Parses the base URL once: a request then only sets its path and query on
 * a copy. When libcurl does not take it, URLs go to libcurl as text. */
static void parse_base_url(qs_engine *e)
{
    e->base_uh = curl_url();
    if (e->base_uh &&
        curl_url_set(e->base_uh, CURLUPART_URL, e->conf->base_url, CURLU_PATH_AS_IS) == CURLUE_OK)
        return;
    curl_url_cleanup(e->base_uh);
    e->base_uh = NULL;
}

int qs_engine_init(qs_engine *e, qs_conf *conf)
{
    memset(e, 0, sizeof *e);
    qs_iofd_init(&e->iofd);
    e->conf = qs_conf_ref(conf);
    parse_base_url(e);
    make_live(e);
    return 0;
}

/* Whether this process made the handles. The fork generation answers
 * without a syscall unless a fork happened since they were made. */
static int own_handles(const qs_engine *e)
{
    return e->fork_gen == fork_gen || e->pid == getpid();
}

int qs_engine_inherited(const qs_engine *e, const qs_xfer *x)
{
    return x->gen != e->gen || !own_handles(e);
}

int qs_engine_ready(qs_engine *e)
{
    int i;
    if (e->live && own_handles(e)) {
        e->fork_gen = fork_gen; /* after a fork in the parent: no getpid() again */
        return 0;
    }
    /* In a forked child the inherited handles share sockets and TLS state
     * with the parent: abandon them (never clean up) and start afresh. */
    for (i = 0; i < e->npool; i++) handle_forget(&e->pool[i]);
    e->npool = 0;
    qs_iofd_forget(&e->iofd); /* the parent's set: a host asks for a new one */
    make_live(e);
    return 0;
}

void qs_engine_close(qs_engine *e)
{
    int i, owned = e->live && own_handles(e);
    for (i = 0; i < e->npool; i++) {
        if (owned) {
            handle_out(&e->pool[i]);
            handle_free(&e->pool[i]);
        } else {
            handle_forget(&e->pool[i]);
        }
    }
    e->npool = 0;
    for (i = 0; i < QS_MULTI_COUNT; i++) {
        if (owned && e->multi[i].m) curl_multi_cleanup(e->multi[i].m);
        e->multi[i].m = NULL;
    }
    e->live = 0;
    if (owned) qs_iofd_close(&e->iofd);
    else qs_iofd_forget(&e->iofd);
    free(e->watch);
    free(e->pfd);
    free(e->chg);
    e->chg = NULL;
    e->nchg = e->capchg = 0;
    free(e->socks);
    e->socks = NULL;
    e->nsocks = e->capsocks = 0;
    e->hooked = 0;
    e->watch = NULL;
    e->pfd = NULL;
    e->nwatch = e->capwatch = e->cappfd = 0;
    curl_url_cleanup(e->base_uh);
    e->base_uh = NULL;
    qs_conf_unref(e->conf);
    e->conf = NULL;
}
