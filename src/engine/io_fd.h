/* One descriptor that stands for every socket the engine watches (an epoll
 * set, on Linux): a host loop watches it for readability, and the engine
 * asks it which sockets are ready, without a poll of each. Where the system
 * has no such set, qs_iofd_open fails and the host watches each socket
 * (client:io_changes). Never calls Lua; no libcurl in here. */
#ifndef QS_IO_FD_H
#define QS_IO_FD_H

#include <curl/curl.h>

/* A socket in the set and the events it is registered for. */
typedef struct qs_iofd_reg {
    curl_socket_t fd;
    unsigned events;
} qs_iofd_reg;

typedef struct qs_iofd {
    int fd; /* the set's own descriptor; -1: none */
    qs_iofd_reg *reg;
    int nreg, capreg;
} qs_iofd;

/* Readies an empty, closed set (no syscall). */
void qs_iofd_init(qs_iofd *s);

/* Opens the set's descriptor (close-on-exec). 0, or -1 (no such set on
 * this system, or out of descriptors: errno says). */
int qs_iofd_open(qs_iofd *s);

/* Registers fd for `want` (CURL_POLL_IN / CURL_POLL_OUT bits), or changes
 * its registration; nothing when it is registered so already. 0, or -1
 * (out of memory: the transfer fails). */
int qs_iofd_want(qs_iofd *s, curl_socket_t fd, int want);

/* Takes fd out of the set, before it closes or once nobody wants it. */
void qs_iofd_drop(qs_iofd *s, curl_socket_t fd);

/* Up to `max` ready sockets into fds[] and their CURL_CSELECT_* bits into
 * evs[], waiting up to timeout_ms (0: not at all); how many. */
int qs_iofd_ready(qs_iofd *s, curl_socket_t *fds, int *evs, int max, int timeout_ms);

/* Closes the set. */
void qs_iofd_close(qs_iofd *s);

/* In a forked child: lets go of the inherited set without touching it (it
 * is the parent's too: a change would change the parent's). */
void qs_iofd_forget(qs_iofd *s);

#endif
