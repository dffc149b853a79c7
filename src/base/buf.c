/* Growable byte buffer (see buf.h). */
#include <stdlib.h>
#include <string.h>
#include "base/buf.h"

int qs_buf_reserve(qs_buf *b, size_t extra)
{
    size_t need, cap;
    char *p;
    if (extra > (size_t)-1 - b->n - 1) return -1;
    need = b->n + extra + 1; /* room for a terminating NUL */
    if (need <= b->cap) return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < need) cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
    p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int qs_buf_add(qs_buf *b, const void *s, size_t len)
{
    if (qs_buf_reserve(b, len)) return -1;
    if (len) memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
    return 0;
}

int qs_buf_adds(qs_buf *b, const char *s)
{
    return qs_buf_add(b, s, strlen(s));
}

int qs_buf_addc(qs_buf *b, char c)
{
    return qs_buf_add(b, &c, 1);
}

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

int qs_buf_add_pct(qs_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i;
    if (qs_buf_reserve(b, len * 3)) return -1;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c)) {
            b->p[b->n++] = (char)c;
        } else {
            b->p[b->n++] = '%';
            b->p[b->n++] = hex[c >> 4];
            b->p[b->n++] = hex[c & 15];
        }
    }
    b->p[b->n] = '\0';
    return 0;
}

int qs_buf_terminate(qs_buf *b)
{
    return qs_buf_reserve(b, 0);
}

void qs_buf_clear(qs_buf *b)
{
    b->n = 0;
    if (b->p) b->p[0] = '\0';
}

void qs_buf_free(qs_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}
