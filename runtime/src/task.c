/*
 * task.c — spawning, ending, joining, detaching and cancelling tasks.
 *
 * Ownership: the runtime owns every task struct. A task struct is freed when both (1) the task
 * has ended (or was destroyed) and (2) no handle to it is held (joined, detached, or its group
 * reaped it). Structs are recycled through a free list; ids are never reused, which is what lets
 * a stale handle be recognised (TSK_ESTALE) instead of touching another task.
 */
#include "internal.h"
#include "backtrace.h"
#include "events.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Task ids are unique in the process. Each thread takes them from the shared counter in blocks,
 * so that a spawn costs no atomic operation. */
#define TSK__ID_BLOCK 4096
static _Atomic uint64_t next_id_block = 1;
static __thread uint64_t id_next, id_end;

/* A mark: every task created by this thread from now on has an id >= the value returned. */
uint64_t tsk__peek_next_task_id(void) {
  if (id_next != id_end) return id_next;
  return atomic_load_explicit(&next_id_block, memory_order_relaxed);
}

static uint64_t new_task_id(void) {
  if (TSK__UNLIKELY(id_next == id_end)) {
    id_next = atomic_fetch_add_explicit(&next_id_block, TSK__ID_BLOCK, memory_order_relaxed);
    id_end = id_next + TSK__ID_BLOCK;
  }
  return id_next++;
}


static tsk__task *task_alloc(tsk_runtime_t *rt) {
  tsk__task *t = rt->free_tasks;
  if (TSK__LIKELY(t != NULL)) {
    rt->free_tasks = t->next_ready;
    return t;
  }
  return malloc(sizeof *t);
}

static void task_recycle(tsk_runtime_t *rt, tsk__task *t) {
  t->id = 0; /* a stale handle never matches a recycled struct */
  t->next_ready = rt->free_tasks;
  rt->free_tasks = t;
}

/* The heap parts of a task that failed or was reported (rare). */
static void free_extras(tsk__task *t) {
  free(t->message);
  t->message = NULL;
  free(t->raised);
  t->raised = NULL;
  free(t->created_copy);
  t->created_copy = NULL;
}

void tsk__task_free(tsk__task *t) {
  tsk__list_remove(&t->live_link); /* from rt->finished (a no-op for a destroyed task) */
  if (TSK__UNLIKELY(t->message || t->raised || t->created_copy)) free_extras(t);
  task_recycle(t->rt, t);
}

static void task_finish(tsk__task *t, int rc);

/* The first function every task runs, on its own stack (started by tsk__ctx_start). */
tsk__ctx *tsk__task_entry(void *p) {
  tsk__task *t = p;
  tsk_runtime_t *rt = t->rt;
  tsk__after_first_switch();
  t->first_run_ms = tsk__now_ms(rt);
  int rc = t->fn(t->arg);
  task_finish(t, rc);
  return tsk__task_exit(t);
}

/* The one spawn (tsk_spawn, tsk_spawn_ex and groups), inline in each: a spawn is half of the
 * spawn+join hot path. */
static inline __attribute__((always_inline)) int spawn_task(
    tsk_runtime_t *rt, tsk_task_t *out, const char *name, tsk_fn fn, void *arg,
    size_t stack_size, int owned_by_group, struct tsk_group *group) {
  if (TSK__UNLIKELY(!rt || !fn)) return TSK_EINVAL;
  int rc = tsk__check_thread(rt);
  if (TSK__UNLIKELY(rc)) return rc;
  if (TSK__UNLIKELY(rt->closing)) return TSK_ECLOSED;
  tsk__task *t = task_alloc(rt);
  if (TSK__UNLIKELY(!t)) return TSK_ENOMEM;
  tsk__stack *stack = tsk__stack_get(&rt->stacks, stack_size);
  if (TSK__UNLIKELY(!stack)) {
    task_recycle(rt, t);
    return TSK_ENOMEM;
  }
  tsk__ctx_init(&t->ctx);
  t->id = new_task_id();
  t->parent_id = tsk__current ? tsk__current->id : 0;
  t->rt = rt;
  t->fn = fn;
  t->arg = arg;
  t->stack = stack;
  tsk__stack_hdr *hdr = tsk__hdr(stack);
  t->group = group; /* group_link is set by the group (group.c), for its tasks only */
  t->created_ms = tsk__now_ms(rt);
  memset(&t->state, 0, sizeof *t - offsetof(tsk__task, state));
  t->handle_held = 1;
  t->owned_by_group = (uint8_t)(owned_by_group != 0);
  if (name) {
    size_t n = strlen(name);
    if (n >= TSK__NAME_INLINE) n = TSK__NAME_INLINE - 1;
    memcpy(t->name, name, n);
  }
  /* The creation backtrace: raw return addresses only (symbolized when shown). Its first frames
   * are the runtime's own (tsk_spawn and the like): reports trim them. */
  hdr->ncreated = rt->bt_frames ? (uint8_t)tsk__bt_capture(hdr->created, rt->bt_frames, 0) : 0;
  tsk__list_push(&rt->live, &t->live_link);
  rt->stats.spawned++;
  tsk__ev_spawn(rt, t);
  tsk__make_ready(t);
  if (out) {
    out->ptr = t;
    out->id = t->id;
  }
  return 0;
}

int tsk__spawn(tsk_runtime_t *rt, tsk_task_t *out, const char *name, tsk_fn fn, void *arg,
               size_t stack_size, int owned_by_group, struct tsk_group *group) {
  return spawn_task(rt, out, name, fn, arg, stack_size, owned_by_group, group);
}

int tsk_spawn(tsk_runtime_t *rt, tsk_task_t *out, const char *name, tsk_fn fn, void *arg) {
  if (!out) return TSK_EINVAL;
  return spawn_task(rt, out, name, fn, arg, 0, 0, NULL);
}

int tsk_spawn_ex(tsk_runtime_t *rt, tsk_task_t *out, const tsk_spawn_opts_t *opts, tsk_fn fn,
                 void *arg) {
  if (!out) return TSK_EINVAL;
  return spawn_task(rt, out, opts ? opts->name : NULL, fn, arg, opts ? opts->stack_size : 0, 0,
                    NULL);
}

static void task_finish(tsk__task *t, int rc) {
  tsk_runtime_t *rt = t->rt;
  t->error = rc;
  if (TSK__LIKELY(rc == 0))
    t->state = TSK_TASK_DONE;
  else if (rc == TSK_ECANCELED && t->cancel_requested)
    t->state = TSK_TASK_CANCELLED;
  else
    t->state = TSK_TASK_FAILED;
  t->finished_ms = tsk__now_ms(rt);
  tsk__ev_live_remove(rt, t);
  tsk__list_remove(&t->live_link);
  tsk__list_push(&rt->finished, &t->live_link);
  rt->stats.finished++;
  tsk__ev_finish(t);
  tsk__registry_task_finished(t);
  if (TSK__UNLIKELY(t->state == TSK_TASK_FAILED)) tsk__registry_task_failed(t);
  if (t->joiner) tsk__join_wake(t);
  if (TSK__UNLIKELY(t->group != NULL)) tsk__group_task_finished(t);
}

void tsk__task_destroy(tsk__task *t) {
  tsk_runtime_t *rt = t->rt;
  if (t->wait) {
    tsk__wait *w = t->wait;
    t->wait = NULL;
    if (w->unlink) w->unlink(w);
    tsk__timer_disarm(rt, &w->timer);
  }
  t->in_ready = 0;
  t->state = TSK_TASK_DESTROYED;
  tsk__ev_live_remove(rt, t);
  tsk__list_remove(&t->live_link);
  tsk__ev_simple(rt, TSK__EV_DESTROY, t->id);
  rt->destroyed++;
  if (t->group) tsk__group_task_finished(t);
  /* t->joiner, if any, is being destroyed too (runtime close) or was woken already
   * (tsk_task_destroy). */
  if (tsk__ctx_started(&t->ctx)) tsk__stack_unpoison(t->stack, tsk__ctx_saved_sp(&t->ctx));
  tsk__stack_put(&rt->stacks, t->stack);
  t->stack = NULL;
  /* Handles held by the application become invalid with the runtime. */
  t->handle_held = 0;
  tsk__task_free(t);
}

/* Runtime close: frees the finished tasks nobody joined or detached (their handles die with
 * the runtime), after tsk__task_destroy took care of the unfinished ones. */
void tsk__task_free_finished(tsk_runtime_t *rt) {
  while (!tsk__list_empty(&rt->finished)) {
    tsk__task *t = TSK__CONTAINER(rt->finished.next, tsk__task, live_link);
    if (t->stack) { /* a zombie not reaped yet (defensive: close runs outside tasks) */
      if (rt->zombie == t) rt->zombie = NULL;
      if (tsk__ctx_started(&t->ctx)) tsk__stack_unpoison(t->stack, tsk__ctx_saved_sp(&t->ctx));
      tsk__stack_put(&rt->stacks, t->stack);
      t->stack = NULL;
    }
    t->handle_held = 0;
    tsk__task_free(t);
  }
}

static int finished(const tsk__task *t) {
  return t->state == TSK_TASK_DONE || t->state == TSK_TASK_FAILED ||
         t->state == TSK_TASK_CANCELLED;
}

/* Hands the outcome to the joiner and releases the handle. */
static void fill_result(tsk__task *t, tsk_result_t *res) {
  res->state = t->state;
  res->error = t->error;
  res->value = t->value;
  res->message[0] = 0;
  if (t->message) {
    size_t n = strlen(t->message);
    if (n >= sizeof res->message) n = sizeof res->message - 1;
    memcpy(res->message, t->message, n);
    res->message[n] = 0;
  }
}

static int collect(tsk__task *t, tsk_result_t *res) {
  int rc = t->error;
  t->retrieved = 1;
  if (res) fill_result(t, res);
  t->handle_held = 0;
  if (!t->stack) tsk__task_free(t); /* else the scheduler frees it after its last switch */
  return rc;
}

int tsk_join(tsk_task_t h, int64_t timeout_ms, tsk_result_t *res) {
  int rc;
  tsk__task *t = tsk__task_from_handle(h, &rc);
  if (!t) return rc;
  if (t->owned_by_group) return TSK_EINVAL;
  if (finished(t)) return collect(t, res);
  tsk__task *self = tsk__current;
  if (!self) return TSK_ENOTASK;
  if (self == t) return TSK_EDEADLK;
  if (t->joiner) return TSK_EBUSY;
  rc = tsk__join_wait(t, timeout_ms, 1);
  if (rc == 0) return collect(t, res);
  if (rc == TSK_ETIMEDOUT) {
    /* wait_for semantics: cancel what we waited for and wait until it has ended. */
    if (!finished(t)) {
      tsk__cancel_task(t);
      tsk__join_wait(t, TSK_FOREVER, 0);
    }
    collect(t, res);
    return TSK_ETIMEDOUT;
  }
  return rc; /* TSK_ECANCELED: the joiner was cancelled, the handle stays valid */
}

int tsk_detach(tsk_task_t h) {
  int rc;
  tsk__task *t = tsk__task_from_handle(h, &rc);
  if (!t) return rc;
  if (t->owned_by_group) return TSK_EINVAL;
  if (t->joiner) return TSK_EBUSY;
  t->handle_held = 0;
  if (finished(t)) {
    tsk__registry_released(t);
    if (!t->stack) tsk__task_free(t);
  }
  return 0;
}

int tsk_task_result(tsk_task_t h, tsk_result_t *res) {
  int rc;
  tsk__task *t = tsk__task_from_handle(h, &rc);
  if (!t) return rc;
  if (!finished(t)) return TSK_EAGAIN;
  t->retrieved = 1;
  if (res) fill_result(t, res);
  return t->error;
}

int tsk_task_info(tsk_task_t h, tsk_task_info_t *info) {
  int rc;
  tsk__task *t = tsk__task_from_handle(h, &rc);
  if (!t) return rc;
  if (!info) return TSK_EINVAL;
  memset(info, 0, sizeof *info);
  info->id = t->id;
  info->parent_id = t->parent_id;
  memcpy(info->name, t->name, sizeof t->name);
  info->state = t->state;
  if (t->wait) {
    info->awaiting = t->wait->kind;
    info->awaiting_id = t->wait->object_id;
  }
  info->created_ms = t->created_ms;
  info->first_run_ms = t->first_run_ms;
  info->finished_ms = t->finished_ms;
  info->switches = t->switches;
  info->busy_ns = t->busy_ns;
  return 0;
}

int tsk_task_destroy(tsk_task_t h) {
  int rc;
  tsk__task *t = tsk__task_from_handle(h, &rc);
  if (!t) return rc;
  if (t->owned_by_group) return TSK_EINVAL;
  if (t == tsk__current) return TSK_EDEADLK;
  if (finished(t)) return TSK_EINVAL;
  if (t->rt->zombie == t) return TSK_EINVAL;
  tsk__registry_destroyed(t, "destroyed explicitly (tsk_task_destroy)");
  /* Its joiner can never get an outcome now (join_unlink clears t->joiner). */
  if (t->joiner) tsk__wait_end(t->joiner, TSK_EBROKEN);
  if (t->in_ready) tsk__ready_remove(t);
  tsk__task_destroy(t);
  return 0;
}

int tsk__cancel_task(tsk__task *t) {
  if (finished(t) || t->state == TSK_TASK_DESTROYED) return 0;
  t->cancel_requested = 1;
  t->cancel_delivered = 0;
  if (t->wait && t->wait->cancellable) {
    t->cancel_delivered = 1;
    tsk__wait_end(t->wait, TSK_ECANCELED);
  }
  return 0;
}

int tsk_cancel(tsk_task_t h) {
  int rc;
  tsk__task *t = tsk__task_from_handle(h, &rc);
  if (!t) return rc;
  return tsk__cancel_task(t);
}

int tsk_task_state(tsk_task_t h, tsk_task_state_t *state) {
  int rc;
  tsk__task *t = tsk__task_from_handle(h, &rc);
  if (!t) return rc;
  *state = t->state;
  return 0;
}

tsk_task_t tsk_self(void) {
  tsk_task_t h = {tsk__current, tsk__current ? tsk__current->id : 0};
  return h;
}

uint64_t tsk_self_id(void) { return tsk__current ? tsk__current->id : 0; }

void tsk_set_result(void *value) {
  if (tsk__current) tsk__current->value = value;
}

int tsk_error(int err, const char *fmt, ...) {
  tsk__task *t = tsk__current;
  if (!t || !fmt) return err;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  tsk__task_set_message(t, buf);
  /* The raise backtrace: where the error was made (failures are rare, so a heap copy). */
  if (t->rt->bt_frames && !t->raised) {
    uintptr_t ips[TSK__CREATED_MAX];
    int n = tsk__bt_capture(ips, t->rt->bt_frames, 0);
    if (n > 0 && (t->raised = malloc((size_t)n * sizeof(uintptr_t)))) {
      memcpy(t->raised, ips, (size_t)n * sizeof(uintptr_t));
      t->nraised = (uint8_t)n;
    }
  }
  return err;
}

int tsk_cancel_requested(void) { return tsk__current ? tsk__current->cancel_requested : 0; }
