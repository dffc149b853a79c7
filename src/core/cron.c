/* The cron check (cron.h), driven by the table of the five fields. It
 * reads only the file system, to see that a CRON_TZ zone exists. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "core/cron.h"

typedef struct field {
    const char *name;
    int lo, hi;
} field;

/* QStash's five fields in order; 7 is Sunday like 0 (crontab.guru's rule). */
static const field fields[] = {
    {"minute", 0, 59}, {"hour", 0, 23}, {"day of month", 1, 31}, {"month", 1, 12}, {"day of week", 0, 7},
};
#define NFIELDS (sizeof fields / sizeof fields[0])

#define ZONE_MAX_LEN 128

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Reads a decimal number of at most 3 digits at *p; -1 when there is none. */
static int number(const char **p, const char *end)
{
    int v = 0, digits = 0;
    while (*p < end && **p >= '0' && **p <= '9') {
        if (++digits > 3) return -1;
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    return digits ? v : -1;
}

/* Checks one item of a field's comma list ([s, end)). */
static const char *item(const field *f, int fi, const char *s, const char *end, char *why, size_t wl)
{
    const char *p = s;
    if (p < end && *p == '*') {
        p++;
    } else {
        int a = number(&p, end), b;
        if (a < 0) goto syntax;
        if (a < f->lo || a > f->hi) {
            snprintf(why, wl, "field %d (%s): %d is outside %d-%d", fi + 1, f->name, a, f->lo, f->hi);
            return why;
        }
        if (p < end && *p == '-') {
            p++;
            if ((b = number(&p, end)) < 0) goto syntax;
            if (b < f->lo || b > f->hi) {
                snprintf(why, wl, "field %d (%s): %d is outside %d-%d", fi + 1, f->name, b, f->lo, f->hi);
                return why;
            }
            if (b < a) {
                snprintf(why, wl, "field %d (%s): the range %d-%d ends before it starts", fi + 1, f->name, a, b);
                return why;
            }
        }
    }
    if (p < end && *p == '/') {
        int n;
        p++;
        if ((n = number(&p, end)) < 0) goto syntax;
        if (n < 1 || n > f->hi) {
            snprintf(why, wl, "field %d (%s): the step %d is outside 1-%d", fi + 1, f->name, n, f->hi);
            return why;
        }
    }
    if (p == end) return NULL;
syntax:
    snprintf(why, wl, "field %d (%s): '%.*s' is not *, a number, a range a-b or one of them with /step",
             fi + 1, f->name, (int)(end - s > 40 ? 40 : end - s), s);
    return why;
}

/* Checks the zone of a CRON_TZ= prefix: an IANA name's characters, no
 * "..", and a file of the tz database when the system has one. */
static const char *zone(const char *z, size_t n, char *why, size_t wl)
{
    char path[sizeof QS_ZONEINFO_DIR + ZONE_MAX_LEN + 1];
    struct stat st;
    size_t i;
    if (n == 0 || n > ZONE_MAX_LEN) {
        snprintf(why, wl, "CRON_TZ= wants an IANA time zone name of 1 to %d bytes", ZONE_MAX_LEN);
        return why;
    }
    for (i = 0; i < n; i++) {
        char c = z[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '+' || c == '/' || c == '-')) {
            snprintf(why, wl, "CRON_TZ=%.*s is not an IANA time zone name ([A-Za-z0-9_+/-])", (int)n, z);
            return why;
        }
    }
    if (z[0] == '/' || z[n - 1] == '/' || strstr(z, "//") != NULL) {
        snprintf(why, wl, "CRON_TZ=%.*s is not an IANA time zone name", (int)n, z);
        return why;
    }
    if (stat(QS_ZONEINFO_DIR, &st) != 0 || !S_ISDIR(st.st_mode)) return NULL;
    snprintf(path, sizeof path, "%s/%.*s", QS_ZONEINFO_DIR, (int)n, z);
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, wl, "CRON_TZ=%.*s is an unknown time zone (not in %s)", (int)n, z, QS_ZONEINFO_DIR);
        return why;
    }
    return NULL;
}

const char *qs_cron_problem(const char *s, size_t n, char *why, size_t wl)
{
    const char *p = s, *end = s + n;
    size_t i, nf = 0;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 && s[i] != '\t') {
            snprintf(why, wl, "a cron expression must not contain control bytes");
            return why;
        }
    while (p < end && is_space(*p)) p++;
    if ((size_t)(end - p) >= 8 && memcmp(p, "CRON_TZ=", 8) == 0) {
        const char *z = p + 8, *ze = z;
        while (ze < end && !is_space(*ze)) ze++;
        if (zone(z, (size_t)(ze - z), why, wl)) return why;
        p = ze;
    }
    for (;;) {
        const char *fs, *fe, *q;
        while (p < end && is_space(*p)) p++;
        if (p == end) break;
        fs = p;
        while (p < end && !is_space(*p)) p++;
        fe = p;
        if (nf >= NFIELDS) {
            nf++;
            continue;
        }
        for (q = fs;; q++) {
            const char *ie = q;
            while (ie < fe && *ie != ',') ie++;
            if (item(&fields[nf], (int)nf, q, ie, why, wl)) return why;
            if (ie == fe) break;
            q = ie;
        }
        nf++;
    }
    if (nf != NFIELDS) {
        snprintf(why, wl, "a cron expression has 5 fields (minute hour day-of-month month day-of-week), not %u%s",
                 (unsigned)nf, nf == 6 ? " (QStash has no seconds field)" : "");
        return why;
    }
    return NULL;
}
