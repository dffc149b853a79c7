/* Writing JSON strings: the bytes escaped as JSON needs them, and checked to
 * be UTF-8 (a JSON text is UTF-8; a server decoding invalid bytes would
 * replace them, silently changing what is stored). */
#ifndef QS_JSON_STR_H
#define QS_JSON_STR_H

#include <stddef.h>
#include "base/buf.h"

/* Appends s (n bytes) to b as a quoted JSON string. Returns 0, -1 when memory
 * runs out, or -2 when s is not UTF-8 (b then holds a partial string: the
 * caller drops it). */
int qs_buf_add_json_string(qs_buf *b, const char *s, size_t n);

#endif
