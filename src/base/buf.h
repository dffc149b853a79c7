/* A growable byte buffer owned by C. Buffers live in the client so that a
 * Lua error raised mid-call never leaks them: they are reused by the next
 * call and freed by close/__gc. */
#ifndef QS_BUF_H
#define QS_BUF_H

#include <stddef.h>

typedef struct qs_buf {
    char *p;
    size_t n;
    size_t cap;
} qs_buf;

/* Each returns 0 on success and -1 when memory runs out (the buffer is unchanged). */
int qs_buf_reserve(qs_buf *b, size_t extra);
int qs_buf_add(qs_buf *b, const void *s, size_t len);
int qs_buf_adds(qs_buf *b, const char *s);
int qs_buf_addc(qs_buf *b, char c);
/* Appends s percent-encoded (RFC 3986 unreserved characters kept, uppercase hex). */
int qs_buf_add_pct(qs_buf *b, const char *s, size_t len);
/* Keeps the terminating NUL after the content so b->p can be used as a C string. */
int qs_buf_terminate(qs_buf *b);
void qs_buf_clear(qs_buf *b);
void qs_buf_free(qs_buf *b);

#endif
