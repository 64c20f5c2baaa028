/*
 * test_offload.c — thread-pool offload (runtime/src/offload.c): results, timeouts and
 * cancellation that abandon running work (counted, done() called later with abandoned=1), work
 * withdrawn before it started, and runtime close with work still running, on the runtime's own
 * loop and on an application's loop.
 *
 * Work that must outlive its waiter waits for a gate the test opens, so nothing depends on
 * timing. libuv's pool is fixed to 4 threads in main (the pool-filling test relies on it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/tt_core.h"
#include "taskscope.h"

#define LONG_MS 60000 /* never reached unless something is broken */
#define POOL_SIZE 4

/* ---- work functions and their record ---- */

typedef struct job {
  intptr_t input;
  atomic_int started;     /* fn began (pool thread) */
  atomic_int gate;        /* fn returns once this is set (when gated) */
  int gated;
  /* written by done() on the loop thread */
  int done_calls;
  intptr_t done_result;
  int done_abandoned;
} job;

static void job_init(job *j, intptr_t input, int gated) {
  memset(j, 0, sizeof *j);
  j->input = input;
  j->gated = gated;
}

static intptr_t job_fn(void *arg) {
  job *j = arg;
  atomic_store(&j->started, 1);
  while (j->gated && !atomic_load(&j->gate)) usleep(1000);
  return j->input * 2;
}

static void job_done(void *arg, intptr_t result, int abandoned) {
  job *j = arg;
  j->done_calls++;
  j->done_result = result;
  j->done_abandoned = abandoned;
}

/* Sleeps until done() was called (bounded: a broken runtime fails the test, not hangs it). */
static int wait_done(job *j) {
  for (int i = 0; i < 10000 && j->done_calls == 0; i++) tsk_sleep(1);
  return TT_RC(1, j->done_calls);
}

static int wait_started(job *j) {
  for (int i = 0; i < 10000 && !atomic_load(&j->started); i++) tsk_sleep(1);
  return TT_CHECK(atomic_load(&j->started));
}

static void check_abandoned(size_t running, size_t total) {
  size_t r = 99, t = 99;
  tsk_offload_abandoned(tsk_runtime_current(), &r, &t);
  TT_RC(running, r);
  TT_RC(total, t);
}

/* Yields until the task is suspended in a wait. */
static int wait_blocked(tsk_task_t t) {
  for (int i = 0; i < 10000; i++) {
    tsk_task_state_t st;
    if (tsk_task_state(t, &st) != 0) return 0;
    if (st == TSK_TASK_WAITING) return 1;
    if (i < 100)
      tsk_yield();
    else
      tsk_sleep(1);
  }
  return 0;
}

/* ---- results ---- */

static int main_result(void *arg) {
  (void)arg;
  job j;
  job_init(&j, 21, 0);
  intptr_t result = 0;
  TT_RC(0, tsk_offload(job_fn, &j, job_done, LONG_MS, &result));
  TT_RC(42, result);
  /* done ran on the loop thread before the task resumed, not abandoned. */
  TT_RC(1, j.done_calls);
  TT_RC(42, j.done_result);
  TT_RC(0, j.done_abandoned);
  /* done and result are optional. */
  job_init(&j, 5, 0);
  TT_RC(0, tsk_offload(job_fn, &j, NULL, TSK_FOREVER, NULL));
  TT_CHECK(atomic_load(&j.started));
  check_abandoned(0, 0);
  return 0;
}

static void test_result(void **state) {
  (void)state;
  TT_RUN_OK(main_result, NULL);
}

#define MANY 64

static int many_task(void *arg) {
  job *j = arg;
  intptr_t result = -1;
  TT_RC(0, tsk_offload(job_fn, j, job_done, LONG_MS, &result));
  TT_RC(j->input * 2, result);
  return 0;
}

static int main_many(void *arg) {
  (void)arg;
  static job jobs[MANY];
  tsk_task_t t[MANY];
  for (int i = 0; i < MANY; i++) {
    job_init(&jobs[i], i, 0);
    TT_RC(0, tsk_spawn(tsk_runtime_current(), &t[i], "offloader", many_task, &jobs[i]));
  }
  for (int i = 0; i < MANY; i++) TT_RC(0, tsk_join(t[i], LONG_MS, NULL));
  for (int i = 0; i < MANY; i++) TT_RC(1, jobs[i].done_calls);
  check_abandoned(0, 0);
  return 0;
}

static void test_many(void **state) {
  (void)state;
  TT_RUN_OK(main_many, NULL);
}

/* ---- timeout: the work keeps running, abandoned ---- */

static int main_timeout(void *arg) {
  (void)arg;
  job j;
  job_init(&j, 7, 1);
  intptr_t result = -1;
  uint64_t t0 = tt_now();
  TT_RC(TSK_ETIMEDOUT, tsk_offload(job_fn, &j, job_done, 50, &result));
  TT_CHECK(tt_now() - t0 >= 50);
  TT_RC(-1, result); /* untouched */
  TT_CHECK(wait_started(&j));
  check_abandoned(1, 1);
  TT_RC(0, j.done_calls); /* still running */
  atomic_store(&j.gate, 1);
  if (wait_done(&j)) {
    TT_RC(14, j.done_result);
    TT_RC(1, j.done_abandoned);
  }
  check_abandoned(0, 1);
  /* A deadline scope abandons work the same way. */
  job_init(&j, 8, 1);
  TT_RC(0, tsk_timeout_push(30));
  TT_RC(TSK_ETIMEDOUT, tsk_offload(job_fn, &j, job_done, TSK_FOREVER, &result));
  TT_RC(0, tsk_timeout_pop());
  TT_CHECK(wait_started(&j));
  check_abandoned(1, 2);
  atomic_store(&j.gate, 1);
  if (wait_done(&j)) {
    TT_RC(16, j.done_result);
    TT_RC(1, j.done_abandoned);
  }
  check_abandoned(0, 2);
  return 0;
}

static void test_timeout(void **state) {
  (void)state;
  TT_RUN_OK(main_timeout, NULL);
}

/* ---- cancellation ---- */

static int cancelled_task(void *arg) {
  job *j = arg;
  int rc = tsk_offload(job_fn, j, job_done, LONG_MS, NULL);
  TT_RC(TSK_ECANCELED, rc);
  return rc;
}

static int main_cancel(void *arg) {
  (void)arg;
  job j;
  job_init(&j, 3, 1);
  tsk_task_t t;
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &t, "offloader", cancelled_task, &j));
  TT_CHECK(wait_blocked(t));
  TT_CHECK(wait_started(&j));
  TT_RC(0, tsk_cancel(t));
  tsk_result_t res;
  TT_RC(TSK_ECANCELED, tsk_join(t, LONG_MS, &res));
  TT_RC(TSK_TASK_CANCELLED, res.state);
  check_abandoned(1, 1);
  TT_RC(0, j.done_calls);
  atomic_store(&j.gate, 1);
  if (wait_done(&j)) {
    TT_RC(6, j.done_result);
    TT_RC(1, j.done_abandoned);
  }
  check_abandoned(0, 1);
  return 0;
}

static void test_cancel(void **state) {
  (void)state;
  TT_RUN_OK(main_cancel, NULL);
}

/* A cancellation already pending when tsk_offload is called is delivered at once, before the
 * work is queued. */
static int pending_cancel_task(void *arg) {
  job *j = arg;
  tsk_cancel(tsk_self());
  int rc = tsk_offload(job_fn, j, job_done, LONG_MS, NULL);
  TT_RC(TSK_ECANCELED, rc);
  return rc;
}

static int main_pending_cancel(void *arg) {
  (void)arg;
  job j;
  job_init(&j, 4, 1);
  atomic_store(&j.gate, 1); /* whether it ran or was withdrawn, it must not block */
  tsk_task_t t;
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &t, "offloader", pending_cancel_task, &j));
  tsk_result_t res;
  TT_RC(TSK_ECANCELED, tsk_join(t, LONG_MS, &res));
  TT_RC(TSK_TASK_CANCELLED, res.state);
  /* Nothing was queued: done was called before tsk_offload returned, and fn never ran. */
  TT_RC(1, j.done_calls);
  TT_RC(1, j.done_abandoned);
  TT_RC(TSK_ECANCELED, j.done_result);
  TT_CHECK(!atomic_load(&j.started));
  check_abandoned(0, 0);
  return 0;
}

static void test_pending_cancel(void **state) {
  (void)state;
  TT_RUN_OK(main_pending_cancel, NULL);
}

/* ---- withdrawn before it started: not abandoned, done(arg, TSK_ECANCELED, 1) ---- */

static int main_withdrawn(void *arg) {
  (void)arg;
  job blockers[POOL_SIZE];
  tsk_task_t bt[POOL_SIZE];
  for (int i = 0; i < POOL_SIZE; i++) {
    job_init(&blockers[i], i, 1);
    TT_RC(0, tsk_spawn(tsk_runtime_current(), &bt[i], "blocker", many_task, &blockers[i]));
  }
  for (int i = 0; i < POOL_SIZE; i++) TT_CHECK(wait_started(&blockers[i]));
  /* Every pool thread is busy: this one stays queued and the timeout withdraws it. */
  job j;
  job_init(&j, 9, 0);
  TT_RC(TSK_ETIMEDOUT, tsk_offload(job_fn, &j, job_done, 20, NULL));
  check_abandoned(0, 0);
  if (wait_done(&j)) {
    TT_RC(TSK_ECANCELED, j.done_result);
    TT_RC(1, j.done_abandoned);
  }
  TT_CHECK(!atomic_load(&j.started));
  for (int i = 0; i < POOL_SIZE; i++) atomic_store(&blockers[i].gate, 1);
  for (int i = 0; i < POOL_SIZE; i++) TT_RC(0, tsk_join(bt[i], LONG_MS, NULL));
  TT_CHECK(!atomic_load(&j.started)); /* and never runs later */
  check_abandoned(0, 0);
  return 0;
}

static void test_withdrawn(void **state) {
  (void)state;
  TT_RUN_OK(main_withdrawn, NULL);
}

/* ---- runtime close with work still running ---- */

static int forever_task(void *arg) {
  tsk_offload(job_fn, arg, job_done, LONG_MS, NULL);
  TT_CHECK(0); /* destroyed before the work finishes */
  return 0;
}

static atomic_int opener_go;

/* Opens the job's gate a little after close began, so that close really waits for it. */
static void *opener(void *arg) {
  job *j = arg;
  while (!atomic_load(&opener_go)) usleep(1000);
  usleep(20 * 1000);
  atomic_store(&j->gate, 1);
  return NULL;
}

static int main_close_running(void *arg) {
  job *j = arg;
  tsk_task_t t;
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &t, "offloader", forever_task, j));
  TT_CHECK(wait_blocked(t));
  TT_CHECK(wait_started(j));
  TT_RC(0, tsk_detach(t));
  return 0;
}

static void test_close_running(void **state) {
  (void)state;
  static job j;
  job_init(&j, 11, 1);
  atomic_store(&opener_go, 0);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, opener, &j), 0);
  tsk_runtime_t *rt;
  assert_int_equal(tsk_runtime_new(&rt), 0);
  TT_ASSERT_RC(0, tsk_run_main(rt, "main", main_close_running, &j, NULL));
  atomic_store(&opener_go, 1);
  /* The runtime owns its loop: close runs it until the work finished and reported. */
  assert_int_equal(tsk_runtime_close(rt), 0);
  pthread_join(th, NULL);
  assert_int_equal(j.done_calls, 1);
  assert_int_equal(j.done_abandoned, 1);
  assert_int_equal(j.done_result, 22);
}

/* On an application's loop the runtime is gone before the work finishes: after_work must not
 * touch it (ASan would see it), and still reports to done(). */
static void test_close_running_foreign_loop(void **state) {
  (void)state;
  static job j;
  job_init(&j, 12, 1);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  tsk_runtime_t *rt;
  assert_int_equal(tsk_runtime_new_on(&loop, &rt), 0);
  TT_ASSERT_RC(0, tsk_run_main(rt, "main", main_close_running, &j, NULL));
  assert_int_equal(tsk_runtime_close(rt), 0);
  assert_int_equal(j.done_calls, 0); /* still running (the gate is closed) */
  atomic_store(&j.gate, 1);
  uv_run(&loop, UV_RUN_DEFAULT); /* until the work is reported */
  assert_int_equal(j.done_calls, 1);
  assert_int_equal(j.done_abandoned, 1);
  assert_int_equal(j.done_result, 24);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- misuse ---- */

static void *foreign_thread(void *arg) {
  tsk_runtime_t *rt = arg;
  size_t running = 99, total = 99;
  tsk_offload_abandoned(rt, &running, &total);
  TT_RC(0, running);
  TT_RC(0, total);
  tsk_task_t t;
  TT_RC(TSK_EWRONGTHREAD, tsk_spawn(rt, &t, "x", many_task, NULL));
  TT_RC(TSK_ENOTASK, tsk_offload(job_fn, NULL, NULL, 0, NULL));
  return NULL;
}

static int main_bad_args(void *arg) {
  (void)arg;
  TT_RC(TSK_EINVAL, tsk_offload(NULL, NULL, NULL, LONG_MS, NULL));
  return 0;
}

static void test_misuse(void **state) {
  (void)state;
  job j;
  job_init(&j, 1, 0);
  TT_ASSERT_RC(TSK_ENOTASK, tsk_offload(job_fn, &j, job_done, LONG_MS, NULL));
  assert_int_equal(j.done_calls, 0);
  size_t running = 99, total = 99;
  tsk_offload_abandoned(NULL, &running, &total);
  assert_int_equal(running, 0);
  assert_int_equal(total, 0);
  tsk_offload_abandoned(NULL, NULL, NULL);

  tsk_runtime_t *rt;
  assert_int_equal(tsk_runtime_new(&rt), 0);
  TT_ASSERT_RC(0, tsk_run_main(rt, "main", main_bad_args, NULL, NULL));
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, foreign_thread, rt), 0);
  pthread_join(th, NULL);
  assert_int_equal(tsk_runtime_close(rt), 0);
}

int main(void) {
  /* test_withdrawn fills the pool; libuv reads this once, when the pool first starts. */
  setenv("UV_THREADPOOL_SIZE", "4", 1);
  const struct CMUnitTest tests[] = {
      TT_TEST(test_result),
      TT_TEST(test_many),
      TT_TEST(test_timeout),
      TT_TEST(test_cancel),
      TT_TEST(test_pending_cancel),
      TT_TEST(test_withdrawn),
      TT_TEST(test_close_running),
      TT_TEST(test_close_running_foreign_loop),
      TT_TEST(test_misuse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
