/*
 * test_leaks — the three leak kinds, detected with the right stacks, and the reports.
 *
 * Each scenario runs in a child process (the registry and the exit-time report are per process)
 * with TASKSCOPE_OPTIONS pointing report= at a temporary file; the parent reads the child's
 * stderr, exit status and JSON report (parsed with jansson) and checks them.
 */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "taskscope.h"

#define NOINLINE __attribute__((noinline))

/* ---- scenarios (run in the child) ---- */

static tsk_runtime_t *rt;
static tsk_event_t *never;

NOINLINE static int raise_here(void) {
  return tsk_error(TSK_EFAILED, "disk on fire (%d)", 42);
}

NOINLINE static int failing_task(void *arg) {
  (void)arg;
  tsk_yield();
  return raise_here();
}

NOINLINE static void spawn_failing(tsk_task_t *t) {
  tsk_spawn(rt, t, "failing_task", failing_task, NULL);
}

NOINLINE static int wait_in_helper(void) { return tsk_event_wait(never, TSK_FOREVER); }

NOINLINE static int waiting_task(void *arg) {
  (void)arg;
  return wait_in_helper();
}

static tsk_future_t *fut;
static tsk_promise_t *prom;
static int waiter_rc = 1;

NOINLINE static int await_reply(void *arg) {
  (void)arg;
  waiter_rc = tsk_future_wait(fut, TSK_FOREVER, NULL);
  return 0;
}

NOINLINE static void drop_the_promise(void) { tsk_promise_release(prom); }

static int main_unretrieved(void *arg) {
  (void)arg;
  tsk_task_t t;
  spawn_failing(&t);
  tsk_detach(t);
  tsk_sleep(5);
  return 0;
}

static int main_joined(void *arg) {
  (void)arg;
  tsk_task_t t, u;
  spawn_failing(&t);
  tsk_join(t, TSK_FOREVER, NULL); /* retrieved */
  spawn_failing(&u);
  tsk_sleep(5);
  tsk_result_t res;
  tsk_task_result(u, &res); /* reading the error retrieves it */
  tsk_detach(u);
  return 0;
}

/* A group whose first failure is never read (no tsk_group_wait, no tsk_group_close). */
static tsk_group_t *unread_group;
static int main_group_unread(void *arg) {
  (void)arg;
  if (tsk_group_new(rt, NULL, &unread_group) != 0) return 1;
  if (tsk_group_spawn(unread_group, "group_member", failing_task, NULL) != 0) return 2;
  tsk_sleep(5);
  return 0; /* the runtime closes with the group still open */
}

/* The same failure, read by tsk_group_wait: retrieved, no record. */
static int main_group_read(void *arg) {
  (void)arg;
  tsk_group_t *g;
  if (tsk_group_new(rt, NULL, &g) != 0) return 1;
  if (tsk_group_spawn(g, "group_member", failing_task, NULL) != 0) return 2;
  if (tsk_group_wait(g, TSK_FOREVER, NULL) != TSK_EFAILED) return 3;
  return tsk_group_close(g, 0) == TSK_EFAILED ? 0 : 4;
}

static int main_destroyed(void *arg) {
  (void)arg;
  tsk_event_new(rt, &never);
  tsk_task_t t;
  tsk_spawn(rt, &t, "waiting_task", waiting_task, NULL);
  tsk_detach(t);
  tsk_sleep(2);
  return 0; /* runtime close destroys waiting_task */
}

static int main_stranded(void *arg) {
  (void)arg;
  tsk_future_new(rt, &fut, &prom);
  tsk_task_t t;
  tsk_spawn(rt, &t, "await_reply", await_reply, NULL);
  tsk_sleep(2);
  drop_the_promise();
  tsk_join(t, TSK_FOREVER, NULL);
  tsk_future_release(fut);
  return waiter_rc == TSK_EBROKEN ? 0 : 1;
}

static int main_explicit_destroy(void *arg) {
  (void)arg;
  tsk_event_new(rt, &never);
  tsk_task_t t;
  tsk_spawn(rt, &t, "waiting_task", waiting_task, NULL);
  tsk_sleep(2);
  tsk_task_destroy(t);
  tsk_event_free(never);
  return 0;
}

static int main_pending_at_exit(void *arg) {
  (void)arg;
  tsk_event_new(rt, &never);
  tsk_task_t t;
  tsk_spawn(rt, &t, "waiting_task", waiting_task, NULL);
  tsk_detach(t);
  tsk_sleep(2);
  return 0;
}

static int quick_task(void *arg) {
  (void)arg;
  return tsk_sleep(10);
}

static int main_check_api(void *arg) {
  (void)arg;
  int bad = 0;
  /* Clean code since the mark: nothing. */
  uint64_t mark = tsk_leak_mark(rt);
  tsk_task_t t;
  spawn_failing(&t);
  tsk_join(t, TSK_FOREVER, NULL);
  tsk_check_opts_t o = {.since = mark, .settle_ms = 0, .quiet = 1};
  if (tsk_leak_check(rt, &o, NULL) != 0) bad |= 1;
  /* A task that finishes within the settling time is not a leak. */
  mark = tsk_leak_mark(rt);
  tsk_spawn(rt, &t, "quick_task", quick_task, NULL);
  tsk_detach(t);
  o.since = mark;
  o.settle_ms = 1000;
  if (tsk_leak_check(rt, &o, NULL) != 0) bad |= 2;
  /* A detached failure and a stuck task since the mark: two records. */
  mark = tsk_leak_mark(rt);
  tsk_event_new(rt, &never);
  spawn_failing(&t);
  tsk_detach(t);
  tsk_task_t w;
  tsk_spawn(rt, &w, "waiting_task", waiting_task, NULL);
  o.since = mark;
  o.settle_ms = 20;
  o.quiet = 0;
  tsk_leak_counts_t c;
  if (tsk_leak_check(rt, &o, &c) != 2) bad |= 4;
  if (c.pending != 1 || c.unretrieved_error != 1) bad |= 8;
  tsk_cancel(w);
  tsk_join(w, TSK_FOREVER, NULL);
  tsk_event_free(never);
  return bad;
}

typedef struct scenario {
  const char *name;
  tsk_fn main_fn;
  int close_runtime;
  int exit_status; /* what the child passes to exit() */
  int crash_after; /* abort() after closing */
} scenario;

static void run_scenario(const scenario *s) {
  if (tsk_runtime_new(&rt) != 0) _exit(100);
  int rc = tsk_run_main(rt, "main", s->main_fn, NULL, NULL);
  if (rc != 0) {
    fprintf(stderr, "scenario %s: main returned %d\n", s->name, rc);
    _exit(101);
  }
  if (s->close_runtime) tsk_runtime_close(rt);
  if (s->crash_after) abort();
  exit(s->exit_status);
}

/* ---- the parent side ---- */

typedef struct outcome {
  int status;     /* exit status, or 128 + signal */
  char err[65536];
  json_t *report; /* NULL when no report file was written */
} outcome;

static void run_child(const scenario *s, const char *options, outcome *out) {
  char path[128];
  snprintf(path, sizeof path, "/tmp/taskscope-test-leaks-%d.json", (int)getpid());
  unlink(path);
  char spec[512];
  snprintf(spec, sizeof spec, "report=%s%s%s", path, options[0] ? ":" : "", options);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    setenv("TASKSCOPE_OPTIONS", spec, 1);
    run_scenario(s);
  }
  close(fds[1]);
  size_t got = 0;
  ssize_t n;
  while (got + 1 < sizeof out->err &&
         (n = read(fds[0], out->err + got, sizeof out->err - 1 - got)) > 0)
    got += (size_t)n;
  out->err[got] = 0;
  close(fds[0]);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  out->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  json_error_t jerr;
  out->report = json_load_file(path, 0, &jerr);
  unlink(path);
}

static json_t *find_leak(json_t *report, const char *kind, const char *task_name) {
  json_t *leaks = json_object_get(report, "leaks");
  size_t i;
  json_t *l;
  json_array_foreach(leaks, i, l) {
    const char *k = json_string_value(json_object_get(l, "kind"));
    const char *name = json_string_value(json_object_get(json_object_get(l, "task"), "name"));
    if (k && name && strcmp(k, kind) == 0 && strcmp(name, task_name) == 0) return l;
  }
  return NULL;
}

/* Index of the first frame of `stack` naming `function`, or -1. Checks the frame's file too. */
static int frame_index(json_t *leak, const char *stack, const char *function) {
  json_t *frames = json_object_get(leak, stack);
  size_t i;
  json_t *f;
  json_array_foreach(frames, i, f) {
    const char *fn = json_string_value(json_object_get(f, "function"));
    if (fn && strcmp(fn, function) == 0) {
      const char *file = json_string_value(json_object_get(f, "file"));
      assert_non_null(file);
      assert_non_null(strstr(file, "test_leaks.c"));
      assert_true(json_integer_value(json_object_get(f, "line")) > 0);
      return (int)i;
    }
  }
  return -1;
}

static long summary(json_t *report, const char *key) {
  return (long)json_integer_value(json_object_get(json_object_get(report, "summary"), key));
}

/* A run that found nothing: exit 0, no text report, and the report at exit says so (an empty,
 * whole document). */
static void assert_clean(const outcome *o) {
  assert_int_equal(o->status, 0);
  assert_null(strstr(o->err, "SUMMARY"));
  assert_non_null(o->report);
  assert_int_equal(json_array_size(json_object_get(o->report, "leaks")), 0);
  assert_int_equal(summary(o->report, "unretrieved_error"), 0);
}

static void test_unretrieved_error(void **state) {
  (void)state;
  scenario s = {"unretrieved", main_unretrieved, 1, 0, 0};
  static outcome o;
  run_child(&s, "", &o);
  assert_int_equal(o.status, 0);
  assert_non_null(strstr(o.err, "Task exception was never retrieved"));
  assert_non_null(strstr(o.err, "disk on fire (42)"));
  assert_non_null(strstr(o.err, "SUMMARY: taskscope: 0 pending, 0 destroyed_pending, "
                                "1 unretrieved_error (0 suppressed)"));
  assert_non_null(o.report);
  assert_string_equal(json_string_value(json_object_get(o.report, "format")), "taskscope-report");
  assert_int_equal(json_integer_value(json_object_get(o.report, "version")), 1);
  assert_int_equal(summary(o.report, "unretrieved_error"), 1);
  json_t *l = find_leak(o.report, "unretrieved_error", "failing_task");
  assert_non_null(l);
  /* Raised in raise_here, called by failing_task; created by spawn_failing: user frames first. */
  assert_int_equal(frame_index(l, "raised_at", "raise_here"), 0);
  assert_int_equal(frame_index(l, "raised_at", "failing_task"), 1);
  assert_int_equal(frame_index(l, "created_at", "spawn_failing"), 0);
  json_t *err = json_object_get(l, "error");
  assert_string_equal(json_string_value(json_object_get(err, "message")), "disk on fire (42)");
  json_decref(o.report);
}

static void test_group_failure_never_read(void **state) {
  (void)state;
  scenario s = {"group-unread", main_group_unread, 1, 0, 0};
  static outcome o;
  run_child(&s, "", &o);
  assert_int_equal(o.status, 0);
  assert_non_null(strstr(o.err, "Task exception was never retrieved"));
  assert_non_null(o.report);
  assert_int_equal(summary(o.report, "unretrieved_error"), 1);
  json_t *l = find_leak(o.report, "unretrieved_error", "group_member");
  assert_non_null(l);
  assert_int_equal(frame_index(l, "raised_at", "raise_here"), 0);
  assert_int_equal(frame_index(l, "raised_at", "failing_task"), 1);
  json_decref(o.report);

  scenario r = {"group-read", main_group_read, 1, 0, 0};
  run_child(&r, "", &o);
  assert_clean(&o);
  json_decref(o.report);
}

static void test_verbosity_reports_as_it_happens(void **state) {
  (void)state;
  scenario s = {"unretrieved", main_unretrieved, 1, 0, 0};
  static outcome o;
  run_child(&s, "verbosity=1", &o);
  assert_int_equal(o.status, 0);
  /* the one-line note comes when the record is made, before the report at close */
  const char *note = strstr(o.err, "taskscope: unretrieved_error: task ");
  const char *report = strstr(o.err, "Task exception was never retrieved");
  assert_non_null(note);
  assert_non_null(report);
  assert_true(note < report);
  json_decref(o.report);
}

static void test_no_false_positive_when_retrieved(void **state) {
  (void)state;
  scenario s = {"joined", main_joined, 1, 0, 0};
  static outcome o;
  run_child(&s, "", &o);
  assert_clean(&o);
  json_decref(o.report);
}

static void test_destroyed_pending_at_close(void **state) {
  (void)state;
  scenario s = {"destroyed", main_destroyed, 1, 0, 0};
  static outcome o;
  run_child(&s, "", &o);
  assert_int_equal(o.status, 0);
  assert_non_null(strstr(o.err, "Task was destroyed but it is pending!"));
  assert_non_null(o.report);
  json_t *l = find_leak(o.report, "destroyed_pending", "waiting_task");
  assert_non_null(l);
  assert_int_equal(frame_index(l, "suspended_at", "wait_in_helper"), 0);
  assert_int_equal(frame_index(l, "suspended_at", "waiting_task"), 1);
  assert_int_equal(frame_index(l, "created_at", "main_destroyed"), 0);
  json_t *aw = json_object_get(json_object_get(l, "task"), "awaiting");
  assert_string_equal(json_string_value(json_object_get(aw, "kind")), "event");
  json_decref(o.report);
}

static void test_stranded_waiter(void **state) {
  (void)state;
  scenario s = {"stranded", main_stranded, 1, 0, 0};
  static outcome o;
  run_child(&s, "", &o);
  assert_int_equal(o.status, 0); /* the waiter saw TSK_EBROKEN */
  assert_non_null(strstr(o.err, "stranded"));
  assert_non_null(o.report);
  json_t *l = find_leak(o.report, "destroyed_pending", "await_reply");
  assert_non_null(l);
  assert_true(frame_index(l, "dropped_at", "drop_the_promise") >= 0);
  assert_true(frame_index(l, "suspended_at", "await_reply") >= 0);
  json_decref(o.report);
}

static void test_explicit_destroy(void **state) {
  (void)state;
  scenario s = {"explicit", main_explicit_destroy, 1, 0, 0};
  static outcome o;
  run_child(&s, "", &o);
  assert_int_equal(o.status, 0);
  assert_non_null(o.report);
  json_t *l = find_leak(o.report, "destroyed_pending", "waiting_task");
  assert_non_null(l);
  assert_non_null(strstr(json_string_value(json_object_get(l, "reason")), "explicitly"));
  json_decref(o.report);
}

static void test_pending_at_exit_and_exitcode(void **state) {
  (void)state;
  scenario s = {"pending", main_pending_at_exit, 0, 0, 0};
  static outcome o;
  run_child(&s, "exitcode=7", &o);
  assert_int_equal(o.status, 7);
  assert_non_null(strstr(o.err, "pending"));
  assert_non_null(o.report);
  assert_int_equal(summary(o.report, "pending"), 1);
  assert_non_null(find_leak(o.report, "pending", "waiting_task"));
  json_decref(o.report);
  /* A failing exit status is never turned into another one, let alone success. */
  scenario f = {"pending-failing", main_pending_at_exit, 0, 3, 0};
  run_child(&f, "exitcode=7", &o);
  assert_int_equal(o.status, 3);
  json_decref(o.report);
  /* No leak: the status stays 0. */
  scenario c = {"clean", main_joined, 1, 0, 0};
  run_child(&c, "exitcode=7", &o);
  assert_int_equal(o.status, 0);
  json_decref(o.report);
}

static void test_suppressions(void **state) {
  (void)state;
  char supp[128];
  snprintf(supp, sizeof supp, "/tmp/taskscope-test-supp-%d.txt", (int)getpid());
  FILE *f = fopen(supp, "w");
  assert_non_null(f);
  fprintf(f, "# known and accepted\nleak:raise_here\ntask:nothing_like_this*\n");
  fclose(f);
  char opts[256];
  snprintf(opts, sizeof opts, "exitcode=9:suppressions=%s", supp);
  scenario s = {"unretrieved", main_unretrieved, 1, 0, 0};
  static outcome o;
  run_child(&s, opts, &o);
  unlink(supp);
  assert_int_equal(o.status, 0); /* the only leak is suppressed */
  assert_non_null(o.report);
  assert_int_equal(summary(o.report, "unretrieved_error"), 0);
  assert_int_equal(summary(o.report, "suppressed"), 1);
  assert_null(strstr(o.err, "Task exception was never retrieved"));
  assert_non_null(strstr(o.err, "matched nothing")); /* the unused task: entry */
  json_decref(o.report);
}

static void test_report_survives_a_crash(void **state) {
  (void)state;
  scenario s = {"crash", main_unretrieved, 1, 0, 1};
  static outcome o;
  run_child(&s, "", &o);
  assert_int_equal(o.status, 128 + 6); /* SIGABRT after the close */
  assert_non_null(o.report);           /* written whole at close */
  assert_int_equal(summary(o.report, "unretrieved_error"), 1);
  json_decref(o.report);
}

static void test_backtrace_off(void **state) {
  (void)state;
  scenario s = {"unretrieved", main_unretrieved, 1, 0, 0};
  static outcome o;
  run_child(&s, "backtrace=off", &o);
  assert_non_null(o.report);
  json_t *l = find_leak(o.report, "unretrieved_error", "failing_task");
  assert_non_null(l);
  assert_int_equal(json_array_size(json_object_get(l, "created_at")), 0);
  json_decref(o.report);
}

static void test_check_api(void **state) {
  (void)state;
  scenario s = {"check", main_check_api, 1, 0, 0};
  static outcome o;
  run_child(&s, "", &o);
  assert_int_equal(o.status, 0);
  assert_non_null(strstr(o.err, "SUMMARY: taskscope: 1 pending, 0 destroyed_pending, "
                                "1 unretrieved_error"));
  json_decref(o.report);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unretrieved_error),
      cmocka_unit_test(test_group_failure_never_read),
      cmocka_unit_test(test_verbosity_reports_as_it_happens),
      cmocka_unit_test(test_no_false_positive_when_retrieved),
      cmocka_unit_test(test_destroyed_pending_at_close),
      cmocka_unit_test(test_stranded_waiter),
      cmocka_unit_test(test_explicit_destroy),
      cmocka_unit_test(test_pending_at_exit_and_exitcode),
      cmocka_unit_test(test_suppressions),
      cmocka_unit_test(test_report_survives_a_crash),
      cmocka_unit_test(test_backtrace_off),
      cmocka_unit_test(test_check_api),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
