/*
 * bench_util.h — small pieces the bench's files share (bench_util.c).
 */
#ifndef TASKSCOPE_BENCH_UTIL_H
#define TASKSCOPE_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/* The median of v[0..n) (n > 0); sorts v. */
double bench_median(double *v, int n);

/* The value of option `key` as tsk_options_get lists it ("key=value:..."), else dflt, into out.
 * 0, or -1 when the options could not be read (out holds dflt then). */
int bench_option(const char *key, const char *dflt, char *out, size_t len);

#endif
