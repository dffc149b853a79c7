/* The publish API functions (publish.c). */
#ifndef QS_PUBLISH_H
#define QS_PUBLISH_H

#include "api/api.h"

extern const qs_api qs_publish_apis[];

#endif
