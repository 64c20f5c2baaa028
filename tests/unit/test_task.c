/*
 * test_task.c — tasks: spawn / join / detach / cancel, yield and sleep, deadline scopes, misuse
 * (wrong context, stale handles, wrong thread) and error naming.
 *
 * Every test creates its own runtime, drives a main task with tsk_run_main (or tsk_run) and
 * closes the runtime, so nothing may leak under AddressSanitizer. Checks made inside tasks are
 * the soft TT_CHECK / TT_RC (see common/tt_core.h).
 */
#include "common/tt_core.h"

#include <pthread.h>
#include <stdlib.h>

#include "internal.h" /* parent id and name of a task: not observable through the public API */

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static int return_zero(void *arg) {
  (void)arg;
  return 0;
}

static int wait_event_task(void *arg) { return tsk_event_wait(arg, TSK_FOREVER); }

static int sleep_forever(void *arg) {
  (void)arg;
  return tsk_sleep(3600 * 1000);
}

static tsk_task_state_t state_of(tsk_task_t h) {
  tsk_task_state_t st = (tsk_task_state_t)-1;
  TT_RC(0, tsk_task_state(h, &st));
  return st;
}

/* ------------------------------------------------------------------------------------------ */
/* spawn / join                                                                                */
/* ------------------------------------------------------------------------------------------ */

static int value_child(void *arg) {
  tsk_set_result(arg);
  return 0;
}

static int main_join_value(void *arg) {
  (void)arg;
  static int payload = 7;
  tsk_task_t h;
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &h, "value", value_child, &payload));
  TT_CHECK(h.id != 0 && h.ptr != NULL);
  TT_CHECK(state_of(h) == TSK_TASK_READY); /* runs only when the spawner suspends */
  tsk_result_t res;
  memset(&res, 0x55, sizeof res);
  TT_RC(0, tsk_join(h, TSK_FOREVER, &res));
  TT_CHECK(res.state == TSK_TASK_DONE);
  TT_RC(0, res.error);
  TT_CHECK(res.value == &payload);
  TT_CHECK(res.message[0] == 0);
  return 0;
}

static void test_join_value(void **state) {
  (void)state;
  TT_RUN_OK(main_join_value, NULL);
}

static int error_child(void *arg) { return tsk_error(TSK_EFAILED, "bad header %d", *(int *)arg); }
static int uv_error_child(void *arg) {
  (void)arg;
  return UV_ENOENT;
}
static int long_error_child(void *arg) {
  (void)arg;
  char big[400];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  return tsk_error(UV_EIO, "%s", big);
}
static int error_twice_child(void *arg) {
  (void)arg;
  tsk_error(TSK_EFAILED, "first");
  return tsk_error(TSK_EINVAL, "second %s", "message");
}

static int main_join_error(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  int n = 42;
  tsk_task_t a, b, c, d;
  TT_RC(0, tsk_spawn(rt, &a, "err", error_child, &n));
  TT_RC(0, tsk_spawn(rt, &b, "uverr", uv_error_child, NULL));
  TT_RC(0, tsk_spawn(rt, &c, "long", long_error_child, NULL));
  TT_RC(0, tsk_spawn(rt, &d, "twice", error_twice_child, NULL));
  tsk_result_t res;
  TT_RC(TSK_EFAILED, tsk_join(a, TSK_FOREVER, &res));
  TT_CHECK(res.state == TSK_TASK_FAILED);
  TT_RC(TSK_EFAILED, res.error);
  TT_CHECK(strcmp(res.message, "bad header 42") == 0);
  TT_CHECK(res.value == NULL);

  TT_RC(UV_ENOENT, tsk_join(b, TSK_FOREVER, &res));
  TT_CHECK(res.state == TSK_TASK_FAILED);
  TT_RC(UV_ENOENT, res.error);
  TT_CHECK(res.message[0] == 0);

  TT_RC(UV_EIO, tsk_join(c, TSK_FOREVER, &res));
  TT_CHECK(strlen(res.message) == sizeof res.message - 1); /* truncated, still terminated */
  TT_CHECK(res.message[0] == 'x');

  TT_RC(TSK_EINVAL, tsk_join(d, TSK_FOREVER, &res)); /* the last message wins */
  TT_CHECK(strcmp(res.message, "second message") == 0);

  /* res may be NULL. */
  TT_RC(0, tsk_spawn(rt, &a, "err", error_child, &n));
  TT_RC(TSK_EFAILED, tsk_join(a, TSK_FOREVER, NULL));
  return 0;
}

static void test_join_error(void **state) {
  (void)state;
  TT_RUN_OK(main_join_error, NULL);
  /* tsk_error outside a task only returns its code. */
  assert_int_equal(TSK_EFAILED, tsk_error(TSK_EFAILED, "ignored %d", 1));
}

#define NORDER 8
typedef struct {
  int order[NORDER];
  int n;
} order_log;
typedef struct {
  order_log *log;
  int index;
} order_arg;

static int order_child(void *arg) {
  order_arg *a = arg;
  a->log->order[a->log->n++] = a->index;
  return 0;
}

static int main_spawn_fifo(void *arg) {
  (void)arg;
  order_log log = {{0}, 0};
  order_arg args[NORDER];
  tsk_task_t h[NORDER];
  for (int i = 0; i < NORDER; i++) {
    args[i].log = &log;
    args[i].index = i;
    TT_RC(0, tsk_spawn(tsk_runtime_current(), &h[i], NULL, order_child, &args[i]));
  }
  TT_CHECK(log.n == 0); /* none ran yet: the spawner has not suspended */
  /* Join in reverse: the run order must not depend on the join order. */
  for (int i = NORDER - 1; i >= 0; i--) TT_RC(0, tsk_join(h[i], TSK_FOREVER, NULL));
  TT_CHECK(log.n == NORDER);
  for (int i = 0; i < NORDER; i++) TT_CHECK(log.order[i] == i);
  return 0;
}

static void test_spawn_order_fifo(void **state) {
  (void)state;
  TT_RUN_OK(main_spawn_fifo, NULL);
}

typedef struct {
  uint64_t self_id;
  uint64_t self_handle_id;
  tsk_runtime_t *rt;
} ident;

static int ident_child(void *arg) {
  ident *id = arg;
  id->self_id = tsk_self_id();
  id->self_handle_id = tsk_self().id;
  id->rt = tsk_runtime_current();
  return 0;
}

static int main_parent_names(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  uint64_t me = tsk_self_id();
  TT_CHECK(me != 0);
  TT_CHECK(tsk_self().id == me);
  ident id = {0, 0, NULL};
  tsk_task_t named, anon, longname, ex;
  TT_RC(0, tsk_spawn(rt, &named, "worker-1", ident_child, &id));
  TT_RC(0, tsk_spawn(rt, &anon, NULL, return_zero, NULL));
  TT_RC(0, tsk_spawn(rt, &longname, "a-very-long-task-name-that-does-not-fit-inline", return_zero,
                     NULL));
  tsk_spawn_opts_t opts = {.name = "from-opts", .stack_size = 0};
  TT_RC(0, tsk_spawn_ex(rt, &ex, &opts, return_zero, NULL));
  /* Ids are unique and increasing within a thread. */
  TT_CHECK(named.id != anon.id && anon.id != longname.id && longname.id != ex.id);
  TT_CHECK(named.id > me);
  /* Internal view: parent = the spawner, names copied (truncated to the inline buffer). */
  TT_CHECK(named.ptr->parent_id == me);
  TT_CHECK(anon.ptr->parent_id == me);
  TT_CHECK(strcmp(named.ptr->name, "worker-1") == 0);
  TT_CHECK(strcmp(anon.ptr->name, "") == 0);
  TT_CHECK(strlen(longname.ptr->name) == TSK__NAME_INLINE - 1);
  TT_CHECK(strncmp(longname.ptr->name, "a-very-long-task-name", 21) == 0);
  TT_CHECK(strcmp(ex.ptr->name, "from-opts") == 0);
  TT_RC(0, tsk_join(named, TSK_FOREVER, NULL));
  TT_CHECK(id.self_id == named.id);
  TT_CHECK(id.self_handle_id == named.id);
  TT_CHECK(id.rt == rt);
  TT_RC(0, tsk_join(anon, TSK_FOREVER, NULL));
  TT_RC(0, tsk_join(longname, TSK_FOREVER, NULL));
  TT_RC(0, tsk_join(ex, TSK_FOREVER, NULL));
  return 0;
}

static void test_parent_and_names(void **state) {
  (void)state;
  TT_RUN_OK(main_parent_names, NULL);

  /* Outside a task: no self, and a task spawned from here has no parent. */
  assert_int_equal(0, tsk_self_id());
  assert_int_equal(0, tsk_self().id);
  assert_null(tsk_self().ptr);
  assert_null(tsk_runtime_current());
  tsk_runtime_t *rt;
  TT_ASSERT_RC(0, tsk_runtime_new(&rt));
  tsk_task_t h;
  TT_ASSERT_RC(0, tsk_spawn(rt, &h, "top", return_zero, NULL));
  assert_int_equal(0, h.ptr->parent_id);
  TT_ASSERT_RC(0, tsk_run(rt));
  TT_ASSERT_RC(0, tsk_join(h, 0, NULL));
  TT_ASSERT_RC(0, tsk_runtime_close(rt));
}

/* ------------------------------------------------------------------------------------------ */
/* detach                                                                                      */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
  int ran;
  tsk_event_t *done;
} detach_ctx;

static int detached_child(void *arg) {
  detach_ctx *c = arg;
  TT_RC(0, tsk_sleep(5));
  c->ran = 1;
  TT_RC(0, tsk_event_set(c->done));
  return tsk_error(TSK_EFAILED, "nobody will read this"); /* unretrieved, must not leak */
}

static int main_detach(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  detach_ctx c = {0, NULL};
  TT_RC(0, tsk_event_new(rt, &c.done));
  tsk_task_t running, finished;
  /* A running (waiting) task. */
  TT_RC(0, tsk_spawn(rt, &running, "detached", detached_child, &c));
  TT_RC(0, tsk_yield());
  TT_CHECK(state_of(running) == TSK_TASK_WAITING);
  TT_RC(0, tsk_detach(running));
  TT_RC(TSK_ESTALE, tsk_join(running, TSK_FOREVER, NULL));
  TT_RC(TSK_ESTALE, tsk_detach(running));
  TT_RC(TSK_ESTALE, tsk_cancel(running));
  tsk_task_state_t st;
  TT_RC(TSK_ESTALE, tsk_task_state(running, &st));
  TT_RC(0, tsk_event_wait(c.done, TSK_FOREVER));
  TT_CHECK(c.ran == 1);

  /* A finished task. */
  TT_RC(0, tsk_spawn(rt, &finished, "finished", return_zero, NULL));
  TT_RC(0, tsk_yield());
  TT_CHECK(state_of(finished) == TSK_TASK_DONE);
  TT_RC(0, tsk_detach(finished));
  TT_RC(TSK_ESTALE, tsk_join(finished, 0, NULL));
  TT_RC(TSK_ESTALE, tsk_task_state(finished, &st));

  /* A never-started task. */
  TT_RC(0, tsk_spawn(rt, &finished, "unstarted", return_zero, NULL));
  TT_RC(0, tsk_detach(finished));
  TT_RC(0, tsk_yield()); /* it runs anyway */
  tsk_stats_t stats;
  tsk_runtime_stats(rt, &stats);
  TT_CHECK(stats.live == 1); /* only main: the detached tasks all ended */
  TT_RC(0, tsk_event_free(c.done));
  return 0;
}

static void test_detach(void **state) {
  (void)state;
  TT_RUN_OK(main_detach, NULL);
}

/* Join from outside any task: allowed once the task finished, TSK_ENOTASK before. */
static void test_join_outside_task(void **state) {
  (void)state;
  tsk_runtime_t *rt;
  TT_ASSERT_RC(0, tsk_runtime_new(&rt));
  static int payload;
  tsk_event_t *ev;
  TT_ASSERT_RC(0, tsk_event_new(rt, &ev));
  tsk_task_t done, blocked;
  TT_ASSERT_RC(0, tsk_spawn(rt, &done, "done", value_child, &payload));
  TT_ASSERT_RC(0, tsk_spawn(rt, &blocked, "blocked", wait_event_task, ev));
  tsk_task_state_t st;
  TT_ASSERT_RC(0, tsk_task_state(done, &st));
  assert_int_equal(TSK_TASK_READY, st);
  /* Not finished yet (never ran): cannot wait outside a task. */
  TT_ASSERT_RC(TSK_ENOTASK, tsk_join(done, TSK_FOREVER, NULL));
  TT_ASSERT_RC(0, tsk_run(rt)); /* returns: a task waiting on an event keeps nothing alive */
  tsk_result_t res;
  TT_ASSERT_RC(0, tsk_join(done, 0, &res));
  assert_int_equal(TSK_TASK_DONE, res.state);
  assert_ptr_equal(&payload, res.value);
  TT_ASSERT_RC(TSK_ESTALE, tsk_join(done, 0, &res));

  TT_ASSERT_RC(0, tsk_task_state(blocked, &st));
  assert_int_equal(TSK_TASK_WAITING, st);
  TT_ASSERT_RC(TSK_ENOTASK, tsk_join(blocked, 0, NULL)); /* the handle stays valid */
  TT_ASSERT_RC(0, tsk_event_set(ev));                   /* the owner thread, outside tasks */
  TT_ASSERT_RC(0, tsk_task_state(blocked, &st));
  assert_int_equal(TSK_TASK_READY, st);
  TT_ASSERT_RC(0, tsk_run(rt));
  TT_ASSERT_RC(0, tsk_join(blocked, 0, NULL));
  TT_ASSERT_RC(0, tsk_event_free(ev));
  TT_ASSERT_RC(0, tsk_runtime_close(rt));
}

/* ------------------------------------------------------------------------------------------ */
/* yield and sleep                                                                             */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
  char log[64];
  int n;
} ylog;
typedef struct {
  ylog *log;
  char tag;
} yarg;

static int yield_child(void *arg) {
  yarg *a = arg;
  for (int i = 0; i < 4; i++) {
    a->log->log[a->log->n++] = a->tag;
    TT_RC(0, tsk_yield());
  }
  return 0;
}

static int main_yield_interleave(void *arg) {
  (void)arg;
  ylog log;
  memset(&log, 0, sizeof log);
  yarg args[3] = {{&log, 'A'}, {&log, 'B'}, {&log, 'C'}};
  tsk_task_t h[3];
  for (int i = 0; i < 3; i++)
    TT_RC(0, tsk_spawn(tsk_runtime_current(), &h[i], NULL, yield_child, &args[i]));
  for (int i = 0; i < 3; i++) TT_RC(0, tsk_join(h[i], TSK_FOREVER, NULL));
  TT_CHECK(strcmp(log.log, "ABCABCABCABC") == 0);
  if (strcmp(log.log, "ABCABCABCABC") != 0) fprintf(stderr, "order: %s\n", log.log);
  /* A yield with nothing else ready simply continues. */
  TT_RC(0, tsk_yield());
  return 0;
}

static void test_yield_interleave(void **state) {
  (void)state;
  TT_RUN_OK(main_yield_interleave, NULL);
}

static int main_sleep(void *arg) {
  (void)arg;
  uint64_t t0 = tt_now();
  TT_RC(0, tsk_sleep(30));
  TT_CHECK(tt_now() - t0 >= 30);
  t0 = tt_now();
  TT_RC(0, tsk_sleep(0)); /* a yield */
  TT_RC(0, tsk_sleep(1));
  TT_CHECK(tt_now() - t0 >= 1);
  return 0;
}

static void test_sleep(void **state) {
  (void)state;
  TT_RUN_OK(main_sleep, NULL);
}

typedef struct {
  int *log;
  int *n;
  int ms;
} sleeper_arg;

static int sleeper(void *arg) {
  sleeper_arg *a = arg;
  TT_RC(0, tsk_sleep((uint64_t)a->ms));
  a->log[(*a->n)++] = a->ms;
  return 0;
}

static int main_sleep_order(void *arg) {
  (void)arg;
  int log[4] = {0}, n = 0;
  sleeper_arg a[4] = {{log, &n, 40}, {log, &n, 10}, {log, &n, 30}, {log, &n, 20}};
  tsk_task_t h[4];
  for (int i = 0; i < 4; i++)
    TT_RC(0, tsk_spawn(tsk_runtime_current(), &h[i], NULL, sleeper, &a[i]));
  for (int i = 0; i < 4; i++) TT_RC(0, tsk_join(h[i], TSK_FOREVER, NULL));
  TT_CHECK(n == 4);
  TT_CHECK(log[0] == 10 && log[1] == 20 && log[2] == 30 && log[3] == 40);
  return 0;
}

static void test_sleep_order(void **state) {
  (void)state;
  TT_RUN_OK(main_sleep_order, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* cancellation                                                                                */
/* ------------------------------------------------------------------------------------------ */

typedef enum {
  W_YIELD,
  W_UNSTARTED,
  W_SLEEP,
  W_JOIN,
  W_FUTURE,
  W_EVENT,
  W_SEND,
  W_RECV
} wait_kind;

typedef struct {
  wait_kind kind;
  int wait_rc;       /* what the interrupted wait returned */
  int first_rc;      /* W_YIELD: the yield during which the request arrived */
  int cleanup_ran;   /* set after the error, before returning */
  int requested;     /* tsk_cancel_requested() seen in the cleanup */
  tsk_future_t *future;
  tsk_event_t *event;
  tsk_channel_t *channel;
  tsk_task_t grandchild;
  int grandchild_rc;
} cancel_ctx;

static int cancel_victim(void *arg) {
  cancel_ctx *c = arg;
  int rc = 0;
  void *v = NULL;
  switch (c->kind) {
  case W_YIELD:
    c->first_rc = tsk_yield(); /* the request arrives while this task is ready */
    rc = tsk_yield();
    break;
  case W_UNSTARTED:
    rc = tsk_yield();
    break;
  case W_SLEEP:
    rc = tsk_sleep(3600 * 1000);
    break;
  case W_JOIN:
    TT_RC(0, tsk_spawn(tsk_runtime_current(), &c->grandchild, "grandchild", sleep_forever, NULL));
    rc = tsk_join(c->grandchild, TSK_FOREVER, NULL);
    /* The handle stays valid after our own cancellation: clean the grandchild up. */
    TT_RC(0, tsk_cancel(c->grandchild));
    c->grandchild_rc = tsk_join(c->grandchild, TSK_FOREVER, NULL);
    break;
  case W_FUTURE:
    rc = tsk_future_wait(c->future, TSK_FOREVER, &v);
    break;
  case W_EVENT:
    rc = tsk_event_wait(c->event, TSK_FOREVER);
    break;
  case W_SEND:
    rc = tsk_channel_send(c->channel, (void *)(uintptr_t)2, TSK_FOREVER);
    break;
  case W_RECV:
    rc = tsk_channel_recv(c->channel, &v, TSK_FOREVER);
    break;
  }
  c->wait_rc = rc;
  if (rc) {
    c->cleanup_ran = 1;
    c->requested = tsk_cancel_requested();
  }
  return rc;
}

static int run_cancel_case(wait_kind kind) {
  tsk_runtime_t *rt = tsk_runtime_current();
  cancel_ctx c;
  memset(&c, 0, sizeof c);
  c.kind = kind;
  tsk_promise_t *p = NULL;
  TT_RC(0, tsk_future_new(rt, &c.future, &p));
  TT_RC(0, tsk_event_new(rt, &c.event));
  TT_RC(0, tsk_channel_new(rt, 1, &c.channel));
  if (kind == W_SEND) TT_RC(0, tsk_channel_try_send(c.channel, (void *)(uintptr_t)1));

  tsk_task_t h;
  TT_RC(0, tsk_spawn(rt, &h, "victim", cancel_victim, &c));
  if (kind != W_UNSTARTED) {
    TT_RC(0, tsk_yield()); /* the victim runs up to its wait */
    tsk_task_state_t expect = kind == W_YIELD ? TSK_TASK_READY : TSK_TASK_WAITING;
    TT_CHECK(state_of(h) == expect);
  }
  TT_CHECK(c.cleanup_ran == 0);
  TT_RC(0, tsk_cancel(h));
  TT_RC(0, tsk_cancel(h)); /* asking again before it ran: the same request */
  tsk_result_t res;
  TT_RC(TSK_ECANCELED, tsk_join(h, TSK_FOREVER, &res));
  TT_CHECK(res.state == TSK_TASK_CANCELLED);
  TT_RC(TSK_ECANCELED, res.error);
  TT_RC(TSK_ECANCELED, c.wait_rc);
  TT_CHECK(c.cleanup_ran == 1);
  TT_CHECK(c.requested == 1);
  if (kind == W_YIELD) TT_RC(0, c.first_rc);
  if (kind == W_JOIN) TT_RC(TSK_ECANCELED, c.grandchild_rc);

  /* The cancelled wait withdrew from its object. */
  TT_RC(0, tsk_event_free(c.event));
  if (kind == W_SEND) {
    TT_CHECK(tsk_channel_len(c.channel) == 1); /* the cancelled send did not enqueue */
    void *m = NULL;
    TT_RC(0, tsk_channel_try_recv(c.channel, &m));
    TT_CHECK(m == (void *)(uintptr_t)1);
    TT_RC(TSK_EAGAIN, tsk_channel_try_recv(c.channel, &m));
  }
  TT_RC(0, tsk_channel_free(c.channel));
  TT_RC(0, tsk_promise_resolve(p, NULL)); /* nobody waits any more */
  tsk_promise_release(p);
  tsk_future_release(c.future);
  return 0;
}

static int main_cancel_cases(void *arg) {
  (void)arg;
  static const wait_kind kinds[] = {W_YIELD, W_UNSTARTED, W_SLEEP, W_JOIN,
                                    W_FUTURE, W_EVENT, W_SEND, W_RECV};
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    if (getenv("TT_KIND") && atoi(getenv("TT_KIND")) != (int)kinds[i]) continue;
    int before = tt_failures;
    run_cancel_case(kinds[i]);
    if (tt_failures != before) fprintf(stderr, "  (in cancel case %d)\n", (int)kinds[i]);
  }
  return 0;
}

static void test_cancel_each_wait(void **state) {
  (void)state;
  TT_RUN_OK(main_cancel_cases, NULL);
}

/* The request is delivered once: the task may wait again afterwards. */
typedef struct {
  int rcs[6];
  int outcome;
} once_ctx;

static int cancel_once_victim(void *arg) {
  once_ctx *c = arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  c->rcs[0] = tsk_sleep(3600 * 1000);
  c->rcs[1] = tsk_sleep(1);
  c->rcs[2] = tsk_yield();
  tsk_event_t *e;
  TT_RC(0, tsk_event_new(rt, &e));
  c->rcs[3] = tsk_event_wait(e, 5); /* times out normally */
  TT_RC(0, tsk_event_free(e));
  tsk_task_t h;
  TT_RC(0, tsk_spawn(rt, &h, NULL, return_zero, NULL));
  c->rcs[4] = tsk_join(h, TSK_FOREVER, NULL);
  c->rcs[5] = tsk_cancel_requested();
  return c->outcome;
}

static int main_cancel_once(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  for (int outcome = 0; outcome < 2; outcome++) {
    once_ctx c;
    memset(&c, 0, sizeof c);
    /* outcome 0: the task finishes normally anyway (DONE); 1: returns ECANCELED (CANCELLED) */
    c.outcome = outcome ? TSK_ECANCELED : 0;
    tsk_task_t h;
    TT_RC(0, tsk_spawn(rt, &h, "once", cancel_once_victim, &c));
    TT_RC(0, tsk_yield());
    TT_RC(0, tsk_cancel(h));
    tsk_result_t res;
    TT_RC(c.outcome, tsk_join(h, TSK_FOREVER, &res));
    TT_RC(TSK_ECANCELED, c.rcs[0]);
    TT_RC(0, c.rcs[1]);
    TT_RC(0, c.rcs[2]);
    TT_RC(TSK_ETIMEDOUT, c.rcs[3]);
    TT_RC(0, c.rcs[4]);
    TT_CHECK(c.rcs[5] == 1);
    TT_CHECK(res.state == (outcome ? TSK_TASK_CANCELLED : TSK_TASK_DONE));
  }
  return 0;
}

static void test_cancel_delivered_once(void **state) {
  (void)state;
  TT_RUN_OK(main_cancel_once, NULL);
}

/* A request made after the task observed the first one is a new request: delivered again. */
static int cancel_twice_victim(void *arg) {
  int *rcs = arg;
  rcs[0] = tsk_sleep(3600 * 1000);
  rcs[1] = tsk_sleep(3600 * 1000);
  rcs[2] = tsk_sleep(1);
  return rcs[1];
}

static int main_cancel_again(void *arg) {
  (void)arg;
  int rcs[3] = {1, 1, 1};
  tsk_task_t h;
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &h, "victim", cancel_twice_victim, rcs));
  TT_RC(0, tsk_yield());
  TT_RC(0, tsk_cancel(h));
  TT_RC(0, tsk_yield()); /* it observes the cancellation and sleeps again */
  TT_RC(TSK_ECANCELED, rcs[0]);
  TT_CHECK(state_of(h) == TSK_TASK_WAITING);
  TT_RC(0, tsk_cancel(h));
  tsk_result_t res;
  TT_RC(TSK_ECANCELED, tsk_join(h, TSK_FOREVER, &res));
  TT_RC(TSK_ECANCELED, rcs[1]);
  TT_RC(0, rcs[2]);
  TT_CHECK(res.state == TSK_TASK_CANCELLED);
  return 0;
}

static void test_cancel_again_after_observed(void **state) {
  (void)state;
  TT_RUN_OK(main_cancel_again, NULL);
}

/* Returning TSK_ECANCELED without a delivered request is a failure, not a cancellation. */
static int return_ecanceled(void *arg) {
  (void)arg;
  return TSK_ECANCELED;
}

static int main_cancel_finished(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_task_t h;
  TT_RC(0, tsk_spawn(rt, &h, NULL, value_child, &h));
  TT_RC(0, tsk_yield());
  TT_CHECK(state_of(h) == TSK_TASK_DONE);
  TT_RC(0, tsk_cancel(h)); /* no-op */
  TT_CHECK(state_of(h) == TSK_TASK_DONE);
  tsk_result_t res;
  TT_RC(0, tsk_join(h, TSK_FOREVER, &res));
  TT_CHECK(res.state == TSK_TASK_DONE);
  TT_CHECK(res.value == &h);
  TT_RC(TSK_ESTALE, tsk_cancel(h)); /* released */

  TT_RC(0, tsk_spawn(rt, &h, NULL, return_ecanceled, NULL));
  TT_RC(TSK_ECANCELED, tsk_join(h, TSK_FOREVER, &res));
  TT_CHECK(res.state == TSK_TASK_FAILED);
  return 0;
}

static void test_cancel_finished_noop(void **state) {
  (void)state;
  TT_RUN_OK(main_cancel_finished, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* join with timeout, joiner cancelled                                                         */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
  int wait_rc;
  int cleanup_ran;
  int linger_ms; /* keeps running this long after the cancellation */
} target_ctx;

static int timeout_target(void *arg) {
  target_ctx *c = arg;
  c->wait_rc = tsk_sleep(3600 * 1000);
  if (c->linger_ms) TT_RC(0, tsk_sleep((uint64_t)c->linger_ms));
  c->cleanup_ran = 1;
  return c->wait_rc;
}

static int main_join_timeout(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  for (int i = 0; i < 3; i++) {
    int64_t timeout = i == 0 ? 20 : i == 1 ? 0 : 5;
    target_ctx c = {0, 0, i == 2 ? 15 : 0};
    tsk_task_t h;
    TT_RC(0, tsk_spawn(rt, &h, "target", timeout_target, &c));
    if (i == 1) TT_RC(0, tsk_yield()); /* let it start (a poll of an unstarted task works too) */
    uint64_t t0 = tt_now();
    tsk_result_t res;
    TT_RC(TSK_ETIMEDOUT, tsk_join(h, timeout, &res));
    uint64_t el = tt_now() - t0;
    TT_CHECK(el >= (uint64_t)timeout + (uint64_t)c.linger_ms);
    TT_RC(TSK_ECANCELED, c.wait_rc);
    TT_CHECK(c.cleanup_ran == 1); /* the target finished before join returned */
    TT_CHECK(res.state == TSK_TASK_CANCELLED);
    TT_RC(TSK_ESTALE, tsk_join(h, TSK_FOREVER, NULL)); /* released */
  }
  /* A target that finishes within the limit. */
  tsk_task_t h;
  TT_RC(0, tsk_spawn(rt, &h, NULL, return_zero, NULL));
  TT_RC(0, tsk_join(h, 1000, NULL));
  return 0;
}

static void test_join_timeout(void **state) {
  (void)state;
  TT_RUN_OK(main_join_timeout, NULL);
}

typedef struct {
  tsk_task_t target;
  int join_rc;
} joiner_ctx;

static int joiner(void *arg) {
  joiner_ctx *j = arg;
  j->join_rc = tsk_join(j->target, TSK_FOREVER, NULL);
  return j->join_rc;
}

static int main_joiner_cancelled(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_event_t *ev;
  TT_RC(0, tsk_event_new(rt, &ev));
  joiner_ctx j;
  memset(&j, 0, sizeof j);
  TT_RC(0, tsk_spawn(rt, &j.target, "target", wait_event_task, ev));
  tsk_task_t jh;
  TT_RC(0, tsk_spawn(rt, &jh, "joiner", joiner, &j));
  TT_RC(0, tsk_yield());
  TT_CHECK(state_of(j.target) == TSK_TASK_WAITING);
  TT_CHECK(state_of(jh) == TSK_TASK_WAITING);
  /* Somebody else joining meanwhile: busy. Detaching a joined task too. */
  TT_RC(TSK_EBUSY, tsk_join(j.target, TSK_FOREVER, NULL));
  TT_RC(TSK_EBUSY, tsk_detach(j.target));
  TT_RC(0, tsk_cancel(jh));
  tsk_result_t res;
  TT_RC(TSK_ECANCELED, tsk_join(jh, TSK_FOREVER, &res));
  TT_RC(TSK_ECANCELED, j.join_rc);
  TT_CHECK(res.state == TSK_TASK_CANCELLED);
  /* The target is untouched and its handle still valid. */
  TT_CHECK(state_of(j.target) == TSK_TASK_WAITING);
  TT_RC(0, tsk_event_set(ev));
  TT_RC(0, tsk_join(j.target, TSK_FOREVER, NULL));
  TT_RC(0, tsk_event_free(ev));
  return 0;
}

static void test_joiner_cancelled(void **state) {
  (void)state;
  TT_RUN_OK(main_joiner_cancelled, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* deadline scopes                                                                             */
/* ------------------------------------------------------------------------------------------ */

static int main_timeout_scope(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_event_t *ev;
  TT_RC(0, tsk_event_new(rt, &ev));

  TT_RC(TSK_EINVAL, tsk_timeout_pop()); /* nothing pushed */

  /* A sleep longer than the scope ends at the deadline. */
  uint64_t t0 = tt_now();
  TT_RC(0, tsk_timeout_push(30));
  TT_RC(TSK_ETIMEDOUT, tsk_sleep(3600 * 1000));
  TT_CHECK(tt_now() - t0 >= 30);
  /* Past the deadline every wait of the scope times out. */
  TT_RC(TSK_ETIMEDOUT, tsk_event_wait(ev, TSK_FOREVER));
  TT_RC(0, tsk_timeout_pop());
  /* Outside the scope waits work again. */
  TT_RC(0, tsk_sleep(1));
  TT_RC(TSK_ETIMEDOUT, tsk_event_wait(ev, 1));

  /* A sleep shorter than the scope is simply a sleep. */
  TT_RC(0, tsk_timeout_push(5000));
  TT_RC(0, tsk_sleep(2));
  TT_RC(0, tsk_timeout_pop());

  /* Nesting: the earliest deadline rules, whichever level it is on. */
  t0 = tt_now();
  TT_RC(0, tsk_timeout_push(5000));
  TT_RC(0, tsk_timeout_push(20));
  TT_RC(TSK_ETIMEDOUT, tsk_event_wait(ev, TSK_FOREVER));
  TT_CHECK(tt_now() - t0 >= 20);
  TT_RC(0, tsk_timeout_pop());
  TT_RC(0, tsk_timeout_pop());

  t0 = tt_now();
  TT_RC(0, tsk_timeout_push(20));
  TT_RC(0, tsk_timeout_push(5000)); /* inner scope later than the outer one */
  TT_RC(TSK_ETIMEDOUT, tsk_event_wait(ev, TSK_FOREVER));
  TT_CHECK(tt_now() - t0 >= 20);
  TT_RC(0, tsk_timeout_pop());
  TT_RC(0, tsk_timeout_pop());

  /* A wait's own shorter limit still applies inside a scope. */
  TT_RC(0, tsk_timeout_push(5000));
  t0 = tt_now();
  TT_RC(TSK_ETIMEDOUT, tsk_event_wait(ev, 5));
  TT_CHECK(tt_now() - t0 >= 5);
  TT_RC(0, tsk_timeout_pop());

  /* A join inside an expiring scope behaves as a join timeout: the target is cancelled. */
  target_ctx c = {0, 0, 0};
  tsk_task_t h;
  TT_RC(0, tsk_spawn(rt, &h, "target", timeout_target, &c));
  TT_RC(0, tsk_timeout_push(10));
  TT_RC(TSK_ETIMEDOUT, tsk_join(h, TSK_FOREVER, NULL));
  TT_RC(0, tsk_timeout_pop());
  TT_RC(TSK_ECANCELED, c.wait_rc);
  TT_CHECK(c.cleanup_ran);

  /* At most 16 nested scopes. */
  for (int i = 0; i < 16; i++) TT_RC(0, tsk_timeout_push(10000));
  TT_RC(TSK_EFULL, tsk_timeout_push(10000));
  for (int i = 0; i < 16; i++) TT_RC(0, tsk_timeout_pop());
  TT_RC(TSK_EINVAL, tsk_timeout_pop());

  TT_RC(0, tsk_event_free(ev));
  return 0;
}

static void test_timeout_scope(void **state) {
  (void)state;
  TT_RUN_OK(main_timeout_scope, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* misuse                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void test_wait_outside_task(void **state) {
  (void)state;
  tsk_runtime_t *rt;
  TT_ASSERT_RC(0, tsk_runtime_new(&rt));
  tsk_event_t *ev;
  tsk_future_t *f;
  tsk_promise_t *p;
  tsk_channel_t *ch;
  TT_ASSERT_RC(0, tsk_event_new(rt, &ev));
  TT_ASSERT_RC(0, tsk_future_new(rt, &f, &p));
  TT_ASSERT_RC(0, tsk_channel_new(rt, 1, &ch));

  TT_ASSERT_RC(TSK_ENOTASK, tsk_yield());
  TT_ASSERT_RC(TSK_ENOTASK, tsk_sleep(1));
  TT_ASSERT_RC(TSK_ENOTASK, tsk_sleep(0));
  TT_ASSERT_RC(TSK_ENOTASK, tsk_timeout_push(10));
  TT_ASSERT_RC(TSK_ENOTASK, tsk_timeout_pop());
  TT_ASSERT_RC(TSK_ENOTASK, tsk_event_wait(ev, TSK_FOREVER));
  TT_ASSERT_RC(TSK_ENOTASK, tsk_event_wait(ev, 10));
  void *v;
  TT_ASSERT_RC(TSK_ENOTASK, tsk_future_wait(f, TSK_FOREVER, &v));
  TT_ASSERT_RC(TSK_ENOTASK, tsk_channel_recv(ch, &v, TSK_FOREVER));
  TT_ASSERT_RC(0, tsk_channel_try_send(ch, NULL));
  TT_ASSERT_RC(TSK_ENOTASK, tsk_channel_send(ch, NULL, TSK_FOREVER));
  assert_int_equal(0, tsk_cancel_requested());
  tsk_set_result(&v); /* harmless outside a task */

  /* Nothing was left behind by the refused waits. */
  TT_ASSERT_RC(0, tsk_event_free(ev));
  TT_ASSERT_RC(0, tsk_channel_free(ch));
  tsk_promise_release(p);
  tsk_future_release(f);
  tsk_stats_t st;
  tsk_runtime_stats(rt, &st);
  assert_int_equal(0, st.waiting);
  assert_int_equal(0, st.spawned);
  TT_ASSERT_RC(0, tsk_runtime_close(rt));
}

static int main_stale_handles(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_task_t h;
  TT_RC(0, tsk_spawn(rt, &h, NULL, return_zero, NULL));
  TT_RC(0, tsk_join(h, TSK_FOREVER, NULL));
  TT_RC(TSK_ESTALE, tsk_join(h, TSK_FOREVER, NULL)); /* joined twice */
  TT_RC(TSK_ESTALE, tsk_detach(h));

  /* The released struct is recycled by the next spawn: the old handle must not reach it. */
  tsk_task_t h2;
  TT_RC(0, tsk_spawn(rt, &h2, NULL, return_zero, NULL));
  TT_RC(TSK_ESTALE, tsk_join(h, TSK_FOREVER, NULL));
  TT_RC(TSK_ESTALE, tsk_cancel(h));
  TT_RC(0, tsk_join(h2, TSK_FOREVER, NULL));

  TT_RC(0, tsk_spawn(rt, &h, NULL, return_zero, NULL));
  TT_RC(0, tsk_detach(h));
  TT_RC(TSK_ESTALE, tsk_join(h, TSK_FOREVER, NULL)); /* joined after detach */

  tsk_task_t none = {NULL, 0};
  TT_RC(TSK_EINVAL, tsk_join(none, TSK_FOREVER, NULL));
  TT_RC(TSK_EINVAL, tsk_detach(none));
  TT_RC(TSK_EINVAL, tsk_cancel(none));
  TT_RC(TSK_EDEADLK, tsk_join(tsk_self(), TSK_FOREVER, NULL)); /* main joining itself */
  return 0;
}

static void test_stale_handles(void **state) {
  (void)state;
  TT_RUN_OK(main_stale_handles, NULL);
}

static int join_self_child(void *arg) {
  (void)arg;
  return tsk_join(tsk_self(), 100, NULL);
}

static int main_join_self(void *arg) {
  (void)arg;
  tsk_task_t h;
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &h, NULL, join_self_child, NULL));
  TT_RC(TSK_EDEADLK, tsk_join(h, TSK_FOREVER, NULL));
  return 0;
}

static void test_join_self(void **state) {
  (void)state;
  TT_RUN_OK(main_join_self, NULL);
}

static int main_two_joiners(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_event_t *ev;
  TT_RC(0, tsk_event_new(rt, &ev));
  joiner_ctx j1, j2;
  memset(&j1, 0, sizeof j1);
  TT_RC(0, tsk_spawn(rt, &j1.target, "target", wait_event_task, ev));
  j2 = j1;
  j2.join_rc = 1;
  tsk_task_t h1, h2;
  TT_RC(0, tsk_spawn(rt, &h1, "j1", joiner, &j1));
  TT_RC(0, tsk_spawn(rt, &h2, "j2", joiner, &j2));
  TT_RC(0, tsk_yield()); /* target waits, j1 joins it, j2 is refused */
  TT_RC(TSK_EBUSY, j2.join_rc);
  TT_RC(TSK_EBUSY, tsk_join(h2, TSK_FOREVER, NULL));
  TT_RC(0, tsk_event_set(ev));
  TT_RC(0, tsk_join(h1, TSK_FOREVER, NULL));
  TT_RC(0, j1.join_rc);
  TT_RC(TSK_ESTALE, tsk_join(j1.target, 0, NULL)); /* j1 released it */
  TT_RC(0, tsk_event_free(ev));
  return 0;
}

static void test_two_joiners(void **state) {
  (void)state;
  TT_RUN_OK(main_two_joiners, NULL);
}

static int main_reentrant(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  TT_RC(TSK_EBUSY, tsk_run(rt));
  TT_RC(TSK_EBUSY, tsk_run_main(rt, "nested", return_zero, NULL, NULL));
  TT_RC(TSK_EBUSY, tsk_runtime_close(rt));
  return 0;
}

static void test_invalid_arguments(void **state) {
  (void)state;
  tsk_runtime_t *rt;
  TT_ASSERT_RC(0, tsk_runtime_new(&rt));
  tsk_task_t h;
  TT_ASSERT_RC(TSK_EINVAL, tsk_spawn(NULL, &h, "x", return_zero, NULL));
  TT_ASSERT_RC(TSK_EINVAL, tsk_spawn(rt, &h, "x", NULL, NULL));
  TT_ASSERT_RC(TSK_EINVAL, tsk_spawn(rt, NULL, "x", return_zero, NULL));
  TT_ASSERT_RC(TSK_EINVAL, tsk_spawn_ex(rt, NULL, NULL, return_zero, NULL));
  TT_ASSERT_RC(TSK_EINVAL, tsk_spawn_ex(NULL, &h, NULL, return_zero, NULL));
  TT_ASSERT_RC(TSK_EINVAL, tsk_post(NULL, "x", return_zero, NULL));
  TT_ASSERT_RC(TSK_EINVAL, tsk_post(rt, "x", NULL, NULL));
  TT_ASSERT_RC(TSK_EINVAL, tsk_run_main(rt, "x", NULL, NULL, NULL));
  TT_ASSERT_RC(TSK_EINVAL, tsk_runtime_close(NULL));
  TT_ASSERT_RC(TSK_EINVAL, tsk_runtime_new_on(NULL, &rt));
  tsk_stats_t st;
  tsk_runtime_stats(rt, &st);
  assert_int_equal(0, st.spawned);
  /* Spawn with opts NULL = defaults. */
  TT_ASSERT_RC(0, tsk_spawn_ex(rt, &h, NULL, return_zero, NULL));
  /* Re-entrancy: tsk_run / tsk_run_main / tsk_runtime_close from a task. */
  TT_ASSERT_RC(0, tsk_run_main(rt, "main", main_reentrant, NULL, NULL));
  TT_ASSERT_RC(0, tsk_join(h, 0, NULL));
  /* A spawn into a closing runtime (TSK_ECLOSED) or a tsk_post racing with tsk_runtime_close
   * cannot be observed from outside: tsk_runtime_close runs to completion and frees the
   * runtime, and it refuses to run from a task (checked above). Not tested. */
  TT_ASSERT_RC(0, tsk_runtime_close(rt));
}

/* ------------------------------------------------------------------------------------------ */
/* wrong thread                                                                                */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
  tsk_runtime_t *rt;
  tsk_task_t task;
  tsk_event_t *event;
  tsk_channel_t *channel;
  tsk_future_t *future;
  tsk_promise_t *promise;
  int rc[20];
  int posted;
} wrong_thread_ctx;

static int posted_fn(void *arg) {
  ((wrong_thread_ctx *)arg)->posted++;
  return 0;
}

static void *wrong_thread_main(void *arg) {
  wrong_thread_ctx *c = arg;
  tsk_task_t h;
  tsk_event_t *e;
  tsk_future_t *f;
  tsk_promise_t *p;
  tsk_channel_t *ch;
  tsk_task_state_t st;
  void *v;
  int i = 0;
  c->rc[i++] = tsk_spawn(c->rt, &h, "x", return_zero, NULL);
  c->rc[i++] = tsk_join(c->task, 0, NULL);
  c->rc[i++] = tsk_detach(c->task);
  c->rc[i++] = tsk_cancel(c->task);
  c->rc[i++] = tsk_task_state(c->task, &st);
  c->rc[i++] = tsk_event_set(c->event);
  c->rc[i++] = tsk_event_clear(c->event);
  c->rc[i++] = tsk_event_free(c->event);
  c->rc[i++] = tsk_event_new(c->rt, &e);
  c->rc[i++] = tsk_future_new(c->rt, &f, &p);
  c->rc[i++] = tsk_promise_resolve(c->promise, NULL);
  c->rc[i++] = tsk_channel_new(c->rt, 4, &ch);
  c->rc[i++] = tsk_channel_try_send(c->channel, NULL);
  c->rc[i++] = tsk_channel_try_recv(c->channel, &v);
  c->rc[i++] = tsk_channel_close(c->channel);
  c->rc[i++] = tsk_run(c->rt);
  c->rc[i++] = tsk_runtime_close(c->rt);
  c->rc[i++] = tsk_runtime_set_stack_size(c->rt, 1 << 20);
  /* The one thread-safe entry point. */
  c->rc[i++] = tsk_post(c->rt, "posted", posted_fn, c);
  return NULL;
}

static void test_wrong_thread(void **state) {
  (void)state;
  wrong_thread_ctx c;
  memset(&c, 0, sizeof c);
  TT_ASSERT_RC(0, tsk_runtime_new(&c.rt));
  TT_ASSERT_RC(0, tsk_event_new(c.rt, &c.event));
  TT_ASSERT_RC(0, tsk_channel_new(c.rt, 2, &c.channel));
  TT_ASSERT_RC(0, tsk_future_new(c.rt, &c.future, &c.promise));
  TT_ASSERT_RC(0, tsk_spawn(c.rt, &c.task, "t", wait_event_task, c.event));
  TT_ASSERT_RC(0, tsk_run(c.rt)); /* the task now waits on the event */
  pthread_t th;
  assert_int_equal(0, pthread_create(&th, NULL, wrong_thread_main, &c));
  assert_int_equal(0, pthread_join(th, NULL));
  for (int i = 0; i < 18; i++) {
    if (c.rc[i] != TSK_EWRONGTHREAD) fail_msg("call #%d from another thread returned %s", i,
                                              tt_name(c.rc[i]));
  }
  TT_ASSERT_RC(0, c.rc[18]); /* tsk_post */
  /* Nothing changed. */
  tsk_task_state_t st;
  TT_ASSERT_RC(0, tsk_task_state(c.task, &st));
  assert_int_equal(TSK_TASK_WAITING, st);
  assert_false(tsk_event_is_set(c.event));
  assert_int_equal(0, tsk_channel_len(c.channel));
  assert_false(tsk_future_done(c.future));
  /* The posted work runs on the owner's loop. */
  assert_int_equal(0, c.posted);
  TT_ASSERT_RC(0, tsk_run(c.rt));
  assert_int_equal(1, c.posted);

  TT_ASSERT_RC(0, tsk_event_set(c.event));
  TT_ASSERT_RC(0, tsk_run(c.rt));
  TT_ASSERT_RC(0, tsk_join(c.task, 0, NULL));
  TT_ASSERT_RC(0, tsk_event_free(c.event));
  TT_ASSERT_RC(0, tsk_channel_free(c.channel));
  tsk_promise_release(c.promise);
  tsk_future_release(c.future);
  TT_ASSERT_RC(0, tsk_runtime_close(c.rt));
}

/* ------------------------------------------------------------------------------------------ */
/* error names                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static void test_strerror(void **state) {
  (void)state;
  assert_string_equal("TSK_ECANCELED", tsk_err_name(TSK_ECANCELED));
  assert_string_equal("task was cancelled", tsk_strerror(TSK_ECANCELED));
  assert_string_equal("TSK_ETIMEDOUT", tsk_err_name(TSK_ETIMEDOUT));
  assert_string_equal("timed out", tsk_strerror(TSK_ETIMEDOUT));
  assert_string_equal("TSK_EOPTION", tsk_err_name(TSK_EOPTION));
  assert_string_equal("TSK_EWRONGTHREAD", tsk_err_name(TSK_EWRONGTHREAD));
  /* Every taskscope code has its own name and a text. */
  for (int e = TSK_ECANCELED; e > TSK_E_LAST_; e--) {
    const char *name = tsk_err_name(e);
    const char *text = tsk_strerror(e);
    assert_non_null(name);
    assert_non_null(text);
    assert_true(strncmp(name, "TSK_E", 5) == 0);
    assert_true(text[0] != 0);
    for (int o = TSK_ECANCELED; o > e; o--) assert_string_not_equal(name, tsk_err_name(o));
  }
  /* Success. */
  assert_string_equal("success", tsk_strerror(0));
  assert_string_equal("OK", tsk_err_name(0));
  /* libuv codes pass through. */
  assert_string_equal("ENOENT", tsk_err_name(UV_ENOENT));
  assert_string_equal(uv_strerror(UV_ENOENT), tsk_strerror(UV_ENOENT));
  assert_string_equal("ECONNREFUSED", tsk_err_name(UV_ECONNREFUSED));
  assert_string_equal("EOF", tsk_err_name(UV_EOF));
  /* Unknown codes: never NULL, and (checked by LeakSanitizer) no allocation left behind. */
  const int unknown[] = {12345, 1, -29999, -30000, TSK_E_LAST_, -30100, -123456};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    const char *n = tsk_err_name(unknown[i]);
    const char *t = tsk_strerror(unknown[i]);
    assert_non_null(n);
    assert_non_null(t);
    assert_true(n[0] != 0);
    assert_true(t[0] != 0);
  }
  assert_string_equal("unknown error", tsk_strerror(12345));
  assert_string_equal("UNKNOWN", tsk_err_name(12345));
  assert_non_null(strstr(tsk_err_name(-29999), "-29999"));
  assert_non_null(strstr(tsk_strerror(-123456), "-123456"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TT_TEST(test_join_value),
      TT_TEST(test_join_error),
      TT_TEST(test_spawn_order_fifo),
      TT_TEST(test_parent_and_names),
      TT_TEST(test_detach),
      TT_TEST(test_join_outside_task),
      TT_TEST(test_yield_interleave),
      TT_TEST(test_sleep),
      TT_TEST(test_sleep_order),
      TT_TEST(test_cancel_each_wait),
      TT_TEST(test_cancel_delivered_once),
      TT_TEST(test_cancel_again_after_observed),
      TT_TEST(test_cancel_finished_noop),
      TT_TEST(test_join_timeout),
      TT_TEST(test_joiner_cancelled),
      TT_TEST(test_timeout_scope),
      TT_TEST(test_wait_outside_task),
      TT_TEST(test_stale_handles),
      TT_TEST(test_join_self),
      TT_TEST(test_two_joiners),
      TT_TEST(test_invalid_arguments),
      TT_TEST(test_wrong_thread),
      TT_TEST(test_strerror),
  };
  return TT_RUN_GROUP(tests);
}
