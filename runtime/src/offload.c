/*
 * offload.c — running a function on libuv's thread pool while the calling task waits.
 *
 * Ownership: the work request is heap-allocated and owned by libuv from uv_queue_work until
 * after_work, which frees it. The waiting task only borrows it through its wait record: whoever
 * ends the wait other than after_work (a timeout, a cancellation, runtime close destroying the
 * task) runs offload_unlink, which clears the request's back pointers into the task's frame. So
 * after_work never writes into a stack whose task stopped waiting.
 *
 * Withdrawn work: on timeout or cancellation uv_cancel() is tried first.
 *   - A cancellation already pending when tsk_offload is called is delivered before anything
 *     is queued: done(arg, TSK_ECANCELED, 1) is called before it returns.
 *   - If it succeeds the work never ran and never will: it is NOT counted as abandoned (nothing
 *     runs unobserved), and done(arg, TSK_ECANCELED, 1) is still called — later, on the loop
 *     thread — so that done can always be relied on to release arg. (The result value
 *     TSK_ECANCELED is a convention: fn never ran. fn may return that value itself, so done
 *     cannot tell the two apart from the result alone; it does not need to, since abandoned=1
 *     says nobody will read the result either way.)
 *   - If it fails the work is running (or finished but not yet reported): it is counted in
 *     offload_running_abandoned (until after_work) and offload_total_abandoned, and done(arg,
 *     result, 1) is called when it finishes.
 * In short: done is called exactly once for every tsk_offload that returned 0, TSK_ETIMEDOUT or
 * TSK_ECANCELED, and never for one that returned another error (the work was not queued).
 *
 * Runtime close: requests still queued or running outlive the runtime's tasks. For a runtime
 * that owns its loop, close runs the loop until they finish (so close waits for running work).
 * For a runtime on an application's loop, after_work may run after the runtime is freed:
 * tsk__offload_runtime_close detaches every request from the runtime first.
 */
#include "internal.h"

#include <stdlib.h>

typedef struct offload_req {
  uv_work_t work;
  tsk_work_fn fn;
  void *arg;
  tsk_work_done_fn done;
  intptr_t result;     /* written by the pool thread, read in after_work */
  tsk_runtime_t *rt;   /* NULL once the runtime closed (tsk__offload_runtime_close) */
  tsk__list link;      /* in rt->offload_reqs while rt is set */
  tsk__wait *waiter;   /* the waiting task's record; NULL once it stopped waiting */
  intptr_t *out;       /* the waiter's result slot (in its frame); valid while waiter is set */
  int abandoned;       /* counted in offload_running_abandoned */
} offload_req;

static void work_cb(uv_work_t *req) {
  offload_req *r = req->data;
  r->result = r->fn(r->arg);
}

static void after_work(uv_work_t *req, int status) {
  offload_req *r = req->data;
  tsk__list_remove(&r->link);
  if (status == UV_ECANCELED) {
    /* Withdrawn before it started (offload_unlink): fn never ran. */
    if (r->done) r->done(r->arg, TSK_ECANCELED, 1);
  } else if (r->waiter) {
    tsk__wait *w = r->waiter;
    r->waiter = NULL;
    *r->out = r->result;
    /* Woken first, so that anything done() does to the task (a cancellation, say) applies to
     * its next suspension, not to this finished wait. The task resumes after we return. */
    tsk__wait_end(w, 0);
    if (r->done) r->done(r->arg, r->result, 0);
  } else {
    if (r->abandoned && r->rt) r->rt->offload_running_abandoned--;
    if (r->done) r->done(r->arg, r->result, 1);
  }
  free(r);
}

/* The wait ended some other way than by after_work (timeout, cancellation, destruction of the
 * task at runtime close): detach from the task's frame and withdraw or abandon the work. */
static void offload_unlink(tsk__wait *w) {
  offload_req *r = w->data;
  if (r->waiter != w) return; /* ended by after_work */
  r->waiter = NULL;
  r->out = NULL;
  if (uv_cancel((uv_req_t *)&r->work) == 0) return; /* after_work gets UV_ECANCELED */
  r->abandoned = 1;
  if (r->rt) {
    r->rt->offload_running_abandoned++;
    r->rt->offload_total_abandoned++;
  }
}

int tsk_offload(tsk_work_fn fn, void *arg, tsk_work_done_fn done, int64_t timeout_ms,
                intptr_t *result) {
  if (!fn) return TSK_EINVAL;
  tsk__task *t = tsk__current;
  if (!t) return TSK_ENOTASK;
  tsk_runtime_t *rt = t->rt;
  if (rt->closing) return TSK_ECLOSED;
  /* A cancellation already pending is delivered before anything is queued: fn never runs. */
  int rc = tsk__take_cancel(t);
  if (rc) {
    if (done) done(arg, TSK_ECANCELED, 1);
    return rc;
  }
  offload_req *r = calloc(1, sizeof *r);
  if (!r) return TSK_ENOMEM;
  tsk__wait w;
  rc = tsk__wait_prepare(&w, TSK_WAIT_OFFLOAD, tsk__next_object_id(rt));
  if (rc) {
    free(r);
    return rc;
  }
  intptr_t value = 0;
  r->work.data = r;
  r->fn = fn;
  r->arg = arg;
  r->done = done;
  r->rt = rt;
  r->waiter = &w;
  r->out = &value;
  rc = uv_queue_work(rt->loop, &r->work, work_cb, after_work);
  if (rc) {
    free(r);
    return rc;
  }
  tsk__list_push(&rt->offload_reqs, &r->link);
  w.data = r;
  w.unlink = offload_unlink;
  rc = tsk__wait_suspend(&w, timeout_ms);
  if (rc == 0 && result) *result = value;
  return rc;
}

void tsk_offload_abandoned(tsk_runtime_t *rt, size_t *running, size_t *total) {
  /* From a thread that does not own rt the counters cannot be read safely: report zeros. */
  int ok = rt && tsk__check_thread(rt) == 0;
  if (running) *running = ok ? (size_t)rt->offload_running_abandoned : 0;
  if (total) *total = ok ? (size_t)rt->offload_total_abandoned : 0;
}

/* Runtime close (after every task was destroyed): requests still queued or running keep their
 * memory and will call done(..., abandoned=1), but must not touch the runtime, which may be
 * freed before they finish. */
void tsk__offload_runtime_close(tsk_runtime_t *rt) {
  tsk__list *l = &rt->offload_reqs;
  while (!tsk__list_empty(l)) {
    offload_req *r = TSK__CONTAINER(l->next, offload_req, link);
    tsk__list_remove(&r->link);
    r->rt = NULL;
  }
}
