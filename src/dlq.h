/* The DLQ API functions. */
#ifndef QS_DLQ_H
#define QS_DLQ_H

#include "api.h"

extern const qs_api qs_dlq_apis[];

#endif
