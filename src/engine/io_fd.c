/* The engine's sockets behind one descriptor (see io_fd.h). An epoll set,
 * level-triggered: a socket stays ready until libcurl has read or written
 * what it can, so nothing is lost between two turns of the host's loop. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/grow.h"
#include "engine/io_fd.h"

#ifdef __linux__
#include <sys/epoll.h>
#endif

void qs_iofd_init(qs_iofd *s)
{
    s->fd = -1;
    s->reg = NULL;
    s->nreg = s->capreg = 0;
}

static int find(const qs_iofd *s, curl_socket_t fd)
{
    int i;
    for (i = 0; i < s->nreg && s->reg[i].fd != fd; i++) {}
    return i;
}

#ifdef __linux__

int qs_iofd_open(qs_iofd *s)
{
    if (s->fd >= 0) return 0;
    s->fd = epoll_create1(EPOLL_CLOEXEC);
    return s->fd >= 0 ? 0 : -1;
}

/* epoll_ctl with the events and the fd as its data. */
static int ctl(const qs_iofd *s, int op, curl_socket_t fd, unsigned events)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.fd = fd;
    return epoll_ctl(s->fd, op, fd, &ev);
}

int qs_iofd_want(qs_iofd *s, curl_socket_t fd, int want)
{
    unsigned events = (want & CURL_POLL_IN ? EPOLLIN : 0u) | (want & CURL_POLL_OUT ? EPOLLOUT : 0u);
    int i = find(s, fd);
    if (s->fd < 0) return 0;
    if (i < s->nreg) {
        if (s->reg[i].events == events) return 0;
        if (ctl(s, EPOLL_CTL_MOD, fd, events) == 0) {
            s->reg[i].events = events;
            return 0;
        }
        /* ENOENT: the socket closed unseen (not one libcurl opened through
         * the engine) and its number names a new one now */
        s->reg[i] = s->reg[--s->nreg];
        i = s->nreg;
    }
    {
        qs_iofd_reg *r = (qs_iofd_reg *)qs_grow(s->reg, &s->capreg, s->nreg, sizeof *r, 16);
        if (!r) return -1;
        s->reg = r;
    }
    if (ctl(s, EPOLL_CTL_ADD, fd, events) != 0 &&
        (errno != EEXIST || ctl(s, EPOLL_CTL_MOD, fd, events) != 0))
        return -1;
    s->reg[s->nreg].fd = fd;
    s->reg[s->nreg].events = events;
    s->nreg++;
    return 0;
}

void qs_iofd_drop(qs_iofd *s, curl_socket_t fd)
{
    int i = find(s, fd);
    if (i == s->nreg) return;
    /* (an error: the fd is closed already, and with it its registration) */
    (void)ctl(s, EPOLL_CTL_DEL, fd, 0);
    s->reg[i] = s->reg[--s->nreg];
}

int qs_iofd_ready(qs_iofd *s, curl_socket_t *fds, int *evs, int max, int timeout_ms)
{
    struct epoll_event ev[64];
    int i, n;
    if (s->fd < 0) return 0;
    if (max > 64) max = 64;
    n = epoll_wait(s->fd, ev, max, timeout_ms);
    for (i = 0; i < n; i++) {
        unsigned re = ev[i].events;
        fds[i] = ev[i].data.fd;
        evs[i] = ((re & (EPOLLIN | EPOLLPRI | EPOLLHUP | EPOLLERR)) ? CURL_CSELECT_IN : 0) |
                 ((re & (EPOLLOUT | EPOLLHUP | EPOLLERR)) ? CURL_CSELECT_OUT : 0) |
                 ((re & EPOLLERR) ? CURL_CSELECT_ERR : 0);
    }
    return n < 0 ? 0 : n;
}

#else /* no epoll: the host watches each socket */

int qs_iofd_open(qs_iofd *s)
{
    (void)s;
    errno = ENOSYS;
    return -1;
}

int qs_iofd_want(qs_iofd *s, curl_socket_t fd, int want)
{
    (void)s;
    (void)fd;
    (void)want;
    return 0;
}

void qs_iofd_drop(qs_iofd *s, curl_socket_t fd)
{
    (void)s;
    (void)fd;
}

int qs_iofd_ready(qs_iofd *s, curl_socket_t *fds, int *evs, int max, int timeout_ms)
{
    (void)s;
    (void)fds;
    (void)evs;
    (void)max;
    (void)timeout_ms;
    return 0;
}

#endif

void qs_iofd_close(qs_iofd *s)
{
    if (s->fd >= 0) close(s->fd);
    free(s->reg);
    qs_iofd_init(s);
}

void qs_iofd_forget(qs_iofd *s)
{
    /* closing this process's descriptor leaves the set itself (the
     * parent's) as it is */
    qs_iofd_close(s);
}
