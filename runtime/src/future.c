/*
 * future.c — one-shot futures with a separately counted completer side.
 *
 * One allocation serves both sides: tsk_future_t and tsk_promise_t point at the same struct.
 * The waiter side is released once (tsk_future_release); the completer side is reference
 * counted (tsk_promise_ref / tsk_promise_release). The struct is freed when both sides are gone.
 * When the last completer reference goes while the future is pending, the future is "broken":
 * every waiter is woken at once with TSK_EBROKEN, and later waits fail the same way.
 */
#include "internal.h"

#include <stdlib.h>

typedef enum { F_PENDING, F_RESOLVED, F_REJECTED, F_BROKEN } future_state;

struct tsk_future {
  tsk_runtime_t *rt;
  const char *owner_token; /* the owner thread's: releases may come after the runtime closed */
  uint64_t id;
  future_state state;
  void *value;
  int error;
  int waiter_side_held;
  unsigned promise_refs;
  tsk__list waiters;
};

#define AS_FUTURE(p) ((struct tsk_future *)(void *)(p))

int tsk_future_new(tsk_runtime_t *rt, tsk_future_t **future, tsk_promise_t **promise) {
  if (!rt || !future || !promise) return TSK_EINVAL;
  int rc = tsk__check_thread(rt);
  if (rc) return rc;
  struct tsk_future *f = calloc(1, sizeof *f);
  if (!f) return TSK_ENOMEM;
  f->rt = rt;
  f->owner_token = rt->owner_token;
  f->id = tsk__next_object_id(rt);
  f->state = F_PENDING;
  f->waiter_side_held = 1;
  f->promise_refs = 1;
  tsk__list_init(&f->waiters);
  *future = f;
  *promise = (tsk_promise_t *)(void *)f;
  return 0;
}

static void maybe_free(struct tsk_future *f) {
  if (!f->waiter_side_held && f->promise_refs == 0 && tsk__list_empty(&f->waiters)) free(f);
}

static int outcome(struct tsk_future *f, void **value);

/* Ends every wait with the future's outcome (each wait's unlink takes it off the list). The
 * outcome travels in the wait record (result, and the value through w->data, the waiter's
 * `value` pointer): a woken waiter must not read the future again when it resumes, because both
 * sides may have been released, and the future freed, before it runs. */
static void wake_all(struct tsk_future *f) {
  int result = outcome(f, NULL);
  tsk__wait *w;
  while ((w = tsk__wait_first(&f->waiters))) {
    if (result == 0 && w->data) *(void **)w->data = f->value;
    tsk__wait_end(w, result);
  }
}

static int outcome(struct tsk_future *f, void **value) {
  switch (f->state) {
  case F_RESOLVED:
    if (value) *value = f->value;
    return 0;
  case F_REJECTED:
    return f->error;
  case F_BROKEN:
    return TSK_EBROKEN;
  default:
    return TSK_EAGAIN;
  }
}

int tsk_future_wait(tsk_future_t *f, int64_t timeout_ms, void **value) {
  if (!f) return TSK_EINVAL;
  int rc = tsk__check_thread(f->rt);
  if (rc) return rc;
  if (f->state != F_PENDING) return outcome(f, value);
  tsk__wait w;
  rc = tsk__wait_prepare(&w, TSK_WAIT_FUTURE, f->id);
  if (rc) return rc;
  w.data = value; /* filled by wake_all */
  return tsk__wait_on_list(&w, &f->waiters, timeout_ms); /* outcome, timeout or cancel */
}

int tsk_future_done(tsk_future_t *f) {
  return f && (f->state == F_RESOLVED || f->state == F_REJECTED);
}

/* The releases check the owner thread without going through f->rt: they may come after the
 * runtime was closed (a task destroyed by the close may have been waiting on the future). */
void tsk_future_release(tsk_future_t *f) {
  if (!f || f->owner_token != &tsk__thread_token) return;
  f->waiter_side_held = 0;
  maybe_free(f);
}

static int complete(struct tsk_future *f, future_state st, void *value, int err) {
  /* The owner token, not f->rt: a completion may come after the runtime closed (e.g. from an
   * abandoned offload's done callback), when f->rt is gone; there are no waiters left then. */
  if (f->owner_token != &tsk__thread_token) return TSK_EWRONGTHREAD;
  if (f->state != F_PENDING) return TSK_EBUSY;
  f->state = st;
  f->value = value;
  f->error = err;
  wake_all(f);
  return 0;
}

int tsk_promise_resolve(tsk_promise_t *p, void *value) {
  if (!p) return TSK_EINVAL;
  return complete(AS_FUTURE(p), F_RESOLVED, value, 0);
}

int tsk_promise_reject(tsk_promise_t *p, int err) {
  if (!p || err >= 0) return TSK_EINVAL;
  return complete(AS_FUTURE(p), F_REJECTED, NULL, err);
}

tsk_promise_t *tsk_promise_ref(tsk_promise_t *p) {
  if (p && !tsk__check_thread(AS_FUTURE(p)->rt)) AS_FUTURE(p)->promise_refs++;
  return p;
}

void tsk_promise_release(tsk_promise_t *p) {
  if (!p) return;
  struct tsk_future *f = AS_FUTURE(p);
  if (f->owner_token != &tsk__thread_token || f->promise_refs == 0) return;
  if (--f->promise_refs == 0 && f->state == F_PENDING) {
    /* Nobody can complete it any more: the waiters are stranded. Record them (with this call's
     * backtrace, where the last completer was dropped) before waking them with TSK_EBROKEN.
     * With waiters present the runtime is necessarily still open. */
    f->state = F_BROKEN;
    if (!tsk__list_empty(&f->waiters)) tsk__registry_stranded(f->rt, &f->waiters, f->id);
    wake_all(f);
  }
  maybe_free(f);
}
