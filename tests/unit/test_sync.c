/*
 * test_sync.c — futures (with their separately counted completer side), events and channels.
 *
 * Every test creates its own runtime, drives a main task with tsk_run_main and closes the
 * runtime. Checks inside tasks are the soft TT_CHECK / TT_RC (see common/tt_core.h).
 */
#include "common/tt_core.h"

#include <stdlib.h>

static tsk_task_state_t state_of(tsk_task_t h) {
  tsk_task_state_t st = (tsk_task_state_t)-1;
  TT_RC(0, tsk_task_state(h, &st));
  return st;
}

/* ------------------------------------------------------------------------------------------ */
/* futures                                                                                     */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
  tsk_future_t *f;
  int64_t timeout;
  int rc;
  void *value;
  int woke;
} fwaiter;

static int future_waiter(void *arg) {
  fwaiter *w = arg;
  w->value = (void *)(uintptr_t)0xdead;
  w->rc = tsk_future_wait(w->f, w->timeout, &w->value);
  w->woke = 1;
  return 0;
}

static int main_future_resolve(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  static int payload;
  tsk_future_t *f;
  tsk_promise_t *p;

  /* Resolved before anyone waits: the wait returns at once. */
  TT_RC(0, tsk_future_new(rt, &f, &p));
  TT_CHECK(!tsk_future_done(f));
  TT_RC(0, tsk_promise_resolve(p, &payload));
  TT_CHECK(tsk_future_done(f));
  void *v = NULL;
  TT_RC(0, tsk_future_wait(f, TSK_FOREVER, &v));
  TT_CHECK(v == &payload);
  TT_RC(0, tsk_future_wait(f, 0, NULL)); /* value may be NULL; a poll of a done future */
  tsk_promise_release(p);
  tsk_future_release(f);

  /* Resolved while several tasks wait: all wake with the value. */
  TT_RC(0, tsk_future_new(rt, &f, &p));
  fwaiter w[4];
  tsk_task_t h[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (fwaiter){f, TSK_FOREVER, 1, NULL, 0};
    TT_RC(0, tsk_spawn(rt, &h[i], "waiter", future_waiter, &w[i]));
  }
  TT_RC(0, tsk_yield());
  for (int i = 0; i < 4; i++) {
    TT_CHECK(state_of(h[i]) == TSK_TASK_WAITING);
    TT_CHECK(!w[i].woke);
  }
  TT_RC(0, tsk_promise_resolve(p, &payload));
  TT_RC(TSK_EBUSY, tsk_promise_resolve(p, NULL)); /* a second completion */
  TT_RC(TSK_EBUSY, tsk_promise_reject(p, UV_EIO));
  for (int i = 0; i < 4; i++) {
    TT_RC(0, tsk_join(h[i], TSK_FOREVER, NULL));
    TT_RC(0, w[i].rc);
    TT_CHECK(w[i].value == &payload);
  }
  /* The outcome stays. */
  TT_RC(0, tsk_future_wait(f, TSK_FOREVER, &v));
  TT_CHECK(v == &payload);
  /* Releases in either order free it (ASan checks). */
  tsk_future_release(f);
  tsk_promise_release(p);
  return 0;
}

static void test_future_resolve(void **state) {
  (void)state;
  TT_RUN_OK(main_future_resolve, NULL);
}

static int main_future_reject(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_future_t *f;
  tsk_promise_t *p;
  TT_RC(0, tsk_future_new(rt, &f, &p));
  TT_RC(TSK_EINVAL, tsk_promise_reject(p, 0)); /* a rejection needs an error */
  TT_RC(TSK_EINVAL, tsk_promise_reject(p, 5));
  TT_CHECK(!tsk_future_done(f));
  fwaiter w[2];
  tsk_task_t h[2];
  for (int i = 0; i < 2; i++) {
    w[i] = (fwaiter){f, TSK_FOREVER, 1, NULL, 0};
    TT_RC(0, tsk_spawn(rt, &h[i], "waiter", future_waiter, &w[i]));
  }
  TT_RC(0, tsk_yield());
  TT_RC(0, tsk_promise_reject(p, UV_ECONNRESET));
  TT_CHECK(tsk_future_done(f));
  TT_RC(TSK_EBUSY, tsk_promise_resolve(p, NULL));
  for (int i = 0; i < 2; i++) {
    TT_RC(0, tsk_join(h[i], TSK_FOREVER, NULL));
    TT_RC(UV_ECONNRESET, w[i].rc); /* the rejection's error passes through */
    TT_CHECK(w[i].value == (void *)(uintptr_t)0xdead); /* *value untouched */
  }
  void *v = NULL;
  TT_RC(UV_ECONNRESET, tsk_future_wait(f, TSK_FOREVER, &v)); /* later waits too */
  TT_RC(UV_ECONNRESET, tsk_future_wait(f, 0, &v));
  tsk_promise_release(p);
  tsk_future_release(f);

  /* A taskscope code as the rejection. */
  TT_RC(0, tsk_future_new(rt, &f, &p));
  TT_RC(0, tsk_promise_reject(p, TSK_EFAILED));
  TT_RC(TSK_EFAILED, tsk_future_wait(f, TSK_FOREVER, NULL));
  tsk_future_release(f);
  tsk_promise_release(p);
  return 0;
}

static void test_future_reject(void **state) {
  (void)state;
  TT_RUN_OK(main_future_reject, NULL);
}

static int main_future_timeout(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_future_t *f;
  tsk_promise_t *p;
  TT_RC(0, tsk_future_new(rt, &f, &p));
  void *v = NULL;
  TT_RC(TSK_ETIMEDOUT, tsk_future_wait(f, 0, &v)); /* a poll */
  uint64_t t0 = tt_now();
  TT_RC(TSK_ETIMEDOUT, tsk_future_wait(f, 25, &v));
  TT_CHECK(tt_now() - t0 >= 25);
  /* One waiter times out, another keeps waiting; the timed-out one left nothing behind. */
  fwaiter quick = {f, 5, 1, NULL, 0}, patient = {f, TSK_FOREVER, 1, NULL, 0};
  tsk_task_t hq, hp;
  TT_RC(0, tsk_spawn(rt, &hq, "quick", future_waiter, &quick));
  TT_RC(0, tsk_spawn(rt, &hp, "patient", future_waiter, &patient));
  TT_RC(0, tsk_join(hq, TSK_FOREVER, NULL));
  TT_RC(TSK_ETIMEDOUT, quick.rc);
  TT_CHECK(state_of(hp) == TSK_TASK_WAITING);
  TT_RC(0, tsk_promise_resolve(p, &quick));
  TT_RC(0, tsk_join(hp, TSK_FOREVER, NULL));
  TT_RC(0, patient.rc);
  TT_CHECK(patient.value == &quick);
  TT_RC(0, tsk_future_wait(f, 5, &v));
  TT_CHECK(v == &quick);
  tsk_promise_release(p);
  tsk_future_release(f);
  return 0;
}

static void test_future_timeout(void **state) {
  (void)state;
  TT_RUN_OK(main_future_timeout, NULL);
}

/* The completer side is counted: the future breaks when its last completer goes. */
static int main_future_broken(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_future_t *f;
  tsk_promise_t *p;
  TT_RC(0, tsk_future_new(rt, &f, &p));
  tsk_promise_t *p2 = tsk_promise_ref(p);
  TT_CHECK(p2 == p);
  fwaiter w[3];
  tsk_task_t h[3];
  for (int i = 0; i < 3; i++) {
    w[i] = (fwaiter){f, TSK_FOREVER, 1, NULL, 0};
    TT_RC(0, tsk_spawn(rt, &h[i], "stranded", future_waiter, &w[i]));
  }
  TT_RC(0, tsk_yield());
  tsk_promise_release(p); /* one completer left */
  TT_RC(0, tsk_yield());
  for (int i = 0; i < 3; i++) {
    TT_CHECK(state_of(h[i]) == TSK_TASK_WAITING);
    TT_CHECK(!w[i].woke);
  }
  TT_CHECK(!tsk_future_done(f));
  tsk_promise_release(p2); /* the last: nobody can complete it any more */
  /* The waiters are woken at once (they are ready now, no timer involved). */
  for (int i = 0; i < 3; i++) TT_CHECK(state_of(h[i]) == TSK_TASK_READY);
  for (int i = 0; i < 3; i++) {
    TT_RC(0, tsk_join(h[i], TSK_FOREVER, NULL));
    TT_RC(TSK_EBROKEN, w[i].rc);
  }
  /* Later waits fail the same way, without waiting. */
  TT_RC(TSK_EBROKEN, tsk_future_wait(f, TSK_FOREVER, NULL));
  TT_CHECK(!tsk_future_done(f)); /* broken is not completed */
  tsk_future_release(f);

  /* Broken with no waiter at all, then waited. */
  TT_RC(0, tsk_future_new(rt, &f, &p));
  tsk_promise_release(p);
  TT_RC(TSK_EBROKEN, tsk_future_wait(f, 10, NULL));
  tsk_future_release(f);

  /* A completed future does not break when its completers go. */
  TT_RC(0, tsk_future_new(rt, &f, &p));
  TT_RC(0, tsk_promise_resolve(p, f));
  tsk_promise_release(p);
  void *v = NULL;
  TT_RC(0, tsk_future_wait(f, TSK_FOREVER, &v));
  TT_CHECK(v == f);
  tsk_future_release(f);

  /* Waiter side released first, completers later (with a waiter... gone): frees cleanly. */
  TT_RC(0, tsk_future_new(rt, &f, &p));
  tsk_future_release(f);
  TT_RC(0, tsk_promise_resolve(p, NULL));
  tsk_promise_release(p);

  TT_RC(0, tsk_future_new(rt, &f, &p));
  tsk_future_release(f);
  tsk_promise_release(p); /* breaks an unobserved future: no waiter, just freed */
  return 0;
}

static void test_future_broken(void **state) {
  (void)state;
  TT_RUN_OK(main_future_broken, NULL);
}

/* Both sides released while woken waiters have not run yet: each waiter must still get its
 * outcome without touching freed memory (AddressSanitizer checks). */
static int main_future_release_while_waking(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  static int payload;
  for (int mode = 0; mode < 3; mode++) {
    tsk_future_t *f;
    tsk_promise_t *p;
    TT_RC(0, tsk_future_new(rt, &f, &p));
    fwaiter w[3];
    tsk_task_t h[3];
    for (int i = 0; i < 3; i++) {
      w[i] = (fwaiter){f, TSK_FOREVER, 1, NULL, 0};
      TT_RC(0, tsk_spawn(rt, &h[i], "waiter", future_waiter, &w[i]));
    }
    TT_RC(0, tsk_yield());
    int expect = 0;
    if (mode == 0) {
      TT_RC(0, tsk_promise_resolve(p, &payload));
    } else if (mode == 1) {
      TT_RC(0, tsk_promise_reject(p, UV_EPIPE));
      expect = UV_EPIPE;
    } else {
      expect = TSK_EBROKEN; /* the release below breaks it */
    }
    tsk_future_release(f);
    tsk_promise_release(p);
    for (int i = 0; i < 3; i++) {
      TT_RC(0, tsk_join(h[i], TSK_FOREVER, NULL));
      TT_RC(expect, w[i].rc);
      if (mode == 0) TT_CHECK(w[i].value == &payload);
    }
  }
  return 0;
}

static void test_future_release_while_waking(void **state) {
  (void)state;
  TT_RUN_OK(main_future_release_while_waking, NULL);
}

static void test_future_invalid(void **state) {
  (void)state;
  tsk_runtime_t *rt;
  TT_ASSERT_RC(0, tsk_runtime_new(&rt));
  tsk_future_t *f;
  tsk_promise_t *p;
  TT_ASSERT_RC(TSK_EINVAL, tsk_future_new(NULL, &f, &p));
  TT_ASSERT_RC(TSK_EINVAL, tsk_future_new(rt, NULL, &p));
  TT_ASSERT_RC(TSK_EINVAL, tsk_future_new(rt, &f, NULL));
  TT_ASSERT_RC(TSK_EINVAL, tsk_future_wait(NULL, 0, NULL));
  TT_ASSERT_RC(TSK_EINVAL, tsk_promise_resolve(NULL, NULL));
  TT_ASSERT_RC(TSK_EINVAL, tsk_promise_reject(NULL, UV_EIO));
  assert_false(tsk_future_done(NULL));
  tsk_future_release(NULL);
  tsk_promise_release(NULL);
  assert_null(tsk_promise_ref(NULL));
  /* Completion works outside tasks (e.g. from a plain libuv callback on the loop thread). */
  TT_ASSERT_RC(0, tsk_future_new(rt, &f, &p));
  TT_ASSERT_RC(0, tsk_promise_resolve(p, rt));
  assert_true(tsk_future_done(f));
  tsk_promise_release(p);
  tsk_future_release(f);
  TT_ASSERT_RC(0, tsk_runtime_close(rt));
}

/* ------------------------------------------------------------------------------------------ */
/* events                                                                                      */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
  tsk_event_t *e;
  int64_t timeout;
  int rc;
  int woke;
} ewaiter;

static int event_waiter(void *arg) {
  ewaiter *w = arg;
  w->rc = tsk_event_wait(w->e, w->timeout);
  w->woke = 1;
  return 0;
}

static int main_event_basic(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_event_t *e;
  TT_RC(0, tsk_event_new(rt, &e));
  TT_CHECK(!tsk_event_is_set(e));
  ewaiter w[5];
  tsk_task_t h[5];
  for (int i = 0; i < 5; i++) {
    w[i] = (ewaiter){e, TSK_FOREVER, 1, 0};
    TT_RC(0, tsk_spawn(rt, &h[i], "ewaiter", event_waiter, &w[i]));
  }
  TT_RC(0, tsk_yield());
  for (int i = 0; i < 5; i++) TT_CHECK(state_of(h[i]) == TSK_TASK_WAITING);
  TT_RC(TSK_EBUSY, tsk_event_free(e)); /* waited on */
  TT_RC(0, tsk_event_set(e));          /* wakes all */
  TT_CHECK(tsk_event_is_set(e));
  TT_RC(0, tsk_event_set(e)); /* setting a set event is fine */
  for (int i = 0; i < 5; i++) {
    TT_RC(0, tsk_join(h[i], TSK_FOREVER, NULL));
    TT_RC(0, w[i].rc);
  }
  /* Stays set: waits return at once. */
  TT_RC(0, tsk_event_wait(e, TSK_FOREVER));
  TT_RC(0, tsk_event_wait(e, 0));
  /* Cleared: waits block again. */
  TT_RC(0, tsk_event_clear(e));
  TT_CHECK(!tsk_event_is_set(e));
  TT_RC(TSK_ETIMEDOUT, tsk_event_wait(e, 0));
  uint64_t t0 = tt_now();
  TT_RC(TSK_ETIMEDOUT, tsk_event_wait(e, 20));
  TT_CHECK(tt_now() - t0 >= 20);
  TT_RC(0, tsk_event_clear(e)); /* clearing a clear event is fine */

  /* A set immediately followed by a clear still wakes those that were waiting. */
  for (int i = 0; i < 2; i++) {
    w[i] = (ewaiter){e, TSK_FOREVER, 1, 0};
    TT_RC(0, tsk_spawn(rt, &h[i], "ewaiter", event_waiter, &w[i]));
  }
  TT_RC(0, tsk_yield());
  TT_RC(0, tsk_event_set(e));
  TT_RC(0, tsk_event_clear(e));
  for (int i = 0; i < 2; i++) {
    TT_RC(0, tsk_join(h[i], TSK_FOREVER, NULL));
    TT_RC(0, w[i].rc);
  }

  /* A waiter that timed out withdrew: the event can be freed although nobody ever set it. */
  w[0] = (ewaiter){e, 5, 1, 0};
  TT_RC(0, tsk_spawn(rt, &h[0], "ewaiter", event_waiter, &w[0]));
  TT_RC(0, tsk_join(h[0], TSK_FOREVER, NULL));
  TT_RC(TSK_ETIMEDOUT, w[0].rc);
  TT_RC(0, tsk_event_free(e));
  return 0;
}

static void test_event_basic(void **state) {
  (void)state;
  TT_RUN_OK(main_event_basic, NULL);
}

/* Waiters with different time limits: each times out on its own, the rest still wake. */
static int main_event_mixed_timeouts(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_event_t *e;
  TT_RC(0, tsk_event_new(rt, &e));
  ewaiter w[4] = {{e, 5, 1, 0}, {e, TSK_FOREVER, 1, 0}, {e, 10, 1, 0}, {e, 60000, 1, 0}};
  tsk_task_t h[4];
  for (int i = 0; i < 4; i++) TT_RC(0, tsk_spawn(rt, &h[i], NULL, event_waiter, &w[i]));
  TT_RC(0, tsk_join(h[0], TSK_FOREVER, NULL));
  TT_RC(0, tsk_join(h[2], TSK_FOREVER, NULL));
  TT_RC(TSK_ETIMEDOUT, w[0].rc);
  TT_RC(TSK_ETIMEDOUT, w[2].rc);
  TT_CHECK(!w[1].woke && !w[3].woke);
  TT_RC(0, tsk_event_set(e));
  TT_RC(0, tsk_join(h[1], TSK_FOREVER, NULL));
  TT_RC(0, tsk_join(h[3], TSK_FOREVER, NULL));
  TT_RC(0, w[1].rc);
  TT_RC(0, w[3].rc); /* its 60 s timer was disarmed: the test does not wait for it */
  TT_RC(0, tsk_event_free(e));
  return 0;
}

static void test_event_mixed_timeouts(void **state) {
  (void)state;
  TT_RUN_OK(main_event_mixed_timeouts, NULL);
}

static void test_event_invalid(void **state) {
  (void)state;
  tsk_runtime_t *rt;
  TT_ASSERT_RC(0, tsk_runtime_new(&rt));
  tsk_event_t *e;
  TT_ASSERT_RC(TSK_EINVAL, tsk_event_new(NULL, &e));
  TT_ASSERT_RC(TSK_EINVAL, tsk_event_new(rt, NULL));
  TT_ASSERT_RC(TSK_EINVAL, tsk_event_set(NULL));
  TT_ASSERT_RC(TSK_EINVAL, tsk_event_clear(NULL));
  TT_ASSERT_RC(TSK_EINVAL, tsk_event_wait(NULL, 0));
  TT_ASSERT_RC(TSK_EINVAL, tsk_event_free(NULL));
  assert_false(tsk_event_is_set(NULL));
  TT_ASSERT_RC(0, tsk_runtime_close(rt));
}

/* ------------------------------------------------------------------------------------------ */
/* channels                                                                                    */
/* ------------------------------------------------------------------------------------------ */

#define MSG(n) ((void *)(uintptr_t)(n))
#define NUM(p) ((int)(uintptr_t)(p))

static int main_channel_fifo(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_channel_t *ch;
  TT_RC(0, tsk_channel_new(rt, 4, &ch));
  void *m;
  TT_RC(TSK_EAGAIN, tsk_channel_try_recv(ch, &m));
  /* Wrap around the ring a few times. */
  int next_in = 1, next_out = 1;
  for (int round = 0; round < 5; round++) {
    for (int i = 0; i < 3; i++) TT_RC(0, tsk_channel_send(ch, MSG(next_in++), TSK_FOREVER));
    TT_CHECK(tsk_channel_len(ch) == 3);
    for (int i = 0; i < 3; i++) {
      TT_RC(0, tsk_channel_recv(ch, &m, TSK_FOREVER));
      TT_CHECK(NUM(m) == next_out);
      next_out++;
    }
  }
  /* Fill to capacity, then refused. */
  for (int i = 0; i < 4; i++) TT_RC(0, tsk_channel_try_send(ch, MSG(100 + i)));
  TT_CHECK(tsk_channel_len(ch) == 4);
  TT_RC(TSK_EFULL, tsk_channel_try_send(ch, MSG(999)));
  TT_RC(TSK_ETIMEDOUT, tsk_channel_send(ch, MSG(999), 0));
  uint64_t t0 = tt_now();
  TT_RC(TSK_ETIMEDOUT, tsk_channel_send(ch, MSG(999), 15));
  TT_CHECK(tt_now() - t0 >= 15);
  TT_CHECK(tsk_channel_len(ch) == 4); /* the timed-out sends left nothing */
  for (int i = 0; i < 4; i++) {
    TT_RC(0, tsk_channel_try_recv(ch, &m));
    TT_CHECK(NUM(m) == 100 + i);
  }
  TT_RC(TSK_EAGAIN, tsk_channel_try_recv(ch, &m));
  TT_RC(TSK_ETIMEDOUT, tsk_channel_recv(ch, &m, 0));
  t0 = tt_now();
  TT_RC(TSK_ETIMEDOUT, tsk_channel_recv(ch, &m, 15));
  TT_CHECK(tt_now() - t0 >= 15);
  /* NULL is a valid message. */
  TT_RC(0, tsk_channel_try_send(ch, NULL));
  m = MSG(1);
  TT_RC(0, tsk_channel_recv(ch, &m, 0));
  TT_CHECK(m == NULL);
  TT_RC(0, tsk_channel_free(ch));
  return 0;
}

static void test_channel_fifo(void **state) {
  (void)state;
  TT_RUN_OK(main_channel_fifo, NULL);
}

typedef struct {
  tsk_channel_t *ch;
  int first, count;
  int sent;     /* messages whose send returned 0 */
  int last_rc;  /* the last send's code */
} sender_ctx;

static int sender(void *arg) {
  sender_ctx *s = arg;
  for (int i = 0; i < s->count; i++) {
    s->last_rc = tsk_channel_send(s->ch, MSG(s->first + i), TSK_FOREVER);
    if (s->last_rc) return s->last_rc;
    s->sent++;
  }
  return 0;
}

typedef struct {
  tsk_channel_t *ch;
  int got[64];
  int n;
  int last_rc;
} receiver_ctx;

static int receiver(void *arg) {
  receiver_ctx *r = arg;
  for (;;) {
    void *m = NULL;
    r->last_rc = tsk_channel_recv(r->ch, &m, TSK_FOREVER);
    if (r->last_rc) return r->last_rc == TSK_ECLOSED ? 0 : r->last_rc;
    if (r->n < 64) r->got[r->n] = NUM(m);
    r->n++;
  }
}

static int main_channel_capacity(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_channel_t *ch;
  TT_RC(0, tsk_channel_new(rt, 2, &ch));
  sender_ctx s = {ch, 1, 5, 0, 1};
  tsk_task_t hs;
  TT_RC(0, tsk_spawn(rt, &hs, "sender", sender, &s));
  TT_RC(0, tsk_yield());
  /* The sender filled the channel and blocks on its third message. */
  TT_CHECK(s.sent == 2);
  TT_CHECK(tsk_channel_len(ch) == 2);
  TT_CHECK(state_of(hs) == TSK_TASK_WAITING);
  TT_RC(TSK_EBUSY, tsk_channel_free(ch)); /* waited on */
  void *m;
  /* Each receive makes room; the waiting sender's message moves in behind, in order. */
  for (int i = 1; i <= 5; i++) {
    TT_RC(0, tsk_channel_recv(ch, &m, TSK_FOREVER));
    TT_CHECK(NUM(m) == i);
    TT_CHECK(tsk_channel_len(ch) <= 2);
  }
  TT_RC(0, tsk_join(hs, TSK_FOREVER, NULL));
  TT_CHECK(s.sent == 5);

  /* Several blocked senders are served in the order they blocked. */
  sender_ctx s3[3] = {{ch, 10, 3, 0, 1}, {ch, 20, 3, 0, 1}, {ch, 30, 3, 0, 1}};
  tsk_task_t h3[3];
  for (int i = 0; i < 3; i++) TT_RC(0, tsk_spawn(rt, &h3[i], "sender", sender, &s3[i]));
  receiver_ctx r;
  memset(&r, 0, sizeof r);
  r.ch = ch;
  tsk_task_t hr;
  TT_RC(0, tsk_spawn(rt, &hr, "receiver", receiver, &r));
  for (int i = 0; i < 3; i++) TT_RC(0, tsk_join(h3[i], TSK_FOREVER, NULL));
  TT_RC(0, tsk_channel_close(ch));
  TT_RC(0, tsk_join(hr, TSK_FOREVER, NULL));
  TT_CHECK(r.n == 9);
  /* Per sender the order is kept. */
  int last[3] = {0, 0, 0};
  for (int i = 0; i < r.n && i < 64; i++) {
    int who = r.got[i] / 10 - 1;
    TT_CHECK(who >= 0 && who < 3);
    if (who < 0 || who > 2) continue;
    TT_CHECK(r.got[i] > last[who]);
    last[who] = r.got[i];
  }
  TT_RC(0, tsk_channel_free(ch));
  return 0;
}

static void test_channel_capacity(void **state) {
  (void)state;
  TT_RUN_OK(main_channel_capacity, NULL);
}

static int main_channel_close(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_channel_t *ch;
  void *m;

  /* Queued messages are still delivered after close, then TSK_ECLOSED. */
  TT_RC(0, tsk_channel_new(rt, 4, &ch));
  TT_RC(0, tsk_channel_try_send(ch, MSG(1)));
  TT_RC(0, tsk_channel_try_send(ch, MSG(2)));
  TT_RC(0, tsk_channel_close(ch));
  TT_RC(0, tsk_channel_close(ch)); /* twice is fine */
  TT_RC(TSK_ECLOSED, tsk_channel_try_send(ch, MSG(3)));
  TT_RC(TSK_ECLOSED, tsk_channel_send(ch, MSG(3), TSK_FOREVER));
  TT_RC(0, tsk_channel_recv(ch, &m, TSK_FOREVER));
  TT_CHECK(NUM(m) == 1);
  TT_RC(0, tsk_channel_try_recv(ch, &m));
  TT_CHECK(NUM(m) == 2);
  TT_RC(TSK_ECLOSED, tsk_channel_recv(ch, &m, TSK_FOREVER));
  TT_RC(TSK_ECLOSED, tsk_channel_try_recv(ch, &m));
  TT_RC(0, tsk_channel_free(ch));

  /* Blocked senders get TSK_ECLOSED; what they did send stays deliverable. */
  TT_RC(0, tsk_channel_new(rt, 1, &ch));
  sender_ctx s[2] = {{ch, 1, 3, 0, 1}, {ch, 10, 3, 0, 1}};
  tsk_task_t hs[2];
  for (int i = 0; i < 2; i++) TT_RC(0, tsk_spawn(rt, &hs[i], "sender", sender, &s[i]));
  TT_RC(0, tsk_yield());
  TT_CHECK(state_of(hs[0]) == TSK_TASK_WAITING && state_of(hs[1]) == TSK_TASK_WAITING);
  TT_RC(0, tsk_channel_close(ch));
  for (int i = 0; i < 2; i++) {
    TT_RC(TSK_ECLOSED, tsk_join(hs[i], TSK_FOREVER, NULL));
    TT_RC(TSK_ECLOSED, s[i].last_rc);
  }
  TT_CHECK(s[0].sent == 1 && s[1].sent == 0);
  TT_RC(0, tsk_channel_recv(ch, &m, TSK_FOREVER));
  TT_CHECK(NUM(m) == 1);
  TT_RC(TSK_ECLOSED, tsk_channel_recv(ch, &m, TSK_FOREVER));
  TT_RC(0, tsk_channel_free(ch));

  /* Blocked receivers get TSK_ECLOSED. */
  TT_RC(0, tsk_channel_new(rt, 3, &ch));
  receiver_ctx r[2];
  tsk_task_t hr[2];
  for (int i = 0; i < 2; i++) {
    memset(&r[i], 0, sizeof r[i]);
    r[i].ch = ch;
    TT_RC(0, tsk_spawn(rt, &hr[i], "receiver", receiver, &r[i]));
  }
  TT_RC(0, tsk_yield());
  TT_RC(TSK_EBUSY, tsk_channel_free(ch));
  TT_RC(0, tsk_channel_close(ch));
  for (int i = 0; i < 2; i++) {
    TT_RC(0, tsk_join(hr[i], TSK_FOREVER, NULL));
    TT_RC(TSK_ECLOSED, r[i].last_rc);
    TT_CHECK(r[i].n == 0);
  }
  TT_RC(0, tsk_channel_free(ch));
  return 0;
}

static void test_channel_close(void **state) {
  (void)state;
  TT_RUN_OK(main_channel_close, NULL);
}

/* A message handed to a waiting receiver belongs to it, even if it is cancelled before it runs. */
typedef struct {
  tsk_channel_t *ch;
  int rc1, rc2;
  void *m;
} cancelled_receiver_ctx;

static int cancelled_receiver(void *arg) {
  cancelled_receiver_ctx *c = arg;
  c->rc1 = tsk_channel_recv(c->ch, &c->m, TSK_FOREVER);
  if (c->rc1) return c->rc1;
  void *m2;
  c->rc2 = tsk_channel_recv(c->ch, &m2, TSK_FOREVER); /* the cancellation lands here */
  return c->rc2;
}

static int main_channel_cancelled_receiver(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_channel_t *ch;
  TT_RC(0, tsk_channel_new(rt, 1, &ch));
  cancelled_receiver_ctx c = {ch, 1, 1, NULL};
  tsk_task_t h;
  TT_RC(0, tsk_spawn(rt, &h, "receiver", cancelled_receiver, &c));
  TT_RC(0, tsk_yield());
  TT_CHECK(state_of(h) == TSK_TASK_WAITING);
  TT_RC(0, tsk_channel_send(ch, MSG(42), TSK_FOREVER)); /* handed over directly */
  TT_CHECK(tsk_channel_len(ch) == 0);
  TT_RC(0, tsk_cancel(h)); /* before the receiver ran again */
  tsk_result_t res;
  TT_RC(TSK_ECANCELED, tsk_join(h, TSK_FOREVER, &res));
  TT_RC(0, c.rc1);
  TT_CHECK(NUM(c.m) == 42);
  TT_RC(TSK_ECANCELED, c.rc2);
  TT_CHECK(res.state == TSK_TASK_CANCELLED);
  /* And a receiver cancelled while still waiting takes nothing. */
  c = (cancelled_receiver_ctx){ch, 1, 1, NULL};
  TT_RC(0, tsk_spawn(rt, &h, "receiver", cancelled_receiver, &c));
  TT_RC(0, tsk_yield());
  TT_RC(0, tsk_cancel(h));
  TT_RC(0, tsk_channel_try_send(ch, MSG(7)));
  TT_RC(TSK_ECANCELED, tsk_join(h, TSK_FOREVER, NULL));
  TT_RC(TSK_ECANCELED, c.rc1);
  void *m;
  TT_RC(0, tsk_channel_try_recv(ch, &m));
  TT_CHECK(NUM(m) == 7);
  TT_RC(0, tsk_channel_free(ch));
  return 0;
}

static void test_channel_cancelled_receiver(void **state) {
  (void)state;
  TT_RUN_OK(main_channel_cancelled_receiver, NULL);
}

#define NMSG 100000

typedef struct {
  tsk_channel_t *ch;
  long long sum;
  int count;
  int in_order;
} consumer_ctx;

static int producer(void *arg) {
  tsk_channel_t *ch = arg;
  for (int i = 1; i <= NMSG; i++) {
    int rc = tsk_channel_send(ch, MSG(i), TSK_FOREVER);
    if (rc) return tsk_error(rc, "send %d failed", i);
    if (tsk_channel_len(ch) > 16) return tsk_error(TSK_EFAILED, "capacity exceeded");
  }
  return tsk_channel_close(ch);
}

static int consumer(void *arg) {
  consumer_ctx *c = arg;
  c->in_order = 1;
  for (;;) {
    void *m;
    int rc = tsk_channel_recv(c->ch, &m, TSK_FOREVER);
    if (rc == TSK_ECLOSED) return 0;
    if (rc) return rc;
    c->count++;
    if (NUM(m) != c->count) c->in_order = 0;
    c->sum += NUM(m);
  }
}

static int main_channel_100k(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_channel_t *ch;
  TT_RC(0, tsk_channel_new(rt, 16, &ch));
  consumer_ctx c = {ch, 0, 0, 0};
  tsk_task_t hp, hc;
  TT_RC(0, tsk_spawn(rt, &hc, "consumer", consumer, &c));
  TT_RC(0, tsk_spawn(rt, &hp, "producer", producer, ch));
  tsk_result_t res;
  TT_RC(0, tsk_join(hp, TSK_FOREVER, &res));
  if (res.message[0]) fprintf(stderr, "producer: %s\n", res.message);
  TT_RC(0, tsk_join(hc, TSK_FOREVER, NULL));
  TT_CHECK(c.count == NMSG);
  TT_CHECK(c.in_order);
  TT_CHECK(c.sum == (long long)NMSG * (NMSG + 1) / 2);
  TT_RC(0, tsk_channel_free(ch));
  return 0;
}

static void test_channel_100k(void **state) {
  (void)state;
  TT_RUN_OK(main_channel_100k, NULL);
}

static void test_channel_invalid(void **state) {
  (void)state;
  tsk_runtime_t *rt;
  TT_ASSERT_RC(0, tsk_runtime_new(&rt));
  tsk_channel_t *ch;
  void *m;
  TT_ASSERT_RC(TSK_EINVAL, tsk_channel_new(rt, 0, &ch));
  TT_ASSERT_RC(TSK_EINVAL, tsk_channel_new(NULL, 1, &ch));
  TT_ASSERT_RC(TSK_EINVAL, tsk_channel_new(rt, 1, NULL));
  TT_ASSERT_RC(TSK_EINVAL, tsk_channel_try_send(NULL, NULL));
  TT_ASSERT_RC(TSK_EINVAL, tsk_channel_try_recv(NULL, &m));
  TT_ASSERT_RC(TSK_EINVAL, tsk_channel_send(NULL, NULL, 0));
  TT_ASSERT_RC(TSK_EINVAL, tsk_channel_recv(NULL, &m, 0));
  TT_ASSERT_RC(TSK_EINVAL, tsk_channel_close(NULL));
  TT_ASSERT_RC(TSK_EINVAL, tsk_channel_free(NULL));
  assert_int_equal(0, tsk_channel_len(NULL));
  /* Non-waiting variants outside tasks; freeing drops queued messages. */
  TT_ASSERT_RC(0, tsk_channel_new(rt, 1, &ch));
  TT_ASSERT_RC(TSK_EINVAL, tsk_channel_try_recv(ch, NULL));
  TT_ASSERT_RC(0, tsk_channel_try_send(ch, MSG(5)));
  TT_ASSERT_RC(TSK_EFULL, tsk_channel_try_send(ch, MSG(6)));
  TT_ASSERT_RC(0, tsk_channel_free(ch));
  TT_ASSERT_RC(0, tsk_runtime_close(rt));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TT_TEST(test_future_resolve),
      TT_TEST(test_future_reject),
      TT_TEST(test_future_timeout),
      TT_TEST(test_future_broken),
      TT_TEST(test_future_release_while_waking),
      TT_TEST(test_future_invalid),
      TT_TEST(test_event_basic),
      TT_TEST(test_event_mixed_timeouts),
      TT_TEST(test_event_invalid),
      TT_TEST(test_channel_fifo),
      TT_TEST(test_channel_capacity),
      TT_TEST(test_channel_close),
      TT_TEST(test_channel_cancelled_receiver),
      TT_TEST(test_channel_100k),
      TT_TEST(test_channel_invalid),
  };
  return TT_RUN_GROUP(tests);
}
