/*
 * fmt.h — text both clients show the same way: durations, the headlines of leak records (as the
 * runtime's text report, runtime/src/report.c, writes them), and whether the locale is UTF-8.
 */
#ifndef TASKSCOPE_FMT_H
#define TASKSCOPE_FMT_H

#include <stddef.h>

/* "850ms", "12.3s", "5m02s", "3h04m", "2d05h"; "-" for a negative or non-finite value. */
void tsc_fmt_duration(char *buf, size_t n, double ms);

/* The headline of a leak record of `kind` ("destroyed_pending", "unretrieved_error"; a
 * destroyed_pending whose reason starts with "stranded" has its own), or NULL for "pending" and
 * unknown kinds (the runtime writes "Task is still pending at WHEN"). */
const char *tsc_leak_headline(const char *kind, const char *reason);

/* Whether the locale's codeset is UTF-8 (after setlocale(LC_ALL, "")): UTF-8 tree lines, arrows
 * and sparklines then, ASCII otherwise. */
int tsc_utf8_locale(void);

#endif
