/*
 * runtime.c — the runtime object, its scheduler and cross-thread posting.
 *
 * Scheduling: ready tasks wait in a FIFO. While it is not empty a uv_idle handle is active,
 * which keeps the loop from blocking in poll; its callback resumes ready tasks one after the
 * other on the loop's own stack (the "scheduler context"). One pass resumes at most
 * TSK__BATCH tasks so that I/O and timers get their turn even when tasks keep yielding.
 */
#include "internal.h"
#include "options.h"
#include "events.h"

#include <stdio.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define TSK__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TSK__ASAN 1
#endif
#endif
#ifdef TSK__ASAN
#include <sanitizer/common_interface_defs.h>
#endif

#define TSK__BATCH 4096
#define TSK__DEFAULT_STACK (256 * 1024)
#define TSK__MIN_STACK (16 * 1024)

__thread tsk__task *tsk__current;

static void on_idle(uv_idle_t *h);
static void on_async(uv_async_t *h);

/* The address of a thread-local variable identifies the calling thread for the life of the
 * thread, and costs one instruction to compare, unlike pthread_self()/pthread_equal(). */
__thread char tsk__thread_token;

uint64_t tsk__next_object_id(tsk_runtime_t *rt) { return ++rt->next_object_id; }

void tsk__idle_start(tsk_runtime_t *rt) {
  rt->idle_active = 1;
  uv_idle_start(&rt->idle, on_idle);
}

static tsk__task *pop_ready(tsk_runtime_t *rt) {
  tsk__task *t = rt->ready_head;
  if (t) {
    rt->ready_head = t->next_ready;
    if (!rt->ready_head) rt->ready_tail = NULL;
    t->in_ready = 0;
    rt->ready_count--;
  }
  return t;
}

void tsk__ready_remove(tsk__task *t) {
  tsk_runtime_t *rt = t->rt;
  tsk__task *prev = NULL;
  for (tsk__task *c = rt->ready_head; c; prev = c, c = c->next_ready) {
    if (c != t) continue;
    if (prev)
      prev->next_ready = c->next_ready;
    else
      rt->ready_head = c->next_ready;
    if (rt->ready_tail == c) rt->ready_tail = prev;
    rt->ready_count--;
    t->in_ready = 0;
    return;
  }
}

/* Releases the stack of the last task that ended (it could not free the stack it was running
 * on) and, when nobody holds its handle any more, the task itself. Done late, where it costs
 * no resumed task anything: by the next task to end (tsk__task_exit) or by the scheduler when
 * its pass is over (on_idle); at most one zombie exists at a time. A task that returned
 * from its entry left no frame behind; one that started another task on its way out (see
 * tsk__task_exit) did, below its saved stack pointer. */
static void reap_zombie(tsk_runtime_t *rt) {
  tsk__task *z = rt->zombie;
  rt->zombie = NULL;
  if (tsk__ctx_started(&z->ctx)) tsk__stack_unpoison(z->stack, tsk__ctx_saved_sp(&z->ctx));
  tsk__stack_put(&rt->stacks, z->stack);
  z->stack = NULL;
  if (!z->handle_held) tsk__task_free(z);
}

/* AddressSanitizer must be told about every stack switch (it keeps per-stack shadow state).
 * A task that is ending passes save = NULL so that its fake stack is released. */
static inline void asan_before(void **save, const char *lo, size_t size) {
#ifdef TSK__ASAN
  __sanitizer_start_switch_fiber(save, lo, size);
#else
  (void)save, (void)lo, (void)size;
#endif
}

static inline void asan_after(void *save) {
#ifdef TSK__ASAN
  __sanitizer_finish_switch_fiber(save, NULL, NULL);
#else
  (void)save;
#endif
}

void tsk__after_first_switch(void) { asan_after(NULL); }

/* busy_time=on: charges the time since the last switch to the task leaving the CPU (NULL: the
 * loop itself, not charged). One clock read per switch, so it is off by default. */
static inline void account_busy(tsk_runtime_t *rt, tsk__task *leaving) {
  if (TSK__LIKELY(!rt->busy_time)) return;
  uint64_t now = uv_hrtime();
  if (leaving) leaving->busy_ns += now - rt->slice_start_ns;
  rt->slice_start_ns = now;
}

/* Makes next the running task (the bookkeeping of a switch to it). */
static inline void enter_task(tsk_runtime_t *rt, tsk__task *next) {
  account_busy(rt, rt->current);
  next->state = TSK_TASK_RUNNING;
  next->switches++;
  rt->stats.switches++;
  rt->current = next;
  tsk__current = next;
}

/* Where a task's first frame goes: below the per-task header at the top of its stack. */
static inline void start_task(tsk__ctx *from, tsk__task *next) {
  tsk__ctx_start(from, &next->ctx, next->stack->base, next->stack->size - TSK__STACK_RESERVED,
                 tsk__task_entry, next);
}

/* Switches from the context saved into from to next, starting next if it never ran. Returns
 * when something switches back to from. */
static inline void switch_to_task(tsk_runtime_t *rt, tsk__ctx *from, tsk__task *next) {
  enter_task(rt, next);
  void *save = NULL;
  asan_before(&save, next->stack->base, next->stack->size);
  if (TSK__LIKELY(tsk__ctx_started(&next->ctx)))
    tsk__ctx_switch(from, &next->ctx);
  else
    start_task(from, next);
  asan_after(save);
}

/* The end of a task (t, already finished): t becomes the zombie, and the context that runs
 * next is returned: the next ready task while the idle pass's batch lasts, else the scheduler.
 * A next task that never ran is started from here (this call then never returns: t's stack is
 * abandoned). */
tsk__ctx *tsk__task_exit(tsk__task *t) {
  tsk_runtime_t *rt = t->rt;
  if (rt->zombie) reap_zombie(rt); /* the previous one: its stack is free now */
  rt->zombie = t;
  tsk__task *next = NULL;
  if (rt->batch_left > 0 && (next = pop_ready(rt)) != NULL) rt->batch_left--;
  if (!next) {
    account_busy(rt, t);
    asan_before(NULL, rt->sched_stack_lo, rt->sched_stack_size);
    return &rt->sched_ctx;
  }
  enter_task(rt, next);
  asan_before(NULL, next->stack->base, next->stack->size);
  if (TSK__LIKELY(tsk__ctx_started(&next->ctx))) return &next->ctx;
  start_task(&t->ctx, next);
  abort(); /* nothing resumes a finished task */
}

static void on_idle(uv_idle_t *h) {
  tsk_runtime_t *rt = h->data;
  tsk__task *t = pop_ready(rt);
  if (t) {
    /* Tasks hand over to each other directly (see tsk__switch_to_scheduler) until the ready
     * queue is empty or the batch is used up; then control comes back here. */
    rt->batch_left = TSK__BATCH;
    rt->current = NULL;
    switch_to_task(rt, &rt->sched_ctx, t);
    tsk__current = NULL;
    rt->current = NULL;
    if (rt->zombie) reap_zombie(rt);
  }
  if (!rt->ready_head && rt->idle_active) {
    rt->idle_active = 0;
    uv_idle_stop(&rt->idle);
  }
}

static void stack_overflow(tsk__task *t) __attribute__((noreturn, cold, noinline));
static void stack_overflow(tsk__task *t) {
  fprintf(stderr, "taskscope: stack overflow in task %llu (%s): stack is %zu bytes; "
                  "spawn it with a larger stack_size\n",
          (unsigned long long)t->id, t->name[0] ? t->name : "?", t->stack->size);
  abort();
}

/* The overflow policy (stack.c): a task found below its stack's lower bound at a suspension
 * point is stopped with a message naming it. t is the running task (it has a stack). */
static inline void check_stack(tsk__task *t) {
  if (TSK__UNLIKELY((char *)__builtin_frame_address(0) < t->stack->base + 512)) stack_overflow(t);
}

/* Every yield the fast path below does not take: a pending cancellation, the batch used up,
 * busy-time accounting, a next task that never ran, AddressSanitizer builds. */
static __attribute__((noinline)) int yield_slow(tsk__task *t) {
  int rc = tsk__take_cancel(t);
  if (TSK__UNLIKELY(rc)) return rc;
  tsk_runtime_t *rt = t->rt;
  if (rt->batch_left > 0 && !rt->ready_head) {
    rt->batch_left--;
    return 0; /* nobody else is ready: keep running */
  }
  tsk__make_ready(t);
  tsk__switch_to_scheduler(t);
  return 0;
}

/* The hottest path of all, so it does in one place what tsk__make_ready and
 * tsk__switch_to_scheduler would do: the next ready task leaves the head of the queue, the
 * caller joins its tail, and control passes directly (a task only runs inside the loop's idle
 * pass, so the idle handle is active and the batch counter is live). It calls nothing but the
 * switch, as its last call (a sibling call, which this function allows): no register to save,
 * and the switch returns straight to tsk_yield's caller. Everything else is yield_slow's. */
TSK__SIBLING_CALLS int tsk_yield(void) {
  tsk__task *t = tsk__current;
  if (TSK__UNLIKELY(t == NULL)) return TSK_ENOTASK;
#ifdef TSK__ASAN
  return yield_slow(t); /* the switch needs a step after it (asan_after) */
#endif
  tsk_runtime_t *rt = t->rt;
  tsk__task *next = rt->ready_head;
  if (TSK__UNLIKELY(t->cancel_requested || rt->batch_left <= 0 || !next ||
                    !tsk__ctx_started(&next->ctx) || rt->busy_time))
    return yield_slow(t);
  rt->batch_left--;
  rt->ready_head = next->next_ready;
  next->in_ready = 0;
  t->in_ready = 1;
  t->state = TSK_TASK_READY;
  t->next_ready = NULL;
  if (rt->ready_head)
    rt->ready_tail->next_ready = t;
  else
    rt->ready_head = t;
  rt->ready_tail = t;
  check_stack(t);
  enter_task(rt, next);
  return tsk__ctx_switch(&t->ctx, &next->ctx);
}

/* Sibling calls allowed: the switch is the last call on every path (but in AddressSanitizer
 * builds), so it is a jump and the switch returns straight to the caller. */
TSK__SIBLING_CALLS void tsk__switch_to_scheduler(tsk__task *t) {
  check_stack(t);
  tsk_runtime_t *rt = t->rt;
  if (rt->batch_left > 0) {
    tsk__task *next = pop_ready(rt);
    if (next) {
      rt->batch_left--;
      if (next == t) { /* a yield with nobody else ready: keep running */
        t->state = TSK_TASK_RUNNING;
        return;
      }
      switch_to_task(rt, &t->ctx, next);
      return;
    }
  }
  void *save = NULL;
  account_busy(rt, t);
  asan_before(&save, rt->sched_stack_lo, rt->sched_stack_size);
  tsk__ctx_switch(&t->ctx, &rt->sched_ctx);
  asan_after(save);
}

static int runtime_init(tsk_runtime_t *rt, uv_loop_t *loop) {
  int rc;
  rt->loop = loop;
  rt->owner_token = &tsk__thread_token;
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void *lo;
    size_t size;
    if (pthread_attr_getstack(&attr, &lo, &size) == 0) {
      rt->sched_stack_lo = lo;
      rt->sched_stack_size = size;
    }
    pthread_attr_destroy(&attr);
  }
  tsk__list_init(&rt->live);
  tsk__list_init(&rt->finished);
  tsk__list_init(&rt->io_handles);
  tsk__list_init(&rt->offload_reqs);
  tsk__list_init(&rt->groups);
  if ((rc = tsk__registry_init(rt)) != 0) return rc;
  tsk__stack_pool_init(&rt->stacks,
                       rt->opts->stack_size ? rt->opts->stack_size : TSK__DEFAULT_STACK);
  if ((rc = pthread_mutex_init(&rt->post_lock, NULL)) != 0) {
    tsk__registry_free(rt);
    return -rc;
  }
  if ((rc = uv_idle_init(loop, &rt->idle)) != 0) goto fail_mutex;
  rt->idle.data = rt;
  if ((rc = tsk__timer_setup(rt)) != 0) goto fail_idle;
  if ((rc = uv_async_init(loop, &rt->async, on_async)) != 0) goto fail_timer;
  rt->async.data = rt;
  uv_unref((uv_handle_t *)&rt->async);
  rt->handles_open = 3;
  rt->handles_open += tsk__events_runtime_init(rt);
  return 0;
fail_timer:
  uv_close((uv_handle_t *)&rt->timer_handle, NULL);
fail_idle:
  uv_close((uv_handle_t *)&rt->idle, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
fail_mutex:
  pthread_mutex_destroy(&rt->post_lock);
  tsk__registry_free(rt);
  return rc;
}

int tsk_runtime_new(tsk_runtime_t **out) {
  tsk_runtime_t *rt = calloc(1, sizeof *rt);
  if (!rt) return TSK_ENOMEM;
  int rc = uv_loop_init(&rt->own_loop);
  if (rc) {
    free(rt);
    return rc;
  }
  rt->owns_loop = 1;
  rc = runtime_init(rt, &rt->own_loop);
  if (rc) {
    uv_loop_close(&rt->own_loop);
    free(rt);
    return rc;
  }
  *out = rt;
  return 0;
}

int tsk_runtime_new_on(uv_loop_t *loop, tsk_runtime_t **out) {
  if (!loop || !out) return TSK_EINVAL;
  tsk_runtime_t *rt = calloc(1, sizeof *rt);
  if (!rt) return TSK_ENOMEM;
  int rc = runtime_init(rt, loop);
  if (rc) {
    free(rt);
    return rc;
  }
  *out = rt;
  return 0;
}

uv_loop_t *tsk_runtime_loop(tsk_runtime_t *rt) { return rt->loop; }

tsk_runtime_t *tsk_runtime_current(void) { return tsk__current ? tsk__current->rt : NULL; }

int tsk_runtime_set_stack_size(tsk_runtime_t *rt, size_t bytes) {
  int rc = tsk__check_thread(rt);
  if (rc) return rc;
  if (bytes < TSK__MIN_STACK) bytes = TSK__MIN_STACK;
  if (rt->stacks.carved > 0) {
    /* Pooled stacks already have the old size; start a new pool only if nothing was carved. */
    return TSK_EBUSY;
  }
  tsk__stack_pool_init(&rt->stacks, bytes);
  return 0;
}

static int posts_pending(tsk_runtime_t *rt) {
  pthread_mutex_lock(&rt->post_lock);
  int pending = rt->post_head != NULL;
  pthread_mutex_unlock(&rt->post_lock);
  return pending;
}

int tsk_run(tsk_runtime_t *rt) {
  int rc = tsk__check_thread(rt);
  if (rc) return rc;
  if (rt->running || tsk__current) return TSK_EBUSY;
  if (rt->closing) return TSK_ECLOSED;
  rt->running = 1;
  tsk__events_running(rt, 1);
  /* The async handle that delivers posts is unreferenced, so uv_run alone would return without
   * running work posted while the loop was not running (or in its last iteration): it is pending
   * work too, so spawn it first, and go round again for posts that arrived meanwhile. */
  for (;;) {
    if (posts_pending(rt)) on_async(&rt->async);
    uv_run(rt->loop, UV_RUN_DEFAULT);
    if (!posts_pending(rt)) break;
  }
  rt->running = 0;
  tsk__events_running(rt, 0);
  return 0;
}

typedef struct main_ctx {
  tsk_fn fn;
  void *arg;
  tsk_runtime_t *rt;
} main_ctx;

static int main_trampoline(void *p) {
  main_ctx *m = p;
  int rc = m->fn(m->arg);
  /* The loop may stop once the main task is gone: drop the keep-alive reference. */
  m->rt->main_done = 1;
  uv_unref((uv_handle_t *)&m->rt->async);
  uv_stop(m->rt->loop);
  return rc;
}

int tsk_run_main(tsk_runtime_t *rt, const char *name, tsk_fn fn, void *arg, tsk_result_t *res) {
  int rc = tsk__check_thread(rt);
  if (rc) return rc;
  if (rt->running || tsk__current) return TSK_EBUSY;
  if (rt->closing) return TSK_ECLOSED;
  if (!fn) return TSK_EINVAL;
  main_ctx m = {fn, arg, rt};
  tsk_task_t h;
  rc = tsk_spawn(rt, &h, name ? name : "main", main_trampoline, &m);
  if (rc) return rc;
  rt->main_done = 0;
  rt->main_task_id = h.id;
  uv_ref((uv_handle_t *)&rt->async);
  rt->running = 1;
  tsk__events_running(rt, 1);
  while (!rt->main_done) {
    if (uv_run(rt->loop, UV_RUN_DEFAULT) == 0 && !rt->main_done) break;
  }
  rt->running = 0;
  tsk__events_running(rt, 0);
  if (!rt->main_done) uv_unref((uv_handle_t *)&rt->async);
  return tsk_join(h, 0, res);
}

/* ---- cross-thread posts ---- */

int tsk_post(tsk_runtime_t *rt, const char *name, tsk_fn fn, void *arg) {
  if (!rt || !fn) return TSK_EINVAL;
  tsk__post *p = malloc(sizeof *p);
  if (!p) return TSK_ENOMEM;
  p->next = NULL;
  p->fn = fn;
  p->arg = arg;
  snprintf(p->name, sizeof p->name, "%s", name ? name : "");
  pthread_mutex_lock(&rt->post_lock);
  if (rt->post_closed) {
    pthread_mutex_unlock(&rt->post_lock);
    free(p);
    return TSK_ECLOSED;
  }
  if (rt->post_tail)
    rt->post_tail->next = p;
  else
    rt->post_head = p;
  rt->post_tail = p;
  /* Sent under the lock so that close (which takes the lock first) cannot close the handle
   * between our check and the send. */
  uv_async_send(&rt->async);
  pthread_mutex_unlock(&rt->post_lock);
  return 0;
}

static void on_async(uv_async_t *h) {
  tsk_runtime_t *rt = h->data;
  if (rt->insp) tsk__events_on_async(rt); /* the inspector server's requests */
  pthread_mutex_lock(&rt->post_lock);
  tsk__post *p = rt->post_head;
  rt->post_head = rt->post_tail = NULL;
  pthread_mutex_unlock(&rt->post_lock);
  while (p) {
    tsk__post *next = p->next;
    tsk_task_t t;
    if (tsk_spawn(rt, &t, p->name[0] ? p->name : NULL, p->fn, p->arg) == 0) tsk_detach(t);
    free(p);
    p = next;
  }
}

/* ---- close ---- */

static void on_handle_closed(uv_handle_t *h) {
  tsk_runtime_t *rt = h->data;
  rt->handles_open--;
}

static void close_foreign_handle(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

int tsk_runtime_close(tsk_runtime_t *rt) {
  if (!rt) return TSK_EINVAL;
  int rc = tsk__check_thread(rt);
  if (rc) return rc;
  if (tsk__current || rt->running) return TSK_EBUSY;
  rt->closing = 1;
  pthread_mutex_lock(&rt->post_lock);
  rt->post_closed = 1;
  tsk__post *p = rt->post_head;
  rt->post_head = rt->post_tail = NULL;
  pthread_mutex_unlock(&rt->post_lock);
  while (p) {
    tsk__post *n = p->next;
    free(p);
    p = n;
  }

  /* Record and report what is left (destroyed_pending, unretrieved_error), then destroy every
   * unfinished task. */
  tsk__registry_close(rt);
  rt->ready_head = rt->ready_tail = NULL;
  rt->ready_count = 0;
  while (!tsk__list_empty(&rt->live)) {
    tsk__task *t = TSK__CONTAINER(rt->live.next, tsk__task, live_link);
    tsk__task_destroy(t);
  }
  /* An unlink callback may have made a (since destroyed) task ready: forget the queue again. */
  rt->ready_head = rt->ready_tail = NULL;
  rt->ready_count = 0;
  tsk__task_free_finished(rt);
  tsk__group_runtime_close(rt);
  tsk__offload_runtime_close(rt);
  tsk__io_runtime_close(rt);
  tsk__events_runtime_close(rt, on_handle_closed);

  uv_close((uv_handle_t *)&rt->idle, on_handle_closed);
  uv_close((uv_handle_t *)&rt->timer_handle, on_handle_closed);
  uv_close((uv_handle_t *)&rt->async, on_handle_closed);
  if (rt->owns_loop) {
    uv_walk(rt->loop, close_foreign_handle, NULL);
    uv_run(rt->loop, UV_RUN_DEFAULT);
    uv_loop_close(rt->loop);
  } else {
    while (rt->handles_open > 0) uv_run(rt->loop, UV_RUN_ONCE);
  }
  tsk__timer_cleanup(rt);
  while (rt->free_tasks) {
    tsk__task *t = rt->free_tasks;
    rt->free_tasks = t->next_ready;
    free(t);
  }
  tsk__stack_pool_close(&rt->stacks);
  pthread_mutex_destroy(&rt->post_lock);
  tsk__registry_free(rt);
  free(rt);
  return 0;
}

void tsk_runtime_stats(tsk_runtime_t *rt, tsk_stats_t *st) {
  *st = rt->stats;
  st->live = tsk__live_count(rt);
  st->ready = rt->ready_count;
  /* Every live task is running (the caller, when it is a task of rt), ready or waiting. */
  uint64_t running = rt->current && rt->current != rt->zombie ? 1 : 0;
  st->waiting = st->live >= st->ready + running ? st->live - st->ready - running : 0;
  st->stacks_mapped = rt->stacks.carved;
  /* The last ended task's stack is unused already; it joins the pool at the next reap. */
  st->stacks_pooled = rt->stacks.free_count + (rt->zombie && rt->zombie->stack ? 1 : 0);
  st->stack_regions = rt->stacks.regions;
}
