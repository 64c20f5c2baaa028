/*
 * bulk.c — large snapshots: their task arrays are rendered by the BULK thread, at the lowest CPU
 * priority (srv.h, "CPU priority").
 *
 * A snapshot of a mirror holding at least tsk__srv_bulk_min tasks (TSK__SRV_BULK_MIN, 4096:
 * about 1 ms of rendering) is a JOB. The server thread drains the rings and, at once, renders the
 * snapshot's head (up to the task array: the runtimes) and tail (finished tasks, leaks,
 * warnings, stats), which are small and need what only it may touch (the watchdog's state, the
 * symbolizer and its lock), and copies the live tasks as the snapshot shows them into an array
 * of fixed-size records (srv_rec: a tenth of the cost of rendering them). The snapshot is the
 * state of that moment, for a subscriber too (its deltas continue from there). The bulk thread
 * renders the records into a buffer the server reserved (it never allocates: a thread that may
 * be preempted for long must not hold the allocator's locks), the server looks for finished
 * jobs every millisecond (bulk_poll), and sends head, task array and tail as one message. The
 * mirror goes on changing meanwhile. A client waiting for its snapshot is not read meanwhile, as
 * for a request to a loop thread, so its answers stay in order.
 *
 * The bulk thread sets SCHED_IDLE for itself (an unprivileged thread may always lower its own
 * policy). The kernel then runs it only on a CPU no other thread wants, preempts it at once for
 * any thread that wakes there, and counts a CPU running only SCHED_IDLE threads as idle when it
 * places a woken thread: an application's loop thread does not wait for it. (A nice value does
 * not do that: with EEVDF, a woken thread of nice 0 does not preempt a running one of nice 19
 * before the end of its slice, up to a scheduler tick, 4 ms at HZ=250.) Where SCHED_IDLE is
 * refused (a seccomp filter, an old kernel), nice 19. It takes no lock and wakes no one (the
 * hand-over is a semaphore post one way and an atomic flag the other way, which the server
 * polls: uv_async_send's sender must never be preempted half-way, see srv.h), so being preempted
 * anywhere delays only its snapshot.
 *
 * Starved (every CPU busy with other threads: SCHED_IDLE's share is then ~0.3%), a job could take
 * seconds; after TSK__SRV_BULK_LATE_MS the server renders the records itself (the job is
 * cancelled, and freed once the bulk thread lets go of it). At most BULK_INFLIGHT jobs are left
 * to the bulk thread at a time (each holds ~100 bytes a task); beyond, snapshots are rendered at
 * once, as small ones are. What the server thread does here in bulk (the copy, ~25 ns a task; a
 * late rendering, ~250 ns a task) it does in slices with a sched_yield() between them, so that a
 * loop thread that woke up on its CPU does not wait for it to the next scheduler tick.
 */
#include "srv.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BULK_INFLIGHT 4   /* jobs posted to the bulk thread and not finished, at most */
#define BULK_TASK_MAX 640 /* bytes of a rendered TASK, at most (a name of 31 bytes escaped: 186) */
#define BULK_TASK_TYP 256 /* ... typically under 200: the reservation per task */

_Atomic size_t tsk__srv_bulk_min = TSK__SRV_BULK_MIN;
_Atomic uint64_t tsk__srv_bulk_late_ms = TSK__SRV_BULK_LATE_MS;

typedef struct srv_job {
  struct srv_job *next;       /* in the bulker's list, oldest first (the server's) */
  srv_client *client;         /* waiting for it; NULL once gone or answered */
  tsk__jbuf head, tail;       /* the server's */
  srv_rec *recs;              /* read by both, written by none */
  size_t n;
  tsk__jbuf tasks;            /* reserved by the server, written by the bulk thread until done */
  size_t rendered;            /* the records the bulk thread rendered (read after done) */
  uint64_t deadline_ns;
  int answered;               /* sent: its result is not wanted (any more) */
  _Atomic int done, cancel;
} srv_job;

typedef struct srv_bulker {
  pthread_t thread;
  sem_t go;                   /* a post per job (and one for quit) */
  _Atomic int quit;
  srv_job *slot[BULK_INFLIGHT];
  _Atomic uint64_t head, tail; /* server: fills slot[head % N]; thread: takes slot[tail % N] */
  srv_job *jobs;              /* every job not freed yet, oldest first (the server's) */
  int polling;
} srv_bulker;

static int lower_priority(void) {
  struct sched_param sp;
  memset(&sp, 0, sizeof sp);
  if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) == 0) return TSK__BULK_IDLE;
  if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19) == 0) return TSK__BULK_NICE;
  return TSK__BULK_NORMAL;
}

/* Renders the job's records, in the room the server reserved: whatever does not fit (names full
 * of escapes) is left to the server. */
static void render_job(srv_job *j) {
  tsk__jbuf *b = &j->tasks;
  size_t i = 0;
  for (; i < j->n; i++) {
    if ((i & 255) == 0 && atomic_load_explicit(&j->cancel, memory_order_relaxed)) break;
    if (b->oom || b->cap - b->len < BULK_TASK_MAX) break;
    if (i) tsk__jbuf_putc(b, ',');
    tsk__render_rec(b, &j->recs[i]);
  }
  j->rendered = i;
}

static void *bulk_main(void *arg) {
  srv_bulker *b = arg;
  pthread_setname_np(pthread_self(), "taskscope-bulk");
  atomic_store(&tsk__srv_count.bulk_policy, (uint64_t)lower_priority());
  for (;;) {
    while (sem_wait(&b->go) != 0 && errno == EINTR) {
    }
    if (atomic_load(&b->quit)) return NULL;
    uint64_t t = atomic_load_explicit(&b->tail, memory_order_relaxed);
    srv_job *j = b->slot[t % BULK_INFLIGHT];
    render_job(j);
    /* (j is the server's again from here: it may free it at once) */
    atomic_store_explicit(&j->done, 1, memory_order_release);
    atomic_store_explicit(&b->tail, t + 1, memory_order_release);
  }
}

static srv_bulker *bulker(tsk__srv *s) {
  if (s->bulker) return s->bulker;
  srv_bulker *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  if (sem_init(&b->go, 0, 0) != 0) {
    free(b);
    return NULL;
  }
  /* The server thread blocks every signal; the bulk thread inherits that. */
  if (pthread_create(&b->thread, NULL, bulk_main, b) != 0) {
    sem_destroy(&b->go);
    free(b);
    return NULL;
  }
  s->bulker = b;
  return b;
}

static void job_free(srv_job *j) {
  tsk__jbuf_free(&j->head);
  tsk__jbuf_free(&j->tail);
  tsk__jbuf_free(&j->tasks);
  free(j->recs);
  free(j);
}

/* What a snapshot changes in its client's state, as of the moment it is taken (a subscriber's
 * deltas continue from there). */
static void taken(tsk__srv *s, srv_client *c, const tsk__msg *req, int subscribe) {
  if (subscribe) {
    c->subscribed = 1;
    c->interval_ms = (uint64_t)req->interval_ms;
  }
  if (subscribe || !req) {
    c->need_resync = 0;
    c->last_seq = s->seq;
    c->next_ns = tsk__srv_now_ns() + c->interval_ms * 1000000;
  }
  if (!req) atomic_fetch_add(&tsk__srv_count.resyncs_sent, 1);
}

/* Sends the job's snapshot: with the bulk thread's task array (done), or with one the server
 * renders now (late: the bulk thread is still at it, or has not started). */
static void answer(srv_job *j, int late) {
  srv_client *c = j->client;
  j->answered = 1;
  j->client = NULL;
  if (!c) return;
  c->bulk = NULL;
  tsk__jbuf parts[3];
  parts[0] = j->head;
  parts[2] = j->tail;
  tsk__jbuf_init(&j->head);
  tsk__jbuf_init(&j->tail);
  size_t from;
  if (late) {
    atomic_store(&j->cancel, 1);
    tsk__jbuf_init(&parts[1]);
    from = 0;
    atomic_fetch_add(&tsk__srv_count.bulk_late, 1);
  } else {
    parts[1] = j->tasks;
    tsk__jbuf_init(&j->tasks);
    from = j->rendered;
    atomic_fetch_add(&tsk__srv_count.bulk_snapshots, 1);
  }
  for (size_t i = from; i < j->n; i++) { /* what the bulk thread left */
    if (i) tsk__jbuf_putc(&parts[1], ',');
    tsk__render_rec(&parts[1], &j->recs[i]);
    if ((i & 2047) == 2047) sched_yield(); /* ~0.5 ms: let a waiting loop thread in */
  }
  tsk__srv_send_parts(c, parts, 3);
  for (int i = 0; i < 3; i++) tsk__jbuf_free(&parts[i]);
  if (!c->closing) tsk__srv_resume(c);
}

static void on_poll(uv_timer_t *h) {
  tsk__srv *s = h->data;
  srv_bulker *b = s->bulker;
  uint64_t now = tsk__srv_now_ns();
  /* (answer() may let a client post a new job: it goes at the end of the list, still seen.) */
  for (srv_job **pp = b ? &b->jobs : NULL; pp && *pp;) {
    srv_job *j = *pp;
    if (atomic_load_explicit(&j->done, memory_order_acquire)) {
      if (!j->answered) answer(j, 0);
      *pp = j->next;
      job_free(j);
      continue;
    }
    if (!j->answered && now >= j->deadline_ns) answer(j, 1);
    pp = &j->next;
  }
  if (!b || !b->jobs) {
    if (b) b->polling = 0;
    uv_timer_stop(h);
  }
}

/* A job for the bulk thread, or NULL when the snapshot is to be rendered at once. */
static srv_job *job_new(tsk__srv *s, srv_bulker *b) {
  uint64_t inflight = atomic_load(&b->head) - atomic_load_explicit(&b->tail, memory_order_acquire);
  if (inflight >= BULK_INFLIGHT) return NULL;
  srv_job *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  size_t n = s->map.n;
  j->recs = malloc((n ? n : 1) * sizeof *j->recs);
  tsk__jbuf_init(&j->tasks);
  if (!j->recs || tsk__jbuf_reserve(&j->tasks, n * BULK_TASK_TYP + BULK_TASK_MAX) != 0) {
    job_free(j);
    return NULL;
  }
  j->n = tsk__mirror_recs(s, j->recs, n);
  return j;
}

void tsk__bulk_snapshot(tsk__srv *s, srv_client *c, const tsk__msg *req, int subscribe) {
  tsk__mirror_drain(s);
  srv_bulker *b = NULL;
  srv_job *j = NULL;
  if (s->map.n >= atomic_load(&tsk__srv_bulk_min) && (b = bulker(s))) j = job_new(s, b);
  if (!j) { /* small (or no bulk thread): at once */
    tsk__render_snapshot(s, &s->out, req, !req);
    taken(s, c, req, subscribe);
    tsk__srv_send(c, &s->out, 0);
    return;
  }
  tsk__jbuf_init(&j->head);
  tsk__jbuf_init(&j->tail);
  tsk__render_snapshot_head(s, &j->head, req, !req);
  tsk__render_snapshot_tail(s, &j->tail);
  taken(s, c, req, subscribe);
  j->client = c;
  c->bulk = j;
  j->deadline_ns = tsk__srv_now_ns() + atomic_load(&tsk__srv_bulk_late_ms) * 1000000;
  srv_job **pp = &b->jobs;
  while (*pp) pp = &(*pp)->next;
  *pp = j;
  uint64_t h = atomic_load_explicit(&b->head, memory_order_relaxed);
  b->slot[h % BULK_INFLIGHT] = j;
  atomic_store_explicit(&b->head, h + 1, memory_order_release);
  sem_post(&b->go);
  if (!b->polling) {
    b->polling = 1;
    uv_timer_start(&s->bulk_poll, on_poll, 1, 1);
  }
}

void tsk__bulk_client_gone(tsk__srv *s, srv_client *c) {
  (void)s;
  srv_job *j = c->bulk;
  if (!j) return;
  c->bulk = NULL;
  j->client = NULL; /* freed once the bulk thread is done with it */
  atomic_store(&j->cancel, 1);
}

void tsk__bulk_stop(tsk__srv *s) {
  srv_bulker *b = s->bulker;
  if (!b) return;
  s->bulker = NULL;
  for (srv_job *j = b->jobs; j; j = j->next) atomic_store(&j->cancel, 1);
  atomic_store(&b->quit, 1);
  sem_post(&b->go);
  /* At exit: a SCHED_IDLE thread on a busy machine may take a while to get the CPU it needs to
   * see quit. After 100 ms it is left running, with everything it may still read (the process
   * is exiting). */
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_nsec += 100 * 1000000;
  if (until.tv_nsec >= 1000000000) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000;
  }
  if (pthread_timedjoin_np(b->thread, NULL, &until) != 0) {
    for (srv_job *j = b->jobs; j; j = j->next)
      if (j->client) j->client->bulk = NULL;
    return;
  }
  sem_destroy(&b->go);
  while (b->jobs) {
    srv_job *j = b->jobs;
    b->jobs = j->next;
    if (j->client) j->client->bulk = NULL;
    job_free(j);
  }
  free(b);
}
