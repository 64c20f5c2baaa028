/*
 * tt_core.h — small header-only helpers for the core runtime's unit tests (test_task.c,
 * test_sync.c, test_runtime.c).
 *
 * Checks inside tasks: cmocka's assert_* macros longjmp back to the test function, which from a
 * task's stack would abandon the runtime half-switched (and skew every later test of the binary).
 * Code running inside a task therefore uses the soft checks TT_CHECK / TT_RC: a failure is
 * printed at once and counted, the task goes on, and the test's teardown (TT_TEST) fails the test
 * when any check failed. Outside tasks the usual assert_* macros are fine.
 */
#ifndef TT_CORE_H
#define TT_CORE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "taskscope.h"

static int tt_failures;
static char tt_first_failure[512];

static inline void tt_fail_(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void tt_fail_(const char *file, int line, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s:%d: check failed: %s\n", file, line, msg);
  if (tt_failures++ == 0)
    snprintf(tt_first_failure, sizeof tt_first_failure, "%s:%d: %s", file, line, msg);
}

/* Names an error code without calling uv_err_name on unknown codes (it allocates for those). */
static inline const char *tt_name(long rc) {
  if (rc == 0) return "0";
  if (rc >= TSK_E_LAST_ && rc <= TSK_ECANCELED) return tsk_err_name((int)rc);
  if (rc < 0 && rc > -4096) return tsk_err_name((int)rc);
  return "?";
}

static inline int tt_check_(int ok, const char *expr, const char *file, int line) {
  if (!ok) tt_fail_(file, line, "%s", expr);
  return ok;
}

static inline int tt_rc_(long expected, long actual, const char *expr, const char *file,
                         int line) {
  if (expected != actual) {
    tt_fail_(file, line, "%s: expected %s (%ld), got %s (%ld)", expr, tt_name(expected), expected,
             tt_name(actual), actual);
    return 0;
  }
  return 1;
}

/* Soft checks, usable anywhere (and required inside tasks). They return whether they held. */
#define TT_CHECK(cond) tt_check_(!!(cond), #cond, __FILE__, __LINE__)
#define TT_RC(expected, actual) tt_rc_((long)(expected), (long)(actual), #actual, __FILE__, __LINE__)

/* Hard check outside tasks, with error names in the message. */
#define TT_ASSERT_RC(expected, actual)                                                             \
  do {                                                                                             \
    long e_ = (long)(expected), a_ = (long)(actual);                                               \
    if (e_ != a_)                                                                                  \
      fail_msg("%s: expected %s (%ld), got %s (%ld)", #actual, tt_name(e_), e_, tt_name(a_), a_); \
  } while (0)

static inline int tt_setup(void **state) {
  (void)state;
  tt_failures = 0;
  tt_first_failure[0] = 0;
  return 0;
}

static inline int tt_teardown(void **state) {
  (void)state;
  if (tt_failures) {
    print_error("%d soft check(s) failed; first: %s\n", tt_failures, tt_first_failure);
    return -1;
  }
  return 0;
}

#define TT_TEST(f) cmocka_unit_test_setup_teardown(f, tt_setup, tt_teardown)

/* Runs the group; TT_FILTER=pattern (cmocka's * and ? wildcards) runs only matching tests. */
#define TT_RUN_GROUP(tests)                                                                        \
  (getenv("TT_FILTER") ? cmocka_set_test_filter(getenv("TT_FILTER")) : (void)0,                    \
   cmocka_run_group_tests(tests, NULL, NULL))

/* The loop time of the calling task's runtime, refreshed first (milliseconds). Elapsed-time
 * checks compare two of these: the runtime's timers run on the same clock, so "at least N ms"
 * holds exactly, with no tolerance needed. */
static inline uint64_t tt_now(void) {
  uv_loop_t *loop = tsk_runtime_loop(tsk_runtime_current());
  uv_update_time(loop);
  return uv_now(loop);
}

/* Creates a runtime, runs fn(arg) as its main task, closes the runtime; returns the main task's
 * code and fills *res. Hard-fails the test when the runtime cannot be created or closed. */
static inline int tt_run(tsk_fn fn, void *arg, tsk_result_t *res) {
  tsk_runtime_t *rt = NULL;
  int rc = tsk_runtime_new(&rt);
  if (rc) fail_msg("tsk_runtime_new: %s", tsk_err_name(rc));
  rc = tsk_run_main(rt, "main", fn, arg, res);
  int crc = tsk_runtime_close(rt);
  if (crc) fail_msg("tsk_runtime_close: %s", tsk_err_name(crc));
  return rc;
}

/* Runs fn(arg) as the main task of a fresh runtime and requires it to return 0. */
#define TT_RUN_OK(fn, arg) TT_ASSERT_RC(0, tt_run((fn), (arg), NULL))

#endif
