/*
 * fmt.c — durations and leak headlines (see fmt.h).
 */
#include "fmt.h"

#include <langinfo.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

void tsc_fmt_duration(char *buf, size_t n, double ms) {
  if (!isfinite(ms) || ms < 0) {
    snprintf(buf, n, "-");
  } else if (ms < 1000) {
    snprintf(buf, n, "%.0fms", ms);
  } else if (ms < 60e3) {
    snprintf(buf, n, "%.1fs", ms / 1e3);
  } else if (ms < 3600e3) {
    long s = (long)(ms / 1e3);
    snprintf(buf, n, "%ldm%02lds", s / 60, s % 60);
  } else if (ms < 86400e3) {
    long m = (long)(ms / 60e3);
    snprintf(buf, n, "%ldh%02ldm", m / 60, m % 60);
  } else {
    long h = (long)(ms / 3600e3);
    snprintf(buf, n, "%ldd%02ldh", h / 24, h % 24);
  }
}

const char *tsc_leak_headline(const char *kind, const char *reason) {
  if (!kind) return NULL;
  if (strcmp(kind, "destroyed_pending") == 0) {
    /* A stranded task is not destroyed (it is woken with TSK_EBROKEN), but it can never get
     * what it waited for: the same kind, a truthful headline. */
    if (reason && strncmp(reason, "stranded", 8) == 0)
      return "Task is stranded: nothing can ever complete what it awaits (destroyed_pending)";
    return "Task was destroyed but it is pending!";
  }
  if (strcmp(kind, "unretrieved_error") == 0) return "Task exception was never retrieved";
  return NULL;
}

int tsc_utf8_locale(void) {
  const char *cs = nl_langinfo(CODESET);
  return cs && (strcmp(cs, "UTF-8") == 0 || strcmp(cs, "utf8") == 0);
}
