/* The URL checker (see url.h). */
#include <ctype.h>
#include <string.h>
#include "core/url.h"

static int is_loopback_host(const char *h, size_t n)
{
    size_t i;
    if ((n == 9 && strncmp(h, "localhost", 9) == 0) || (n == 5 && strncmp(h, "[::1]", 5) == 0))
        return 1;
    if (n < 4 || strncmp(h, "127.", 4) != 0) return 0;
    for (i = 4; i < n; i++)
        if (!isdigit((unsigned char)h[i]) && h[i] != '.') return 0;
    return 1;
}

const char *qs_url_check(const char *s, size_t n, unsigned flags)
{
    size_t i, skip;
    const char *host, *end, *stop = s + n;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f) return "must not contain control bytes";
        if (ch == ' ') return "must not contain spaces";
        if (ch == '#' && (flags & QS_URL_NO_FRAGMENT)) return "must not contain '#'";
        if (ch == '?' && (flags & QS_URL_NO_QUERY)) return "must not contain '?'";
    }
    if (n >= 8 && strncmp(s, "https://", 8) == 0) skip = 8;
    else if (n >= 7 && strncmp(s, "http://", 7) == 0) skip = 7;
    else return "must be an http:// or https:// URL";
    host = s + skip;
    /* the authority ends at the first '/', '?' or '#' */
    for (end = host; end < stop && *end != '/' && *end != '?' && *end != '#'; end++)
        if (*end == '@' && (flags & QS_URL_NO_USERINFO)) return "must not contain credentials";
    {
        /* the host: before any port, or a bracketed IPv6 address */
        const char *h = host, *hend = end;
        if (h < end && *h == '[') {
            const char *close = memchr(h, ']', (size_t)(end - h));
            if (!close) return "has an unterminated IPv6 address";
            hend = close + 1;
        } else {
            const char *colon = memchr(h, ':', (size_t)(end - h));
            if (colon) hend = colon;
        }
        if (hend == h) return "has no host";
        if (skip == 7 && (flags & QS_URL_LOOPBACK_HTTP) && !is_loopback_host(h, (size_t)(hend - h)))
            return "may use http:// only for a loopback host (127.0.0.1, localhost, [::1])";
    }
    return NULL;
}
