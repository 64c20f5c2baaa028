/*
 * options.h — the run-time options (TASKSCOPE_OPTIONS and the C API's tsk_options_set).
 * Not installed. Depends on nothing but libc and the error codes of taskscope.h.
 *
 * Syntax
 *   key=value pairs separated by ':', as LSAN_OPTIONS:  TASKSCOPE_OPTIONS=frames=32:report=r-%p.json
 *   An empty spec and empty segments ("a=1::b=2", a trailing ':') are allowed and mean nothing.
 *   Keys and values are case-sensitive and taken literally: whitespace is never trimmed, and a
 *   key or value with surrounding whitespace is an error. Numbers are plain decimal digits (no
 *   sign, no 0x, no trailing junk) and are range-checked, with overflow detected. A key given
 *   twice takes its later value (so TASKSCOPE_OPTIONS="$TASKSCOPE_OPTIONS:frames=32" overrides).
 *   Every option, its values and its default are listed in docs/OPTIONS.md and in the table at
 *   the top of options.c.
 *
 * Errors
 *   Parsing stops at the first error and fills err with one line naming the key, e.g.
 *     TASKSCOPE_OPTIONS: unknown option 'frame' (did you mean 'frames'?)
 *     TASKSCOPE_OPTIONS: bad value 'lots' for 'frames': expected a number from 1 to 64
 *     TASKSCOPE_OPTIONS: 'backtrace' needs a value (backtrace=off|spawn)
 *   (tsk__options_set uses the prefix "tsk_options_set:" instead). Values quoted in a message
 *   are cut to 64 bytes and non-printable bytes escaped, so the line stays one short line. The
 *   functions only report; they never print. err may be NULL or errlen 0; TSK__OPTIONS_ERRLEN
 *   bytes always hold the whole message.
 *
 * Policy for a bad TASKSCOPE_OPTIONS (applied by the caller, the runtime)
 *   Instrumentation must never break a production service, so by default a bad spec is reported
 *   and ignored as a whole: print err (one line) to stderr and continue with ALL defaults (not a
 *   partial parse: settings before the error are dropped too). With strict=1 anywhere in the spec
 *   (before or after the error), the error is fatal instead: print it and exit with status 2.
 *   After a failed parse, out holds the defaults except out->strict, which tells which case
 *   applies:
 *     char err[TSK__OPTIONS_ERRLEN];
 *     if (tsk__options_from_env(&opts, err, sizeof err) != 0) {
 *       fprintf(stderr, "%s\n", err);
 *       if (opts.strict) _exit(2);
 *     }
 *
 * Threads
 *   The functions keep no state. tsk__options_from_env reads the environment (getenv is not safe
 *   against a concurrent setenv); call it once at start-up.
 */
#ifndef TSK_OPTIONS_H
#define TSK_OPTIONS_H

#include "taskscope.h"

#include <stdbool.h>
#include <stddef.h>

/* Longest path for report= and suppressions=, terminating NUL included. */
#define TSK__OPTIONS_PATH_MAX 4096
/* Longest socket path, NUL included: sizeof(((struct sockaddr_un *)0)->sun_path) on Linux. */
#define TSK__OPTIONS_SOCKET_MAX 108
/* A buffer this size always holds an error message. */
#define TSK__OPTIONS_ERRLEN 512
/* A buffer this size always holds tsk__options_format's output, NUL included. */
#define TSK__OPTIONS_FORMAT_MAX (2 * TSK__OPTIONS_PATH_MAX + TSK__OPTIONS_SOCKET_MAX + 512)

typedef enum {
  TSK__BACKTRACE_OFF = 0, /* no creation backtraces */
  TSK__BACKTRACE_SPAWN    /* capture one at every spawn (default) */
} tsk__backtrace_mode;

typedef enum {
  TSK__SOCKET_AUTO = 0, /* per-user directory, named after the pid (default) */
  TSK__SOCKET_OFF,      /* no inspector socket */
  TSK__SOCKET_PATH      /* exactly socket_path */
} tsk__socket_mode;

/* Every setting. Plain values only (no pointers), so the struct may be copied and compared
 * with tsk__options_equal. To add an option: add a field here and one row to the table in
 * options.c (name, kind, field, limits, default, help); parsing, defaults, formatting,
 * comparison and the error messages follow from the table. Then list it in docs/OPTIONS.md. */
typedef struct tsk__options {
  tsk__backtrace_mode backtrace;             /* backtrace=off|spawn; spawn */
  unsigned frames;                           /* frames=1..64; 16: frames per backtrace */
  char report[TSK__OPTIONS_PATH_MAX];        /* report=PATH; "": no JSON report. A pattern:
                                                expand it with tsk__options_report_path */
  unsigned exitcode;                         /* exitcode=0..255; 0: leave the exit status */
  char suppressions[TSK__OPTIONS_PATH_MAX];  /* suppressions=PATH; "": none */
  tsk__socket_mode socket;                   /* socket=auto|off|PATH; auto */
  char socket_path[TSK__OPTIONS_SOCKET_MAX]; /* the PATH when socket == TSK__SOCKET_PATH, else "" */
  size_t stack_size;                         /* stack_size=16k..1G; 256k: default task stack */
  unsigned history;                          /* history=0..1000000; 1024 finished tasks kept */
  unsigned verbosity;                        /* verbosity=0..2; 0 */
  unsigned settle_ms;                        /* settle_ms=0..60000; 100 */
  bool report_text;                          /* report_text=on|off; on: text leak report on stderr */
  bool busy_time;                            /* busy_time=on|off; off: per-task CPU time (a clock
                                                read at every switch) */
  bool strict;                               /* strict=on|off; off: a bad spec is fatal (exit 2) */
} tsk__options;

/* Fills *o with the defaults. */
void tsk__options_defaults(tsk__options *o);

/* Parses spec (NULL is the same as "") over the defaults: *out = defaults + spec. Returns 0, or
 * TSK_EOPTION with err filled; *out then holds the defaults except out->strict, which is set if
 * spec holds a valid strict=on|1 anywhere (the last valid strict= wins), so the caller can apply
 * the policy above. TSK_EINVAL if out is NULL. */
int tsk__options_parse(const char *spec, tsk__options *out, char *err, size_t errlen);

/* tsk__options_parse(getenv("TASKSCOPE_OPTIONS")). Unset or empty: the defaults and 0. Read with
 * secure_getenv where available, so set-user-ID programs ignore it (a report path chosen by the
 * invoking user must not be written with elevated rights). */
int tsk__options_from_env(tsk__options *out, char *err, size_t errlen);

/* Sets one option with the same validation as the parser (value "" clears a path option; any
 * other empty value is an error; ':' is refused in a value since it could not be written back
 * in the spec syntax). On error *o is unchanged: TSK_EOPTION with err filled, or TSK_EINVAL when
 * o, key or value is NULL. */
int tsk__options_set(tsk__options *o, const char *key, const char *value, char *err,
                     size_t errlen);

/* Writes every option, in table order, in the spec syntax ("backtrace=spawn:frames=16:..."),
 * so that parsing the output gives back *o. Returns the length written (without the NUL), or
 * TSK_EINVAL if it did not fit in n bytes (buf is then "", when n > 0). TSK__OPTIONS_FORMAT_MAX
 * bytes are always enough. */
int tsk__options_format(const tsk__options *o, char *buf, size_t n);

/* Whether two option sets are equal, setting by setting (strings compared as strings). */
bool tsk__options_equal(const tsk__options *a, const tsk__options *b);

/* Expands o->report for the calling process (%p: getpid(), %%: '%') into buf. Returns the
 * length of the path, 0 when no report is configured (buf is then ""), or TSK_EINVAL when the
 * pattern is malformed (only possible if the struct was filled by hand) or the path does not fit
 * in size bytes; buf is then "" when size > 0. */
int tsk__options_report_path(const tsk__options *o, char *buf, size_t size);

/* The expansion behind tsk__options_report_path with an explicit pid; same results. */
int tsk__options_expand_path(const char *pattern, long pid, char *buf, size_t size);

#endif /* TSK_OPTIONS_H */
