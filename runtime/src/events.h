/*
 * events.h — what a runtime tells the inspector server, and what the server asks of it.
 *
 * One tsk__insp_rt per runtime, shared by the runtime's loop thread and the server thread:
 *   - the EVENT RING: a bounded single-producer / single-consumer ring of fixed-size events.
 *     The loop thread (producer) pushes without ever blocking or making a system call; when the
 *     ring is full the event is dropped and counted. The server (consumer) drains it on a short
 *     timer and keeps its own mirror of the registry; after a drop it asks for a RESYNC, and the
 *     loop thread re-emits its live tasks into the ring, a chunk per loop turn, between
 *     RESYNC_BEGIN and RESYNC_END events;
 *   - LOOP LIVENESS: iterations, the time of the last turn and the busy time of a turn, stored
 *     with relaxed atomics by a check handle (unreferenced) at the end of every turn; the loop is
 *     configured with UV_METRICS_IDLE_TIME, so that the server can also read how long it has
 *     slept in poll (uv_metrics_idle_time, thread-safe): a loop whose turns and idle time both
 *     stand still is blocked, whatever phase it is blocked in;
 *   - REQUESTS from the server to the loop thread (where, cancel, pending records), queued under
 *     a mutex and delivered by waking the runtime's uv_async; results go back through the
 *     request's atomic state;
 *   - the STALL SAMPLE: raw return addresses of the loop thread, written by a signal handler on
 *     that thread when the server's watchdog finds the loop blocked.
 *
 * Ownership: the server allocates a tsk__insp_rt when the runtime is created (the runtime then
 * points at it through rt->insp) and frees it after the runtime closed and its ring was drained.
 * The runtime never touches it after tsk__events_runtime_close.
 *
 * Cost on the hot path (spawn, wait, wake, finish): one predictable branch when the server is
 * off (rt->insp == NULL), else an 80-byte store into the ring and one release store, about 20
 * instructions an event (a spawn + join makes three: spawn, the join's wait, finish). A plain
 * tsk_yield pushes nothing.
 * The ring holds TSK__EV_RING events: the server drains it every 10 ms, and every 1 ms while it
 * finds it more than a quarter full, so only bursts of more than ~8000 events between two
 * drains are dropped (and then repaired by a resync).
 */
#ifndef TSK_EVENTS_H
#define TSK_EVENTS_H

#include "internal.h"

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#define TSK__EV_RING 8192 /* events per runtime (a power of two): 640 KiB, touched as used */

typedef enum {
  TSK__EV_SPAWN = 1,    /* id; a parent, b created_ms, c group id, d task pointer; state; name
                           (u.name, "" = unnamed: u.fn holds the entry function) */
  TSK__EV_WAIT,         /* id; wait_kind; a object id, b first_run_ms, c switches,
                           d busy ns (UINT64_MAX: not measured, busy_time=off) */
  TSK__EV_WAKE,         /* id: its wait ended (it is ready). Not sent when a join (a WAIT of
                           kind task) ends because the joined task finished: that task's
                           FINISH wakes its joiner in the consumer's view */
  TSK__EV_FINISH,       /* id; state (done/failed/cancelled), error; b finished_ms */
  TSK__EV_DESTROY,      /* id: destroyed before it finished */
  TSK__EV_LEAK,         /* d: a tsk__leak * (a clone; the consumer owns it) */
  TSK__EV_TICK,         /* b the longest busy turn (ns) since the previous tick, c tasks
                           spawned, d tasks finished (the runtime's totals) */
  TSK__EV_RESYNC_BEGIN, /* a drops so far; the SPAWN events up to RESYNC_END describe every
                           live task (flag TSK__EVF_RESYNC) */
  TSK__EV_RESYNC_END    /* a drops so far */
} tsk__ev_type;

#define TSK__EVF_RESYNC 1 /* SPAWN: re-emitted by a resync (state and first_run are current) */

typedef struct tsk__ev {
  uint8_t type;      /* tsk__ev_type */
  uint8_t state;     /* tsk_task_state_t (SPAWN, FINISH) */
  uint8_t wait_kind; /* tsk_wait_kind_t (WAIT) */
  uint8_t flags;
  int32_t error;
  uint64_t id;
  uint64_t a, b, c, d;
  union {
    char name[TSK__NAME_INLINE];
    struct {
      char zero[8];
      uintptr_t fn;
    } unnamed;
  } u;
} tsk__ev;

/* Producer fields and consumer fields live on separate cache lines. */
typedef struct tsk__ev_ring {
  _Alignas(64) _Atomic uint64_t head; /* slots written (producer) */
  uint64_t head_local;                /* producer's copy of head */
  uint64_t tail_cached;               /* producer's last view of tail */
  uint64_t drops_local;               /* producer's copy of drops */
  _Atomic uint64_t drops;             /* events that found the ring full */
  _Alignas(64) _Atomic uint64_t tail; /* slots consumed (consumer) */
  _Alignas(64) tsk__ev slot[TSK__EV_RING];
} tsk__ev_ring;

/* Loop liveness: whether the loop is being run (a runtime on an application's loop counts as
 * run from its first turn on). */
enum { TSK__LOOP_OUTSIDE = 0, TSK__LOOP_RUNNING = 1 };

/* A request from the server to a runtime's loop thread. */
typedef enum { TSK__REQ_WHERE = 1, TSK__REQ_CANCEL, TSK__REQ_PENDING } tsk__req_kind;
/* Request states: the loop thread takes a PENDING request (TAKEN), fills the results, then
 * publishes DONE; the server may instead abandon a PENDING one (ABANDONED), which the loop
 * thread then frees unread. Transitions out of PENDING are compare-and-swaps. */
enum { TSK__REQ_PENDING_ = 0, TSK__REQ_TAKEN, TSK__REQ_DONE, TSK__REQ_ABANDONED };

#define TSK__REQ_PENDING_MAX 256 /* pending records built per request, at most */

typedef struct tsk__insp_req {
  struct tsk__insp_req *next; /* in the runtime's queue */
  tsk__req_kind kind;
  _Atomic int state;
  uint64_t task_id;           /* WHERE, CANCEL */
  uintptr_t task_ptr;         /* the tsk__task * the SPAWN event gave; checked against task_id */
  /* results (written by the loop thread before DONE) */
  int rc;                     /* 0, or TSK_ESTALE: no such live task; TSK_ECLOSED */
  int running;                /* WHERE: it is the running task */
  uint8_t state_now;          /* WHERE: its state */
  uint64_t first_run_ms;
  uint32_t switches;
  int nsusp, ncreated;
  uintptr_t susp[64], created[64];
  struct tsk__leak *records;  /* PENDING: ownership passes to the server */
  size_t omitted;             /* PENDING: live tasks left out */
} tsk__insp_req;

typedef struct tsk__insp_rt {
  tsk__ev_ring *ring;
  /* ---- liveness (written by the loop thread, read by the server) ---- */
  _Atomic uint64_t iterations;
  _Atomic int loop_state;        /* TSK__LOOP_* */
  _Atomic uint64_t lag_ns;       /* busy time of the last complete turn */
  uv_loop_t *loop;               /* the runtime's loop (the server reads its idle time under lock
                                    while !closed) */
  uint64_t iter_local, turn_start_ns, idle_at_start_ns, tick_start_ns, tick_max_ns; /* loop
                                    thread only */
  /* ---- identity (constant) ---- */
  uint32_t id;                   /* the runtime's number in the protocol (1, 2, ...) */
  pid_t tid;                     /* the loop thread's kernel id */
  tsk_runtime_t *rt;             /* dereferenced only by the loop thread (and its signal
                                    handler) and, under lock while !closed, by the server */
  /* ---- server -> loop ---- */
  pthread_mutex_t lock;          /* guards closed, the request queue, and waking rt->async */
  _Atomic int closed;            /* the runtime closed: no more events, requests or wakes */
  tsk__insp_req *req_head, *req_tail;
  _Atomic int resync_wanted;     /* set by the server after drops */
  uint64_t resync_end_id;        /* loop thread: tasks with ids >= this are not re-emitted */
  /* ---- stall sample (signal handler on the loop thread -> server) ---- */
  _Atomic int sample_state;      /* 0 idle, 1 requested, 2 written */
  int sample_n;
  uint64_t sample_task_id;       /* the task running when sampled, 0 = none */
  uintptr_t sample_ips[64];
  /* ---- the server's own ---- */
  struct tsk__insp_rt *next;     /* in the server's list of runtimes to adopt */
  struct tsk__insp_rt *all_next; /* in the process's list of them all (server.c) */
  unsigned gen;                  /* which server instance made it (fork); 0: nobody's */
  int keep;                      /* never free: a late signal handler may still read it */
} tsk__insp_rt;

/* ---- the ring (producer side: the loop thread only) ---- */

static inline tsk__ev *tsk__ev_reserve(tsk__ev_ring *r) {
  uint64_t h = r->head_local;
  if (TSK__UNLIKELY(h - r->tail_cached >= TSK__EV_RING)) {
    r->tail_cached = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (h - r->tail_cached >= TSK__EV_RING) {
      atomic_store_explicit(&r->drops, ++r->drops_local, memory_order_relaxed);
      return NULL;
    }
  }
  return &r->slot[h & (TSK__EV_RING - 1)];
}

static inline void tsk__ev_commit(tsk__ev_ring *r) {
  atomic_store_explicit(&r->head, ++r->head_local, memory_order_release);
}

/* Free slots (refreshing the producer's view of the consumer). */
static inline uint64_t tsk__ev_room(tsk__ev_ring *r) {
  r->tail_cached = atomic_load_explicit(&r->tail, memory_order_acquire);
  return TSK__EV_RING - (r->head_local - r->tail_cached);
}

/* ---- the hooks (loop thread) ---- */

uint64_t tsk__group_id(const struct tsk_group *g); /* group.c */

/* A SPAWN event for t (at spawn: state ready, flags 0; a resync: its current state, RESYNC).
 * -1 when the ring is full (the drop is counted). */
static inline int tsk__ev_put_spawn(tsk__insp_rt *in, tsk__task *t, uint8_t state,
                                    uint8_t flags) {
  tsk__ev *e = tsk__ev_reserve(in->ring);
  if (!e) return -1;
  e->type = TSK__EV_SPAWN;
  e->state = state;
  e->flags = flags;
  e->id = t->id;
  e->a = t->parent_id;
  e->b = t->created_ms;
  e->c = t->group ? tsk__group_id(t->group) : 0;
  e->d = (uintptr_t)t;
  memcpy(e->u.name, t->name, sizeof e->u.name);
  if (!t->name[0]) e->u.unnamed.fn = (uintptr_t)t->fn;
  tsk__ev_commit(in->ring);
  return 0;
}

static inline void tsk__ev_spawn(tsk_runtime_t *rt, tsk__task *t) {
  tsk__insp_rt *in = rt->insp;
  if (in) (void)tsk__ev_put_spawn(in, t, TSK_TASK_READY, 0);
}

static inline void tsk__ev_wait(tsk__task *t, const tsk__wait *w) {
  tsk__insp_rt *in = t->rt->insp;
  if (!in) return;
  tsk__ev *e = tsk__ev_reserve(in->ring);
  if (!e) return;
  e->type = TSK__EV_WAIT;
  e->wait_kind = (uint8_t)w->kind;
  e->id = t->id;
  e->a = w->object_id;
  e->b = t->first_run_ms;
  e->c = t->switches;
  e->d = t->rt->busy_time ? t->busy_ns : UINT64_MAX;
  tsk__ev_commit(in->ring);
}

static inline void tsk__ev_simple(tsk_runtime_t *rt, tsk__ev_type type, uint64_t id) {
  tsk__insp_rt *in = rt->insp;
  if (!in) return;
  tsk__ev *e = tsk__ev_reserve(in->ring);
  if (!e) return;
  e->type = (uint8_t)type;
  e->id = id;
  tsk__ev_commit(in->ring);
}

static inline void tsk__ev_finish(tsk__task *t) {
  tsk__insp_rt *in = t->rt->insp;
  if (!in) return;
  tsk__ev *e = tsk__ev_reserve(in->ring);
  if (!e) return;
  e->type = TSK__EV_FINISH;
  e->state = (uint8_t)t->state;
  e->error = t->error;
  e->id = t->id;
  e->b = t->finished_ms;
  tsk__ev_commit(in->ring);
}

/* A task leaves rt->live: a resync in progress must not keep a cursor on it. */
static inline void tsk__ev_live_remove(tsk_runtime_t *rt, tsk__task *t) {
  if (TSK__UNLIKELY(rt->resync_cursor == &t->live_link)) rt->resync_cursor = t->live_link.prev;
}

/* registry.c: a leak record was made; the server gets a clone (when the ring has room). */
struct tsk__leak;
void tsk__ev_leak(tsk_runtime_t *rt, const struct tsk__leak *l);

/* ---- the server's side (inspector/server/server.c) ---- */

/* Attaches a new runtime (its owner thread calls): starts the server for the first runtime of the
 * process unless socket=off, then returns the runtime's shared state, or NULL when there is no
 * server. */
tsk__insp_rt *tsk__server_attach(tsk_runtime_t *rt);
/* The runtime closes and pushes nothing more: sets in->closed and takes the queued requests
 * (returned, for the caller to refuse) in one step; from then on in is the server's, which
 * drains the ring and frees it (or it is freed at once when no server owns it). The caller must
 * not touch in afterwards. */
tsk__insp_req *tsk__server_detach(tsk__insp_rt *in);
/* A request finished: wake the server. */
void tsk__server_wake(void);
/* Frees the leak clones of the events not consumed yet (the consumer's side). */
void tsk__ev_ring_discard(tsk__insp_rt *in);

/* ---- runtime life (events.c) ---- */

/* runtime_init: attaches the runtime to the inspector server (starting it for the first
 * runtime of the process unless socket=off) and starts the liveness handles. Returns the number
 * of uv handles it opened (0 when the server is off); never fails the runtime. */
int tsk__events_runtime_init(tsk_runtime_t *rt);
/* tsk_runtime_close, after every task was destroyed and before the runtime's handles are
 * closed: answers queued requests, detaches from the server (which drains the ring), closes the
 * liveness handles (their close callback is cb). */
void tsk__events_runtime_close(tsk_runtime_t *rt, uv_close_cb cb);
/* The runtime's uv_async fired: serve the server's requests and continue a resync. */
void tsk__events_on_async(tsk_runtime_t *rt);
/* tsk_run / tsk_run_main enter (1) or leave (0) the loop. */
void tsk__events_running(tsk_runtime_t *rt, int running);

#endif
