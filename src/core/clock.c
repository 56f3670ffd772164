/* clock.c — see clock.h. */
#include "core/clock.h"

#include <time.h>

double lm_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}
