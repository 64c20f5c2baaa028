/*
 * wait.c — the one suspension primitive every waiting function is built on, plus yield, sleep
 * and deadline scopes.
 *
 * Protocol: a waiting function fills a tsk__wait in its own frame (tsk__wait_prepare), links it
 * into the awaited object, and calls tsk__wait_suspend. Exactly one party ends the wait with
 * tsk__wait_end: the object (result 0 or its error), the timer (TSK_ETIMEDOUT) or tsk_cancel
 * (TSK_ECANCELED). Ending a wait unlinks it from the object and disarms its timer, so the loser
 * of a race finds nothing to do.
 */
#include "internal.h"
#include "events.h"

void tsk__on_wait_timeout(tsk__timer *tm) {
  tsk__wait *w = TSK__CONTAINER(tm, tsk__wait, timer);
  tsk__wait_end(w, TSK_ETIMEDOUT);
}

/* The earliest of the wait's own limit and the task's deadline scopes, as a uv_now deadline;
 * UINT64_MAX when there is none. */
static uint64_t wait_due(tsk__task *t, int64_t timeout_ms) {
  uint64_t due = UINT64_MAX;
  if (timeout_ms >= 0) due = tsk__now_ms(t->rt) + (uint64_t)timeout_ms;
  const uint64_t *deadlines = tsk__deadlines(t);
  for (unsigned i = 0; i < t->ndeadlines; i++)
    if (deadlines[i] < due) due = deadlines[i];
  return due;
}

static void abandon(tsk__wait *w) {
  if (w->unlink) w->unlink(w);
}

/* The uncommon starts of a wait, out of line: a pending cancellation, a poll, a timer to arm.
 * Returns 0 to go on suspending, else the wait's result (the record was abandoned). */
static int wait_start_slow(tsk__wait *w, int64_t timeout_ms) {
  tsk__task *t = w->task;
  int rc = tsk__take_cancel(t);
  if (rc) {
    abandon(w);
    return rc;
  }
  if (timeout_ms == 0) { /* a poll */
    abandon(w);
    return TSK_ETIMEDOUT;
  }
  if (timeout_ms > 0 || t->ndeadlines) tsk__timer_arm(t->rt, &w->timer, wait_due(t, timeout_ms));
  return 0;
}

static inline int wait_suspend(tsk__wait *w, int64_t timeout_ms) {
  tsk__task *t = w->task;
  if (TSK__LIKELY(w->cancellable) &&
      TSK__UNLIKELY(t->cancel_requested || timeout_ms >= 0 || t->ndeadlines)) {
    int rc = wait_start_slow(w, timeout_ms);
    if (rc) return rc;
  }
  t->wait = w;
  t->state = TSK_TASK_WAITING;
  tsk__ev_wait(t, w);
  tsk__switch_to_scheduler(t);
  /* The task now observes the cancellation that ended this wait. A tsk_cancel made after that
   * delivery but before this resumption (the task was still in the ready queue) cleared
   * cancel_delivered; it is the same request, not a second one to deliver again at the next
   * suspension (which would break the task's cleanup waits). */
  if (w->result == TSK_ECANCELED) t->cancel_delivered = 1;
  return w->result;
}

int tsk__wait_suspend(tsk__wait *w, int64_t timeout_ms) { return wait_suspend(w, timeout_ms); }

/* ---- joins ---- */

static void join_unlink(tsk__wait *w) {
  tsk__task *target = w->data;
  if (target->joiner == w) target->joiner = NULL;
}

int tsk__join_wait(tsk__task *target, int64_t timeout_ms, int cancellable) {
  tsk__wait w;
  int rc = tsk__wait_prepare(&w, TSK_WAIT_TASK, target->id);
  if (rc) return rc;
  w.cancellable = cancellable;
  w.data = target;
  w.unlink = join_unlink;
  target->joiner = &w;
  return wait_suspend(&w, timeout_ms);
}

/* Ends the wait w of task t (unlinked from its object already): the one tail of every wake. */
static inline void wait_finish(tsk__task *t, tsk__wait *w, int result) {
  t->wait = NULL;
  if (TSK__UNLIKELY(w->timer.index != SIZE_MAX)) tsk__timer_disarm(t->rt, &w->timer);
  w->result = result;
  /* A join ended by the joined task's end needs no event: the server wakes the joiner when it
   * reads that task's FINISH, which came first. */
  if (w->kind != TSK_WAIT_TASK || result != 0) tsk__ev_simple(t->rt, TSK__EV_WAKE, t->id);
  tsk__make_ready(t);
}

/* tsk__wait_end(target->joiner, 0) with the unlink (join_unlink) done in place. */
void tsk__join_wake(tsk__task *target) {
  tsk__wait *w = target->joiner;
  target->joiner = NULL;
  if (w->task->wait == w) wait_finish(w->task, w, 0);
}

void tsk__wait_end(tsk__wait *w, int result) {
  tsk__task *t = w->task;
  if (t->wait != w) return; /* already ended */
  if (w->unlink) w->unlink(w);
  wait_finish(t, w, result);
}

int tsk_sleep(uint64_t ms) {
  if (ms == 0) return tsk_yield();
  tsk__wait w;
  int rc = tsk__wait_prepare(&w, TSK_WAIT_SLEEP, 0);
  if (rc) return rc;
  tsk__task *t = w.task;
  /* The sleep's own expiry is success, not a timeout; a deadline scope that ends first is. */
  int scoped = wait_due(t, -1) < tsk__now_ms(t->rt) + ms;
  rc = tsk__wait_suspend(&w, (int64_t)ms);
  return rc == TSK_ETIMEDOUT && !scoped ? 0 : rc;
}

/* ---- objects that queue their waiters in a list ---- */

void tsk__wait_unlink_list(tsk__wait *w) { tsk__list_remove(&w->link); }

int tsk__wait_on_list(tsk__wait *w, tsk__list *waiters, int64_t timeout_ms) {
  w->unlink = tsk__wait_unlink_list;
  tsk__list_push(waiters, &w->link);
  return tsk__wait_suspend(w, timeout_ms);
}

void tsk__wait_end_all(tsk__list *waiters, int result) {
  tsk__wait *w;
  /* Each wait's unlink takes it off the list. */
  while ((w = tsk__wait_first(waiters))) tsk__wait_end(w, result);
}

int tsk_timeout_push(uint64_t ms) {
  tsk__task *t = tsk__current;
  if (!t) return TSK_ENOTASK;
  if (t->ndeadlines >= TSK__DEADLINES) return TSK_EFULL;
  tsk__deadlines(t)[t->ndeadlines++] = tsk__now_ms(t->rt) + ms;
  return 0;
}

int tsk_timeout_pop(void) {
  tsk__task *t = tsk__current;
  if (!t) return TSK_ENOTASK;
  if (t->ndeadlines == 0) return TSK_EINVAL;
  t->ndeadlines--;
  return 0;
}
