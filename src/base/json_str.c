/* JSON string writer (see json_str.h). */
#include <stdio.h>
#include "base/json_str.h"

/* The length of the UTF-8 sequence at s (n bytes left), or 0 when it is not
 * one: overlong forms, surrogates and code points above U+10FFFF refused. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len, i;
    unsigned long cp;
    if (s[0] < 0x80) return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) len = 2, cp = s[0] & 0x1F;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF) len = 3, cp = s[0] & 0x0F;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4) len = 4, cp = s[0] & 0x07;
    else return 0;
    if (n < len) return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

int qs_buf_add_json_string(qs_buf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    if (qs_buf_addc(b, '"')) return -1;
    while (i < n) {
        size_t len;
        char esc[8];
        if (u[i] >= 0x20 && u[i] != '"' && u[i] != '\\') {
            if ((len = utf8_len(u + i, n - i)) == 0) return -2;
            i += len;
            continue;
        }
        /* flush the plain run before this byte, then its escape */
        if (qs_buf_add(b, s + run, i - run)) return -1;
        if (u[i] == '"' || u[i] == '\\') esc[0] = '\\', esc[1] = (char)u[i], esc[2] = '\0';
        else snprintf(esc, sizeof esc, "\\u%04x", u[i]);
        if (qs_buf_adds(b, esc)) return -1;
        run = ++i;
    }
    if (qs_buf_add(b, s + run, n - run) || qs_buf_addc(b, '"')) return -1;
    return 0;
}
