/*
 * pid_arg.h — parsing a PID argument, shared by the `taskscope` CLI and `taskscope-top`.
 */
#ifndef TASKSCOPE_PID_ARG_H
#define TASKSCOPE_PID_ARG_H

#include <ctype.h>
#include <limits.h>

/* A PID argument: decimal digits only, 1..INT_MAX. Returns 0 and sets *pid, or -1. */
static inline int ts_parse_pid(const char *s, int *pid) {
  if (!s || !*s) return -1;
  long long v = 0;
  for (const char *p = s; *p; p++) {
    if (!isdigit((unsigned char)*p)) return -1;
    v = v * 10 + (*p - '0');
    if (v > INT_MAX) return -1;
  }
  if (v <= 0) return -1;
  *pid = (int)v;
  return 0;
}

#endif
