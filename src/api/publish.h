/* The publish API functions (publish.c). */
#ifndef QS_PUBLISH_H
#define QS_PUBLISH_H

#include "api/api.h"

extern const qs_api qs_publish_apis[];

/* Checks the destination at idx (an http(s) URL or a URL-group name),
 * raising an argument error. */
void qs_publish_check_destination(const qs_args *a, int idx);

#endif
