/* clock.h - the one clock for durations and timestamps inside the process.
 *
 *   double t0 = hl_now_s(); work(); printf("%.3f s\n", hl_now_s() - t0);
 *
 * Contract. Seconds on CLOCK_MONOTONIC (never jumps with the wall clock),
 * as a double; any thread.
 */
#ifndef HL_CLOCK_H
#define HL_CLOCK_H

#include <time.h>

static inline double hl_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
