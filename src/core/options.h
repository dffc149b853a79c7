/* Options -> QStash configuration headers (design.md, "Options"). */
#ifndef QS_OPTIONS_H
#define QS_OPTIONS_H

#include "core/args.h"
#include "base/buf.h"

/* The largest parallelism or rate of a flow-control key, in a publish
 * option and in a pin alike: above a million is beyond any plan, a typo
 * rather than a wish, and it raises before anything is sent. */
#define QS_FLOW_LIMIT_MAX 1000000

/* What an option's value is, and so how it is checked and written. */
typedef enum {
    QS_OPT_COUNT,        /* integer >= 0, decimal */
    QS_OPT_STRING,       /* non-empty string, as given */
    QS_OPT_DELAY,        /* whole seconds (N -> "Ns") or a duration of s/m/h/d parts */
    QS_OPT_TIMEOUT,      /* the same, of s/m/h parts */
    QS_OPT_UNIX_SECONDS, /* integer unix seconds, not milliseconds */
    QS_OPT_METHOD,       /* GET/POST/PUT/PATCH/DELETE, any case, sent upper-cased */
    QS_OPT_URL,          /* http(s) URL */
    QS_OPT_BOOLEAN,      /* "true" / "false" */
    QS_OPT_CALLBACK,     /* a table of the callback rows, for the header family */
    QS_OPT_FLOW_CONTROL, /* {key, parallelism, rate, period} -> Key and Value headers */
    QS_OPT_LABEL,        /* string or array of strings, comma-joined */
    QS_OPT_REDACT,       /* {body = true, header = true or {names}} */
    QS_OPT_CONTENT_TYPE, /* publish only: the body's Content-Type */
    QS_OPT_HEADERS,      /* {Name = "value"} forwarded with the header as prefix */
    QS_OPT_FOLLOW,       /* dlq_retry only: no header; follow the new message (logs.c) */
    QS_OPT_NAME          /* schedules only: a name of QStash's [A-Za-z0-9_.-], as given */
} qs_opt_kind;

/* The options table: key, header (a prefix for CALLBACK and HEADERS), kind.
 * Validation, the key list, the fuzzer's key list and the callback options
 * all derive from these rows. Order is the order headers are written. */
#define QS_OPTION_ROWS(X)                                                              \
    X("retries", "Upstash-Retries", QS_OPT_COUNT)                                      \
    X("retry_delay", "Upstash-Retry-Delay", QS_OPT_STRING)                             \
    X("delay", "Upstash-Delay", QS_OPT_DELAY)                                          \
    X("not_before", "Upstash-Not-Before", QS_OPT_UNIX_SECONDS)                         \
    X("timeout", "Upstash-Timeout", QS_OPT_TIMEOUT)                                    \
    X("method", "Upstash-Method", QS_OPT_METHOD)                                       \
    X("callback", "Upstash-Callback", QS_OPT_URL)                                      \
    X("failure_callback", "Upstash-Failure-Callback", QS_OPT_URL)                      \
    X("callback_options", "Upstash-Callback", QS_OPT_CALLBACK)                         \
    X("failure_callback_options", "Upstash-Failure-Callback", QS_OPT_CALLBACK)         \
    X("deduplication_id", "Upstash-Deduplication-Id", QS_OPT_STRING)                   \
    X("content_based_deduplication", "Upstash-Content-Based-Deduplication", QS_OPT_BOOLEAN) \
    X("flow_control", "Upstash-Flow-Control", QS_OPT_FLOW_CONTROL)                     \
    X("label", "Upstash-Label", QS_OPT_LABEL)                                          \
    X("redact", "Upstash-Redact-Fields", QS_OPT_REDACT)                                \
    X("content_type", "Content-Type", QS_OPT_CONTENT_TYPE)                             \
    X("headers", "Upstash-Forward-", QS_OPT_HEADERS)                                   \
    X("follow", "", QS_OPT_FOLLOW)                                                     \
    X("schedule_id", "Upstash-Schedule-Id", QS_OPT_NAME)                               \
    X("queue", "Upstash-Queue-Name", QS_OPT_NAME)

/* callback_options / failure_callback_options: the header is a suffix of the
 * family ("Upstash-Callback" + "-Method"). */
#define QS_CALLBACK_ROWS(X)                          \
    X("method", "-Method", QS_OPT_METHOD)            \
    X("timeout", "-Timeout", QS_OPT_TIMEOUT)         \
    X("retries", "-Retries", QS_OPT_COUNT)           \
    X("retry_delay", "-Retry-Delay", QS_OPT_STRING)  \
    X("headers", "-Forward-", QS_OPT_HEADERS)

/* The known keys of the options table and of its nested tables (NULL-ended). */
extern const char *const qs_option_keys[];
extern const char *const qs_callback_option_keys[];
extern const char *const qs_flow_control_keys[];
extern const char *const qs_redact_keys[];

/* What the options are for: a DLQ retry takes no content type; publish takes
 * one; publish_json always sends application/json and refuses another; a
 * schedule takes them as publish does, and schedule_id and queue besides. */
typedef enum {
    QS_OPTS_RETRY,
    QS_OPTS_PUBLISH,
    QS_OPTS_PUBLISH_JSON,
    QS_OPTS_SCHEDULE,
    QS_OPTS_SCHEDULE_JSON
} qs_opts_mode;

/* Why `s` (n bytes) is not a name of QStash's rule (a queue, a schedule id,
 * a URL group): [A-Za-z0-9_.-], not empty, not "." or "..", at most 256
 * bytes; NULL when it is one. Such a name is its own percent-encoding. */
const char *qs_name_problem(const char *s, size_t n);

/* Validates the options table at idx (nil allowed) and appends one
 * "Name: value" line per header to out, each NUL-terminated, the body's
 * Content-Type (if any) last. Raises an argument error for anything wrong,
 * before anything is sent. Returns whether a deduplication_id was given. */
int qs_opts_marshal(const qs_args *a, int idx, qs_buf *out, qs_opts_mode mode);

/* Appends a header line after checking the name is an RFC 9110 token and
 * the value has no CR, LF or NUL. `what` names it in the error. */
void qs_opts_add_header(const qs_args *a, int argidx, qs_buf *out, const char *prefix,
                        const char *name, size_t nlen, const char *value, size_t vlen,
                        const char *what);

#endif
