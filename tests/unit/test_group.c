/*
 * test_group.c — task groups and the bounded scheduler (runtime/src/group.c).
 *
 * Every test makes its own runtime, drives a main task with tsk_run_main and ends with
 * tsk_runtime_close, so ASan's leak check covers each group's memory. No assertion depends on
 * timing: "long" sleeps are far longer than anything that is meant to interrupt them, and
 * ordering is forced with flags and yields.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <string.h>

#include "taskscope.h"

#define LONG_SLEEP_MS 60000 /* never reached unless cancellation is broken */

static tsk_runtime_t *new_runtime(void) {
  tsk_runtime_t *rt = NULL;
  assert_int_equal(tsk_runtime_new(&rt), 0);
  return rt;
}

/* Runs fn(arg) as the main task of a fresh runtime, closes the runtime, returns fn's code. */
static int run_main(tsk_fn fn, void *arg) {
  tsk_runtime_t *rt = new_runtime();
  tsk_result_t res;
  int rc = tsk_run_main(rt, "main", fn, arg, &res);
  assert_int_equal(tsk_runtime_close(rt), 0);
  return rc;
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
  assert_int_equal(tsk_group_new(tsk_runtime_current(), &o, &g), 0);
  for (int i = 0; i < 10; i++) assert_int_equal(tsk_group_spawn(g, "worker", count_task, &c), 0);
  size_t running, pending, finished;
  tsk_group_counts(g, &running, &pending, &finished);
  assert_int_equal(running, 10);
  assert_int_equal(pending, 0);
  assert_int_equal(finished, 0);
  tsk_result_t res;
  memset(&res, 0x5a, sizeof res);
  assert_int_equal(tsk_group_wait(g, TSK_FOREVER, &res), 0);
  assert_int_equal(res.state, TSK_TASK_DONE);
  assert_int_equal(res.error, 0);
  assert_string_equal(res.message, "");
  assert_int_equal(c.done, 10);
  tsk_group_counts(g, &running, &pending, &finished);
  assert_int_equal(running, 0);
  assert_int_equal(finished, 10);
  /* A completed group can be waited again, and reused. */
  assert_int_equal(tsk_group_wait(g, 0, NULL), 0);
  assert_int_equal(tsk_group_spawn(g, NULL, count_task, &c), 0);
  assert_int_equal(tsk_group_close(g, TSK_FOREVER), 0);
  assert_int_equal(c.done, 11);
  return 0;
}

static void test_all_succeed(void **state) {
  (void)state;
  assert_int_equal(run_main(main_all_succeed, NULL), 0);
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
  assert_int_equal(tsk_group_new(tsk_runtime_current(), &o, &g), 0);
  for (int i = 0; i < 5; i++) assert_int_equal(tsk_group_spawn(g, "sleeper", long_sleeper, &f), 0);
  assert_int_equal(tsk_group_spawn(g, "failer", failer, NULL), 0);
  /* Beyond the limit: pending, dropped by the failure, never started. */
  for (int i = 0; i < 3; i++) assert_int_equal(tsk_group_spawn(g, "late", late_task, &f), 0);
  tsk_result_t res;
  assert_int_equal(tsk_group_wait(g, TSK_FOREVER, &res), TSK_EFAILED);
  assert_int_equal(res.state, TSK_TASK_FAILED);
  assert_int_equal(res.error, TSK_EFAILED);
  assert_string_equal(res.message, "bad header 7");
  assert_int_equal(f.sleepers_cancelled, 5);
  assert_int_equal(f.sleepers_saw_request, 5);
  assert_int_equal(f.late_started, 0);
  size_t running, pending, finished;
  tsk_group_counts(g, &running, &pending, &finished);
  assert_int_equal(running, 0);
  assert_int_equal(pending, 0);
  assert_int_equal(finished, 6);
  /* The group is cancelled for good: no more spawns. The error stays readable. */
  assert_int_equal(tsk_group_spawn(g, "late", late_task, &f), TSK_ECANCELED);
  assert_int_equal(tsk_group_wait(g, 0, NULL), TSK_EFAILED);
  assert_int_equal(tsk_group_close(g, TSK_FOREVER), TSK_EFAILED);
  return 0;
}

static void test_first_failure_cancels_others(void **state) {
  (void)state;
  assert_int_equal(run_main(main_first_failure, NULL), 0);
}

/* Cancelled tasks are not failures: a group whose tasks were all cancelled waits to 0. */
static int main_cancelled_not_failure(void *arg) {
  (void)arg;
  fail_ctx f = {0};
  tsk_group_t *g;
  assert_int_equal(tsk_group_new(tsk_runtime_current(), NULL, &g), 0);
  for (int i = 0; i < 3; i++) assert_int_equal(tsk_group_spawn(g, "sleeper", long_sleeper, &f), 0);
  yield_n(2);
  assert_int_equal(tsk_group_cancel(g), 0);
  tsk_result_t res;
  assert_int_equal(tsk_group_wait(g, TSK_FOREVER, &res), 0);
  assert_int_equal(res.state, TSK_TASK_CANCELLED);
  assert_int_equal(res.error, 0);
  assert_int_equal(f.sleepers_cancelled, 3);
  assert_int_equal(tsk_group_close(g, 0), 0);
  return 0;
}

static void test_cancelled_is_not_failure(void **state) {
  (void)state;
  assert_int_equal(run_main(main_cancelled_not_failure, NULL), 0);
}

/* A failure during close is what close returns. */
static int main_failure_in_close(void *arg) {
  (void)arg;
  fail_ctx f = {0};
  tsk_group_t *g;
  assert_int_equal(tsk_group_new(tsk_runtime_current(), NULL, &g), 0);
  assert_int_equal(tsk_group_spawn(g, "sleeper", long_sleeper, &f), 0);
  assert_int_equal(tsk_group_spawn(g, "failer", failer, NULL), 0);
  assert_int_equal(tsk_group_close(g, TSK_FOREVER), TSK_EFAILED);
  assert_int_equal(f.sleepers_cancelled, 1);
  return 0;
}

static void test_failure_during_close(void **state) {
  (void)state;
  assert_int_equal(run_main(main_failure_in_close, NULL), 0);
}

/* ---- concurrency limit ---- */

static int main_concurrency_limit(void *arg) {
  (void)arg;
  counter c = {0};
  tsk_group_t *g;
  tsk_group_opts_t o = {.name = "limited", .max_concurrency = 4};
  assert_int_equal(tsk_group_new(tsk_runtime_current(), &o, &g), 0);
  for (int i = 0; i < 100; i++) assert_int_equal(tsk_group_spawn(g, "w", count_task, &c), 0);
  size_t running, pending, finished;
  tsk_group_counts(g, &running, &pending, &finished);
  assert_int_equal(running, 4);
  assert_int_equal(pending, 96);
  assert_int_equal(c.started, 0); /* nothing ran yet: spawning never switches */
  assert_int_equal(tsk_group_wait(g, TSK_FOREVER, NULL), 0);
  assert_int_equal(c.done, 100);
  assert_int_equal(c.max, 4);
  tsk_group_counts(g, &running, &pending, &finished);
  assert_int_equal(finished, 100);
  assert_int_equal(tsk_group_close(g, 0), 0);
  return 0;
}

static void test_concurrency_limit(void **state) {
  (void)state;
  assert_int_equal(run_main(main_concurrency_limit, NULL), 0);
}

/* ---- pending limit ---- */

static int main_pending_full(void *arg) {
  (void)arg;
  counter c = {0};
  tsk_group_t *g;
  tsk_group_opts_t o = {.max_concurrency = 2, .max_pending = 3, .spawn_waits = 0};
  assert_int_equal(tsk_group_new(tsk_runtime_current(), &o, &g), 0);
  for (int i = 0; i < 5; i++) assert_int_equal(tsk_group_spawn(g, "w", count_task, &c), 0);
  assert_int_equal(tsk_group_spawn(g, "w", count_task, &c), TSK_EFULL);
  size_t running, pending;
  tsk_group_counts(g, &running, &pending, NULL);
  assert_int_equal(running, 2);
  assert_int_equal(pending, 3);
  assert_int_equal(tsk_group_close(g, TSK_FOREVER), 0);
  assert_int_equal(c.done, 5);
  assert_true(c.max <= 2);
  return 0;
}

static void test_pending_full_fails(void **state) {
  (void)state;
  assert_int_equal(run_main(main_pending_full, NULL), 0);
}

static int main_pending_waits(void *arg) {
  (void)arg;
  counter c = {0};
  tsk_group_t *g;
  tsk_group_opts_t o = {.max_concurrency = 2, .max_pending = 3, .spawn_waits = 1};
  assert_int_equal(tsk_group_new(tsk_runtime_current(), &o, &g), 0);
  for (int i = 0; i < 20; i++) {
    assert_int_equal(tsk_group_spawn(g, "w", count_task, &c), 0);
    size_t running, pending;
    tsk_group_counts(g, &running, &pending, NULL);
    assert_true(running <= 2);
    assert_true(pending <= 3);
  }
  assert_true(c.started >= 15); /* the spawner had to wait for at least 15 to start */
  assert_int_equal(tsk_group_close(g, TSK_FOREVER), 0);
  assert_int_equal(c.done, 20);
  assert_int_equal(c.max, 2);
  return 0;
}

static void test_pending_full_waits(void **state) {
  (void)state;
  assert_int_equal(run_main(main_pending_waits, NULL), 0);
}

/* Outside a task a spawn cannot wait: TSK_EFULL even with spawn_waits. */
typedef struct outside_ctx {
  tsk_group_t *g;
  counter c;
} outside_ctx;

static int main_outside(void *arg) {
  outside_ctx *o = arg;
  assert_int_equal(tsk_group_close(o->g, TSK_FOREVER), 0);
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
  assert_int_equal(tsk_group_new(b->rt, &o, &b->g), 0);
  for (int i = 0; i < 10000; i++) {
    assert_int_equal(tsk_group_spawn(b->g, "doc", bomb_task, b), 0);
    bomb_sample(b);
  }
  assert_int_equal(tsk_group_close(b->g, TSK_FOREVER), 0);
  return 0;
}

static void test_async_bomb_bounded(void **state) {
  (void)state;
  bomb b = {0};
  assert_int_equal(run_main(main_bomb, &b), 0);
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
  assert_int_equal(tsk_group_new(tsk_runtime_current(), &o, &g), 0);
  for (int i = 0; i < 2; i++) assert_int_equal(tsk_group_spawn(g, "s", long_sleeper, &f), 0);
  for (int i = 0; i < 8; i++) assert_int_equal(tsk_group_spawn(g, "w", count_task, &c), 0);
  yield_n(3);
  size_t running, pending, finished;
  tsk_group_counts(g, &running, &pending, &finished);
  assert_int_equal(running, 2);
  assert_int_equal(pending, 8);
  assert_int_equal(tsk_group_cancel(g), 0);
  tsk_group_counts(g, &running, &pending, NULL);
  assert_int_equal(pending, 0);
  assert_int_equal(tsk_group_wait(g, TSK_FOREVER, NULL), 0);
  assert_int_equal(f.sleepers_cancelled, 2);
  assert_int_equal(c.started, 0); /* pending spawns never start */
  tsk_group_counts(g, &running, &pending, &finished);
  assert_int_equal(running, 0);
  assert_int_equal(finished, 2);
  assert_int_equal(tsk_group_spawn(g, "w", count_task, &c), TSK_ECANCELED);
  assert_int_equal(tsk_group_close(g, TSK_FOREVER), 0);
  return 0;
}

static void test_group_cancel(void **state) {
  (void)state;
  assert_int_equal(run_main(main_group_cancel, NULL), 0);
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
  assert_int_equal(tsk_group_new(tsk_runtime_current(), &o, &s.g), 0);
  assert_int_equal(tsk_group_spawn(s.g, "s", long_sleeper, &s.f), 0);
  assert_int_equal(tsk_group_spawn(s.g, "s", long_sleeper, &s.f), 0);
  tsk_task_t sp;
  assert_int_equal(tsk_spawn(tsk_runtime_current(), &sp, "spawner", blocked_spawner, &s), 0);
  yield_n(3);
  assert_int_equal(s.returned, 0);
  assert_int_equal(tsk_group_cancel(s.g), 0);
  assert_int_equal(tsk_join(sp, TSK_FOREVER, NULL), 0);
  assert_int_equal(s.rc, TSK_ECANCELED);
  assert_int_equal(tsk_group_close(s.g, TSK_FOREVER), 0);
  assert_int_equal(s.f.sleepers_cancelled, 1); /* the pending one never started */
  return 0;
}

static void test_cancel_wakes_waiting_spawner(void **state) {
  (void)state;
  assert_int_equal(run_main(main_cancel_wakes_spawner, NULL), 0);
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
  assert_int_equal(tsk_group_new(tsk_runtime_current(), NULL, &g), 0);
  assert_int_equal(tsk_group_spawn(g, "quick", quick, s), 0);
  assert_int_equal(tsk_group_spawn(g, "quick", quick, s), 0);
  assert_int_equal(tsk_group_spawn(g, "straggler", straggler, s), 0);
  assert_int_equal(tsk_group_close(g, 20), TSK_ETIMEDOUT);
  assert_int_equal(s->quick_done, 2);
  assert_int_equal(s->straggler_cancelled, 1);
  assert_int_equal(s->cleanup_done, 1); /* close returned only after the straggler ended */
  return 0;
}

static void test_close_timeout_cancels_stragglers(void **state) {
  (void)state;
  straggler_ctx s = {0};
  assert_int_equal(run_main(main_close_timeout, &s), 0);
}

/* Close with a limit and pending spawns: the pending ones run before close returns. */
static int main_close_runs_pending(void *arg) {
  (void)arg;
  counter c = {0};
  tsk_group_t *g;
  tsk_group_opts_t o = {.max_concurrency = 3};
  assert_int_equal(tsk_group_new(tsk_runtime_current(), &o, &g), 0);
  for (int i = 0; i < 30; i++) assert_int_equal(tsk_group_spawn(g, "w", count_task, &c), 0);
  assert_int_equal(tsk_group_close(g, TSK_FOREVER), 0);
  assert_int_equal(c.done, 30);
  return 0;
}

static void test_close_runs_pending(void **state) {
  (void)state;
  assert_int_equal(run_main(main_close_runs_pending, NULL), 0);
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
  assert_int_equal(tsk_group_new(tsk_runtime_current(), NULL, &g), 0);
  assert_int_equal(tsk_group_spawn(g, "gated", gated, &gt), 0);
  tsk_result_t res;
  memset(&res, 0, sizeof res);
  res.error = 12345;
  assert_int_equal(tsk_group_wait(g, 10, &res), TSK_ETIMEDOUT);
  assert_int_equal(res.error, 12345); /* not filled on timeout */
  assert_int_equal(tsk_group_wait(g, 0, NULL), TSK_ETIMEDOUT);
  size_t running;
  tsk_group_counts(g, &running, NULL, NULL);
  assert_int_equal(running, 1); /* the task keeps running */
  gt.open = 1;
  assert_int_equal(tsk_group_wait(g, TSK_FOREVER, &res), 0);
  assert_int_equal(gt.passed, 1);
  /* A deadline scope bounds the wait too. */
  gt.open = 0;
  assert_int_equal(tsk_group_spawn(g, "gated", gated, &gt), 0);
  assert_int_equal(tsk_timeout_push(5), 0);
  assert_int_equal(tsk_group_wait(g, TSK_FOREVER, NULL), TSK_ETIMEDOUT);
  assert_int_equal(tsk_timeout_pop(), 0);
  gt.open = 1;
  assert_int_equal(tsk_group_close(g, TSK_FOREVER), 0);
  assert_int_equal(gt.passed, 2);
  return 0;
}

static void test_wait_timeout(void **state) {
  (void)state;
  assert_int_equal(run_main(main_wait_timeout, NULL), 0);
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
  assert_int_equal(tsk_group_new(tsk_runtime_current(), NULL, &w.g), 0);
  assert_int_equal(tsk_group_spawn(w.g, "s", long_sleeper, &f), 0);
  tsk_task_t wt;
  assert_int_equal(tsk_spawn(tsk_runtime_current(), &wt, "waiter", group_waiter_task, &w), 0);
  yield_n(3);
  assert_int_equal(tsk_cancel(wt), 0);
  tsk_result_t res;
  assert_int_equal(tsk_join(wt, TSK_FOREVER, &res), TSK_ECANCELED);
  assert_int_equal(res.state, TSK_TASK_CANCELLED);
  assert_int_equal(w.rc, TSK_ECANCELED);
  size_t running;
  tsk_group_counts(w.g, &running, NULL, NULL);
  assert_int_equal(running, 1); /* the group's task is untouched */
  assert_int_equal(f.sleepers_cancelled, 0);
  assert_int_equal(tsk_group_close(w.g, 0), TSK_ETIMEDOUT);
  assert_int_equal(f.sleepers_cancelled, 1);
  return 0;
}

static void test_cancel_group_waiter(void **state) {
  (void)state;
  assert_int_equal(run_main(main_cancel_waiter, NULL), 0);
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
  assert_int_equal(tsk_group_new(rt, NULL, &m.g), 0);
  assert_int_equal(tsk_group_spawn(m.g, "failer", failer, NULL), 0);
  tsk_task_t w[3];
  for (int i = 0; i < 3; i++) assert_int_equal(tsk_spawn(rt, &w[i], "w", multi_waiter, &m), 0);
  yield_n(1); /* the waiters start waiting; the failer yields once */
  assert_int_equal(tsk_group_close(m.g, TSK_FOREVER), TSK_EFAILED);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(tsk_join(w[i], TSK_FOREVER, NULL), 0);
    assert_int_equal(m.rcs[i], TSK_EFAILED);
    assert_string_equal(m.res[i].message, "bad header 7");
  }
  return 0;
}

static void test_waiters_survive_close(void **state) {
  (void)state;
  assert_int_equal(run_main(main_multi_waiters, NULL), 0);
}

/* ---- misuse ---- */

static int self_waiter(void *arg) {
  tsk_group_t **g = arg;
  return tsk_group_wait(*g, TSK_FOREVER, NULL);
}

static int main_deadlock(void *arg) {
  (void)arg;
  tsk_group_t *g;
  assert_int_equal(tsk_group_new(tsk_runtime_current(), NULL, &g), 0);
  assert_int_equal(tsk_group_spawn(g, "self", self_waiter, &g), 0);
  tsk_result_t res;
  assert_int_equal(tsk_group_wait(g, TSK_FOREVER, &res), TSK_EDEADLK);
  assert_int_equal(res.state, TSK_TASK_FAILED);
  assert_int_equal(tsk_group_close(g, 0), TSK_EDEADLK);
  assert_int_equal(tsk_group_spawn(NULL, "x", quick, NULL), TSK_EINVAL);
  return 0;
}

static void test_wait_on_own_group(void **state) {
  (void)state;
  assert_int_equal(run_main(main_deadlock, NULL), 0);
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
  assert_int_equal(tsk_group_new(tsk_runtime_current(), &o, &cc.g), 0);
  assert_int_equal(tsk_group_spawn(cc.g, "member", member_spawns_late, &cc), 0);
  assert_int_equal(tsk_group_spawn(cc.g, "w", count_task, &cc.c), 0); /* pending */
  tsk_task_t sp;
  assert_int_equal(tsk_spawn(tsk_runtime_current(), &sp, "spawner", waiting_spawner, &cc), 0);
  yield_n(3);
  assert_int_equal(cc.spawner_returned, 0); /* waiting for room */
  cc.closing = 1;
  assert_int_equal(tsk_group_close(cc.g, TSK_FOREVER), 0);
  assert_int_equal(cc.member_rc, TSK_ECLOSED);
  assert_int_equal(tsk_join(sp, TSK_FOREVER, NULL), 0);
  assert_int_equal(cc.spawner_rc, TSK_ECLOSED);
  assert_int_equal(cc.c.done, 1); /* the pending spawn queued before close still ran */
  return 0;
}

static void test_spawn_after_close(void **state) {
  (void)state;
  assert_int_equal(run_main(main_spawn_after_close, NULL), 0);
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
  assert_int_equal(tsk_group_new(tsk_runtime_current(), NULL, &d.g), 0);
  assert_int_equal(tsk_group_spawn(d.g, "gated", gated, &gt), 0);
  tsk_task_t t;
  assert_int_equal(tsk_spawn(tsk_runtime_current(), &t, "closer", second_closer, &d), 0);
  yield_n(2);
  assert_int_equal(tsk_group_close(d.g, 0), TSK_ECLOSED);
  gt.open = 1;
  assert_int_equal(tsk_join(t, TSK_FOREVER, NULL), 0);
  assert_int_equal(d.rc, 0);
  return 0;
}

static void test_double_close(void **state) {
  (void)state;
  assert_int_equal(run_main(main_double_close, NULL), 0);
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
  assert_int_equal(tsk_group_new(rt, &o, &a->g), 0);
  for (int i = 0; i < 4; i++) assert_int_equal(tsk_group_spawn(a->g, "s", long_sleeper, &a->f), 0);
  tsk_task_t t;
  assert_int_equal(tsk_spawn(rt, &t, "spawner", abandoned_spawner, a), 0);
  assert_int_equal(tsk_detach(t), 0);
  assert_int_equal(tsk_spawn(rt, &t, "waiter", abandoned_waiter, a), 0);
  assert_int_equal(tsk_detach(t), 0);
  yield_n(3);
  size_t running, pending;
  tsk_group_counts(a->g, &running, &pending, NULL);
  assert_int_equal(running, 2);
  assert_int_equal(pending, 2);
  return 0; /* the group, its tasks, its pending spawns and the blocked spawner are left */
}

static void test_runtime_close_with_open_group(void **state) {
  (void)state;
  abandon_ctx a = {0};
  assert_int_equal(run_main(main_abandon, &a), 0);
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
      cmocka_unit_test(test_all_succeed),
      cmocka_unit_test(test_first_failure_cancels_others),
      cmocka_unit_test(test_cancelled_is_not_failure),
      cmocka_unit_test(test_failure_during_close),
      cmocka_unit_test(test_concurrency_limit),
      cmocka_unit_test(test_pending_full_fails),
      cmocka_unit_test(test_pending_full_waits),
      cmocka_unit_test(test_spawn_outside_task),
      cmocka_unit_test(test_async_bomb_bounded),
      cmocka_unit_test(test_group_cancel),
      cmocka_unit_test(test_cancel_wakes_waiting_spawner),
      cmocka_unit_test(test_close_timeout_cancels_stragglers),
      cmocka_unit_test(test_close_runs_pending),
      cmocka_unit_test(test_wait_timeout),
      cmocka_unit_test(test_cancel_group_waiter),
      cmocka_unit_test(test_waiters_survive_close),
      cmocka_unit_test(test_wait_on_own_group),
      cmocka_unit_test(test_spawn_after_close),
      cmocka_unit_test(test_double_close),
      cmocka_unit_test(test_runtime_close_with_open_group),
      cmocka_unit_test(test_runtime_close_with_idle_group),
      cmocka_unit_test(test_wrong_thread),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
