/* The DLQ API functions (dlq.c). */
#ifndef QS_DLQ_H
#define QS_DLQ_H

#include "api.h"

extern const qs_api qs_dlq_apis[];

/* dlq_retry's plan: async requests build their requests with it too. */
extern const qs_plan qs_plan_dlq_retry;

#endif
