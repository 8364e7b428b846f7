/* CLOCK_MONOTONIC helpers shared by the bench's C programs (udpgen.c, spoofgen.c). */
#ifndef LANRAGE_BENCH_CLOCK_H
#define LANRAGE_BENCH_CLOCK_H
#include <errno.h>
#include <stdint.h>
#include <time.h>

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* Sleeps until the monotonic time t (ns), resuming after signals. */
static inline void sleep_until(uint64_t t) {
  struct timespec ts = { .tv_sec = t / 1000000000ull, .tv_nsec = t % 1000000000ull };
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}
#endif
