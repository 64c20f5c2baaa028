/*
 * test_samples — runs every war-story sample, buggy and --fixed, and checks its leak report:
 * the kinds and counts, and that the stacks name the sample's own functions at the right
 * positions with file:line in the sample's source. The --fixed variants must report nothing.
 *
 * The samples' directory comes from the build (TASKSCOPE_SAMPLES_DIR); each run writes its JSON
 * report to a temporary file through TASKSCOPE_OPTIONS=report=...
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

#ifndef TASKSCOPE_SAMPLES_DIR
#error "TASKSCOPE_SAMPLES_DIR must be defined by the build"
#endif

typedef struct frame_expect {
  const char *kind;     /* leak kind */
  const char *task;     /* task name */
  const char *stack;    /* "created_at", "suspended_at", "raised_at", "dropped_at" */
  int index;            /* expected position of the function; -1: anywhere */
  const char *function;
} frame_expect;

typedef struct sample_case {
  const char *name;
  const char *args[6];
  long pending, destroyed_pending, unretrieved_error;
  frame_expect frames[8];
} sample_case;

typedef struct run_result {
  int status;
  char *err;      /* stderr, heap */
  json_t *report; /* NULL: no report written */
} run_result;

static void run_sample(const char *name, const char *const *args, run_result *r) {
  char exe[512], path[256], spec[300];
  snprintf(exe, sizeof exe, "%s/%s", TASKSCOPE_SAMPLES_DIR, name);
  snprintf(path, sizeof path, "/tmp/taskscope-sample-%s-%d.json", name, (int)getpid());
  snprintf(spec, sizeof spec, "report=%s", path);
  unlink(path);
  char errpath[256];
  snprintf(errpath, sizeof errpath, "/tmp/taskscope-sample-%s-%d.err", name, (int)getpid());
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    const char *argv[10] = {exe};
    int n = 1;
    for (int i = 0; args[i] && n < 9; i++) argv[n++] = args[i];
    argv[n] = NULL;
    FILE *e = freopen(errpath, "w", stderr);
    (void)e;
    if (!freopen("/dev/null", "w", stdout)) _exit(126);
    setenv("TASKSCOPE_OPTIONS", spec, 1);
    execv(exe, (char *const *)argv);
    _exit(127);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  FILE *f = fopen(errpath, "r");
  assert_non_null(f);
  r->err = calloc(1, 1 << 20);
  size_t got = fread(r->err, 1, (1 << 20) - 1, f);
  r->err[got] = 0;
  fclose(f);
  unlink(errpath);
  json_error_t jerr;
  r->report = json_load_file(path, 0, &jerr);
  unlink(path);
}

static json_t *find_leak(json_t *report, const char *kind, const char *task) {
  size_t i;
  json_t *l;
  json_array_foreach(json_object_get(report, "leaks"), i, l) {
    const char *k = json_string_value(json_object_get(l, "kind"));
    const char *n = json_string_value(json_object_get(json_object_get(l, "task"), "name"));
    if (k && n && !strcmp(k, kind) && !strcmp(n, task)) return l;
  }
  return NULL;
}

static void check_frame(const char *sample, json_t *report, const frame_expect *fe) {
  json_t *l = find_leak(report, fe->kind, fe->task);
  if (!l) fail_msg("%s: no %s record for task '%s'", sample, fe->kind, fe->task);
  json_t *frames = json_object_get(l, fe->stack);
  size_t i;
  json_t *f;
  json_array_foreach(frames, i, f) {
    const char *fn = json_string_value(json_object_get(f, "function"));
    if (!fn || strcmp(fn, fe->function) != 0) continue;
    if (fe->index >= 0 && (int)i != fe->index)
      fail_msg("%s: %s of '%s': %s is frame #%zu, expected #%d", sample, fe->stack, fe->task,
               fe->function, i, fe->index);
    const char *file = json_string_value(json_object_get(f, "file"));
    char want[128];
    snprintf(want, sizeof want, "samples/%s.c", sample);
    if (!file || !strstr(file, want))
      fail_msg("%s: frame %s has file %s, expected .../%s", sample, fe->function,
               file ? file : "(null)", want);
    if (json_integer_value(json_object_get(f, "line")) <= 0)
      fail_msg("%s: frame %s has no line", sample, fe->function);
    return;
  }
  fail_msg("%s: %s of '%s' has no frame %s", sample, fe->stack, fe->task, fe->function);
}

static long summary(json_t *report, const char *key) {
  return (long)json_integer_value(json_object_get(json_object_get(report, "summary"), key));
}

static void run_case(const sample_case *c) {
  run_result r;
  run_sample(c->name, c->args, &r);
  if (r.status != 0) fail_msg("%s exited %d; stderr:\n%s", c->name, r.status, r.err);
  if (!r.report) fail_msg("%s wrote no report; stderr:\n%s", c->name, r.err);
  if (!strstr(r.err, "SUMMARY: taskscope:")) fail_msg("%s: no SUMMARY line on stderr", c->name);
  if (summary(r.report, "pending") != c->pending ||
      summary(r.report, "destroyed_pending") != c->destroyed_pending ||
      summary(r.report, "unretrieved_error") != c->unretrieved_error)
    fail_msg("%s: summary %ld/%ld/%ld, expected %ld/%ld/%ld", c->name,
             summary(r.report, "pending"), summary(r.report, "destroyed_pending"),
             summary(r.report, "unretrieved_error"), c->pending, c->destroyed_pending,
             c->unretrieved_error);
  for (int i = 0; i < 8 && c->frames[i].kind; i++) check_frame(c->name, r.report, &c->frames[i]);
  json_decref(r.report);
  free(r.err);

  /* The same program, fixed: no record, no report, no SUMMARY. */
  const char *fixed[8] = {0};
  int n = 0;
  for (int i = 0; c->args[i]; i++) fixed[n++] = c->args[i];
  fixed[n++] = "--fixed";
  run_sample(c->name, fixed, &r);
  if (r.status != 0) fail_msg("%s --fixed exited %d; stderr:\n%s", c->name, r.status, r.err);
  if (!r.report) fail_msg("%s --fixed wrote no report at exit", c->name);
  if (strstr(r.err, "SUMMARY") || json_array_size(json_object_get(r.report, "leaks")) != 0)
    fail_msg("%s --fixed reported leaks (false positive); stderr:\n%s", c->name, r.err);
  json_decref(r.report);
  free(r.err);
}

static const sample_case cases[] = {
    {"destroyed_pending",
     {NULL},
     0, 2, 0,
     {{"destroyed_pending", "await-reply", "suspended_at", 0, "await_reply"},
      {"destroyed_pending", "await-reply", "dropped_at", 0, "drop_request"},
      {"destroyed_pending", "await-reply", "dropped_at", 1, "send_request"},
      {"destroyed_pending", "poller", "suspended_at", 0, "poll_forever"},
      {"destroyed_pending", "poller", "created_at", 0, "main_task"}}},
    {"unretrieved_error",
     {NULL},
     0, 0, 1,
     {{"unretrieved_error", "send_metrics:latency", "raised_at", 0, "push_family"},
      {"unretrieved_error", "send_metrics:latency", "raised_at", 1, "send_metrics"},
      {"unretrieved_error", "send_metrics:latency", "created_at", 0, "flush_metrics"}}},
    {"async_bomb",
     {"--docs", "5000", NULL},
     2, 0, 0,
     {{"pending", "process_document", "created_at", 0, "ingest_batch"},
      {"pending", "process_document", "suspended_at", 0, "process_document"}}},
    {"executor_timeout",
     {NULL},
     0, 1, 0,
     {{"destroyed_pending", "store_manifest", "suspended_at", 0, "store_manifest"}}},
    {"dns_fanout",
     {"--count", "16", "--delay", "5", NULL},
     0, 1, 0,
     {{"destroyed_pending", "progress_reporter", "created_at", 0, "resolve_sequentially"},
      {"destroyed_pending", "progress_reporter", "suspended_at", 0, "progress_reporter"}}},
    {"http_stream",
     {NULL},
     0, 2, 1,
     {{"destroyed_pending", "http_handler", "suspended_at", 0, "wait_for_upstream"},
      {"destroyed_pending", "http_handler", "suspended_at", 1, "serve_stream"},
      {"destroyed_pending", "request_body_reader", "created_at", 0, "serve_stream"},
      {"unretrieved_error", "upload_stall_log", "created_at", 0, "report_stall"}}},
    {"message_bus",
     {NULL},
     0, 1, 0,
     {{"destroyed_pending", "audit_consumer", "created_at", 0, "start_audit_service"},
      {"destroyed_pending", "audit_consumer", "suspended_at", 0, "audit_consumer"}}},
};

#define CASE_TEST(idx, fname)                                                                      \
  static void fname(void **state) {                                                                \
    (void)state;                                                                                   \
    run_case(&cases[idx]);                                                                         \
  }
CASE_TEST(0, test_destroyed_pending)
CASE_TEST(1, test_unretrieved_error)
CASE_TEST(2, test_async_bomb)
CASE_TEST(3, test_executor_timeout)
CASE_TEST(4, test_dns_fanout)
CASE_TEST(5, test_http_stream)
CASE_TEST(6, test_message_bus)

/* demo: a long-running service; run it briefly and check it produced every kind of event
 * record, with the stranded session's dropped-at stack. */
static void test_demo(void **state) {
  (void)state;
  const char *args[] = {"--duration", "2", "--quiet", NULL};
  run_result r;
  run_sample("demo", args, &r);
  if (r.status != 0) fail_msg("demo exited %d; stderr:\n%s", r.status, r.err);
  assert_non_null(r.report);
  assert_true(summary(r.report, "destroyed_pending") >= 1);
  assert_true(summary(r.report, "unretrieved_error") >= 1);
  frame_expect fe = {"destroyed_pending", "session", "dropped_at", -1, "auth_cache_miss"};
  check_frame("demo", r.report, &fe);
  frame_expect fe2 = {"unretrieved_error", "send_receipt", "created_at", 0,
                      "send_receipt_fire_and_forget"};
  check_frame("demo", r.report, &fe2);
  json_decref(r.report);
  free(r.err);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_destroyed_pending),
      cmocka_unit_test(test_unretrieved_error),
      cmocka_unit_test(test_async_bomb),
      cmocka_unit_test(test_executor_timeout),
      cmocka_unit_test(test_dns_fanout),
      cmocka_unit_test(test_http_stream),
      cmocka_unit_test(test_message_bus),
      cmocka_unit_test(test_demo),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
