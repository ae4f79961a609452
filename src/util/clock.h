/*
 * clock: the one monotonic clock the server reads (milliseconds). Modules
 * that keep time-based state (audit windows) take `now` as an argument
 * instead, so their tests control time; the daemon passes mx_now_ms().
 */
#ifndef MX_UTIL_CLOCK_H
#define MX_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t mx_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The same clock in microseconds. */
static inline uint64_t mx_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

#endif
