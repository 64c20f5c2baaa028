/*
 * sample.h — two small helpers shared by the samples (not part of the taskscope API): a
 * monotonic clock in milliseconds, and strict parsing of a numeric command-line option.
 */
#ifndef SAMPLES_SAMPLE_H
#define SAMPLES_SAMPLE_H

#include <stdlib.h>
#include <time.h>

/* Milliseconds on the monotonic clock. */
static inline double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Parses s, a whole decimal number from min to max, into *out; -1 (and *out untouched) when s
 * is anything else ("", "12x", out of range). */
static inline int parse_int(const char *s, long min, long max, int *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == 0 || *end != 0 || v < min || v > max) return -1;
  *out = (int)v;
  return 0;
}

#endif
