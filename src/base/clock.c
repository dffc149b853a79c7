/* Clocks and sleeping (see clock.h). */
#include <errno.h>
#include <time.h>
#include "base/clock.h"

double qs_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

double qs_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void qs_sleep(double seconds)
{
    double until = qs_now() + seconds, left;
    while ((left = until - qs_now()) > 0) {
        struct timespec ts;
        if (left > 86400.0) left = 86400.0; /* woken daily: no overflow of time_t */
        ts.tv_sec = (time_t)left;
        ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
        if (nanosleep(&ts, NULL) != 0 && errno != EINTR) break;
    }
}
