/*
 * srv.h — the inspector server's internals (compiled into libtaskscope; not installed).
 *
 * The server is one thread with its own uv loop, started when the first runtime of the process
 * is created (unless socket=off) and stopped at exit. It never reads a runtime's task structures
 * while that runtime's loop thread could change them: everything it knows comes through the
 * runtime's event ring (events.h) into the MIRROR kept here, and whatever needs the tasks
 * themselves (a suspended task's stack, a cancellation, pending records) is asked of the loop
 * thread through a request. Two exceptions, both read-only and fault-proof: `where` in "direct"
 * mode when the loop does not answer (stall.c reads the task's saved registers and stack through
 * process_vm_readv, so a racing change can give a wrong stack but never a crash), and the stall
 * sample, which a signal handler takes on the loop thread itself.
 *
 * Files: server.c (life cycle, clients, requests), mirror.c (the mirror and the JSON answers),
 * bulk.c (the thread that renders large snapshots at the lowest priority), sock.c (the socket's
 * directory, permissions and peer checks), stall.c (the watchdog, the sampling signal handler,
 * direct reads), proto.c (parsing; see proto.h).
 *
 * CPU priority. The server thread runs at the priority it was created with (the application's):
 * its work is small and frequent (draining rings, the watchdog, answers to the size of what
 * changed), and it takes locks the loop threads take too and wakes their loops (in->lock, libuv's
 * metrics lock in uv_metrics_idle_time, the pending flag of rt->async, on which libuv 1.44's loop
 * thread spins until the sender is done): a thread of the lowest priority doing those could be
 * preempted in the middle and make a loop thread wait for it. What grows with the task count, a
 * snapshot's task array (~200 bytes and ~250 ns a task), is rendered by the BULK thread (bulk.c),
 * which runs at SCHED_IDLE (else nice 19), from a copy of the tasks the server thread makes (a
 * fixed-size record each, ~1/10 of the rendering's cost), and takes no lock, allocates nothing and
 * wakes no one: the kernel preempts it for any other thread that wants its CPU (at once from user
 * space), so it does not delay an application's loop, and being preempted anywhere delays only
 * that snapshot.
 */
#ifndef TSK_SRV_H
#define TSK_SRV_H

#include "events.h"
#include "json.h"
#include "leak.h"
#include "options.h"
#include "proto.h"

#include <uv.h>

#define TSK__SRV_TICK_MS 10          /* rings are drained and deltas sent on this period */
#define TSK__SRV_FAST_MS 1           /* ... and drained on this one while they fill fast */
#define TSK__SRV_STALL_MS 100        /* a loop that has not turned for longer is "stalled" */
#define TSK__SRV_SAMPLE_WAIT_MS 50   /* how long the watchdog waits for the stack sample */
#define TSK__SRV_CLIENTS_MAX 16
#define TSK__SRV_OUT_MAX ((size_t)8 << 20) /* unsent bytes per client (see PROTOCOL.md) */
#define TSK__SRV_LEAKS_MAX 1000      /* leak records kept (the newest) */
#define TSK__SRV_WARNINGS_MAX 64     /* warnings kept (the newest) */
#define TSK__SRV_STACK_MAX 64
#define TSK__SRV_BULK_MIN 4096       /* snapshots of this many tasks or more: the bulk thread */
#define TSK__SRV_BULK_LATE_MS 250    /* ... which the server renders itself if it is this late */

/* ---- the mirror ---- */

/* A live task as the server knows it. */
typedef struct srv_task {
  uint64_t id, parent, group, object;
  uint64_t joiner;                 /* a task waiting (kind task) for this one, 0: none */
  uint64_t created_ms, first_run_ms;
  uint64_t spawn_seq, change_seq;  /* mirror sequence numbers (deltas) */
  uintptr_t ptr;                   /* the runtime's tsk__task *, only handed back to it */
  struct srv_rt *rt;
  uint32_t switches;
  uint64_t busy_ns;                /* UINT64_MAX: not measured (busy_time=off) */
  unsigned gen;                    /* resync generation that last confirmed it */
  uint8_t state, wait_kind;
  char name[TSK__NAME_INLINE];
  tsk__list link;                  /* in the mirror's change list, oldest change first */
} srv_task;

/* A live task as a snapshot shows it (a copy, for the bulk thread: bulk.c). */
typedef struct srv_rec {
  uint64_t id, parent, group, object, created_ms, first_run_ms, busy_ns;
  uint32_t rt_id, switches;
  uint8_t state, wait_kind;        /* as shown: running for a stalled loop's task; none unless
                                      waiting */
  char name[TSK__NAME_INLINE];
} srv_rec;

typedef struct srv_fin {           /* a finished task (the bounded history) */
  uint64_t id, parent, created_ms, finished_ms, seq;
  uint32_t rt_id;
  int error;
  uint8_t state;
  char name[TSK__NAME_INLINE];
} srv_fin;

typedef struct srv_leak {
  tsk__leak *l;                    /* owned */
  uint64_t seq;
} srv_leak;

typedef struct srv_warning {
  uint64_t seq, time_ms;
  uint32_t rt_id;
  const char *kind;                /* static string */
  char message[128];
  int n;                           /* frames; -1: no stack */
  uintptr_t ips[TSK__SRV_STACK_MAX];
} srv_warning;

/* A runtime as the server knows it. */
typedef struct srv_rt {
  tsk__insp_rt *in;
  uint32_t id;
  pid_t tid;
  tsk__list link;                  /* in srv.rts */
  size_t nlive, nready, nwaiting;
  uint64_t spawned, finished;      /* totals (from TICK events, plus what came after) */
  uint64_t lag_ns;                 /* longest busy turn over the last tick window */
  uint64_t drops_seen;
  unsigned gen;                    /* resync generation */
  int resync_requested;
  uint64_t drops_at_begin;
  /* the watchdog */
  uint64_t seen_iter, seen_idle;   /* the loop's iterations and idle time at the last look */
  uint64_t progress_ns;            /* when the watchdog last saw either move */
  uint64_t stall_key;              /* progress_ns of the stall already handled; 0: none */
  uint64_t stalled_ms;             /* 0 unless stalled now */
  int sampling;                    /* waiting for the signal handler */
  uint64_t sample_deadline_ns;
  int nstack;                      /* the current stall's stack; -1: none */
  uintptr_t stack[TSK__SRV_STACK_MAX];
  uint64_t running_id;             /* the task running in the current stall, 0: unknown */
  int sample_lost;                 /* a sample timed out: keep `in` alive for a late handler */
} srv_rt;

typedef struct srv_map {           /* id -> srv_task *, open addressing, linear probing */
  srv_task **slot;
  size_t cap, n;
} srv_map;

/* ---- clients and requests ---- */

struct srv_pending;

struct srv_job;

typedef struct srv_client {
  uv_pipe_t pipe;                  /* first: the handle's address is the client's */
  uv_shutdown_t shut;
  struct tsk__srv *s;
  tsk__list link;
  tsk__framer in;
  tsk__proto_session sess;
  int closing, reading;
  size_t queued;                   /* bytes handed to uv_write and not yet written */
  /* subscription */
  int subscribed, need_resync;
  uint64_t interval_ms, next_ns, last_seq, delta_seq;
  struct srv_pending *pending;     /* a request waiting for a loop thread: lines after it wait */
  struct srv_job *bulk;            /* a snapshot the bulk thread renders: the same */
} srv_client;

typedef struct srv_pending {
  tsk__list link;                  /* in srv.pendings */
  srv_client *client;              /* NULL once the client is gone */
  tsk__msg msg;
  uint64_t deadline_ns;
  size_t nreq;
  tsk__insp_req **req;             /* one per runtime asked */
  srv_rt **rt;                     /* NULL once that runtime is gone */
  int *direct;                     /* req[i] is the server's own fallback (the loop timed out) */
} srv_pending;

typedef struct tsk__srv {
  uv_loop_t loop;
  uv_async_t wake;
  uv_timer_t tick;
  uv_timer_t fast;                 /* drains every 1 ms while the rings fill fast */
  int fast_on;
  uv_pipe_t listener;
  pthread_t thread;
  _Atomic int stop;
  pid_t pid;
  char path[TSK__OPTIONS_SOCKET_MAX];
  int safe_pipe[2];                /* stall.c: fallback for fault-proof reads */
  /* runtimes attached but not yet picked up (guarded by the attach lock in server.c) */
  tsk__insp_rt *incoming;
  tsk__list rts;                   /* srv_rt */
  size_t nrts;
  /* the mirror */
  srv_map map;
  tsk__list changes;               /* srv_task.link, by change_seq */
  uint64_t seq;
  srv_fin *hist;
  size_t hist_cap, hist_next, hist_n;
  srv_leak leaks[TSK__SRV_LEAKS_MAX];
  size_t leaks_next, leaks_n;
  uint64_t leak_counts[TSK__LEAK_KINDS];
  srv_warning *warn;               /* TSK__SRV_WARNINGS_MAX */
  size_t warn_next, warn_n;
  uint64_t closed_drops;           /* dropped events of runtimes gone */
  uint64_t closed_spawned, closed_finished;
  tsk__suppressions *supp;
  /* clients */
  tsk__list clients;
  size_t nclients;
  tsk__list pendings;              /* srv_pending */
  tsk__jbuf out;                   /* scratch for rendering */
  /* a name cache for unnamed tasks: entry function -> symbol */
  struct srv_fn_name *fn_names;
  size_t fn_cap, fn_n;
  /* large snapshots (bulk.c) */
  struct srv_bulker *bulker;       /* the bulk thread and its jobs, made when first needed */
  uv_timer_t bulk_poll;            /* looks for finished jobs every 1 ms while there are some */
} tsk__srv;

/* ---- statistics for tests (atomics: read from any thread) ---- */
typedef struct tsk__server_stats {
  uint64_t accepted, refused_uid, refused_busy, disconnected_slow;
  uint64_t deltas_dropped, resyncs_sent, max_queued, clients;
  uint64_t events, resync_requests;
  uint64_t bulk_snapshots;         /* snapshots whose task array the bulk thread rendered */
  uint64_t bulk_late;              /* ... that the server rendered itself, the bulk thread late */
  uint64_t bulk_policy;            /* the bulk thread's scheduling: TSK__BULK_* */
} tsk__server_stats;
enum { TSK__BULK_NONE = 0, TSK__BULK_IDLE, TSK__BULK_NICE, TSK__BULK_NORMAL };
void tsk__server_stats_get(tsk__server_stats *st);
/* The socket's path ("" when the server is not running); returns its length. */
size_t tsk__server_socket_path(char *buf, size_t size);
/* Whether the server thread is running (tests). */
int tsk__server_running(void);

/* server.c */
extern struct tsk__srv_counters {
  _Atomic uint64_t accepted, refused_uid, refused_busy, disconnected_slow, deltas_dropped,
      resyncs_sent, max_queued, clients, events, resync_requests, bulk_snapshots, bulk_late,
      bulk_policy;
} tsk__srv_count;
/* Snapshots of at least this many tasks go to the bulk thread (TSK__SRV_BULK_MIN), which is late
 * after this many ms (TSK__SRV_BULK_LATE_MS). Tests change them to exercise those paths. */
extern _Atomic size_t tsk__srv_bulk_min;
extern _Atomic uint64_t tsk__srv_bulk_late_ms;
uint64_t tsk__srv_now_ns(void);
/* Wakes a runtime's loop thread (its uv_async) unless it closed. */
void tsk__srv_wake_loop(tsk__insp_rt *in);
/* Frees a runtime's shared state after it closed and was drained (unless in->keep). */
void tsk__srv_free_insp(tsk__insp_rt *in);

/* mirror.c */
int tsk__mirror_init(tsk__srv *s, unsigned history);
void tsk__mirror_free(tsk__srv *s);
/* Drains every ring into the mirror (and frees the runtimes that closed). Returns the most
 * events found in one ring. */
uint64_t tsk__mirror_drain(tsk__srv *s);
/* Adopts a newly attached runtime. */
srv_rt *tsk__mirror_add_rt(tsk__srv *s, tsk__insp_rt *in);
srv_task *tsk__mirror_find(tsk__srv *s, uint64_t id);
void tsk__mirror_warn(tsk__srv *s, srv_rt *r, const char *kind, const char *message,
                      const uintptr_t *ips, int n);
/* An answer's opening {"type":"TYPE" and ,"id":N when req carried one (left open). */
void tsk__render_head(tsk__jbuf *b, const char *type, const tsk__msg *req);
/* Renders answers, each ending with '\n'. */
void tsk__render_snapshot(tsk__srv *s, tsk__jbuf *b, const tsk__msg *req, int resync);
/* A snapshot in three parts: everything before the task array's elements, the elements (the
 * live tasks, TASK objects separated by commas), and everything after them. */
void tsk__render_snapshot_head(tsk__srv *s, tsk__jbuf *b, const tsk__msg *req, int resync);
void tsk__render_snapshot_tail(tsk__srv *s, tsk__jbuf *b);
/* A task as a snapshot shows it, and its TASK object (tsk__render_task is the two; the second
 * reads nothing but the record: any thread). tsk__mirror_recs copies the live tasks in a
 * snapshot's order (at most max), returns how many. */
void tsk__mirror_rec(const srv_task *t, srv_rec *r);
void tsk__render_rec(tsk__jbuf *b, const srv_rec *r);
size_t tsk__mirror_recs(tsk__srv *s, srv_rec *out, size_t max);
void tsk__render_delta(tsk__srv *s, tsk__jbuf *b, srv_client *c);
void tsk__render_task(tsk__srv *s, tsk__jbuf *b, const srv_task *t);
/* The leak report document of the records kept, plus `pending` (a list, may be NULL). */
void tsk__render_report(tsk__srv *s, tsk__jbuf *b, tsk__leak *pending);
/* Pending records of a runtime's live tasks from the mirror (no stacks), at most max. */
tsk__leak *tsk__mirror_pending(tsk__srv *s, srv_rt *r, size_t max, size_t *omitted);
void tsk__render_runtime(tsk__srv *s, tsk__jbuf *b, srv_rt *r);

/* sock.c: creates the listening socket per the options (path filled); -1 after printing why
 * the inspector is disabled. */
int tsk__srv_listen(const tsk__options *o, char *path, size_t size);
/* The peer's uid is ours or root's. */
int tsk__srv_peer_allowed(int fd);

/* bulk.c: large snapshots. tsk__bulk_snapshot answers a snapshot (req, or a resync when req is
 * NULL; subscribe: req is a subscribe) for client c: at once when the mirror is small, else
 * through the bulk thread (c's later lines then wait, as for a request to a loop thread).
 * tsk__bulk_stop ends the thread (at the server's exit). */
void tsk__bulk_snapshot(tsk__srv *s, srv_client *c, const tsk__msg *req, int subscribe);
void tsk__bulk_client_gone(tsk__srv *s, srv_client *c);
void tsk__bulk_stop(tsk__srv *s);
/* Sends the content of the n buffers (one message, in order; taken from them) to c (server.c). */
void tsk__srv_send(srv_client *c, tsk__jbuf *b, int is_delta);
void tsk__srv_send_parts(srv_client *c, tsk__jbuf *parts, int n);
/* The client's waiting request was answered: handle the lines that waited (server.c). */
void tsk__srv_resume(srv_client *c);

/* stall.c */
int tsk__stall_init(tsk__srv *s);   /* installs the signal handler if the signal is free */
void tsk__stall_watch(tsk__srv *s, srv_rt *r, uint64_t now_ns);
/* where, in "direct" mode: fills req's results from the task's memory. */
void tsk__stall_direct_where(tsk__srv *s, tsk__insp_rt *in, tsk__insp_req *req);

#endif
