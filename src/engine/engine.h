/* The libcurl transport: it executes attempts of requests (request.h) and
 * reports how each ended (a qs_outcome). It moves bytes and decides nothing:
 * it knows neither the API functions nor what an outcome means. The
 * connections are pooled per HTTP version asked for, each pool in a multi
 * handle of its own; idle easy handles wait in a pool. */
#ifndef QS_ENGINE_H
#define QS_ENGINE_H

#include <sys/types.h>
#include <curl/curl.h>
#include "base/buf.h"
#include "core/request.h"
#include "engine/io_fd.h"

#define QS_POOL_MAX 128

/* The multi handles: requests asking for HTTP/1.1, and for HTTP/2. libcurl
 * keeps one "can this host multiplex" state per host and connection cache,
 * and any HTTP/1.1 answer sets it to "no": requests of both versions in one
 * cache would then stop sharing HTTP/2 connections. */
enum { QS_MULTI_H1, QS_MULTI_H2, QS_MULTI_COUNT };

struct qs_engine;

/* A multi handle and its timer. */
typedef struct qs_multi {
    CURLM *m;                 /* NULL until a request needs it */
    double timer_at;          /* monotonic seconds when libcurl's timer is due; < 0: none */
    struct qs_engine *e;
} qs_multi;

/* An easy handle with what is cached on it between requests. */
typedef struct qs_handle {
    CURL *easy;
    struct curl_slist *slist; /* request headers, rebuilt only when they change */
    qs_buf hkey;              /* what slist was built from */
    CURLU *uh;                /* the base URL parsed once, with the last target on it */
    int ready;                /* reset, with the options every request shares set */
    CURLM *in_multi;          /* the multi handle a finished transfer still sits in */
} qs_handle;

/* One attempt in flight: a handle lent by the pool and the request it serves. */
typedef struct qs_xfer {
    qs_handle h;
    qs_req *req;              /* receives the body in req->resp */
    unsigned gen;             /* the engine generation (process) that started it */
    CURLM *in_multi;          /* the multi handle it was added to, or NULL */
    int done;                 /* libcurl finished it: see result */
    int collected;            /* counted in the engine's `unclaimed` */
    int sends;                /* times libcurl was about to send the request */
    int max_sends;            /* beyond this many, a send is refused */
    int too_large;
    int sock_errno;           /* errno of a socket that could not be opened */
    struct qs_engine *e;      /* its engine: the sockets libcurl opens are noted there */
    CURLcode result;
    char errbuf[CURL_ERROR_SIZE];
} qs_xfer;

struct pollfd;

/* A socket libcurl wants watched, for what (poll events), and by which
 * multi handle. */
typedef struct qs_watch {
    curl_socket_t fd;
    short events;
    qs_multi *owner;
} qs_watch;

/* A change of what libcurl wants watched, kept for a host loop (see
 * qs_engine_hook): the fd's events now (0: none for now), and `fresh` when
 * the fd's socket was closed since the last report (the host drops its
 * watch: the number may be a new socket now). A socket libcurl stops
 * watching but keeps (an idle keep-alive connection) is reported with
 * events 0 and not fresh: the host may keep its watch for the next request
 * on it. */
#define QS_EV_IN CURL_POLL_IN
#define QS_EV_OUT CURL_POLL_OUT
typedef struct qs_change {
    curl_socket_t fd;
    short events;
    char fresh;
} qs_change;

typedef struct qs_engine {
    qs_multi multi[QS_MULTI_COUNT];
    /* libcurl tells which sockets to watch and when its timers are due
     * (CURLMOPT_SOCKETFUNCTION, CURLMOPT_TIMERFUNCTION); the engine polls
     * them all itself and hands libcurl what is ready, with the events:
     * libcurl then reads without polling each socket again. */
    qs_watch *watch;
    int nwatch, capwatch;
    struct pollfd *pfd;       /* the poll set of one round */
    int cappfd;
    int live;                 /* the multi handles are this process's */
    qs_conf *conf;            /* a reference: scheme, TLS roots, proxy, HTTP version */
    CURLU *base_uh;           /* the base URL parsed once (NULL: URLs go as text) */
    qs_handle pool[QS_POOL_MAX];
    int npool;
    pid_t pid;                /* the process that made the handles */
    unsigned fork_gen;        /* the fork generation when they were made */
    unsigned gen;             /* bumped whenever the handles are made anew */
    int unclaimed;            /* transfers libcurl finished that are not finished or
                               * abandoned yet: results already in */
    unsigned long stalled_waits; /* drives that began a wait while results
                                  * were already in */
    /* A host loop drives the engine (qs_engine_hook): libcurl's socket
     * reports are also kept as changes for it (QS_EV_* bits), and every wait the engine
     * makes with a timeout above zero meanwhile is counted (it should be
     * none: the host's loop waits, not the engine). */
    int hooked;
    qs_change *chg;
    int nchg, capchg;
    /* The sockets libcurl opened (CURLOPT_OPENSOCKETFUNCTION) and has not
     * closed (CURLOPT_CLOSESOCKETFUNCTION): only of these does the engine
     * know when the fd number is let go. */
    curl_socket_t *socks;
    int nsocks, capsocks;
    unsigned long hooked_waits;
    /* The one descriptor a host loop may watch instead of each socket
     * (qs_engine_io_fd): every watched socket is in it. A socket libcurl
     * stops watching stays in until it fires or closes (an idle keep-alive
     * socket between two requests costs no change), and then goes. */
    qs_iofd iofd;
} qs_engine;

/* curl_global_init once per process (and the fork hook). 0, or -1. */
int qs_engine_global_init(void);

/* Readies the engine (its multi handles come when requests need them). 0,
 * or -1 when out of memory. */
int qs_engine_init(qs_engine *e, qs_conf *conf);

/* Makes sure the handles belong to this process: in a forked child the
 * inherited ones are forgotten (never used or cleaned up: they share
 * sockets and TLS state with the parent) and new ones made. 0, or -1. */
int qs_engine_ready(qs_engine *e);

/* Whether x was started in another process (before a fork). */
int qs_engine_inherited(const qs_engine *e, const qs_xfer *x);

/* Starts one attempt of r: the handle comes from the pool, r->resp is
 * emptied for the body. `concurrent`: other requests run alongside (async,
 * batches); in auto mode such a request asks for HTTP/2 over TLS and waits
 * for an HTTP/2 connection to share rather than opening one of its own.
 * When the call's deadline has passed, or the attempt cannot start, x is
 * done at once with a failure. `now` is the monotonic clock. -1 only when
 * out of memory. */
int qs_engine_start(qs_engine *e, qs_xfer *x, qs_req *r, int concurrent, double now);

/* Drives every transfer: marks finished ones done, then waits up to
 * `wait_s` for activity when none finished. A wait that begins while
 * results are already in (a finished transfer not yet claimed by
 * qs_engine_finish or qs_engine_abandon) counts in e->stalled_waits: it
 * holds those results back. */
void qs_engine_drive(qs_engine *e, double wait_s);

/* Reads how the attempt ended into o and gives the handle back. */
void qs_engine_finish(qs_engine *e, qs_xfer *x, qs_outcome *o);

/* Stops an attempt (whether done or not) and gives its handle back,
 * without an outcome. */
void qs_engine_abandon(qs_engine *e, qs_xfer *x);

/* One synchronous attempt of r; other transfers progress meanwhile, and an
 * idle handle is reset for the next call while the answer is awaited. Never
 * calls Lua. 0, or -1 when out of memory. */
int qs_engine_perform(qs_engine *e, qs_req *r, qs_outcome *o, double now);

/* Turns the host-loop reports on (every fd watched now is reported as a
 * change) or off. 0, or -1 when out of memory. */
int qs_engine_hook(qs_engine *e, int on);

/* The descriptor that stands for every socket the engine watches, readable
 * when one of them is ready (made on first use, with the sockets watched
 * now); qs_engine_drive then asks it instead of polling each. From then
 * on, until the hook goes off, no change is kept for io_changes. -1: the
 * system has none (errno says why): the host watches each socket. */
int qs_engine_io_fd(qs_engine *e);

/* Hands libcurl an fd the host found ready (CURL_CSELECT_* bits), then runs
 * its due timers; never waits. An fd no longer watched is ignored. */
void qs_engine_socket_ready(qs_engine *e, curl_socket_t fd, int ev);

/* Runs libcurl's due timers; never waits. */
void qs_engine_timer_due(qs_engine *e);

/* When libcurl's next timer is due (monotonic seconds), or < 0: none. */
double qs_engine_next_timer(const qs_engine *e);

/* Frees the handles (or forgets them, in a forked child); idempotent. */
void qs_engine_close(qs_engine *e);

#endif
