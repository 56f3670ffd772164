/* clock.h — the monotonic clock that timings and deadlines read. */
#ifndef LEMMA_CORE_CLOCK_H
#define LEMMA_CORE_CLOCK_H

/* Seconds on CLOCK_MONOTONIC: only differences mean anything. */
double lm_now_s(void);

#endif
