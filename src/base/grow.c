/* Arrays that grow one element at a time (grow.h). */
#include "base/grow.h"

#include <limits.h>
#include <stdlib.h>

void *qs_grow(void *p, int *cap, int n, size_t elem, int first)
{
    int c;
    void *q;
    if (n < *cap) return p;
    if (*cap > INT_MAX / 2 || (size_t)(*cap ? *cap * 2 : first) > (size_t)-1 / elem) return NULL;
    c = *cap ? *cap * 2 : first;
    q = realloc(p, (size_t)c * elem);
    if (!q) return NULL;
    *cap = c;
    return q;
}
