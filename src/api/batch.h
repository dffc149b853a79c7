/* The batch API functions (batch.c). */
#ifndef QS_BATCH_H
#define QS_BATCH_H

#include "api/api.h"

extern const qs_api qs_batch_apis[];

#endif
