/* test_config — TASKSCOPE_OPTIONS as the runtime reads it, and tsk_options_set/get. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "taskscope.h"
#include "internal.h" /* the stack size a runtime took: not observable through the public API */

/* Runs "create a runtime, close it" in a child with TASKSCOPE_OPTIONS=spec; returns its exit
 * status and what it wrote on stderr. */
static int child_with_options(const char *spec, char *err, size_t errlen) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    setenv("TASKSCOPE_OPTIONS", spec, 1);
    tsk_runtime_t *rt;
    if (tsk_runtime_new(&rt) != 0) _exit(10);
    tsk_runtime_close(rt);
    _exit(0);
  }
  close(fds[1]);
  size_t got = 0;
  ssize_t n;
  while (got + 1 < errlen && (n = read(fds[0], err + got, errlen - 1 - got)) > 0) got += (size_t)n;
  err[got] = 0;
  close(fds[0]);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_good_options_are_silent(void **state) {
  (void)state;
  char err[1024];
  assert_int_equal(child_with_options("frames=8:stack_size=64k", err, sizeof err), 0);
  assert_string_equal(err, "");
}

static void test_bad_option_names_key_and_continues(void **state) {
  (void)state;
  char err[1024];
  assert_int_equal(child_with_options("frame=8", err, sizeof err), 0);
  assert_non_null(strstr(err, "'frame'"));
  assert_non_null(strstr(err, "did you mean 'frames'"));
  assert_non_null(strstr(err, "continuing with the defaults"));
}

static void test_bad_value_with_strict_stops(void **state) {
  (void)state;
  char err[1024];
  assert_int_equal(child_with_options("strict=1:frames=lots", err, sizeof err), 2);
  assert_non_null(strstr(err, "'frames'"));
}

static void test_verbosity_notes(void **state) {
  (void)state;
  char err[2048];
  assert_int_equal(child_with_options("verbosity=1:frames=9", err, sizeof err), 0);
  assert_non_null(strstr(err, "taskscope: options: "));
  assert_non_null(strstr(err, "frames=9"));
  assert_int_equal(child_with_options("frames=9", err, sizeof err), 0);
  assert_null(strstr(err, "taskscope: options: "));
}

static void test_options_set_and_get(void **state) {
  (void)state;
  char err[512], buf[8192];
  assert_int_equal(tsk_options_set("frames", "32", err, sizeof err), 0);
  assert_true(tsk_options_get(buf, sizeof buf) > 0);
  assert_non_null(strstr(buf, "frames=32"));
  assert_int_equal(tsk_options_set("frames", "0", err, sizeof err), TSK_EOPTION);
  assert_non_null(strstr(err, "frames"));
  assert_int_equal(tsk_options_set("nosuch", "1", err, sizeof err), TSK_EOPTION);
  assert_non_null(strstr(err, "nosuch"));
  /* A refused value changes nothing. */
  assert_true(tsk_options_get(buf, sizeof buf) > 0);
  assert_non_null(strstr(buf, "frames=32"));
  /* A runtime created after a change works with it. */
  assert_int_equal(tsk_options_set("stack_size", "32k", err, sizeof err), 0);
  tsk_runtime_t *rt;
  assert_int_equal(tsk_runtime_new(&rt), 0);
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  assert_int_equal(rt->stacks.stack_size, (32 * 1024 + page - 1) / page * page);
  assert_int_equal(tsk_runtime_close(rt), 0);
  assert_int_equal(tsk_options_set("stack_size", "256k", err, sizeof err), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_options_are_silent),
      cmocka_unit_test(test_bad_option_names_key_and_continues),
      cmocka_unit_test(test_bad_value_with_strict_stops),
      cmocka_unit_test(test_verbosity_notes),
      cmocka_unit_test(test_options_set_and_get),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
