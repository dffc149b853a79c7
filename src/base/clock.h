/* Clocks and sleeping: the only place that reads the time. Decisions take
 * the time as an argument (decide.h). */
#ifndef QS_CLOCK_H
#define QS_CLOCK_H

/* Monotonic seconds: deadlines and waits. */
double qs_now(void);

/* Wall-clock unix seconds: what 429 headers speak in. */
double qs_wall(void);

/* Sleeps for `seconds` (nothing for <= 0), through signal interruptions. */
void qs_sleep(double seconds);

#endif
