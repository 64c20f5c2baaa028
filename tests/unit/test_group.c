/*
 * test_group.c — task groups and the bounded scheduler (runtime/src/group.c).
 *
 * Every test makes its own runtime, drives a main task with tsk_run_main and ends with
 * tsk_runtime_close, so ASan's leak check covers each group's memory. No assertion depends on
 * timing: "long" sleeps are far longer than anything that is meant to interrupt them, and
 * ordering is forced with flags and yields.
 *
 * Code running inside a task checks with TT_CHECK / TT_RC (tt_core.h), never with cmocka's
 * assert_* (they longjmp off the task's stack); where a failed check would make what follows
 * crash or hang, the task returns TSK_EFAILED instead. The test functions themselves (outside
 * any task) use the usual asserts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "common/tt_core.h"
#include "taskscope.h"

#define LONG_SLEEP_MS 60000 /* never reached unless cancellation is broken */

static tsk_runtime_t *new_runtime(void) {
  tsk_runtime_t *rt = NULL;
  assert_int_equal(tsk_runtime_new(&rt), 0);
  return rt;
}

static void yield_n(int n) {
  for (int i = 0; i < n; i++) tsk_yield();
}

/* ---- all tasks succeed ---- */

typedef struct counter {
  int started, done, cancelled, cur, max;
} counter;

static int count_task(void *arg) {
  counter *c = arg;
  c->started++;
  if (++c->cur > c->max) c->max = c->cur;
  int rc = tsk_sleep(1);
  c->cur--;
  if (rc == TSK_ECANCELED) {
    c->cancelled++;
    return rc;
  }
  c->done++;
  return rc;
}

static int main_all_succeed(void *arg) {
  (void)arg;
  counter c = {0};
  tsk_group_t *g;
  tsk_group_opts_t o = {.name = "all"};
  if (!TT_RC(0, tsk_group_new(tsk_runtime_current(), &o, &g))) return TSK_EFAILED;
  for (int i = 0; i < 10; i++) TT_RC(0, tsk_group_spawn(g, "worker", count_task, &c));
  size_t running, pending, finished;
  tsk_group_counts(g, &running, &pending, &finished);
  TT_RC(10, running);
  TT_RC(0, pending);
  TT_RC(0, finished);
  tsk_result_t res;
  memset(&res, 0x5a, sizeof res);
  TT_RC(0, tsk_group_wait(g, TSK_FOREVER, &res));
  TT_RC(TSK_TASK_DONE, res.state);
  TT_RC(0, res.error);
  TT_CHECK(strcmp(res.message, "") == 0);
  TT_RC(10, c.done);
  tsk_group_counts(g, &running, &pending, &finished);
  TT_RC(0, running);
  TT_RC(10, finished);
  /* A completed group can be waited again, and reused. */
  TT_RC(0, tsk_group_wait(g, 0, NULL));
  TT_RC(0, tsk_group_spawn(g, NULL, count_task, &c));
  TT_RC(0, tsk_group_close(g, TSK_FOREVER));
  TT_RC(11, c.done);
  return 0;
}

static void test_all_succeed(void **state) {
  (void)state;
  TT_RUN_OK(main_all_succeed, NULL);
}

/* ---- the first failure cancels the others ---- */

typedef struct fail_ctx {
  int sleepers_cancelled;   /* tsk_sleep returned TSK_ECANCELED */
  int sleepers_saw_request; /* and tsk_cancel_requested() said so */
  int late_started;
} fail_ctx;

static int long_sleeper(void *arg) {
  fail_ctx *f = arg;
  int rc = tsk_sleep(LONG_SLEEP_MS);
  if (rc == TSK_ECANCELED) {
    f->sleepers_cancelled++;
    if (tsk_cancel_requested()) f->sleepers_saw_request++;
  }
  return rc; /* TSK_ECANCELED after a delivered cancellation: state CANCELLED, not a failure */
}

static int failer(void *arg) {
  (void)arg;
  tsk_yield();
  return tsk_error(TSK_EFAILED, "bad header %d", 7);
}

static int late_task(void *arg) {
  fail_ctx *f = arg;
  f->late_started++;
  return 0;
}

static int main_first_failure(void *arg) {
  (void)arg;
  fail_ctx f = {0};
  tsk_group_t *g;
  tsk_group_opts_t o = {.name = "ff", .max_concurrency = 6};
  if (!TT_RC(0, tsk_group_new(tsk_runtime_current(), &o, &g))) return TSK_EFAILED;
  for (int i = 0; i < 5; i++) TT_RC(0, tsk_group_spawn(g, "sleeper", long_sleeper, &f));
  if (!TT_RC(0, tsk_group_spawn(g, "failer", failer, NULL))) return TSK_EFAILED;
  /* Beyond the limit: pending, dropped by the failure, never started. */
  for (int i = 0; i < 3; i++) TT_RC(0, tsk_group_spawn(g, "late", late_task, &f));
  tsk_result_t res;
  TT_RC(TSK_EFAILED, tsk_group_wait(g, TSK_FOREVER, &res));
  TT_RC(TSK_TASK_FAILED, res.state);
  TT_RC(TSK_EFAILED, res.error);
  TT_CHECK(strcmp(res.message, "bad header 7") == 0);
  TT_RC(5, f.sleepers_cancelled);
  TT_RC(5, f.sleepers_saw_request);
  TT_RC(0, f.late_started);
  size_t running, pending, finished;
  tsk_group_counts(g, &running, &pending, &finished);
  TT_RC(0, running);
  TT_RC(0, pending);
  TT_RC(6, finished);
  /* The group is cancelled for good: no more spawns. The error stays readable. */
  TT_RC(TSK_ECANCELED, tsk_group_spawn(g, "late", late_task, &f));
  TT_RC(TSK_EFAILED, tsk_group_wait(g, 0, NULL));
  TT_RC(TSK_EFAILED, tsk_group_close(g, TSK_FOREVER));
  return 0;
}

static void test_first_failure_cancels_others(void **state) {
  (void)state;
  TT_RUN_OK(main_first_failure, NULL);
}

/* Cancelled tasks are not failures: a group whose tasks were all cancelled waits to 0. */
static int main_cancelled_not_failure(void *arg) {
  (void)arg;
  fail_ctx f = {0};
  tsk_group_t *g;
  if (!TT_RC(0, tsk_group_new(tsk_runtime_current(), NULL, &g))) return TSK_EFAILED;
  for (int i = 0; i < 3; i++) TT_RC(0, tsk_group_spawn(g, "sleeper", long_sleeper, &f));
  yield_n(2);
  if (!TT_RC(0, tsk_group_cancel(g))) return TSK_EFAILED;
  tsk_result_t res;
  TT_RC(0, tsk_group_wait(g, TSK_FOREVER, &res));
  TT_RC(TSK_TASK_CANCELLED, res.state);
  TT_RC(0, res.error);
  TT_RC(3, f.sleepers_cancelled);
  TT_RC(0, tsk_group_close(g, 0));
  return 0;
}

static void test_cancelled_is_not_failure(void **state) {
  (void)state;
  TT_RUN_OK(main_cancelled_not_failure, NULL);
}

/* A failure during close is what close returns. */
static int main_failure_in_close(void *arg) {
  (void)arg;
  fail_ctx f = {0};
  tsk_group_t *g;
  if (!TT_RC(0, tsk_group_new(tsk_runtime_current(), NULL, &g))) return TSK_EFAILED;
  TT_RC(0, tsk_group_spawn(g, "sleeper", long_sleeper, &f));
  if (!TT_RC(0, tsk_group_spawn(g, "failer", failer, NULL))) return TSK_EFAILED;
  TT_RC(TSK_EFAILED, tsk_group_close(g, TSK_FOREVER));
  TT_RC(1, f.sleepers_cancelled);
  return 0;
}

static void test_failure_during_close(void **state) {
  (void)state;
  TT_RUN_OK(main_failure_in_close, NULL);
}

/* ---- concurrency limit ---- */

static int main_concurrency_limit(void *arg) {
  (void)arg;
  counter c = {0};
  tsk_group_t *g;
  tsk_group_opts_t o = {.name = "limited", .max_concurrency = 4};
  if (!TT_RC(0, tsk_group_new(tsk_runtime_current(), &o, &g))) return TSK_EFAILED;
  for (int i = 0; i < 100; i++) TT_RC(0, tsk_group_spawn(g, "w", count_task, &c));
  size_t running, pending, finished;
  tsk_group_counts(g, &running, &pending, &finished);
  TT_RC(4, running);
  TT_RC(96, pending);
  TT_RC(0, c.started); /* nothing ran yet: spawning never switches */
  TT_RC(0, tsk_group_wait(g, TSK_FOREVER, NULL));
  TT_RC(100, c.done);
  TT_RC(4, c.max);
  tsk_group_counts(g, &running, &pending, &finished);
  TT_RC(100, finished);
  TT_RC(0, tsk_group_close(g, 0));
  return 0;
}

static void test_concurrency_limit(void **state) {
  (void)state;
  TT_RUN_OK(main_concurrency_limit, NULL);
}

/* ---- pending limit ---- */

static int main_pending_full(void *arg) {
  (void)arg;
  counter c = {0};
  tsk_group_t *g;
  tsk_group_opts_t o = {.max_concurrency = 2, .max_pending = 3, .spawn_waits = 0};
  if (!TT_RC(0, tsk_group_new(tsk_runtime_current(), &o, &g))) return TSK_EFAILED;
  for (int i = 0; i < 5; i++) TT_RC(0, tsk_group_spawn(g, "w", count_task, &c));
  TT_RC(TSK_EFULL, tsk_group_spawn(g, "w", count_task, &c));
  size_t running, pending;
  tsk_group_counts(g, &running, &pending, NULL);
  TT_RC(2, running);
  TT_RC(3, pending);
  TT_RC(0, tsk_group_close(g, TSK_FOREVER));
  TT_RC(5, c.done);
  TT_CHECK(c.max <= 2);
  return 0;
}

static void test_pending_full_fails(void **state) {
  (void)state;
  TT_RUN_OK(main_pending_full, NULL);
}

static int main_pending_waits(void *arg) {
  (void)arg;
  counter c = {0};
  tsk_group_t *g;
  tsk_group_opts_t o = {.max_concurrency = 2, .max_pending = 3, .spawn_waits = 1};
  if (!TT_RC(0, tsk_group_new(tsk_runtime_current(), &o, &g))) return TSK_EFAILED;
  for (int i = 0; i < 20; i++) {
    TT_RC(0, tsk_group_spawn(g, "w", count_task, &c));
    size_t running, pending;
    tsk_group_counts(g, &running, &pending, NULL);
    TT_CHECK(running <= 2);
    TT_CHECK(pending <= 3);
  }
  TT_CHECK(c.started >= 15); /* the spawner had to wait for at least 15 to start */
  TT_RC(0, tsk_group_close(g, TSK_FOREVER));
  TT_RC(20, c.done);
  TT_RC(2, c.max);
  return 0;
}

static void test_pending_full_waits(void **state) {
  (void)state;
  TT_RUN_OK(main_pending_waits, NULL);
}

/* Outside a task a spawn cannot wait: TSK_EFULL even with spawn_waits. */
typedef struct outside_ctx {
  tsk_group_t *g;
  counter c;
} outside_ctx;

static int main_outside(void *arg) {
  outside_ctx *o = arg;
  TT_RC(0, tsk_group_close(o->g, TSK_FOREVER));
  return 0;
}

static void test_spawn_outside_task(void **state) {
  (void)state;
  tsk_runtime_t *rt = new_runtime();
  outside_ctx o = {0};
  tsk_group_opts_t opts = {.max_concurrency = 1, .max_pending = 1, .spawn_waits = 1};
  assert_int_equal(tsk_group_new(rt, &opts, &o.g), 0);
  assert_int_equal(tsk_group_spawn(o.g, "w", count_task, &o.c), 0);
  assert_int_equal(tsk_group_spawn(o.g, "w", count_task, &o.c), 0);
  assert_int_equal(tsk_group_spawn(o.g, "w", count_task, &o.c), TSK_EFULL);
  /* Unfinished: outside a task it can neither be waited for nor closed. */
  assert_int_equal(tsk_group_wait(o.g, TSK_FOREVER, NULL), TSK_ENOTASK);
  assert_int_equal(tsk_group_close(o.g, TSK_FOREVER), TSK_EBUSY);
  assert_int_equal(tsk_run_main(rt, "main", main_outside, &o, NULL), 0);
  assert_int_equal(o.c.done, 2);
  assert_int_equal(tsk_runtime_close(rt), 0);
}

/* ---- the async bomb ---- */

typedef struct bomb {
  tsk_group_t *g;
  tsk_runtime_t *rt;
  size_t max_running, max_pending, max_live, ran;
} bomb;

static void bomb_sample(bomb *b) {
  size_t running, pending;
  tsk_group_counts(b->g, &running, &pending, NULL);
  if (running > b->max_running) b->max_running = running;
  if (pending > b->max_pending) b->max_pending = pending;
  tsk_stats_t st;
  tsk_runtime_stats(b->rt, &st);
  if (st.live > b->max_live) b->max_live = st.live;
}

static int bomb_task(void *arg) {
  bomb *b = arg;
  bomb_sample(b);
  tsk_yield();
  b->ran++;
  return 0;
}

static int main_bomb(void *arg) {
  bomb *b = arg;
  b->rt = tsk_runtime_current();
  tsk_group_opts_t o = {.name = "bomb", .max_concurrency = 8, .max_pending = 64, .spawn_waits = 1};
  if (!TT_RC(0, tsk_group_new(b->rt, &o, &b->g))) return TSK_EFAILED;
  for (int i = 0; i < 10000; i++) {
    TT_RC(0, tsk_group_spawn(b->g, "doc", bomb_task, b));
    bomb_sample(b);
  }
  TT_RC(0, tsk_group_close(b->g, TSK_FOREVER));
  return 0;
}

static void test_async_bomb_bounded(void **state) {
  (void)state;
  bomb b = {0};
  TT_RUN_OK(main_bomb, &b);
  assert_int_equal(b.ran, 10000);
  assert_int_equal(b.max_running, 8);
  assert_int_equal(b.max_pending, 64);
  assert_true(b.max_live <= 8 + 1); /* the group's tasks and main: pending spawns are no tasks */
}

/* ---- tsk_group_cancel ---- */

static int main_group_cancel(void *arg) {
  (void)arg;
  counter c = {0};
  fail_ctx f = {0};
  tsk_group_t *g;
  tsk_group_opts_t o = {.max_concurrency = 2};
  if (!TT_RC(0, tsk_group_new(tsk_runtime_current(), &o, &g))) return TSK_EFAILED;
  for (int i = 0; i < 2; i++) TT_RC(0, tsk_group_spawn(g, "s", long_sleeper, &f));
  for (int i = 0; i < 8; i++) TT_RC(0, tsk_group_spawn(g, "w", count_task, &c));
  yield_n(3);
  size_t running, pending, finished;
  tsk_group_counts(g, &running, &pending, &finished);
  TT_RC(2, running);
  TT_RC(8, pending);
  if (!TT_RC(0, tsk_group_cancel(g))) return TSK_EFAILED;
  tsk_group_counts(g, &running, &pending, NULL);
  TT_RC(0, pending);
  TT_RC(0, tsk_group_wait(g, TSK_FOREVER, NULL));
  TT_RC(2, f.sleepers_cancelled);
  TT_RC(0, c.started); /* pending spawns never start */
  tsk_group_counts(g, &running, &pending, &finished);
  TT_RC(0, running);
  TT_RC(2, finished);
  TT_RC(TSK_ECANCELED, tsk_group_spawn(g, "w", count_task, &c));
  TT_RC(0, tsk_group_close(g, TSK_FOREVER));
  return 0;
}

static void test_group_cancel(void **state) {
  (void)state;
  TT_RUN_OK(main_group_cancel, NULL);
}

/* A spawner waiting for room is woken with TSK_ECANCELED when the group is cancelled. */
typedef struct spawner_ctx {
  tsk_group_t *g;
  fail_ctx f;
  int rc;
  int returned;
} spawner_ctx;

static int blocked_spawner(void *arg) {
  spawner_ctx *s = arg;
  s->rc = tsk_group_spawn(s->g, "s", long_sleeper, &s->f);
  s->returned = 1;
  return 0;
}

static int main_cancel_wakes_spawner(void *arg) {
  (void)arg;
  spawner_ctx s = {0};
  tsk_group_opts_t o = {.max_concurrency = 1, .max_pending = 1, .spawn_waits = 1};
  if (!TT_RC(0, tsk_group_new(tsk_runtime_current(), &o, &s.g))) return TSK_EFAILED;
  TT_RC(0, tsk_group_spawn(s.g, "s", long_sleeper, &s.f));
  TT_RC(0, tsk_group_spawn(s.g, "s", long_sleeper, &s.f));
  tsk_task_t sp;
  if (!TT_RC(0, tsk_spawn(tsk_runtime_current(), &sp, "spawner", blocked_spawner, &s)))
    return TSK_EFAILED;
  yield_n(3);
  TT_RC(0, s.returned);
  if (!TT_RC(0, tsk_group_cancel(s.g))) return TSK_EFAILED;
  TT_RC(0, tsk_join(sp, TSK_FOREVER, NULL));
  TT_RC(TSK_ECANCELED, s.rc);
  TT_RC(0, tsk_group_close(s.g, TSK_FOREVER));
  TT_RC(1, s.f.sleepers_cancelled); /* the pending one never started */
  return 0;
}

static void test_cancel_wakes_waiting_spawner(void **state) {
  (void)state;
  TT_RUN_OK(main_cancel_wakes_spawner, NULL);
}

/* ---- close with a timeout ---- */

typedef struct straggler_ctx {
  int quick_done;
  int straggler_cancelled;
  int cleanup_done;
} straggler_ctx;

static int quick(void *arg) {
  straggler_ctx *s = arg;
  s->quick_done++;
  return 0;
}

/* Ignores its first cancellation long enough to need the uncancellable wait of close. */
static int straggler(void *arg) {
  straggler_ctx *s = arg;
  int rc = tsk_sleep(LONG_SLEEP_MS);
  if (rc != TSK_ECANCELED) return rc;
  s->straggler_cancelled++;
  yield_n(5); /* cleanup that suspends: the cancellation is delivered only once */
  rc = tsk_sleep(1);
  if (rc == 0) s->cleanup_done++;
  return TSK_ECANCELED;
}

static int main_close_timeout(void *arg) {
  straggler_ctx *s = arg;
  tsk_group_t *g;
  if (!TT_RC(0, tsk_group_new(tsk_runtime_current(), NULL, &g))) return TSK_EFAILED;
  TT_RC(0, tsk_group_spawn(g, "quick", quick, s));
  TT_RC(0, tsk_group_spawn(g, "quick", quick, s));
  TT_RC(0, tsk_group_spawn(g, "straggler", straggler, s));
  TT_RC(TSK_ETIMEDOUT, tsk_group_close(g, 20));
  TT_RC(2, s->quick_done);
  TT_RC(1, s->straggler_cancelled);
  TT_RC(1, s->cleanup_done); /* close returned only after the straggler ended */
  return 0;
}

static void test_close_timeout_cancels_stragglers(void **state) {
  (void)state;
  straggler_ctx s = {0};
  TT_RUN_OK(main_close_timeout, &s);
}

/* Close with a limit and pending spawns: the pending ones run before close returns. */
static int main_close_runs_pending(void *arg) {
  (void)arg;
  counter c = {0};
  tsk_group_t *g;
  tsk_group_opts_t o = {.max_concurrency = 3};
  if (!TT_RC(0, tsk_group_new(tsk_runtime_current(), &o, &g))) return TSK_EFAILED;
  for (int i = 0; i < 30; i++) TT_RC(0, tsk_group_spawn(g, "w", count_task, &c));
  TT_RC(0, tsk_group_close(g, TSK_FOREVER));
  TT_RC(30, c.done);
  return 0;
}

static void test_close_runs_pending(void **state) {
  (void)state;
  TT_RUN_OK(main_close_runs_pending, NULL);
}

/* ---- wait with a timeout ---- */

typedef struct gate {
  int open;
  int passed;
} gate;

/* Waits (by polling with yields and short sleeps) until the gate opens. */
static int gated(void *arg) {
  gate *gt = arg;
  while (!gt->open) {
    int rc = tsk_sleep(1);
    if (rc) return rc;
  }
  gt->passed++;
  return 0;
}

static int main_wait_timeout(void *arg) {
  (void)arg;
  gate gt = {0};
  tsk_group_t *g;
  if (!TT_RC(0, tsk_group_new(tsk_runtime_current(), NULL, &g))) return TSK_EFAILED;
  TT_RC(0, tsk_group_spawn(g, "gated", gated, &gt));
  tsk_result_t res;
  memset(&res, 0, sizeof res);
  res.error = 12345;
  TT_RC(TSK_ETIMEDOUT, tsk_group_wait(g, 10, &res));
  TT_RC(12345, res.error); /* not filled on timeout */
  TT_RC(TSK_ETIMEDOUT, tsk_group_wait(g, 0, NULL));
  size_t running;
  tsk_group_counts(g, &running, NULL, NULL);
  TT_RC(1, running); /* the task keeps running */
  gt.open = 1;
  TT_RC(0, tsk_group_wait(g, TSK_FOREVER, &res));
  TT_RC(1, gt.passed);
  /* A deadline scope bounds the wait too. */
  gt.open = 0;
  TT_RC(0, tsk_group_spawn(g, "gated", gated, &gt));
  if (!TT_RC(0, tsk_timeout_push(5))) return TSK_EFAILED;
  TT_RC(TSK_ETIMEDOUT, tsk_group_wait(g, TSK_FOREVER, NULL));
  TT_RC(0, tsk_timeout_pop());
  gt.open = 1;
  TT_RC(0, tsk_group_close(g, TSK_FOREVER));
  TT_RC(2, gt.passed);
  return 0;
}

static void test_wait_timeout(void **state) {
  (void)state;
  TT_RUN_OK(main_wait_timeout, NULL);
}

/* ---- cancelling a task that waits in tsk_group_wait ---- */

typedef struct waiter_ctx {
  tsk_group_t *g;
  int rc;
} waiter_ctx;

static int group_waiter_task(void *arg) {
  waiter_ctx *w = arg;
  w->rc = tsk_group_wait(w->g, TSK_FOREVER, NULL);
  return w->rc;
}

static int main_cancel_waiter(void *arg) {
  (void)arg;
  fail_ctx f = {0};
  waiter_ctx w = {0};
  if (!TT_RC(0, tsk_group_new(tsk_runtime_current(), NULL, &w.g))) return TSK_EFAILED;
  TT_RC(0, tsk_group_spawn(w.g, "s", long_sleeper, &f));
  tsk_task_t wt;
  if (!TT_RC(0, tsk_spawn(tsk_runtime_current(), &wt, "waiter", group_waiter_task, &w)))
    return TSK_EFAILED;
  yield_n(3);
  if (!TT_RC(0, tsk_cancel(wt))) return TSK_EFAILED;
  tsk_result_t res;
  TT_RC(TSK_ECANCELED, tsk_join(wt, TSK_FOREVER, &res));
  TT_RC(TSK_TASK_CANCELLED, res.state);
  TT_RC(TSK_ECANCELED, w.rc);
  size_t running;
  tsk_group_counts(w.g, &running, NULL, NULL);
  TT_RC(1, running); /* the group's task is untouched */
  TT_RC(0, f.sleepers_cancelled);
  TT_RC(TSK_ETIMEDOUT, tsk_group_close(w.g, 0));
  TT_RC(1, f.sleepers_cancelled);
  return 0;
}

static void test_cancel_group_waiter(void **state) {
  (void)state;
  TT_RUN_OK(main_cancel_waiter, NULL);
}

/* Several tasks wait on one group while another closes it: each gets the outcome, even though
 * the group is freed before they resume. */
typedef struct multi_ctx {
  tsk_group_t *g;
  int rcs[3];
  tsk_result_t res[3];
  int idx;
} multi_ctx;

static int multi_waiter(void *arg) {
  multi_ctx *m = arg;
  int i = m->idx++;
  m->rcs[i] = tsk_group_wait(m->g, TSK_FOREVER, &m->res[i]);
  return 0;
}

static int main_multi_waiters(void *arg) {
  (void)arg;
  multi_ctx m = {0};
  tsk_runtime_t *rt = tsk_runtime_current();
  if (!TT_RC(0, tsk_group_new(rt, NULL, &m.g))) return TSK_EFAILED;
  TT_RC(0, tsk_group_spawn(m.g, "failer", failer, NULL));
  tsk_task_t w[3];
  for (int i = 0; i < 3; i++)
    if (!TT_RC(0, tsk_spawn(rt, &w[i], "w", multi_waiter, &m))) return TSK_EFAILED;
  yield_n(1); /* the waiters start waiting; the failer yields once */
  TT_RC(TSK_EFAILED, tsk_group_close(m.g, TSK_FOREVER));
  for (int i = 0; i < 3; i++) {
    TT_RC(0, tsk_join(w[i], TSK_FOREVER, NULL));
    TT_RC(TSK_EFAILED, m.rcs[i]);
    TT_CHECK(strcmp(m.res[i].message, "bad header 7") == 0);
  }
  return 0;
}

static void test_waiters_survive_close(void **state) {
  (void)state;
  TT_RUN_OK(main_multi_waiters, NULL);
}

/* ---- misuse ---- */

static int self_waiter(void *arg) {
  tsk_group_t **g = arg;
  return tsk_group_wait(*g, TSK_FOREVER, NULL);
}

static int main_deadlock(void *arg) {
  (void)arg;
  tsk_group_t *g;
  if (!TT_RC(0, tsk_group_new(tsk_runtime_current(), NULL, &g))) return TSK_EFAILED;
  TT_RC(0, tsk_group_spawn(g, "self", self_waiter, &g));
  tsk_result_t res;
  TT_RC(TSK_EDEADLK, tsk_group_wait(g, TSK_FOREVER, &res));
  TT_RC(TSK_TASK_FAILED, res.state);
  TT_RC(TSK_EDEADLK, tsk_group_close(g, 0));
  TT_RC(TSK_EINVAL, tsk_group_spawn(NULL, "x", quick, NULL));
  return 0;
}

static void test_wait_on_own_group(void **state) {
  (void)state;
  TT_RUN_OK(main_deadlock, NULL);
}

/* ---- spawn after close began ---- */

typedef struct close_ctx {
  tsk_group_t *g;
  int closing;
  int member_rc;
  int spawner_rc;
  int spawner_returned;
  counter c;
} close_ctx;

static int member_spawns_late(void *arg) {
  close_ctx *cc = arg;
  while (!cc->closing) tsk_yield();
  cc->member_rc = tsk_group_spawn(cc->g, "late", count_task, &cc->c);
  return 0;
}

static int waiting_spawner(void *arg) {
  close_ctx *cc = arg;
  cc->spawner_rc = tsk_group_spawn(cc->g, "late", count_task, &cc->c);
  cc->spawner_returned = 1;
  return 0;
}

static int main_spawn_after_close(void *arg) {
  (void)arg;
  close_ctx cc = {0};
  tsk_group_opts_t o = {.max_concurrency = 1, .max_pending = 1, .spawn_waits = 1};
  if (!TT_RC(0, tsk_group_new(tsk_runtime_current(), &o, &cc.g))) return TSK_EFAILED;
  TT_RC(0, tsk_group_spawn(cc.g, "member", member_spawns_late, &cc));
  TT_RC(0, tsk_group_spawn(cc.g, "w", count_task, &cc.c)); /* pending */
  tsk_task_t sp;
  if (!TT_RC(0, tsk_spawn(tsk_runtime_current(), &sp, "spawner", waiting_spawner, &cc)))
    return TSK_EFAILED;
  yield_n(3);
  TT_RC(0, cc.spawner_returned); /* waiting for room */
  cc.closing = 1;
  TT_RC(0, tsk_group_close(cc.g, TSK_FOREVER));
  TT_RC(TSK_ECLOSED, cc.member_rc);
  TT_RC(0, tsk_join(sp, TSK_FOREVER, NULL));
  TT_RC(TSK_ECLOSED, cc.spawner_rc);
  TT_RC(1, cc.c.done); /* the pending spawn queued before close still ran */
  return 0;
}

static void test_spawn_after_close(void **state) {
  (void)state;
  TT_RUN_OK(main_spawn_after_close, NULL);
}

/* Closing a group twice concurrently: the second closer gets TSK_ECLOSED. */
typedef struct double_close {
  tsk_group_t *g;
  int rc;
} double_close;

static int second_closer(void *arg) {
  double_close *d = arg;
  d->rc = tsk_group_close(d->g, TSK_FOREVER);
  return 0;
}

static int main_double_close(void *arg) {
  (void)arg;
  gate gt = {0};
  double_close d = {0};
  if (!TT_RC(0, tsk_group_new(tsk_runtime_current(), NULL, &d.g))) return TSK_EFAILED;
  TT_RC(0, tsk_group_spawn(d.g, "gated", gated, &gt));
  tsk_task_t t;
  if (!TT_RC(0, tsk_spawn(tsk_runtime_current(), &t, "closer", second_closer, &d)))
    return TSK_EFAILED;
  yield_n(2);
  TT_RC(TSK_ECLOSED, tsk_group_close(d.g, 0));
  gt.open = 1;
  TT_RC(0, tsk_join(t, TSK_FOREVER, NULL));
  TT_RC(0, d.rc);
  return 0;
}

static void test_double_close(void **state) {
  (void)state;
  TT_RUN_OK(main_double_close, NULL);
}

/* ---- runtime close with an unclosed group ---- */

typedef struct abandon_ctx {
  tsk_group_t *g;
  fail_ctx f;
  int spawner_returned;
  int waiter_returned;
} abandon_ctx;

static int abandoned_spawner(void *arg) {
  abandon_ctx *a = arg;
  tsk_group_spawn(a->g, "s", long_sleeper, &a->f);
  a->spawner_returned = 1;
  return 0;
}

static int abandoned_waiter(void *arg) {
  abandon_ctx *a = arg;
  tsk_group_wait(a->g, TSK_FOREVER, NULL);
  a->waiter_returned = 1;
  return 0;
}

static int main_abandon(void *arg) {
  abandon_ctx *a = arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_group_opts_t o = {.name = "abandoned", .max_concurrency = 2, .max_pending = 2,
                        .spawn_waits = 1};
  if (!TT_RC(0, tsk_group_new(rt, &o, &a->g))) return TSK_EFAILED;
  for (int i = 0; i < 4; i++) TT_RC(0, tsk_group_spawn(a->g, "s", long_sleeper, &a->f));
  tsk_task_t t;
  if (!TT_RC(0, tsk_spawn(rt, &t, "spawner", abandoned_spawner, a))) return TSK_EFAILED;
  TT_RC(0, tsk_detach(t));
  if (!TT_RC(0, tsk_spawn(rt, &t, "waiter", abandoned_waiter, a))) return TSK_EFAILED;
  TT_RC(0, tsk_detach(t));
  yield_n(3);
  size_t running, pending;
  tsk_group_counts(a->g, &running, &pending, NULL);
  TT_RC(2, running);
  TT_RC(2, pending);
  return 0; /* the group, its tasks, its pending spawns and the blocked spawner are left */
}

static void test_runtime_close_with_open_group(void **state) {
  (void)state;
  abandon_ctx a = {0};
  TT_RUN_OK(main_abandon, &a);
  assert_int_equal(a.spawner_returned, 0);
  assert_int_equal(a.waiter_returned, 0);
  assert_int_equal(a.f.sleepers_cancelled, 0); /* destroyed, not cancelled: they never resumed */
}

/* A group that was never used, left open at runtime close. */
static void test_runtime_close_with_idle_group(void **state) {
  (void)state;
  tsk_runtime_t *rt = new_runtime();
  tsk_group_t *g;
  tsk_group_opts_t o = {.name = "idle"};
  assert_int_equal(tsk_group_new(rt, &o, &g), 0);
  assert_int_equal(tsk_runtime_close(rt), 0);
}

/* ---- wrong thread ---- */

typedef struct thread_ctx {
  tsk_runtime_t *rt;
  tsk_group_t *g;
  int rc_new, rc_spawn, rc_wait, rc_cancel, rc_close;
  size_t running;
} thread_ctx;

static void *other_thread(void *arg) {
  thread_ctx *tc = arg;
  tsk_group_t *g2 = NULL;
  tc->rc_new = tsk_group_new(tc->rt, NULL, &g2);
  tc->rc_spawn = tsk_group_spawn(tc->g, "w", quick, NULL);
  tc->rc_wait = tsk_group_wait(tc->g, 0, NULL);
  tc->rc_cancel = tsk_group_cancel(tc->g);
  tc->rc_close = tsk_group_close(tc->g, 0);
  tc->running = 99;
  tsk_group_counts(tc->g, &tc->running, NULL, NULL);
  return NULL;
}

static void test_wrong_thread(void **state) {
  (void)state;
  thread_ctx tc = {0};
  tc.rt = new_runtime();
  assert_int_equal(tsk_group_new(tc.rt, NULL, &tc.g), 0);
  straggler_ctx s = {0};
  assert_int_equal(tsk_group_spawn(tc.g, "quick", quick, &s), 0);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, other_thread, &tc), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_int_equal(tc.rc_new, TSK_EWRONGTHREAD);
  assert_int_equal(tc.rc_spawn, TSK_EWRONGTHREAD);
  assert_int_equal(tc.rc_wait, TSK_EWRONGTHREAD);
  assert_int_equal(tc.rc_cancel, TSK_EWRONGTHREAD);
  assert_int_equal(tc.rc_close, TSK_EWRONGTHREAD);
  assert_int_equal(tc.running, 0);
  /* None of it had an effect: the one task runs, then the group closes outside a task. */
  assert_int_equal(tsk_run(tc.rt), 0);
  assert_int_equal(s.quick_done, 1);
  size_t finished;
  tsk_group_counts(tc.g, NULL, NULL, &finished);
  assert_int_equal(finished, 1);
  assert_int_equal(tsk_group_wait(tc.g, TSK_FOREVER, NULL), 0);
  assert_int_equal(tsk_group_close(tc.g, TSK_FOREVER), 0);
  assert_int_equal(tsk_runtime_close(tc.rt), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TT_TEST(test_all_succeed),
      TT_TEST(test_first_failure_cancels_others),
      TT_TEST(test_cancelled_is_not_failure),
      TT_TEST(test_failure_during_close),
      TT_TEST(test_concurrency_limit),
      TT_TEST(test_pending_full_fails),
      TT_TEST(test_pending_full_waits),
      TT_TEST(test_spawn_outside_task),
      TT_TEST(test_async_bomb_bounded),
      TT_TEST(test_group_cancel),
      TT_TEST(test_cancel_wakes_waiting_spawner),
      TT_TEST(test_close_timeout_cancels_stragglers),
      TT_TEST(test_close_runs_pending),
      TT_TEST(test_wait_timeout),
      TT_TEST(test_cancel_group_waiter),
      TT_TEST(test_waiters_survive_close),
      TT_TEST(test_wait_on_own_group),
      TT_TEST(test_spawn_after_close),
      TT_TEST(test_double_close),
      TT_TEST(test_runtime_close_with_open_group),
      TT_TEST(test_runtime_close_with_idle_group),
      TT_TEST(test_wrong_thread),
  };
  return TT_RUN_GROUP(tests);
}
