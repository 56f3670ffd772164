/* clock.h — the monotonic clock that timings and deadlines read. */
#ifndef LEMMA_CORE_CLOCK_H
#define LEMMA_CORE_CLOCK_H

#include <time.h>

/* Seconds on CLOCK_MONOTONIC: only differences mean anything. */
double lm_now_s(void);
/* The CLOCK_REALTIME instant `seconds` (>= 0) from now: the absolute deadline
 * pthread_cond_timedwait takes. */
struct timespec lm_realtime_after(double seconds);

#endif
