/*
 * jv.c — the failures of the checked field access (model.h), shared by the checks on jansson
 * values (model.c) and those of the fast path (fastjson.c), so both word them the same. No
 * jansson call here.
 */
#include "model.h"

#include <stdarg.h>
#include <stdio.h>

void ts_jv_at(ts_jv *v, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(v->where, sizeof v->where, fmt, ap);
  va_end(ap);
}

int ts_jv_failf(ts_jv *v, const char *fmt, ...) {
  if (v->failed) return 0;
  v->failed = 1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(v->err, v->errlen, fmt, ap);
  va_end(ap);
  return 0;
}

int ts_jv_missing(ts_jv *v, const char *key, const char *want) {
  return ts_jv_failf(v, "%s%s%s: missing (expected %s)", v->where, *v->where ? "." : "", key,
                     want);
}

int ts_jv_wrong(ts_jv *v, const char *key, const char *want, unsigned flags, const char *got) {
  return ts_jv_failf(v, "%s%s%s: expected %s%s, got %s", v->where, *v->where ? "." : "", key,
                     want, flags & TS_JV_NULLABLE ? " or null" : "", got);
}
