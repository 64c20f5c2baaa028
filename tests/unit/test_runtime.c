/*
 * test_runtime.c — the runtime object: tsk_run / tsk_run_main, a runtime on an application's
 * loop, one runtime per thread, cross-thread posting, close with unfinished tasks (nothing may
 * leak under AddressSanitizer), statistics, and the stack pool (reuse, 100k pending tasks in few
 * mappings, custom stack sizes).
 */
#include "common/tt_core.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h" /* a task's stack size: not observable through the public API */

static int return_zero(void *arg) {
  (void)arg;
  return 0;
}

static int wait_event_task(void *arg) { return tsk_event_wait(arg, TSK_FOREVER); }

static int sleep_ms_task(void *arg) { return tsk_sleep((uint64_t)(uintptr_t)arg); }

static int yield_n_task(void *arg) {
  for (uintptr_t i = 0; i < (uintptr_t)arg; i++)
    if (tsk_yield()) return TSK_EFAILED;
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* tsk_run / tsk_run_main                                                                      */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
  int ran;
} counter;

static int count_task(void *arg) {
  ((counter *)arg)->ran++;
  return 0;
}

static int spawner_task(void *arg) {
  (void)arg;
  /* Spawns detached children that sleep: tsk_run must wait for them too. */
  for (int i = 0; i < 3; i++) {
    tsk_task_t h;
    int rc = tsk_spawn(tsk_runtime_current(), &h, "grandchild", sleep_ms_task,
                       (void *)(uintptr_t)(i + 1));
    if (rc) return rc;
    tsk_detach(h);
  }
  return 0;
}

static void test_run_until_done(void **state) {
  (void)state;
  tsk_runtime_t *rt;
  TT_ASSERT_RC(0, tsk_runtime_new(&rt));
  TT_ASSERT_RC(0, tsk_run(rt)); /* nothing to do: returns at once */
  tsk_task_t h[8];
  for (int i = 0; i < 4; i++)
    TT_ASSERT_RC(0, tsk_spawn(rt, &h[i], "sleeper", sleep_ms_task, (void *)(uintptr_t)(5 * i)));
  for (int i = 4; i < 7; i++)
    TT_ASSERT_RC(0, tsk_spawn(rt, &h[i], "yielder", yield_n_task, (void *)(uintptr_t)(100 * i)));
  TT_ASSERT_RC(0, tsk_spawn(rt, &h[7], "spawner", spawner_task, NULL));
  /* Work posted from the owner thread before the loop runs is pending work too. */
  counter c = {0};
  TT_ASSERT_RC(0, tsk_post(rt, "posted", count_task, &c));
  TT_ASSERT_RC(0, tsk_run(rt));
  assert_int_equal(1, c.ran);
  tsk_stats_t st;
  tsk_runtime_stats(rt, &st);
  assert_int_equal(0, st.live);
  assert_int_equal(0, st.ready);
  assert_int_equal(0, st.waiting);
  assert_int_equal(12, st.spawned); /* 8 + 3 grandchildren + 1 post */
  assert_int_equal(12, st.finished);
  for (int i = 0; i < 8; i++) {
    tsk_result_t res;
    TT_ASSERT_RC(0, tsk_join(h[i], 0, &res));
    assert_int_equal(TSK_TASK_DONE, res.state);
  }
  TT_ASSERT_RC(0, tsk_run(rt)); /* and again: nothing to do */
  TT_ASSERT_RC(0, tsk_runtime_close(rt));
}

static int main_value(void *arg) {
  tsk_set_result(arg);
  return 0;
}

static int main_fails(void *arg) {
  (void)arg;
  TT_RC(0, tsk_sleep(1));
  return tsk_error(UV_ECONNREFUSED, "backend %s refused", "db-1");
}

static int main_leaves_helper(void *arg) {
  tsk_task_t h;
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &h, "helper", sleep_ms_task,
                     (void *)(uintptr_t)(3600 * 1000)));
  TT_RC(0, tsk_detach(h));
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &h, "yielder", yield_n_task,
                     (void *)(uintptr_t)1000000000));
  TT_RC(0, tsk_detach(h));
  *(uint64_t *)arg = tsk_self_id();
  return 0;
}

static void test_run_main(void **state) {
  (void)state;
  tsk_runtime_t *rt;
  TT_ASSERT_RC(0, tsk_runtime_new(&rt));
  static int payload;
  tsk_result_t res;
  memset(&res, 0x55, sizeof res);
  TT_ASSERT_RC(0, tsk_run_main(rt, "main", main_value, &payload, &res));
  assert_int_equal(TSK_TASK_DONE, res.state);
  assert_int_equal(0, res.error);
  assert_ptr_equal(&payload, res.value);
  assert_string_equal("", res.message);

  /* The same runtime, again: a failing main. */
  TT_ASSERT_RC(UV_ECONNREFUSED, tsk_run_main(rt, NULL, main_fails, NULL, &res));
  assert_int_equal(TSK_TASK_FAILED, res.state);
  assert_int_equal(UV_ECONNREFUSED, res.error);
  assert_string_equal("backend db-1 refused", res.message);
  TT_ASSERT_RC(UV_ECONNREFUSED, tsk_run_main(rt, NULL, main_fails, NULL, NULL));

  /* tsk_run_main returns when main ends, even though other tasks still sleep or keep
   * yielding; they stay as they are (pending) until the runtime closes. */
  uint64_t main_id = 0;
  TT_ASSERT_RC(0, tsk_run_main(rt, "main", main_leaves_helper, &main_id, NULL));
  assert_true(main_id != 0);
  tsk_stats_t st;
  tsk_runtime_stats(rt, &st);
  assert_int_equal(2, st.live);
  TT_ASSERT_RC(0, tsk_runtime_close(rt)); /* destroys both */
}

static int main_check_current(void *arg) {
  tsk_runtime_t *rt = arg;
  TT_CHECK(tsk_runtime_current() == rt);
  TT_CHECK(tsk_runtime_loop(rt) != NULL);
  return 0;
}

static void test_runtime_current(void **state) {
  (void)state;
  tsk_runtime_t *rt;
  TT_ASSERT_RC(0, tsk_runtime_new(&rt));
  assert_null(tsk_runtime_current());
  assert_non_null(tsk_runtime_loop(rt));
  TT_ASSERT_RC(0, tsk_run_main(rt, "main", main_check_current, rt, NULL));
  assert_null(tsk_runtime_current());
  TT_ASSERT_RC(0, tsk_runtime_close(rt));
}

/* ------------------------------------------------------------------------------------------ */
/* a runtime on the application's loop                                                        */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
  int ticks;
  int task_steps;
  int tasks_done;
} app_state;

static void app_tick(uv_timer_t *t) {
  app_state *s = t->data;
  if (++s->ticks == 10) uv_timer_stop(t);
}

static int app_task(void *arg) {
  app_state *s = arg;
  for (int i = 0; i < 5; i++) {
    TT_RC(0, tsk_sleep(3));
    s->task_steps++;
  }
  s->tasks_done++;
  return 0;
}

/* Spawns, from outside any task, a task that stays unfinished until the runtime closes: the
 * deliberate leak of test_app_loop, named by this frame for the suppressions of the leak gate
 * (tests/taskscope.supp). */
__attribute__((noinline)) static int spawn_left_pending(tsk_runtime_t *rt, tsk_task_t *h,
                                                       const char *name, tsk_fn fn, void *arg) {
  int rc = tsk_spawn(rt, h, name, fn, arg);
  __asm__ volatile("" ::: "memory"); /* not a tail call: this frame stays in the backtrace */
  return rc;
}

static void test_app_loop(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(0, uv_loop_init(&loop));
  tsk_runtime_t *rt;
  TT_ASSERT_RC(0, tsk_runtime_new_on(&loop, &rt));
  assert_ptr_equal(&loop, tsk_runtime_loop(rt));

  /* The runtime's own handles never keep the application's loop alive. */
  assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));

  app_state s = {0, 0, 0};
  uv_timer_t timer;
  assert_int_equal(0, uv_timer_init(&loop, &timer));
  timer.data = &s;
  assert_int_equal(0, uv_timer_start(&timer, app_tick, 2, 2));
  tsk_task_t h[3];
  for (int i = 0; i < 3; i++) TT_ASSERT_RC(0, tsk_spawn(rt, &h[i], "app-task", app_task, &s));
  /* The application runs its own loop; the tasks and its timer share it. */
  assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));
  assert_int_equal(10, s.ticks);
  assert_int_equal(3, s.tasks_done);
  assert_int_equal(15, s.task_steps);
  for (int i = 0; i < 3; i++) TT_ASSERT_RC(0, tsk_join(h[i], 0, NULL));

  /* tsk_run_main works on it too, and tsk_run is simply uv_run. */
  TT_ASSERT_RC(0, tsk_run_main(rt, "main", app_task, &s, NULL));
  assert_int_equal(4, s.tasks_done);
  TT_ASSERT_RC(0, tsk_spawn(rt, &h[0], "app-task", app_task, &s));
  TT_ASSERT_RC(0, tsk_run(rt));
  TT_ASSERT_RC(0, tsk_join(h[0], 0, NULL));
  assert_int_equal(5, s.tasks_done);

  /* An unfinished task at close is destroyed; the loop stays usable and closable. */
  TT_ASSERT_RC(0, spawn_left_pending(rt, &h[0], "pending", sleep_ms_task,
                                      (void *)(uintptr_t)100000));
  uv_run(&loop, UV_RUN_NOWAIT); /* it starts and sleeps */
  tsk_task_state_t ts;
  TT_ASSERT_RC(0, tsk_task_state(h[0], &ts));
  assert_int_equal(TSK_TASK_WAITING, ts);
  TT_ASSERT_RC(0, tsk_runtime_close(rt));
  /* The application's handle was left alone. */
  assert_false(uv_is_closing((uv_handle_t *)&timer));
  uv_close((uv_handle_t *)&timer, NULL);
  assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));
  assert_int_equal(0, uv_loop_close(&loop));
}

/* ------------------------------------------------------------------------------------------ */
/* one runtime per thread                                                                      */
/* ------------------------------------------------------------------------------------------ */

#define NTHREADS 4
#define PER_THREAD 1000

typedef struct {
  uint64_t ids[PER_THREAD];
  int ran;
  int rc;
  tsk_runtime_t *rt;
  tsk_runtime_t *seen_rt;
  int failures;
} thread_rt;

typedef struct {
  thread_rt *t;
  int index;
} thread_task_arg;

static int thread_task(void *arg) {
  thread_task_arg *a = arg;
  a->t->ids[a->index] = tsk_self_id();
  if (tsk_runtime_current() != a->t->rt) a->t->failures++;
  if (tsk_yield()) a->t->failures++;
  a->t->ran++;
  return 0;
}

static int thread_main(void *arg) {
  thread_rt *t = arg;
  t->seen_rt = tsk_runtime_current();
  thread_task_arg *args = calloc(PER_THREAD, sizeof *args);
  tsk_task_t *h = calloc(PER_THREAD, sizeof *h);
  if (!args || !h) return TSK_ENOMEM;
  for (int i = 0; i < PER_THREAD; i++) {
    args[i] = (thread_task_arg){t, i};
    int rc = tsk_spawn(t->rt, &h[i], "worker", thread_task, &args[i]);
    if (rc) return rc;
  }
  for (int i = 0; i < PER_THREAD; i++)
    if (tsk_join(h[i], TSK_FOREVER, NULL)) t->failures++;
  free(args);
  free(h);
  return 0;
}

static void *runtime_thread(void *arg) {
  thread_rt *t = arg;
  t->rc = tsk_runtime_new(&t->rt);
  if (t->rc) return NULL;
  t->rc = tsk_run_main(t->rt, "thread-main", thread_main, t, NULL);
  int crc = tsk_runtime_close(t->rt);
  if (!t->rc) t->rc = crc;
  return NULL;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void test_runtime_per_thread(void **state) {
  (void)state;
  thread_rt *t = calloc(NTHREADS, sizeof *t);
  assert_non_null(t);
  pthread_t th[NTHREADS];
  for (int i = 0; i < NTHREADS; i++)
    assert_int_equal(0, pthread_create(&th[i], NULL, runtime_thread, &t[i]));
  for (int i = 0; i < NTHREADS; i++) assert_int_equal(0, pthread_join(th[i], NULL));
  uint64_t *all = malloc(sizeof(uint64_t) * NTHREADS * PER_THREAD);
  assert_non_null(all);
  for (int i = 0; i < NTHREADS; i++) {
    TT_ASSERT_RC(0, t[i].rc);
    assert_int_equal(PER_THREAD, t[i].ran);
    assert_int_equal(0, t[i].failures);
    assert_ptr_equal(t[i].rt, t[i].seen_rt);
    memcpy(all + i * PER_THREAD, t[i].ids, sizeof t[i].ids);
  }
  /* Task ids are unique in the process, across threads. */
  qsort(all, NTHREADS * PER_THREAD, sizeof *all, cmp_u64);
  for (int i = 0; i < NTHREADS * PER_THREAD; i++) {
    assert_true(all[i] != 0);
    if (i) assert_true(all[i] != all[i - 1]);
  }
  free(all);
  free(t);
}

/* ------------------------------------------------------------------------------------------ */
/* cross-thread posting                                                                        */
/* ------------------------------------------------------------------------------------------ */

#define POSTERS 4
#define POSTS 1000

typedef struct {
  tsk_runtime_t *rt;
  tsk_event_t *all_done;
  int ran;           /* touched on the loop thread only */
  int per_poster[POSTERS];
  int wrong_context;
  int post_failures; /* written by the posters, read after they are joined */
  pthread_t loop_thread;
} post_ctx;

typedef struct {
  post_ctx *c;
  int poster;
} post_item;

static int posted_item(void *arg) {
  post_item *it = arg;
  post_ctx *c = it->c;
  if (tsk_runtime_current() != c->rt || tsk_self_id() == 0 ||
      !pthread_equal(pthread_self(), c->loop_thread))
    c->wrong_context++;
  c->per_poster[it->poster]++;
  if (++c->ran == POSTERS * POSTS) tsk_event_set(c->all_done);
  return 0;
}

typedef struct {
  post_ctx *c;
  int poster;
  post_item items[POSTS];
  int failures;
} poster_arg;

static void *poster_thread(void *arg) {
  poster_arg *p = arg;
  for (int i = 0; i < POSTS; i++) {
    p->items[i] = (post_item){p->c, p->poster};
    if (tsk_post(p->c->rt, "posted", posted_item, &p->items[i]) != 0) p->failures++;
    if (i % 128 == 0) sched_yield();
  }
  return NULL;
}

static int post_main(void *arg) {
  post_ctx *c = arg;
  /* Waits without a limit: the posted work arrives from other threads while this task is the
   * only one, waiting on an event; tsk_run_main keeps the loop alive meanwhile. */
  TT_RC(0, tsk_event_wait(c->all_done, TSK_FOREVER));
  TT_CHECK(c->ran == POSTERS * POSTS);
  return 0;
}

static void test_cross_thread_post(void **state) {
  (void)state;
  post_ctx c;
  memset(&c, 0, sizeof c);
  c.loop_thread = pthread_self();
  TT_ASSERT_RC(0, tsk_runtime_new(&c.rt));
  TT_ASSERT_RC(0, tsk_event_new(c.rt, &c.all_done));
  poster_arg *p = calloc(POSTERS, sizeof *p);
  assert_non_null(p);
  pthread_t th[POSTERS];
  for (int i = 0; i < POSTERS; i++) {
    p[i].c = &c;
    p[i].poster = i;
    assert_int_equal(0, pthread_create(&th[i], NULL, poster_thread, &p[i]));
  }
  TT_ASSERT_RC(0, tsk_run_main(c.rt, "main", post_main, &c, NULL));
  for (int i = 0; i < POSTERS; i++) assert_int_equal(0, pthread_join(th[i], NULL));
  for (int i = 0; i < POSTERS; i++) {
    assert_int_equal(0, p[i].failures);
    assert_int_equal(POSTS, c.per_poster[i]);
  }
  assert_int_equal(POSTERS * POSTS, c.ran);
  assert_int_equal(0, c.wrong_context);
  tsk_stats_t st;
  tsk_runtime_stats(c.rt, &st);
  assert_int_equal(POSTERS * POSTS + 1, st.spawned);
  TT_ASSERT_RC(0, tsk_event_free(c.all_done));
  TT_ASSERT_RC(0, tsk_runtime_close(c.rt));
  free(p);
}

/* ------------------------------------------------------------------------------------------ */
/* close with unfinished tasks                                                                 */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
  tsk_event_t *event;
  tsk_future_t *future;
  tsk_promise_t *promise;
  tsk_channel_t *empty, *full;
  tsk_task_t sleeper;
  tsk_task_t handles[16];
  int nhandles;
  int cleanup_ran; /* a destroyed task runs nothing further */
} close_ctx;

static int close_waiter(void *arg) {
  close_ctx *c = arg;
  int rc = tsk_event_wait(c->event, TSK_FOREVER);
  c->cleanup_ran++;
  return rc;
}
static int close_future_waiter(void *arg) {
  close_ctx *c = arg;
  int rc = tsk_future_wait(c->future, TSK_FOREVER, NULL);
  c->cleanup_ran++;
  return rc;
}
static int close_receiver(void *arg) {
  close_ctx *c = arg;
  void *m;
  int rc = tsk_channel_recv(c->empty, &m, TSK_FOREVER);
  c->cleanup_ran++;
  return rc;
}
static int close_sender(void *arg) {
  close_ctx *c = arg;
  int rc = tsk_channel_send(c->full, NULL, TSK_FOREVER);
  c->cleanup_ran++;
  return rc;
}
static int close_joiner(void *arg) {
  close_ctx *c = arg;
  int rc = tsk_join(c->sleeper, TSK_FOREVER, NULL);
  c->cleanup_ran++;
  return rc;
}
static int close_yielder(void *arg) {
  close_ctx *c = arg;
  for (;;)
    if (tsk_yield()) break;
  c->cleanup_ran++;
  return 0;
}
static int close_failer(void *arg) {
  (void)arg;
  return tsk_error(TSK_EFAILED, "finished with an error nobody joined");
}

static int close_main(void *arg) {
  close_ctx *c = arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  TT_RC(0, tsk_spawn(rt, &c->sleeper, "sleeper", sleep_ms_task, (void *)(uintptr_t)3600000));
  struct {
    const char *name;
    tsk_fn fn;
    int detach;
  } kinds[] = {
      {"event-waiter", close_waiter, 0},      {"event-waiter-detached", close_waiter, 1},
      {"future-waiter", close_future_waiter, 0}, {"receiver", close_receiver, 0},
      {"sender", close_sender, 1},            {"joiner", close_joiner, 0},
      {"yielder", close_yielder, 0},          {"yielder-detached", close_yielder, 1},
      {"failer", close_failer, 0},            {"done", return_zero, 0},
  };
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    tsk_task_t h;
    TT_RC(0, tsk_spawn(rt, &h, kinds[i].name, kinds[i].fn, c));
    if (kinds[i].detach)
      TT_RC(0, tsk_detach(h));
    else
      c->handles[c->nhandles++] = h;
  }
  TT_RC(0, tsk_yield()); /* everything runs up to its wait */
  /* A task spawned in the loop but never started. */
  tsk_task_t h;
  TT_RC(0, tsk_spawn(rt, &h, "never-started", return_zero, NULL));
  c->handles[c->nhandles++] = h;
  return 0;
}

static void test_close_unfinished(void **state) {
  (void)state;
  tsk_runtime_t *rt;
  TT_ASSERT_RC(0, tsk_runtime_new(&rt));
  close_ctx c;
  memset(&c, 0, sizeof c);
  TT_ASSERT_RC(0, tsk_event_new(rt, &c.event));
  TT_ASSERT_RC(0, tsk_future_new(rt, &c.future, &c.promise));
  TT_ASSERT_RC(0, tsk_channel_new(rt, 1, &c.empty));
  TT_ASSERT_RC(0, tsk_channel_new(rt, 1, &c.full));
  TT_ASSERT_RC(0, tsk_channel_try_send(c.full, NULL));
  TT_ASSERT_RC(0, tsk_run_main(rt, "main", close_main, &c, NULL));
  /* Spawned outside any task, never run. */
  tsk_task_t outside;
  TT_ASSERT_RC(0, spawn_left_pending(rt, &outside, "outside", return_zero, NULL));
  tsk_stats_t st;
  tsk_runtime_stats(rt, &st);
  assert_true(st.live >= 9);
  assert_true(st.waiting >= 6);
  TT_ASSERT_RC(0, tsk_runtime_close(rt));
  assert_int_equal(0, c.cleanup_ran);
  /* Objects some destroyed task waited on can be freed after the close. */
  TT_ASSERT_RC(0, tsk_event_free(c.event));
  tsk_promise_release(c.promise);
  tsk_future_release(c.future);
  TT_ASSERT_RC(0, tsk_channel_free(c.empty));
  TT_ASSERT_RC(0, tsk_channel_free(c.full));
}

/* Objects freed before close, while the tasks waiting on them... cannot be: EBUSY. A runtime
 * closed with only finished-but-unjoined tasks must free them too. */
static void test_close_unjoined(void **state) {
  (void)state;
  tsk_runtime_t *rt;
  TT_ASSERT_RC(0, tsk_runtime_new(&rt));
  tsk_task_t h[3];
  TT_ASSERT_RC(0, tsk_spawn(rt, &h[0], "ok", return_zero, NULL));
  TT_ASSERT_RC(0, tsk_spawn(rt, &h[1], "failed", close_failer, NULL));
  TT_ASSERT_RC(0, tsk_spawn(rt, &h[2], "ok2", return_zero, NULL));
  TT_ASSERT_RC(0, tsk_run(rt));
  tsk_task_state_t s;
  TT_ASSERT_RC(0, tsk_task_state(h[1], &s));
  assert_int_equal(TSK_TASK_FAILED, s);
  TT_ASSERT_RC(0, tsk_join(h[2], 0, NULL));
  TT_ASSERT_RC(0, tsk_runtime_close(rt)); /* h[0] and h[1] never joined */
}

/* ------------------------------------------------------------------------------------------ */
/* statistics                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static int main_stats(void *arg) {
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_event_t *e;
  TT_RC(0, tsk_event_new(rt, &e));
  tsk_stats_t s0, st;
  tsk_runtime_stats(rt, &s0);
  TT_CHECK(s0.live == 1); /* main */
  TT_CHECK(s0.spawned == *(uint64_t *)arg + 1);
  tsk_task_t h[5];
  for (int i = 0; i < 5; i++) TT_RC(0, tsk_spawn(rt, &h[i], NULL, wait_event_task, e));
  tsk_runtime_stats(rt, &st);
  TT_CHECK(st.spawned == s0.spawned + 5);
  TT_CHECK(st.live == 6);
  TT_CHECK(st.ready == 5);
  TT_CHECK(st.waiting == 0);
  TT_RC(0, tsk_yield());
  tsk_runtime_stats(rt, &st);
  TT_CHECK(st.ready == 0);
  TT_CHECK(st.waiting == 5);
  TT_CHECK(st.live == 6);
  TT_CHECK(st.switches >= s0.switches + 6);
  TT_RC(0, tsk_event_set(e));
  tsk_runtime_stats(rt, &st);
  TT_CHECK(st.ready == 5);
  TT_CHECK(st.waiting == 0);
  for (int i = 0; i < 5; i++) TT_RC(0, tsk_join(h[i], TSK_FOREVER, NULL));
  tsk_runtime_stats(rt, &st);
  TT_CHECK(st.live == 1);
  TT_CHECK(st.finished == s0.finished + 5);
  TT_CHECK(st.stacks_mapped >= 6 && st.stacks_mapped <= 7);
  TT_CHECK(st.stack_regions == 1);
  TT_RC(0, tsk_event_free(e));
  return 0;
}

static void test_stats(void **state) {
  (void)state;
  tsk_runtime_t *rt;
  TT_ASSERT_RC(0, tsk_runtime_new(&rt));
  tsk_stats_t st;
  tsk_runtime_stats(rt, &st);
  assert_int_equal(0, st.spawned);
  assert_int_equal(0, st.live);
  assert_int_equal(0, st.finished);
  assert_int_equal(0, st.switches);
  assert_int_equal(0, st.stacks_mapped);
  assert_int_equal(0, st.stack_regions);
  tsk_task_t h[3];
  for (int i = 0; i < 3; i++) TT_ASSERT_RC(0, tsk_spawn(rt, &h[i], NULL, return_zero, NULL));
  tsk_runtime_stats(rt, &st);
  assert_int_equal(3, st.spawned);
  assert_int_equal(3, st.live);
  assert_int_equal(3, st.ready);
  TT_ASSERT_RC(0, tsk_run(rt));
  tsk_runtime_stats(rt, &st);
  assert_int_equal(0, st.live);
  assert_int_equal(3, st.finished);
  assert_int_equal(0, st.ready);
  assert_true(st.switches >= 3);
  for (int i = 0; i < 3; i++) TT_ASSERT_RC(0, tsk_join(h[i], 0, NULL));
  uint64_t spawned = 3;
  TT_ASSERT_RC(0, tsk_run_main(rt, "main", main_stats, &spawned, NULL));
  tsk_runtime_stats(rt, &st);
  assert_int_equal(0, st.live);
  assert_int_equal(9, st.finished);
  /* Every stack is back in the pool once everything ended. */
  assert_int_equal(st.stacks_mapped, st.stacks_pooled);
  TT_ASSERT_RC(0, tsk_runtime_close(rt));
}

/* A task that ends after waking another directly hands over its stack; patterns where the woken
 * task then ends too must not lose the first one's stack (all stacks return to the pool). */
typedef struct {
  tsk_event_t *e;
} handoff_ctx;

static int handoff_setter(void *arg) {
  handoff_ctx *c = arg;
  TT_RC(0, tsk_sleep(1));
  return tsk_event_set(c->e);
}

static int handoff_main(void *arg) {
  handoff_ctx *c = arg;
  tsk_task_t h;
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &h, "setter", handoff_setter, c));
  TT_RC(0, tsk_detach(h));
  /* Nothing else is ready: main switches to the loop, is woken by the setter, which ends and
   * switches straight back to main; main then ends at once. */
  TT_RC(0, tsk_event_wait(c->e, TSK_FOREVER));
  return 0;
}

static void test_stacks_return_to_pool(void **state) {
  (void)state;
  tsk_runtime_t *rt;
  TT_ASSERT_RC(0, tsk_runtime_new(&rt));
  handoff_ctx c;
  TT_ASSERT_RC(0, tsk_event_new(rt, &c.e));
  for (int i = 0; i < 3; i++) {
    TT_ASSERT_RC(0, tsk_event_clear(c.e));
    TT_ASSERT_RC(0, tsk_run_main(rt, "main", handoff_main, &c, NULL));
    TT_ASSERT_RC(0, tsk_run(rt));
    tsk_stats_t st;
    tsk_runtime_stats(rt, &st);
    assert_int_equal(0, st.live);
    assert_int_equal(st.stacks_mapped, st.stacks_pooled);
  }
  TT_ASSERT_RC(0, tsk_event_free(c.e));
  TT_ASSERT_RC(0, tsk_runtime_close(rt));
}

/* ------------------------------------------------------------------------------------------ */
/* the stack pool                                                                              */
/* ------------------------------------------------------------------------------------------ */

static int main_sequential(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  for (int i = 0; i < 10000; i++) {
    tsk_task_t h;
    if (!TT_RC(0, tsk_spawn(rt, &h, NULL, return_zero, NULL))) return TSK_EFAILED;
    if (!TT_RC(0, tsk_join(h, TSK_FOREVER, NULL))) return TSK_EFAILED;
  }
  tsk_stats_t st;
  tsk_runtime_stats(rt, &st);
  TT_CHECK(st.spawned == 10001);
  TT_CHECK(st.finished == 10000);
  /* Stacks are reused: main's and one or two for the sequence. */
  TT_CHECK(st.stacks_mapped <= 3);
  TT_CHECK(st.stack_regions == 1);
  return 0;
}

static void test_stack_pool_reuse(void **state) {
  (void)state;
  TT_RUN_OK(main_sequential, NULL);
}

#define NPENDING 100000

static int main_100k_pending(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_event_t *e;
  TT_RC(0, tsk_event_new(rt, &e));
  tsk_task_t *h = calloc(NPENDING, sizeof *h);
  if (!TT_CHECK(h != NULL)) return TSK_ENOMEM;
  for (int i = 0; i < NPENDING; i++)
    if (!TT_RC(0, tsk_spawn(rt, &h[i], NULL, wait_event_task, e))) return TSK_EFAILED;
  TT_RC(0, tsk_yield()); /* all of them run up to their wait */
  tsk_stats_t st;
  tsk_runtime_stats(rt, &st);
  TT_CHECK(st.live == NPENDING + 1);
  TT_CHECK(st.waiting == NPENDING);
  TT_CHECK(st.stacks_mapped == NPENDING + 1);
  /* Stacks come from large regions, not one mapping each: far below vm.max_map_count. */
  TT_CHECK(st.stack_regions <= NPENDING / 256 + 2);
  fprintf(stderr, "  100k pending: %llu stack regions\n", (unsigned long long)st.stack_regions);
  TT_RC(0, tsk_event_set(e));
  for (int i = 0; i < NPENDING; i++)
    if (!TT_RC(0, tsk_join(h[i], TSK_FOREVER, NULL))) break;
  tsk_runtime_stats(rt, &st);
  TT_CHECK(st.live == 1);
  TT_CHECK(st.finished == NPENDING);
  TT_CHECK(st.waiting == 0);
  TT_CHECK(st.stacks_pooled == NPENDING); /* all but main's */
  free(h);
  TT_RC(0, tsk_event_free(e));
  return 0;
}

static void test_100k_pending(void **state) {
  (void)state;
  TT_RUN_OK(main_100k_pending, NULL);
}

/* Recursion through 512 KiB of stack: needs a custom 1 MiB stack (the default is 256 KiB). */
static __attribute__((noinline)) long recurse(int depth) {
  volatile char frame[4096];
  for (size_t i = 0; i < sizeof frame; i += 512) frame[i] = (char)(depth + i);
  long below = depth > 0 ? recurse(depth - 1) : 0;
  return below + frame[depth % 8 * 512];
}

static int deep_task(void *arg) {
  (void)arg;
  long sum = recurse(128); /* 129 frames of more than 4 KiB */
  long expect = 0;
  for (int d = 0; d <= 128; d++) expect += (char)(d + d % 8 * 512);
  TT_CHECK(sum == expect);
  TT_RC(0, tsk_yield()); /* a suspension point after the deep call */
  return 0;
}

static int main_custom_stack(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_stats_t s0, st;
  tsk_runtime_stats(rt, &s0);
  tsk_spawn_opts_t opts = {.name = "deep", .stack_size = 1 << 20};
  tsk_task_t h;
  TT_RC(0, tsk_spawn_ex(rt, &h, &opts, deep_task, NULL));
  TT_CHECK(h.ptr->stack->size >= (size_t)1 << 20);
  tsk_runtime_stats(rt, &st);
  TT_CHECK(st.stacks_mapped == s0.stacks_mapped); /* its own mapping, not from the pool */
  TT_RC(0, tsk_join(h, TSK_FOREVER, NULL));
  /* A size that rounds to the default comes from the pool. */
  opts.stack_size = 256 * 1024 - 100;
  TT_RC(0, tsk_spawn_ex(rt, &h, &opts, return_zero, NULL));
  TT_CHECK(h.ptr->stack->size == 256 * 1024);
  TT_RC(0, tsk_join(h, TSK_FOREVER, NULL));
  /* A small custom stack. */
  opts.stack_size = 20000;
  TT_RC(0, tsk_spawn_ex(rt, &h, &opts, return_zero, NULL));
  TT_CHECK(h.ptr->stack->size >= 20000 && h.ptr->stack->size < 256 * 1024);
  TT_RC(0, tsk_join(h, TSK_FOREVER, NULL));
  return 0;
}

static void test_custom_stack(void **state) {
  (void)state;
  TT_RUN_OK(main_custom_stack, NULL);
}

static int main_check_stack(void *arg) {
  size_t want = *(size_t *)arg;
  tsk_task_t h;
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &h, NULL, return_zero, NULL));
  TT_CHECK(h.ptr->stack->size == want);
  TT_CHECK(tsk_self().ptr->stack->size == want);
  TT_RC(0, tsk_join(h, TSK_FOREVER, NULL));
  return 0;
}

static void test_set_stack_size(void **state) {
  (void)state;
  tsk_runtime_t *rt;
  TT_ASSERT_RC(0, tsk_runtime_new(&rt));
  TT_ASSERT_RC(0, tsk_runtime_set_stack_size(rt, 64 * 1024));
  TT_ASSERT_RC(0, tsk_runtime_set_stack_size(rt, 128 * 1024)); /* nothing carved yet */
  size_t want = 128 * 1024;
  TT_ASSERT_RC(0, tsk_run_main(rt, "main", main_check_stack, &want, NULL));
  /* Stacks were carved with that size: too late to change it. */
  TT_ASSERT_RC(TSK_EBUSY, tsk_runtime_set_stack_size(rt, 64 * 1024));
  TT_ASSERT_RC(0, tsk_run_main(rt, "main", main_check_stack, &want, NULL));
  TT_ASSERT_RC(0, tsk_runtime_close(rt));

  /* Below the minimum: 16 KiB. Not a multiple of the page size: rounded up. */
  TT_ASSERT_RC(0, tsk_runtime_new(&rt));
  TT_ASSERT_RC(0, tsk_runtime_set_stack_size(rt, 1000));
  want = 16 * 1024;
  TT_ASSERT_RC(0, tsk_run_main(rt, "main", main_check_stack, &want, NULL));
  TT_ASSERT_RC(0, tsk_runtime_close(rt));
  TT_ASSERT_RC(0, tsk_runtime_new(&rt));
  TT_ASSERT_RC(0, tsk_runtime_set_stack_size(rt, 100 * 1024 + 1));
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  want = (100 * 1024 + 1 + page - 1) / page * page;
  TT_ASSERT_RC(0, tsk_run_main(rt, "main", main_check_stack, &want, NULL));
  TT_ASSERT_RC(0, tsk_runtime_close(rt));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TT_TEST(test_run_until_done),
      TT_TEST(test_run_main),
      TT_TEST(test_runtime_current),
      TT_TEST(test_app_loop),
      TT_TEST(test_runtime_per_thread),
      TT_TEST(test_cross_thread_post),
      TT_TEST(test_close_unfinished),
      TT_TEST(test_close_unjoined),
      TT_TEST(test_stats),
      TT_TEST(test_stacks_return_to_pool),
      TT_TEST(test_stack_pool_reuse),
      TT_TEST(test_100k_pending),
      TT_TEST(test_custom_stack),
      TT_TEST(test_set_stack_size),
  };
  return TT_RUN_GROUP(tests);
}
