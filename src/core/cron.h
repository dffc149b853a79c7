/* The client-side check of a schedule's cron expression (cron.c): the
 * syntax QStash documents, so that a typo raises before anything is sent.
 * No time is computed here: QStash (or the emulator) runs the schedule. */
#ifndef QS_CRON_H
#define QS_CRON_H

#include <stddef.h>

/* Where time zone names are looked up; when this directory does not exist
 * (a system without a tz database) only the zone's spelling is checked. */
#define QS_ZONEINFO_DIR "/usr/share/zoneinfo"

/* Why `s` (n bytes) is not a cron expression QStash takes, written into
 * why (at most whylen bytes) and returned; NULL when it is one. The
 * expression is an optional `CRON_TZ=<IANA zone> ` prefix and exactly five
 * fields (minute 0-59, hour 0-23, day of month 1-31, month 1-12, day of
 * week 0-7), each a comma list of `*`, `v` or `a-b`, optionally `/n`. */
const char *qs_cron_problem(const char *s, size_t n, char *why, size_t whylen);

#endif
