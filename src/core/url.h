/* The one URL checker: base URLs, callbacks and publish destinations all go
 * through it, each with the rules it needs. No libcurl and no Lua here. */
#ifndef QS_URL_H
#define QS_URL_H

#include <stddef.h>

enum {
    QS_URL_NO_QUERY = 1,      /* no '?' (a base URL: paths and queries are appended) */
    QS_URL_NO_FRAGMENT = 2,   /* no '#' (nothing after it would reach the server) */
    QS_URL_NO_USERINFO = 4,   /* no "user:pass@" (credentials belong in the token) */
    QS_URL_LOOPBACK_HTTP = 8  /* http:// only for 127.0.0.0/8, localhost or [::1] */
};

/* Checks that the n bytes at s are an http(s) URL with a host and no
 * control byte or space, plus the rules in `flags`. Returns NULL when fine,
 * else why not, phrased to follow "'<name>' ..." ("must not contain spaces"). */
const char *qs_url_check(const char *s, size_t n, unsigned flags);

#endif
