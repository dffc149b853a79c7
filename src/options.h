/* Options -> QStash configuration headers (design.md, "Options"). */
#ifndef QS_OPTIONS_H
#define QS_OPTIONS_H

#include "args.h"
#include "buf.h"

/* The known keys of the options table and of its nested tables (NULL-ended). */
extern const char *const qs_option_keys[];
extern const char *const qs_callback_option_keys[];
extern const char *const qs_flow_control_keys[];
extern const char *const qs_redact_keys[];

/* Validates the options table at idx (nil allowed) and appends one
 * "Name: value" line per header to out, each NUL-terminated. Raises an
 * argument error for anything wrong, before anything is sent. With
 * `publish`, `content_type` (or headers["Content-Type"]) is accepted and
 * stored in *content_type (a string kept alive by the options table). */
void qs_opts_marshal(const qs_args *a, int idx, qs_buf *out, int publish,
                     const char **content_type);

/* Appends a header line after checking the name is an RFC 9110 token and
 * the value has no CR, LF or NUL. `what` names it in the error. */
void qs_opts_add_header(const qs_args *a, int argidx, qs_buf *out, const char *prefix,
                        const char *name, size_t nlen, const char *value, size_t vlen,
                        const char *what);

#endif
