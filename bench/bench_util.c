/*
 * bench_util.c — see bench_util.h.
 */
#include "bench_util.h"

#include "taskscope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

double bench_median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int bench_option(const char *key, const char *dflt, char *out, size_t len) {
  char all[8192];
  size_t klen = strlen(key);
  snprintf(out, len, "%s", dflt);
  if (tsk_options_get(all, sizeof all) < 0) return -1;
  for (char *item = all; item != NULL && *item != '\0';) {
    char *end = strchr(item, ':'); /* values cannot contain ':' (paths included) */
    if (end != NULL) *end = '\0';
    if (strncmp(item, key, klen) == 0 && item[klen] == '=') {
      snprintf(out, len, "%s", item + klen + 1);
      return 0;
    }
    item = end != NULL ? end + 1 : NULL;
  }
  return 0;
}
