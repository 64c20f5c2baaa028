/*
 * internal.h — structures shared by the runtime's files. Not installed.
 * Internal cross-file symbols are prefixed tsk__; everything else is static.
 */
#ifndef TSK_INTERNAL_H
#define TSK_INTERNAL_H

#include "taskscope.h"
#include "ctx.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#define TSK__LIKELY(x) __builtin_expect(!!(x), 1)
#define TSK__UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Lets a function end in a jump to its last call (a sibling call) although the build turns
 * them off everywhere else (-fno-optimize-sibling-calls keeps users' backtraces whole). Used
 * only where the last call is the context switch. GCC only: with clang it stays a call. */
#if defined(__clang__)
#define TSK__SIBLING_CALLS
#else
#define TSK__SIBLING_CALLS __attribute__((optimize("optimize-sibling-calls")))
#endif

/* ---- intrusive doubly linked list (circular, with a head node) ---- */
typedef struct tsk__list {
  struct tsk__list *next, *prev;
} tsk__list;

static inline void tsk__list_init(tsk__list *h) { h->next = h->prev = h; }
static inline int tsk__list_empty(const tsk__list *h) { return h->next == h; }
static inline void tsk__list_push(tsk__list *h, tsk__list *n) {
  n->prev = h->prev;
  n->next = h;
  h->prev->next = n;
  h->prev = n;
}
static inline void tsk__list_remove(tsk__list *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->next = n->prev = n;
}
#define TSK__CONTAINER(ptr, type, field) ((type *)((char *)(ptr) - offsetof(type, field)))

/* ---- timers: one min-heap per runtime, driven by a single uv_timer_t ---- */
typedef struct tsk__timer {
  uint64_t due;     /* uv_now() based deadline, ms */
  uint64_t seq;     /* insertion order, breaks ties so equal deadlines fire FIFO */
  size_t index;     /* position in the heap; SIZE_MAX when not armed */
  void (*fire)(struct tsk__timer *);
} tsk__timer;

/* ---- waits ----
 * A suspended task points at one wait record living in its own stack frame. Whoever ends the
 * wait (the awaited object, the timer, a cancellation) first unlinks the record from the object
 * (unlink callback), disarms the timer, sets `result`, and makes the task ready. */
typedef struct tsk__wait {
  struct tsk__task *task;
  tsk_wait_kind_t kind;
  uint64_t object_id;      /* id of what is awaited (task id, future id, ...) */
  int result;              /* set by whoever ends the wait */
  int cancellable;         /* 0: cancellation/timeout is recorded but does not end the wait */
  tsk__list link;          /* in the awaited object's waiter list, if it keeps one */
  void (*unlink)(struct tsk__wait *); /* removes the record from the object; may be NULL */
  tsk__timer timer;
  void *data;              /* for the object's use (e.g. a channel message slot) */
} tsk__wait;

/* ---- stacks ---- */
typedef struct tsk__stack {
  char *base;  /* lowest address */
  size_t size;
  struct tsk__stack *next_free;
} tsk__stack;

typedef struct tsk__stack_pool {
  size_t stack_size;       /* default size of a pooled stack */
  tsk__stack *free_list;   /* LIFO of reusable stacks of stack_size */
  size_t free_count;
  char *region_cur;        /* next uncarved byte of the current region */
  char *region_end;
  size_t regions;
  size_t carved;
  tsk__list regions_list;  /* every region, for unmapping at close */
} tsk__stack_pool;

/* ---- tasks ---- */
#define TSK__NAME_INLINE 32

typedef struct tsk__task {
  tsk__ctx ctx;                /* saved context while not running; must stay first */
  uint64_t id;
  uint64_t parent_id;
  struct tsk_runtime *rt;
  tsk_fn fn;
  void *arg;
  tsk__stack *stack;
  struct tsk__task *next_ready;
  tsk__list live_link;         /* in rt->live while not finished */
  struct tsk_group *group;
  tsk__list group_link;        /* in its group's list (group.c; unset for other tasks) */
  uint64_t created_ms;         /* uv_now at spawn */
  /* From `state` to the end: all zero at spawn except state, handle_held and owned_by_group
   * (spawn_task in task.c clears them with one memset, then sets those three). */
  tsk_task_state_t state;
  uint8_t handle_held;         /* a handle (tsk_task_t) is outstanding */
  uint8_t in_ready;            /* in rt->ready */
  uint8_t cancel_requested;
  uint8_t cancel_delivered;
  uint8_t owned_by_group;
  uint8_t retrieved;           /* its outcome was read (join, tsk_task_result) */
  uint8_t recorded;            /* a leak record was made for it (one per task) */
  uint8_t ndeadlines;
  uint8_t nraised;
  uint8_t ncreated_copy;
  uint32_t switches;
  int error;                   /* return code */
  void *value;
  char *message;               /* heap, NULL when none */
  tsk__wait *wait;             /* current wait while WAITING */
  tsk__wait *joiner;           /* the wait record of the task joining this one */
  uint64_t busy_ns;            /* time on the CPU (busy_time=on only) */
  uint64_t first_run_ms;       /* uv_now at first resume; 0 = never ran */
  uint64_t finished_ms;
  uintptr_t *raised;           /* heap: backtrace of the tsk_error call that failed it */
  uintptr_t *created_copy;     /* heap: creation backtrace kept past the stack (failed tasks) */
  char name[TSK__NAME_INLINE]; /* "" = default (entry symbol, resolved lazily) */
} tsk__task;

/* The top of every task stack: per-task data that costs no memory of its own, because the
 * stack's top page is touched by the task's first frame anyway. */
#define TSK__DEADLINES 16
#define TSK__CREATED_MAX 64
typedef struct tsk__stack_hdr {
  uint64_t deadlines[TSK__DEADLINES];
  uint8_t ncreated;
  uintptr_t created[TSK__CREATED_MAX]; /* creation backtrace (raw return addresses) */
} tsk__stack_hdr;

/* The top of a stack holds its descriptor (tsk__stack, stack.c) and then this header; frames
 * start below TSK__STACK_RESERVED bytes from the top (16-byte aligned). */
#define TSK__STACK_RESERVED \
  ((sizeof(tsk__stack_hdr) + sizeof(tsk__stack) + 15) / 16 * 16)
static inline tsk__stack_hdr *tsk__hdr(tsk__stack *s) {
  return (tsk__stack_hdr *)(void *)(s->base + s->size - TSK__STACK_RESERVED);
}
/* The task's tsk_timeout_push deadlines (uv_now ms; ndeadlines of them), in its stack header. */
static inline uint64_t *tsk__deadlines(tsk__task *t) { return tsk__hdr(t->stack)->deadlines; }

/* ---- cross-thread posts ---- */
typedef struct tsk__post {
  struct tsk__post *next;
  tsk_fn fn;
  void *arg;
  char name[TSK__NAME_INLINE];
} tsk__post;

struct tsk_runtime {
  uv_loop_t *loop;
  uv_loop_t own_loop;
  int owns_loop;
  const char *owner_token;     /* &tsk__thread_token of the owner thread */
  int closing;
  int running;                 /* inside tsk_run */
  tsk__ctx sched_ctx;          /* the loop thread's own context while a task runs */
  const char *sched_stack_lo;  /* the owner thread's stack (for AddressSanitizer) */
  size_t sched_stack_size;
  tsk__task *current;
  tsk__task *ready_head, *ready_tail;
  uint64_t ready_count;
  uv_idle_t idle;              /* active while tasks are ready */
  int idle_active;
  uv_timer_t timer_handle;     /* drives the timer heap */
  uint64_t timer_handle_due;
  tsk__timer **heap;
  size_t heap_len, heap_cap;
  uint64_t timer_seq;
  uv_async_t async;            /* wakes the loop for tsk_post */
  pthread_mutex_t post_lock;
  tsk__post *post_head, *post_tail;
  int post_closed;
  int handles_open;            /* handles not yet closed (for close) */
  tsk__stack_pool stacks;
  tsk__task *free_tasks;       /* recycled task structs (linked through next_ready) */
  tsk__list live;              /* unfinished tasks */
  tsk__list finished;          /* finished tasks whose struct is not freed yet (handle still
                                  held, or stack not yet reaped); freed at close */
  int batch_left;              /* direct task-to-task switches left in this idle pass */
  tsk__task *zombie;           /* the last task that ended; its stack is released later
                                  (reap_zombie in runtime.c) */
  tsk_stats_t stats;           /* spawned, finished and switches are kept up to date; the rest
                                  is derived in tsk_runtime_stats */
  uint64_t destroyed;          /* tasks destroyed before they finished */
  uint64_t offload_running_abandoned, offload_total_abandoned;
  uint64_t next_object_id;
  uint64_t main_task_id;        /* tsk_run_main's task, 0 when none */
  int main_done;
  tsk__list io_handles;        /* open tsk_tcp_t objects (io.c), closed at runtime close */
  tsk__list offload_reqs;      /* offload.c: work items not yet finished; detached from rt at
                                  runtime close so a late after_work never touches it */
  tsk__list groups;            /* groups not yet closed (group.c), freed at runtime close */
  /* registry.c */
  int bt_frames;               /* creation backtrace depth; 0 = backtrace=off */
  int busy_time;               /* busy_time=on: account each task's time on the CPU */
  uint64_t slice_start_ns;     /* when the running task got the CPU (busy_time=on) */
  struct tsk__options *opts;   /* heap copy of the options at creation */
  struct tsk__history *history; /* ring of recently finished tasks */
  struct tsk__leak *leaks, **leaks_tail; /* records not yet reported */
  size_t nleaks, leaks_dropped;
  tsk__list all_link;          /* in the process's list of open runtimes */
  /* events.c: the inspector server's view of this runtime (NULL when there is no server) */
  struct tsk__insp_rt *insp;   /* owner: the server (events.h) */
  tsk__list *resync_cursor;    /* last task re-emitted by a resync in progress, or NULL */
  uv_check_t insp_check;       /* loop liveness (unreferenced) */
  int insp_handles;            /* 1 when the handle above is open */
};

/* The calling thread's running task (NULL on a loop's own stack). */
extern __thread tsk__task *tsk__current;

/* runtime.c */
/* Starts the idle handle that runs ready tasks (the ready queue just became non-empty). */
void tsk__idle_start(tsk_runtime_t *rt);
/* Queues t at the tail of the ready queue (no-op when already queued). */
static inline void tsk__make_ready(tsk__task *t) {
  tsk_runtime_t *rt = t->rt;
  if (t->in_ready) return;
  t->in_ready = 1;
  t->state = TSK_TASK_READY;
  t->next_ready = NULL;
  if (rt->ready_tail)
    rt->ready_tail->next_ready = t;
  else
    rt->ready_head = t;
  rt->ready_tail = t;
  rt->ready_count++;
  if (TSK__UNLIKELY(!rt->idle_active)) tsk__idle_start(rt);
}
/* Tasks created and not finished (destroyed ones excluded). */
static inline uint64_t tsk__live_count(const tsk_runtime_t *rt) {
  return rt->stats.spawned - rt->stats.finished - rt->destroyed;
}
/* The loop's cached time (uv_now without the call). */
static inline uint64_t tsk__now_ms(const tsk_runtime_t *rt) { return rt->loop->time; }
/* Takes a ready task out of the ready queue (O(queue length); explicit destruction only). */
void tsk__ready_remove(tsk__task *t);
extern __thread char tsk__thread_token;
/* 0 when the calling thread owns rt, else TSK_EWRONGTHREAD. */
static inline int tsk__check_thread(tsk_runtime_t *rt) {
  return TSK__LIKELY(rt->owner_token == &tsk__thread_token) ? 0 : TSK_EWRONGTHREAD;
}
uint64_t tsk__next_object_id(tsk_runtime_t *rt);
/* The calling task if it runs on rt, else NULL (outside a task, or in a task of another runtime
 * on the same thread, which could never be resumed while rt's loop runs). */
static inline tsk__task *tsk__task_on(const tsk_runtime_t *rt) {
  tsk__task *t = tsk__current;
  return t && t->rt == rt ? t : NULL;
}

/* task.c */
int tsk__cancel_task(tsk__task *t);
/* The task behind a handle, or NULL with *err set: TSK_EINVAL (null handle), TSK_ESTALE (the
 * task was released: joined, detached, freed), TSK_EWRONGTHREAD. */
static inline tsk__task *tsk__task_from_handle(tsk_task_t h, int *err) {
  tsk__task *t = h.ptr;
  if (TSK__UNLIKELY(!t || h.id == 0)) {
    *err = TSK_EINVAL;
    return NULL;
  }
  if (TSK__UNLIKELY(t->id != h.id || !t->handle_held)) {
    *err = TSK_ESTALE;
    return NULL;
  }
  *err = tsk__check_thread(t->rt);
  return TSK__LIKELY(*err == 0) ? t : NULL;
}
void tsk__task_destroy(tsk__task *t);  /* runtime close: free an unfinished task */
void tsk__task_free(tsk__task *t);     /* recycle a finished, released task struct */
void tsk__task_free_finished(tsk_runtime_t *rt); /* runtime close: finished, never released */
int tsk__spawn(tsk_runtime_t *rt, tsk_task_t *out, const char *name, tsk_fn fn, void *arg,
               size_t stack_size, int owned_by_group, struct tsk_group *group);
/* group.c: called when a task of a group ends (state DONE/FAILED/CANCELLED) or is destroyed at
 * runtime close (state DESTROYED; the struct is freed right after the call). */
void tsk__group_task_finished(tsk__task *t);
/* group.c: frees every group still open (runtime close, after all tasks were destroyed). */
void tsk__group_runtime_close(tsk_runtime_t *rt);

/* wait.c: the suspension primitive.
 * tsk__wait_begin fills a record for the current task; the caller links it into the object,
 * then calls tsk__wait_suspend, which arms the timeout (timeout_ms, and the task's deadline
 * scopes), applies a pending cancellation, switches away and returns the record's result once
 * somebody ended the wait with tsk__wait_end. */
void tsk__on_wait_timeout(tsk__timer *tm);
/* Inline: every wait starts here, and a join is on the spawn+join hot path. */
static inline int tsk__wait_prepare(tsk__wait *w, tsk_wait_kind_t kind, uint64_t object_id) {
  tsk__task *t = tsk__current;
  if (TSK__UNLIKELY(t == NULL)) return TSK_ENOTASK;
  w->task = t;
  w->kind = kind;
  w->object_id = object_id;
  w->result = 0;
  w->cancellable = 1;
  w->unlink = NULL;
  w->data = NULL;
  w->link.next = w->link.prev = &w->link;
  w->timer.index = SIZE_MAX; /* not armed (timer.c) */
  w->timer.fire = tsk__on_wait_timeout;
  return 0;
}
int tsk__wait_suspend(tsk__wait *w, int64_t timeout_ms);
void tsk__wait_end(tsk__wait *w, int result);
/* A join: waits for target to end (target->joiner is the record meanwhile); cancellable as the
 * caller says. tsk__join_wake ends that wait when target ends (target->joiner set): the same as
 * tsk__wait_end(target->joiner, 0), on the spawn+join hot path. */
int tsk__join_wait(tsk__task *target, int64_t timeout_ms, int cancellable);
void tsk__join_wake(tsk__task *target);
/* Objects that keep their waiters in a list (through tsk__wait.link): tsk__wait_on_list queues a
 * prepared record at the tail of `waiters` (unlink: tsk__wait_unlink_list) and suspends;
 * tsk__wait_end_all ends every wait still queued there, in order, with `result`. */
void tsk__wait_unlink_list(tsk__wait *w);
int tsk__wait_on_list(tsk__wait *w, tsk__list *waiters, int64_t timeout_ms);
void tsk__wait_end_all(tsk__list *waiters, int result);
/* The oldest wait queued on waiters, or NULL. */
static inline tsk__wait *tsk__wait_first(tsk__list *waiters) {
  return tsk__list_empty(waiters) ? NULL : TSK__CONTAINER(waiters->next, tsk__wait, link);
}
/* Checked at every suspension point before waiting: TSK_ECANCELED once when a cancellation was
 * requested and not yet delivered (delivering it). */
static inline int tsk__take_cancel(tsk__task *t) {
  if (TSK__UNLIKELY(t->cancel_requested && !t->cancel_delivered)) {
    t->cancel_delivered = 1;
    return TSK_ECANCELED;
  }
  return 0;
}

/* io.c: closes every tsk_tcp_t still open (runtime close). */
void tsk__io_runtime_close(tsk_runtime_t *rt);
/* offload.c: detaches work still queued or running from the runtime (runtime close). */
void tsk__offload_runtime_close(tsk_runtime_t *rt);

/* timer.c (a wait's timer is initialised by tsk__wait_prepare) */
void tsk__timer_arm(tsk_runtime_t *rt, tsk__timer *tm, uint64_t due);
void tsk__timer_disarm(tsk_runtime_t *rt, tsk__timer *tm);
int tsk__timer_setup(tsk_runtime_t *rt);
void tsk__timer_cleanup(tsk_runtime_t *rt);

/* stack.c */
void tsk__stack_pool_init(tsk__stack_pool *p, size_t stack_size);
/* A stack of size bytes (0: the pool's size): from the pool, or carved, or (another size) its
 * own mapping. NULL when out of memory. */
tsk__stack *tsk__stack_get_slow(tsk__stack_pool *p, size_t size);
static inline tsk__stack *tsk__stack_get(tsk__stack_pool *p, size_t size) {
  tsk__stack *s = p->free_list;
  if (TSK__LIKELY(size == 0 && s != NULL)) {
    p->free_list = s->next_free;
    p->free_count--;
    return s;
  }
  return tsk__stack_get_slow(p, size);
}
/* Returns a stack to the pool; a stack of another size (its own mapping) is unmapped. */
void tsk__stack_unmap(tsk__stack *s);
static inline void tsk__stack_put(tsk__stack_pool *p, tsk__stack *s) {
  if (TSK__UNLIKELY(s->size != p->stack_size)) {
    tsk__stack_unmap(s);
    return;
  }
  s->next_free = p->free_list;
  p->free_list = s;
  p->free_count++;
}
/* AddressSanitizer builds: clears the poison left on a task's stack by frames that never
 * returned; sp is the task's last saved stack pointer (NULL: the whole stack). No-op otherwise. */
void tsk__stack_unpoison(tsk__stack *s, const void *sp);
void tsk__stack_pool_close(tsk__stack_pool *p);

/* config.c: a copy of the process's current options (TASKSCOPE_OPTIONS + tsk_options_set). */
struct tsk__options;
void tsk__config_snapshot(struct tsk__options *out);

/* registry.c: the task registry's bookkeeping and the leak records. */
int tsk__registry_init(tsk_runtime_t *rt);
/* Runtime close, before any task is destroyed: records every unfinished task as
 * destroyed_pending and every failed, never-joined task as unretrieved_error, reports them. */
void tsk__registry_close(tsk_runtime_t *rt);
void tsk__registry_free(tsk_runtime_t *rt);
/* What parent chains need of a finished task (registry.c, lookup); the inspector keeps its
 * own history of outcomes. Written at every task end: keep it to what is read. */
typedef struct tsk__history_entry {
  uint64_t id, parent_id;
  tsk_fn fn;                   /* for the default name, resolved only when shown */
  char name[TSK__NAME_INLINE]; /* the task's own name, "" for the default */
} tsk__history_entry;
struct tsk__history {
  size_t cap, next, count;
  tsk__history_entry e[];
};
/* Every task end: t goes into the bounded history of finished tasks. */
static inline void tsk__registry_task_finished(tsk__task *t) {
  struct tsk__history *h = t->rt->history;
  if (TSK__UNLIKELY(h->cap == 0)) return;
  tsk__history_entry *e = &h->e[h->next];
  e->id = t->id;
  e->parent_id = t->parent_id;
  e->fn = t->fn;
  memcpy(e->name, t->name, sizeof e->name); /* no formatting here: this runs per task */
  if (++h->next == h->cap) h->next = 0;
  if (h->count < h->cap) h->count++;
}
/* A task ended with an error (after tsk__registry_task_finished): keeps what a record of it
 * will need once its stack is gone. */
void tsk__registry_task_failed(tsk__task *t);
/* The handle of a finished task was released without retrieving its outcome. */
void tsk__registry_released(tsk__task *t);
/* The last completer of future `future_id` was released with tasks still waiting on it: each
 * waiter (the wait records on `waiters`) is recorded as stranded. Call before waking them. */
void tsk__registry_stranded(tsk_runtime_t *rt, tsk__list *waiters, uint64_t future_id);
/* A record of t, a task of group `group_id` whose failure is the group's outcome: kept by the
 * group and added (tsk__registry_add) only if nobody reads that outcome. */
struct tsk__leak;
struct tsk__leak *tsk__registry_group_failure(tsk__task *t, uint64_t group_id);
void tsk__registry_add(tsk_runtime_t *rt, struct tsk__leak *l);
/* group.c: adds the records of the groups of rt whose failure was never read (runtime close,
 * process exit); each is added once. */
void tsk__group_unread_failures(tsk_runtime_t *rt);
/* A task is destroyed explicitly (tsk_task_destroy). */
void tsk__registry_destroyed(tsk__task *t, const char *reason);

/* error.c */
void tsk__task_set_message(tsk__task *t, const char *msg);

/* Suspends the running task t (already queued as ready, or waiting): switches straight to the
 * next ready task while the idle pass's batch lasts, else back to the loop's context. Returns
 * when t is resumed. */
void tsk__switch_to_scheduler(tsk__task *t);
/* Called first thing on a new task's stack: finishes the switch that started it. */
void tsk__after_first_switch(void);
/* task.c: what every task runs on its own stack (a tsk__ctx_entry); returns the context to
 * resume once the task has finished. */
tsk__ctx *tsk__task_entry(void *task);
/* runtime.c: picks what runs after the finished task t (see tsk__task_entry). */
tsk__ctx *tsk__task_exit(tsk__task *t);

#endif
