/* Arrays that grow one element at a time (the engine's sockets, watches and
 * changes, the epoll set's registrations, the async set's free keys): room
 * for one more, doubling, in one place. */
#ifndef QS_GROW_H
#define QS_GROW_H

#include <stddef.h>

/* The array p (cap elements of elem bytes, n of them used) with room for at
 * least n + 1: p itself while there is room, else p moved to a larger block
 * (first elements the first time, then twice as many) and *cap updated.
 * NULL when out of memory: p is unchanged and still the caller's. */
void *qs_grow(void *p, int *cap, int n, size_t elem, int first);

#endif
