/*
 * timer.c — every timed wait of a runtime (sleeps, wait timeouts, deadline scopes) lives in one
 * binary min-heap ordered by (due, seq), driven by a single uv_timer_t. Arming and disarming are
 * O(log n) and allocate nothing: the tsk__timer lives in the waiter's wait record. The uv timer
 * is referenced (keeps the loop alive) exactly while the heap is not empty.
 */
#include "internal.h"

#include <stdlib.h>

#define NOT_ARMED SIZE_MAX

static void on_timer(uv_timer_t *h);

static int earlier(const tsk__timer *a, const tsk__timer *b) {
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_set(tsk_runtime_t *rt, size_t i, tsk__timer *tm) {
  rt->heap[i] = tm;
  tm->index = i;
}

static void sift_up(tsk_runtime_t *rt, size_t i) {
  tsk__timer *tm = rt->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!earlier(tm, rt->heap[parent])) break;
    heap_set(rt, i, rt->heap[parent]);
    i = parent;
  }
  heap_set(rt, i, tm);
}

static void sift_down(tsk_runtime_t *rt, size_t i) {
  tsk__timer *tm = rt->heap[i];
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    const tsk__timer *best = tm;
    if (l < rt->heap_len && earlier(rt->heap[l], best)) m = l, best = rt->heap[l];
    if (r < rt->heap_len && earlier(rt->heap[r], best)) m = r;
    if (m == i) break;
    heap_set(rt, i, rt->heap[m]);
    i = m;
  }
  heap_set(rt, i, tm);
}

/* Points the uv timer at the heap's earliest deadline (or stops it). */
static void reprogram(tsk_runtime_t *rt) {
  if (rt->heap_len == 0) {
    if (rt->timer_handle_due) {
      uv_timer_stop(&rt->timer_handle);
      rt->timer_handle_due = 0;
    }
    return;
  }
  uint64_t due = rt->heap[0]->due;
  if (rt->timer_handle_due == due) return;
  uint64_t now = uv_now(rt->loop);
  rt->timer_handle_due = due;
  uv_timer_start(&rt->timer_handle, on_timer, due > now ? due - now : 0, 0);
}

void tsk__timer_arm(tsk_runtime_t *rt, tsk__timer *tm, uint64_t due) {
  if (tm->index != NOT_ARMED) tsk__timer_disarm(rt, tm);
  if (rt->heap_len == rt->heap_cap) {
    size_t cap = rt->heap_cap ? rt->heap_cap * 2 : 64;
    tsk__timer **h = realloc(rt->heap, cap * sizeof *h);
    if (!h) abort(); /* a wait cannot report ENOMEM from here; heap growth is rare and small */
    rt->heap = h;
    rt->heap_cap = cap;
  }
  tm->due = due;
  tm->seq = ++rt->timer_seq;
  rt->heap[rt->heap_len] = tm;
  tm->index = rt->heap_len++;
  sift_up(rt, tm->index);
  if (tm->index == 0) reprogram(rt);
}

void tsk__timer_disarm(tsk_runtime_t *rt, tsk__timer *tm) {
  size_t i = tm->index;
  if (i == NOT_ARMED) return;
  tm->index = NOT_ARMED;
  tsk__timer *last = rt->heap[--rt->heap_len];
  if (i < rt->heap_len) {
    heap_set(rt, i, last);
    sift_down(rt, i);
    sift_up(rt, last->index);
  }
  if (i == 0 && rt->heap_len == 0) reprogram(rt);
  /* When the removed timer was the earliest but others remain, the uv timer may fire early
   * once; on_timer then simply re-programs it. */
}

static void on_timer(uv_timer_t *h) {
  tsk_runtime_t *rt = h->data;
  uint64_t now = uv_now(rt->loop);
  rt->timer_handle_due = 0;
  while (rt->heap_len > 0 && rt->heap[0]->due <= now) {
    tsk__timer *tm = rt->heap[0];
    tsk__timer_disarm(rt, tm);
    tm->fire(tm);
  }
  reprogram(rt);
}

int tsk__timer_setup(tsk_runtime_t *rt) {
  int rc = uv_timer_init(rt->loop, &rt->timer_handle);
  if (rc) return rc;
  rt->timer_handle.data = rt;
  return 0;
}

void tsk__timer_cleanup(tsk_runtime_t *rt) {
  free(rt->heap);
  rt->heap = NULL;
  rt->heap_len = rt->heap_cap = 0;
}
