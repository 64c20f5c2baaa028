/*
 * <taskscope/test.h> — leak assertions for cmocka tests: each test owns its tasks.
 *
 *   #include <taskscope/test.h>     // includes <cmocka.h> (and what it needs) and <taskscope.h>
 *
 *   static void test_fetch(void **state) {
 *     tsk_runtime_t *rt = *state;
 *     uint64_t mark = tsk_test_mark(rt);
 *     ... the code under test: spawns tasks, runs the loop ...
 *     assert_no_task_leaks(rt, mark);         // fails the test if a task it made leaked
 *   }
 *
 * assert_no_task_leaks(rt, mark) runs tsk_leak_check for the tasks created since the mark: it
 * first gives unfinished ones the settle_ms option's grace period (TASKSCOPE_OPTIONS settle_ms,
 * default 100 ms; bounded, it never waits longer), running the loop (or sleeping, when called
 * from inside a task). Then, if tasks are still pending, or tasks created since the mark were
 * destroyed while pending or failed with nobody retrieving their error, it prints the
 * runtime's leak report on stderr (stacks included) and fails the cmocka test with one line:
 *
 *   test_fetch: 1 leaked task since the mark (0 pending, 0 destroyed_pending,
 *   1 unretrieved_error; 0 suppressed) at tests/test_fetch.c:42
 *
 * The test is named by the function the assertion is written in (__func__).
 * Variants:
 *   assert_no_task_leaks_settle(rt, mark, settle_ms)   an explicit grace period (ms; -1: option)
 *   assert_no_task_leaks_in_group(rt, group)           the group's unfinished tasks (pending),
 *       plus destroyed_pending / unretrieved_error records not reported by an earlier check
 *   assert_no_task_leaks_in_group_since(rt, group, mark)  the same, records since the mark only
 * Call them from the runtime's owner thread, outside or inside a task (the calling task itself
 * is never counted). Records found by a check are "reported": an earlier check's leaks do not
 * fail later tests, and the suppressions file (TASKSCOPE_OPTIONS suppressions=) applies.
 *
 * A failed check leaves the leaked tasks as they are: a pending task is reported once more,
 * as destroyed_pending, when its runtime is closed (e.g. in the test's teardown), in the
 * process's text and JSON reports. Run the suite under `taskscope check -- ctest ...` to make
 * CI fail on leaks that no assertion looked at (see the README, "Fail CI on leaked tasks").
 *
 * Requires the C library's cmocka (Debian: libcmocka-dev) and libtaskscope.
 */
#ifndef TASKSCOPE_TEST_H
#define TASKSCOPE_TEST_H

/* cmocka needs these before <cmocka.h>. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <taskscope.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The default grace period of the assertions below: -1 takes the settle_ms option. Define it
 * before including this header to change it for a whole test file. */
#ifndef TSK_TEST_SETTLE_MS
#define TSK_TEST_SETTLE_MS (-1)
#endif

/* A mark: tasks the calling thread creates from now on belong to the test. */
static inline uint64_t tsk_test_mark(tsk_runtime_t *rt) { return tsk_leak_mark(rt); }

/* The implementation of the assert_no_task_leaks* macros (call those instead). Returns only
 * when nothing leaked; otherwise fails the current cmocka test (which does not return). */
static inline void tsk_test_check_(tsk_runtime_t *rt, uint64_t since, tsk_group_t *group,
                                   int64_t settle_ms, const char *test, const char *file,
                                   int line) {
  tsk_check_opts_t o;
  tsk_leak_counts_t c = {0, 0, 0, 0};
  o.since = since;
  o.group = group;
  o.settle_ms = settle_ms;
  o.quiet = 0; /* the report (stacks) goes to stderr */
  int n = tsk_leak_check(rt, &o, &c);
  if (n == 0) return;
  if (n < 0) {
    print_error("%s: tsk_leak_check failed: %s (%s) at %s:%d\n", test, tsk_err_name(n),
                tsk_strerror(n), file, line);
  } else {
    print_error("%s: %d leaked task%s %s (%zu pending, %zu destroyed_pending, "
                "%zu unretrieved_error; %zu suppressed) at %s:%d\n",
                test, n, n == 1 ? "" : "s", group ? "in the group" : "since the mark", c.pending,
                c.destroyed_pending, c.unretrieved_error, c.suppressed, file, line);
  }
  _fail(file, line);
}

#define assert_no_task_leaks(rt, mark)                                                            \
  tsk_test_check_((rt), (mark), NULL, TSK_TEST_SETTLE_MS, __func__, __FILE__, __LINE__)
#define assert_no_task_leaks_settle(rt, mark, settle_ms)                                          \
  tsk_test_check_((rt), (mark), NULL, (settle_ms), __func__, __FILE__, __LINE__)
#define assert_no_task_leaks_in_group(rt, group)                                                  \
  tsk_test_check_((rt), 0, (group), TSK_TEST_SETTLE_MS, __func__, __FILE__, __LINE__)
#define assert_no_task_leaks_in_group_since(rt, group, mark)                                      \
  tsk_test_check_((rt), (mark), (group), TSK_TEST_SETTLE_MS, __func__, __FILE__, __LINE__)

#ifdef __cplusplus
}
#endif
#endif /* TASKSCOPE_TEST_H */
