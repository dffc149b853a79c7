/* The schedule API functions (schedules.c). */
#ifndef QS_SCHEDULES_H
#define QS_SCHEDULES_H

#include "api/api.h"

extern const qs_api qs_schedule_apis[];

#endif
