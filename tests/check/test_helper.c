/*
 * test_helper — <taskscope/test.h>: clean tests pass; a leaking test fails with a one-line
 * message naming it, after the runtime's report.
 *
 * The leaking tests run in a child (this program re-executed with --leaky-child, its stdout and
 * stderr captured in a file): a failing cmocka test is the expected outcome there, and the
 * child's environment gets a TASKSCOPE_OPTIONS without report=, so its deliberate leaks do not
 * reach a `taskscope check` gate the suite may run under.
 */
#include <taskscope/test.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char *g_self;

/* ---- tasks ---- */

static int quick(void *arg) {
  (void)arg;
  return tsk_sleep(1);
}

static int sleeper(void *arg) {
  (void)arg;
  return tsk_sleep(60000);
}

static int failing_push(void *arg) {
  (void)arg;
  return tsk_error(TSK_ECLOSED, "push to the collector failed");
}

/* ---- fixtures ---- */

static int rt_setup(void **state) {
  tsk_runtime_t *rt;
  if (tsk_runtime_new(&rt) != 0) return -1;
  *state = rt;
  return 0;
}

static int rt_teardown(void **state) {
  return tsk_runtime_close(*state) == 0 ? 0 : -1;
}

/* ---- clean tests (run here) ---- */

static void test_clean_join(void **state) {
  tsk_runtime_t *rt = *state;
  uint64_t mark = tsk_test_mark(rt);
  tsk_task_t t;
  assert_int_equal(tsk_spawn(rt, &t, "quick", quick, NULL), 0);
  assert_int_equal(tsk_run(rt), 0);
  assert_int_equal(tsk_join(t, 0, NULL), 0);
  assert_no_task_leaks(rt, mark);
}

/* A detached task that finishes within the settling time is not a leak. */
static void test_clean_settles(void **state) {
  tsk_runtime_t *rt = *state;
  uint64_t mark = tsk_test_mark(rt);
  tsk_task_t t;
  assert_int_equal(tsk_spawn(rt, &t, "quick", quick, NULL), 0);
  assert_int_equal(tsk_detach(t), 0);
  assert_no_task_leaks_settle(rt, mark, 2000);
}

static void test_clean_group(void **state) {
  tsk_runtime_t *rt = *state;
  tsk_group_t *g;
  assert_int_equal(tsk_group_new(rt, NULL, &g), 0);
  assert_int_equal(tsk_group_spawn(g, "quick", quick, NULL), 0);
  assert_int_equal(tsk_group_spawn(g, "quick", quick, NULL), 0);
  assert_no_task_leaks_in_group(rt, g);
  assert_int_equal(tsk_group_close(g, 0), 0);
}

/* ---- leaking tests (run in the child) ---- */

static void leaky_pending(void **state) {
  tsk_runtime_t *rt = *state;
  uint64_t mark = tsk_test_mark(rt);
  tsk_task_t t;
  assert_int_equal(tsk_spawn(rt, &t, "forgotten-sleeper", sleeper, NULL), 0);
  assert_int_equal(tsk_detach(t), 0);
  assert_no_task_leaks_settle(rt, mark, 50);
}

static void leaky_unretrieved(void **state) {
  tsk_runtime_t *rt = *state;
  uint64_t mark = tsk_test_mark(rt);
  tsk_task_t t;
  assert_int_equal(tsk_spawn(rt, &t, "metrics-push", failing_push, NULL), 0);
  assert_int_equal(tsk_detach(t), 0);
  assert_int_equal(tsk_run(rt), 0);
  assert_no_task_leaks(rt, mark);
}

static void leaky_group(void **state) {
  tsk_runtime_t *rt = *state;
  tsk_group_t *g;
  assert_int_equal(tsk_group_new(rt, NULL, &g), 0);
  assert_int_equal(tsk_group_spawn(g, "group-sleeper", sleeper, NULL), 0);
  assert_no_task_leaks_in_group(rt, g); /* fails: the group's sleeper is pending */
}

/* An earlier test's leaks were reported by its own check: this one stays clean. */
static void clean_after_leaks(void **state) {
  tsk_runtime_t *rt = *state;
  uint64_t mark = tsk_test_mark(rt);
  tsk_task_t t;
  assert_int_equal(tsk_spawn(rt, &t, "quick", quick, NULL), 0);
  assert_int_equal(tsk_run(rt), 0);
  assert_int_equal(tsk_join(t, 0, NULL), 0);
  assert_no_task_leaks(rt, mark);
}

static int leaky_child(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(leaky_pending, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(leaky_unretrieved, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(leaky_group, rt_setup, NULL),
      cmocka_unit_test_setup_teardown(clean_after_leaks, rt_setup, rt_teardown),
  };
  int failed = cmocka_run_group_tests_name("leaky", tests, NULL, NULL);
  fflush(NULL);
  _exit(failed); /* the group test's runtime is left open on purpose: no exit-time report */
}

/* ---- the child, checked from here ---- */

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  size_t n;
  while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
    len += n;
    if (cap - len < 4096) {
      char *nb = realloc(buf, cap *= 2);
      if (!nb) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = nb;
    }
  }
  fclose(f);
  if (buf) buf[len] = '\0';
  return buf;
}

static void expect_in(const char *text, const char *needle) {
  if (!strstr(text, needle)) {
    print_error("expected to find \"%s\" in the child's output:\n%s\n", needle, text);
    fail();
  }
}

static void test_leaky_tests_fail(void **state) {
  (void)state;
  char path[] = "/tmp/taskscope-test-helper-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    /* No report= for the child: its leaks are the expected outcome, not the suite's. */
    setenv("TASKSCOPE_OPTIONS", "socket=off:settle_ms=100", 1);
    unsetenv("CMOCKA_MESSAGE_OUTPUT");
    execl(g_self, g_self, "--leaky-child", (char *)NULL);
    _exit(127);
  }
  close(fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  char *out = slurp(path);
  unlink(path);
  assert_non_null(out);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 3) {
    print_error("child status 0x%x (expected exit 3: three failed tests); output:\n%s\n", status,
                out);
    fail();
  }
  /* The runtime's report, then the one-line failure naming each test. */
  expect_in(out, "Task is still pending at check");
  expect_in(out, "\"forgotten-sleeper\"");
  expect_in(out, "leaky_pending: 1 leaked task since the mark (1 pending, 0 destroyed_pending, "
                 "0 unretrieved_error; 0 suppressed) at ");
  expect_in(out, "Task exception was never retrieved");
  expect_in(out, "push to the collector failed");
  expect_in(out, "leaky_unretrieved: 1 leaked task since the mark (0 pending, "
                 "0 destroyed_pending, 1 unretrieved_error; 0 suppressed) at ");
  expect_in(out, "leaky_group: 1 leaked task in the group (1 pending, ");
  expect_in(out, "test_helper.c:");
  expect_in(out, "[  FAILED  ] leaky_pending");
  expect_in(out, "[  FAILED  ] leaky_unretrieved");
  expect_in(out, "[  FAILED  ] leaky_group");
  expect_in(out, "[       OK ] clean_after_leaks");
  free(out);
}

int main(int argc, char **argv) {
  g_self = argv[0];
  if (argc > 1 && strcmp(argv[1], "--leaky-child") == 0) return leaky_child();
  /* Re-executing needs a path: argv[0] as run by ctest is absolute; else /proc/self/exe. */
  if (!strchr(g_self, '/')) g_self = "/proc/self/exe";
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_clean_join, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_clean_settles, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_clean_group, rt_setup, rt_teardown),
      cmocka_unit_test(test_leaky_tests_fail),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
