/*
 * events.c — the runtime's side of the inspector (see events.h): loop liveness, leak records
 * for the server, the server's requests and resyncs, all on the loop thread.
 */
#include "events.h"

#include "backtrace.h"
#include "leak.h"

#include <stdlib.h>

#define TSK__TICK_NS (250u * 1000 * 1000) /* a TICK event at most every 250 ms */
#define TSK__RESYNC_CHUNK 2048            /* tasks re-emitted per loop turn, at most */

/* registry.c */
tsk__leak *tsk__registry_pending_records(tsk_runtime_t *rt, size_t max, size_t *omitted);
uint64_t tsk__peek_next_task_id(void);

/* ---- liveness ----
 * One loop iteration: timers, pending callbacks, idle (the tasks run here), prepare, poll (I/O
 * callbacks run here, after the kernel wait), check, close callbacks. At every check the turn
 * just ended is measured: its length less the time slept in poll (libuv's idle-time metric) is
 * its busy time, the lag an event may have waited. */

static void on_check(uv_check_t *h) {
  tsk_runtime_t *rt = h->data;
  tsk__insp_rt *in = rt->insp;
  if (!in) return;
  uint64_t now = uv_hrtime();
  uint64_t idle = uv_metrics_idle_time(rt->loop);
  uint64_t turn = in->turn_start_ns && now > in->turn_start_ns ? now - in->turn_start_ns : 0;
  uint64_t slept = idle > in->idle_at_start_ns ? idle - in->idle_at_start_ns : 0;
  uint64_t busy = turn > slept ? turn - slept : 0;
  in->turn_start_ns = now;
  in->idle_at_start_ns = idle;
  atomic_store_explicit(&in->lag_ns, busy, memory_order_relaxed);
  atomic_store_explicit(&in->iterations, ++in->iter_local, memory_order_relaxed);
  atomic_store_explicit(&in->loop_state, TSK__LOOP_RUNNING, memory_order_release);
  if (busy > in->tick_max_ns) in->tick_max_ns = busy;
  if (now - in->tick_start_ns >= TSK__TICK_NS) {
    tsk__ev *e = tsk__ev_reserve(in->ring);
    if (e) {
      e->type = TSK__EV_TICK;
      e->id = 0;
      e->b = in->tick_max_ns;
      e->c = rt->stats.spawned;
      e->d = rt->stats.finished;
      tsk__ev_commit(in->ring);
    }
    in->tick_start_ns = now;
    in->tick_max_ns = 0;
  }
}

void tsk__events_running(tsk_runtime_t *rt, int running) {
  tsk__insp_rt *in = rt->insp;
  if (!in) return;
  if (running) {
    in->turn_start_ns = uv_hrtime();
    in->idle_at_start_ns = uv_metrics_idle_time(rt->loop);
    atomic_store_explicit(&in->loop_state, TSK__LOOP_RUNNING, memory_order_release);
  } else {
    atomic_store_explicit(&in->loop_state, TSK__LOOP_OUTSIDE, memory_order_release);
  }
}

int tsk__events_runtime_init(tsk_runtime_t *rt) {
  rt->insp = NULL;
  rt->resync_cursor = NULL;
  tsk__insp_rt *in = tsk__server_attach(rt);
  if (!in) return 0;
  /* Idle-time accounting (an extra non-blocking epoll_wait before the loop goes to sleep, and
   * a clock read around the sleep); harmless on an application's loop too. */
  uv_loop_configure(rt->loop, UV_METRICS_IDLE_TIME);
  /* Cannot fail on Linux (it only fills the struct and links it into the loop). */
  uv_check_init(rt->loop, &rt->insp_check);
  rt->insp_check.data = rt;
  uv_check_start(&rt->insp_check, on_check);
  uv_unref((uv_handle_t *)&rt->insp_check);
  rt->insp_handles = 1;
  in->tick_start_ns = uv_hrtime();
  rt->insp = in;
  return 1;
}

/* ---- leak records ---- */

void tsk__ev_leak(tsk_runtime_t *rt, const tsk__leak *l) {
  tsk__insp_rt *in = rt->insp;
  if (!in) return;
  if (tsk__ev_room(in->ring) == 0) {
    (void)tsk__ev_reserve(in->ring); /* counts the drop */
    return;
  }
  tsk__leak *copy = tsk__leak_clone(l);
  if (!copy) return;
  tsk__ev *e = tsk__ev_reserve(in->ring);
  e->type = TSK__EV_LEAK;
  e->id = l->task.id;
  e->d = (uintptr_t)copy;
  tsk__ev_commit(in->ring);
}

void tsk__ev_ring_discard(tsk__insp_rt *in) {
  tsk__ev_ring *r = in->ring;
  if (!r) return;
  uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
  uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
  for (; tail != head; tail++) {
    tsk__ev *e = &r->slot[tail & (TSK__EV_RING - 1)];
    if (e->type == TSK__EV_LEAK) tsk__leak_free((tsk__leak *)(uintptr_t)e->d);
  }
  atomic_store_explicit(&r->tail, head, memory_order_release);
}

/* ---- requests ---- */

static int task_finished(const tsk__task *t) {
  return t->state == TSK_TASK_DONE || t->state == TSK_TASK_FAILED ||
         t->state == TSK_TASK_CANCELLED || t->state == TSK_TASK_DESTROYED;
}

/* The live task the request names, or NULL. Task structs are recycled, never freed, while the
 * runtime is open, so the pointer the SPAWN event gave is always safe to read here; the id says
 * whether it still is that task. */
static tsk__task *req_task(tsk_runtime_t *rt, tsk__insp_req *q) {
  tsk__task *t = (tsk__task *)q->task_ptr;
  if (!t || t->id != q->task_id || t->rt != rt || task_finished(t) || rt->zombie == t) return NULL;
  return t;
}

static void serve_where(tsk_runtime_t *rt, tsk__insp_req *q) {
  tsk__task *t = req_task(rt, q);
  if (!t) {
    q->rc = TSK_ESTALE;
    return;
  }
  q->state_now = (uint8_t)t->state;
  q->first_run_ms = t->first_run_ms;
  q->switches = t->switches;
  q->running = t == tsk__current || t->state == TSK_TASK_RUNNING;
  if (!t->stack) return;
  tsk__stack_hdr *hdr = tsk__hdr(t->stack);
  q->ncreated = hdr->ncreated;
  if (q->ncreated > 64) q->ncreated = 64;
  memcpy(q->created, hdr->created, (size_t)q->ncreated * sizeof(uintptr_t));
  if (!q->running && t->first_run_ms)
    q->nsusp = tsk__bt_unwind_suspended_fp(&t->ctx, q->susp, 64, (uintptr_t)t->stack->base,
                                           (uintptr_t)hdr);
}

static void serve(tsk_runtime_t *rt, tsk__insp_req *q) {
  q->rc = 0;
  switch (q->kind) {
  case TSK__REQ_WHERE: serve_where(rt, q); break;
  case TSK__REQ_CANCEL: {
    tsk__task *t = req_task(rt, q);
    if (t)
      tsk__cancel_task(t);
    else
      q->rc = TSK_ESTALE;
    break;
  }
  case TSK__REQ_PENDING:
    q->records = tsk__registry_pending_records(rt, TSK__REQ_PENDING_MAX, &q->omitted);
    break;
  }
}

/* Answers (or, closing, refuses) the requests of the list q. */
static void serve_list(tsk_runtime_t *rt, tsk__insp_req *q, int closing) {
  int answered = 0;
  while (q) {
    tsk__insp_req *next = q->next;
    int expected = TSK__REQ_PENDING_;
    if (atomic_compare_exchange_strong(&q->state, &expected, TSK__REQ_TAKEN)) {
      if (closing)
        q->rc = TSK_ECLOSED;
      else
        serve(rt, q);
      atomic_store_explicit(&q->state, TSK__REQ_DONE, memory_order_release);
      answered = 1;
    } else {
      free(q); /* abandoned by the server: ours to free */
    }
    q = next;
  }
  if (answered) tsk__server_wake();
}

static void serve_requests(tsk_runtime_t *rt, tsk__insp_rt *in) {
  pthread_mutex_lock(&in->lock);
  tsk__insp_req *q = in->req_head;
  in->req_head = in->req_tail = NULL;
  pthread_mutex_unlock(&in->lock);
  if (q) serve_list(rt, q, 0);
}

/* ---- resync ----
 * Re-emits every live task (in rt->live order, which is spawn order, hence id order) into the
 * ring, a chunk per call, as room allows. rt->resync_cursor is the last task emitted (or the
 * list head); a task leaving rt->live moves it back (tsk__ev_live_remove). Tasks spawned after
 * the start have ids >= resync_end_id and their own SPAWN events. */

static int emit_task(tsk__insp_rt *in, tsk__task *t) {
  if (tsk__ev_put_spawn(in, t, (uint8_t)t->state, TSK__EVF_RESYNC)) return -1;
  if (t->wait) tsk__ev_wait(t, t->wait);
  return 0;
}

static void resync_step(tsk_runtime_t *rt, tsk__insp_rt *in) {
  tsk__ev_ring *r = in->ring;
  if (!rt->resync_cursor) {
    if (!atomic_load_explicit(&in->resync_wanted, memory_order_acquire)) return;
    if (tsk__ev_room(r) < 1) return; /* later: the server wakes us again */
    atomic_store_explicit(&in->resync_wanted, 0, memory_order_relaxed);
    tsk__ev *e = tsk__ev_reserve(r);
    e->type = TSK__EV_RESYNC_BEGIN;
    e->id = 0;
    e->a = r->drops_local;
    tsk__ev_commit(r);
    rt->resync_cursor = &rt->live;
    in->resync_end_id = tsk__peek_next_task_id();
  }
  uint64_t room = tsk__ev_room(r);
  for (int i = 0; i < TSK__RESYNC_CHUNK; i++) {
    tsk__list *n = rt->resync_cursor->next;
    if (n == &rt->live) break;
    tsk__task *t = TSK__CONTAINER(n, tsk__task, live_link);
    if (t->id >= in->resync_end_id) break;
    if (room < 3) return; /* a SPAWN, maybe a WAIT, and the END */
    if (emit_task(in, t)) return;
    room -= t->wait ? 2 : 1;
    rt->resync_cursor = n;
  }
  tsk__list *n = rt->resync_cursor->next;
  if (n != &rt->live && TSK__CONTAINER(n, tsk__task, live_link)->id < in->resync_end_id)
    return; /* the chunk ended: continue at the next wake */
  tsk__ev *e = tsk__ev_reserve(r);
  if (!e) return;
  e->type = TSK__EV_RESYNC_END;
  e->id = 0;
  e->a = r->drops_local;
  tsk__ev_commit(r);
  rt->resync_cursor = NULL;
}

void tsk__events_on_async(tsk_runtime_t *rt) {
  tsk__insp_rt *in = rt->insp;
  if (!in) return;
  serve_requests(rt, in);
  resync_step(rt, in);
}

void tsk__events_runtime_close(tsk_runtime_t *rt, uv_close_cb cb) {
  tsk__insp_rt *in = rt->insp;
  if (!in) return;
  rt->insp = NULL;
  rt->resync_cursor = NULL;
  if (rt->insp_handles > 0) uv_close((uv_handle_t *)&rt->insp_check, cb);
  tsk__insp_req *q = tsk__server_detach(in); /* in is the server's from here on */
  if (q) serve_list(rt, q, 1);
}
