/* The queue API functions (queues.c). */
#ifndef QS_QUEUES_H
#define QS_QUEUES_H

#include "api/api.h"

extern const qs_api qs_queue_apis[];

#endif
