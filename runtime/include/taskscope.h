/*
 * taskscope.h — the public API of libtaskscope, an instrumented task runtime on libuv.
 *
 * Model
 *   A runtime (tsk_runtime_t) schedules stackful tasks on one libuv loop, in one thread: the thread
 *   that created it (its "owner"). Every function below that takes or implies a runtime must be
 *   called from that thread; a call from another thread returns TSK_EWRONGTHREAD. The only
 *   exception is tsk_post(), which any thread may call.
 *
 *   A task runs until it returns from its entry function or suspends in one of the waiting
 *   functions (tsk_yield, tsk_sleep, tsk_join, tsk_future_wait, ...). Waiting functions may only be
 *   called from inside a task; elsewhere they return TSK_ENOTASK.
 *
 * Errors
 *   Every function that can fail returns 0 or a negative TSK_E* code (libuv's codes pass through
 *   unchanged: they are negative errno values too). tsk_strerror() and tsk_err_name() describe them.
 *   When a function fails it has no other effect, unless its comment says otherwise.
 *
 * Timeouts
 *   Every wait takes timeout_ms: TSK_FOREVER (-1) waits without limit, 0 polls, >0 is a limit in
 *   milliseconds. A wait that times out returns TSK_ETIMEDOUT and withdraws from what it waited
 *   for. tsk_timeout_push() additionally puts a deadline on every wait of the current task (the
 *   "async with timeout()" pattern).
 *
 * Cancellation
 *   tsk_cancel() asks a task to stop. The request is delivered once, at the task's current or
 *   next suspension point, as TSK_ECANCELED returned by the waiting function. The task then runs
 *   its own cleanup and returns (usually TSK_ECANCELED). A task that returns TSK_ECANCELED after
 *   a delivered request ends in state TSK_TASK_CANCELLED, which is not an error outcome.
 *
 * Handles
 *   tsk_task_t is a small value (pointer + unique id). A handle is released by tsk_join() (after
 *   the task finished) or tsk_detach(); any later use of that handle value returns TSK_ESTALE,
 *   never touching another task, because task ids are never reused.
 */
#ifndef TASKSCOPE_H
#define TASKSCOPE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TSK_VERSION_MAJOR 0
#define TSK_VERSION_MINOR 1
#define TSK_VERSION_PATCH 0
#define TSK_VERSION_STRING "0.1.0"

#define TSK_FOREVER ((int64_t)-1)

/* Error codes. Values start at -30000 so they never collide with libuv's (negative errno). */
#define TSK_ERRNO_MAP(XX)                                                                          \
  XX(ECANCELED, -30001, "task was cancelled")                                                      \
  XX(ETIMEDOUT, -30002, "timed out")                                                               \
  XX(ENOTASK, -30003, "not called from inside a task")                                             \
  XX(EWRONGTHREAD, -30004, "called from a thread that does not own the runtime")                   \
  XX(ESTALE, -30005, "task handle already released (joined twice, or joined after detach)")        \
  XX(ECLOSED, -30006, "object is closed")                                                          \
  XX(EFULL, -30007, "queue is full")                                                               \
  XX(EBROKEN, -30008, "every completer was dropped: nothing can ever complete this wait")          \
  XX(EINVAL, -30009, "invalid argument")                                                           \
  XX(ENOMEM, -30010, "out of memory")                                                              \
  XX(EBUSY, -30011, "object still in use")                                                         \
  XX(EDEADLK, -30012, "a task cannot wait for itself")                                             \
  XX(EFAILED, -30013, "task failed")                                                               \
  XX(EAGAIN, -30014, "nothing available without waiting")                                         \
  XX(EOPTION, -30015, "bad TASKSCOPE_OPTIONS value")

typedef enum {
#define TSK__ERR_ENUM(name, value, text) TSK_##name = value,
  TSK_ERRNO_MAP(TSK__ERR_ENUM)
#undef TSK__ERR_ENUM
  TSK_E_LAST_ = -30016
} tsk_errno_t;

/* Human text / symbolic name of an error code (taskscope, libuv or errno). Never NULL. */
const char *tsk_strerror(int err);
const char *tsk_err_name(int err);

/* ---------------------------------------------------------------------------------------------
 * Runtime
 * ------------------------------------------------------------------------------------------- */
typedef struct tsk_runtime tsk_runtime_t;

/* A task's entry function: returns 0 on success or a negative error code. */
typedef int (*tsk_fn)(void *arg);

typedef enum {
  TSK_TASK_READY = 0,  /* created or woken, waiting for its turn */
  TSK_TASK_RUNNING,    /* on the CPU now */
  TSK_TASK_WAITING,    /* suspended in a wait */
  TSK_TASK_DONE,       /* returned 0 */
  TSK_TASK_FAILED,     /* returned an error */
  TSK_TASK_CANCELLED,  /* returned TSK_ECANCELED after a delivered cancellation */
  TSK_TASK_DESTROYED   /* destroyed before it finished (runtime close) */
} tsk_task_state_t;

/* The outcome of a finished task, as returned by tsk_join. */
typedef struct tsk_result {
  tsk_task_state_t state; /* DONE, FAILED or CANCELLED */
  int error;              /* 0, or the code the task returned */
  void *value;            /* what the task passed to tsk_set_result, or NULL */
  char message[160];      /* the task's error message, "" when none */
} tsk_result_t;


/* Creates a runtime that owns a new uv loop. The calling thread becomes its owner. */
int tsk_runtime_new(tsk_runtime_t **out);
/* Creates a runtime on an existing loop the application owns and runs (uv_run). The loop must be
 * run by the calling thread. The runtime adds a few handles to the loop, all unreferenced except
 * while tasks are ready, so they never keep the loop alive on their own. */
int tsk_runtime_new_on(uv_loop_t *loop, tsk_runtime_t **out);
/* The loop the runtime schedules on. */
uv_loop_t *tsk_runtime_loop(tsk_runtime_t *rt);
/* Runs the loop until it has nothing left to do: no ready or sleeping task, no pending I/O. For
 * a runtime on an application's loop this is simply uv_run(loop, UV_RUN_DEFAULT). Returns 0, or
 * TSK_EBUSY when called re-entrantly (from a task or a loop callback). */
int tsk_run(tsk_runtime_t *rt);
/* asyncio.run() for C: spawns fn(arg) as the main task and runs the loop until it finishes
 * (while it lives, the loop is kept alive even with nothing else to do, so it may wait for work
 * posted from other threads). Returns the main task's return code and fills *res (may be NULL).
 * Tasks still unfinished when it returns stay as they are (pending, see the leak report). */
int tsk_run_main(tsk_runtime_t *rt, const char *name, tsk_fn fn, void *arg, tsk_result_t *res);
/* Closes the runtime: tasks that have not finished are destroyed (their stacks freed without
 * running further; see the leak report), handles closed, and, for a runtime that owns its loop,
 * the loop closed. Must not be called from a task (TSK_EBUSY). For a runtime on an application's
 * loop, the loop is run until the runtime's own handles are closed. Frees rt. */
int tsk_runtime_close(tsk_runtime_t *rt);
/* The runtime of the calling thread's running task, or NULL outside a task. */
tsk_runtime_t *tsk_runtime_current(void);

/* Runs fn(arg) as a new detached task on rt's loop thread. Thread-safe: any thread may call it,
 * including the owner. Returns TSK_ECLOSED once the runtime is closing. The posted work owns no
 * handle; its failure, if any, is an unretrieved error. */
int tsk_post(tsk_runtime_t *rt, const char *name, tsk_fn fn, void *arg);

/* ---------------------------------------------------------------------------------------------
 * Tasks
 * ------------------------------------------------------------------------------------------- */
typedef struct tsk__task tsk__task;
typedef struct tsk_task {
  tsk__task *ptr;
  uint64_t id; /* unique in the process, never reused; 0 means "no task" */
} tsk_task_t;


/* What a waiting task waits for. */
typedef enum {
  TSK_WAIT_NONE = 0,
  TSK_WAIT_YIELD,
  TSK_WAIT_SLEEP,
  TSK_WAIT_TASK,    /* join of another task */
  TSK_WAIT_FUTURE,
  TSK_WAIT_EVENT,
  TSK_WAIT_CHANNEL,
  TSK_WAIT_GROUP,
  TSK_WAIT_IO,
  TSK_WAIT_OFFLOAD,
  TSK_WAIT_SPAWN   /* waiting for room in a bounded group */
} tsk_wait_kind_t;

typedef struct tsk_spawn_opts {
  const char *name;   /* copied; NULL: the entry function's symbol */
  size_t stack_size;  /* 0: the runtime's default (see tsk_runtime_set_stack_size) */
} tsk_spawn_opts_t;

/* Creates a task running fn(arg) and makes it ready; it first runs when the spawner next
 * suspends (or, outside a task, when the loop runs). The parent of the new task is the calling
 * task (none outside a task). name may be NULL. On success *out is the handle, which must be
 * joined or detached. */
int tsk_spawn(tsk_runtime_t *rt, tsk_task_t *out, const char *name, tsk_fn fn, void *arg);
int tsk_spawn_ex(tsk_runtime_t *rt, tsk_task_t *out, const tsk_spawn_opts_t *opts, tsk_fn fn,
                 void *arg);

/* Waits for the task to finish, fills *res (may be NULL) and releases the handle; returns the
 * task's own return code (0 or its error). A task joins only tasks of its own runtime; outside a
 * task, tsk_join succeeds only if the task already finished (else TSK_ENOTASK).
 * On timeout the task is cancelled and awaited (as asyncio.wait_for does), then TSK_ETIMEDOUT is
 * returned and the handle is released. If the joiner itself is cancelled while waiting, the
 * handle stays valid and TSK_ECANCELED is returned. Only one task may join a given task
 * (TSK_EBUSY otherwise). */
int tsk_join(tsk_task_t t, int64_t timeout_ms, tsk_result_t *res);
/* Releases the handle without waiting. The task runs on; when it fails, its error is
 * unretrieved. */
int tsk_detach(tsk_task_t t);
/* Requests cancellation (see the top of this file). Cancelling a finished task is a no-op (0). */
int tsk_cancel(tsk_task_t t);
/* What the registry knows of a task (observing never retrieves its error). Times are the loop's
 * clock in ms (uv_now); busy_ns is measured only with TASKSCOPE_OPTIONS busy_time=on. name is
 * "" for a task spawned without a name (reports then use its entry function's symbol). */
typedef struct tsk_task_info {
  uint64_t id, parent_id;
  char name[32];
  tsk_task_state_t state;
  tsk_wait_kind_t awaiting; /* TSK_WAIT_NONE unless waiting */
  uint64_t awaiting_id;     /* the awaited object's id (a task id for TSK_WAIT_TASK) */
  uint64_t created_ms, first_run_ms, finished_ms; /* first_run 0: never ran */
  uint32_t switches;
  uint64_t busy_ns;
} tsk_task_info_t;
int tsk_task_info(tsk_task_t t, tsk_task_info_t *info);

/* Reads the outcome of a finished task without releasing the handle: fills *res (may be NULL)
 * and returns the task's return code; TSK_EAGAIN while it has not finished. Reading the
 * outcome retrieves its error (it is no longer an unretrieved error). */
int tsk_task_result(tsk_task_t t, tsk_result_t *res);
/* Destroys an unfinished task without running it further (its stack is freed; nothing on it is
 * cleaned up) and releases the handle. It is recorded as destroyed_pending. A task joining it is
 * woken with TSK_EBROKEN. Not for the calling task itself (TSK_EDEADLK) nor group tasks. */
int tsk_task_destroy(tsk_task_t t);
/* The current state of a task whose handle is held. Observing never retrieves an error. */
int tsk_task_state(tsk_task_t t, tsk_task_state_t *state);

/* The calling task's handle (id 0 outside a task). It is a borrowed handle: do not join or
 * detach it. */
tsk_task_t tsk_self(void);
uint64_t tsk_self_id(void);
/* Sets the value a successful task hands to its joiner. */
void tsk_set_result(void *value);
/* Records an error message for the calling task and returns err, so a task can end with
 * `return tsk_error(TSK_EFAILED, "bad header %d", n);`. Outside a task it only returns err. */
int tsk_error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Whether a cancellation has been requested of (or delivered to) the calling task. */
int tsk_cancel_requested(void);

/* Lets other ready tasks run. Returns 0 or TSK_ECANCELED. */
int tsk_yield(void);
/* Suspends the calling task for ms milliseconds. Returns 0, TSK_ECANCELED, or TSK_ETIMEDOUT when
 * a tsk_timeout_push deadline falls first. */
int tsk_sleep(uint64_t ms);

/* Deadline scope: every wait of the calling task until the matching tsk_timeout_pop returns
 * TSK_ETIMEDOUT once ms milliseconds have passed. Scopes nest; the earliest deadline rules.
 * Returns 0, TSK_ENOTASK, or TSK_EFULL past 16 nested scopes. */
int tsk_timeout_push(uint64_t ms);
int tsk_timeout_pop(void);

/* ---------------------------------------------------------------------------------------------
 * Futures: a one-shot value with a completer side (tsk_promise_t) counted separately from the
 * waiter side (tsk_future_t). When the last completer reference is released without completing,
 * every waiter is woken with TSK_EBROKEN at once: nobody can ever complete it.
 * ------------------------------------------------------------------------------------------- */
typedef struct tsk_future tsk_future_t;
typedef struct tsk_promise tsk_promise_t;

/* Creates a future and its first completer reference. Both must be released. */
int tsk_future_new(tsk_runtime_t *rt, tsk_future_t **future, tsk_promise_t **promise);
/* Waits for completion; returns 0 with *value set, the rejection's error, TSK_EBROKEN,
 * TSK_ETIMEDOUT or TSK_ECANCELED. Any number of tasks may wait. */
int tsk_future_wait(tsk_future_t *f, int64_t timeout_ms, void **value);
/* Whether the future completed (resolved or rejected); never waits. */
int tsk_future_done(tsk_future_t *f);
/* The releases (tsk_future_release, tsk_promise_release) may also come after tsk_runtime_close. */
void tsk_future_release(tsk_future_t *f);
/* Completes the future; a second completion returns TSK_EBUSY. Completing (and releasing) stays
 * allowed after the runtime closed, from its owner thread (e.g. in an offload's done callback). */
int tsk_promise_resolve(tsk_promise_t *p, void *value);
int tsk_promise_reject(tsk_promise_t *p, int err);
/* Adds a completer reference (one more party that may complete the future). */
tsk_promise_t *tsk_promise_ref(tsk_promise_t *p);
/* Drops a completer reference; the last one breaks a future that is still pending. */
void tsk_promise_release(tsk_promise_t *p);

/* ---------------------------------------------------------------------------------------------
 * Events: a flag tasks can wait for (set wakes all waiters; stays set until cleared).
 * ------------------------------------------------------------------------------------------- */
typedef struct tsk_event tsk_event_t;
int tsk_event_new(tsk_runtime_t *rt, tsk_event_t **out);
int tsk_event_set(tsk_event_t *e);
int tsk_event_clear(tsk_event_t *e);
int tsk_event_is_set(tsk_event_t *e);
int tsk_event_wait(tsk_event_t *e, int64_t timeout_ms);
/* Frees the event; TSK_EBUSY while a task waits on it. May be called after tsk_runtime_close
 * (which destroys the tasks still waiting). */
int tsk_event_free(tsk_event_t *e);

/* ---------------------------------------------------------------------------------------------
 * Channels: a bounded FIFO of pointers between tasks of one runtime.
 * ------------------------------------------------------------------------------------------- */
typedef struct tsk_channel tsk_channel_t;
/* capacity >= 1. */
int tsk_channel_new(tsk_runtime_t *rt, size_t capacity, tsk_channel_t **out);
/* Waits for room. TSK_ECLOSED once the channel is closed. */
int tsk_channel_send(tsk_channel_t *ch, void *msg, int64_t timeout_ms);
/* Waits for a message. After close, the queued messages are still delivered, then TSK_ECLOSED. */
int tsk_channel_recv(tsk_channel_t *ch, void **msg, int64_t timeout_ms);
/* Non-waiting variants: TSK_EAGAIN / TSK_EFULL instead of waiting; usable outside tasks. */
int tsk_channel_try_send(tsk_channel_t *ch, void *msg);
int tsk_channel_try_recv(tsk_channel_t *ch, void **msg);
/* Closes the channel: waiting senders and receivers (once drained) get TSK_ECLOSED. */
int tsk_channel_close(tsk_channel_t *ch);
size_t tsk_channel_len(tsk_channel_t *ch);
/* Frees the channel; TSK_EBUSY while a task waits on it. Queued messages are dropped. May be
 * called after tsk_runtime_close (which destroys the tasks still waiting). */
int tsk_channel_free(tsk_channel_t *ch);

/* ---------------------------------------------------------------------------------------------
 * Task groups and the bounded scheduler
 *
 * A group owns the tasks spawned into it. tsk_group_wait waits for all of them; the first task
 * that fails (returns an error other than a delivered cancellation) cancels all the others, and
 * its error is what tsk_group_wait returns. With max_concurrency, at most that many of the
 * group's tasks run at once; the others wait in the group's pending queue (max_pending long;
 * 0 = unbounded), and a spawn into a full queue either waits for room (spawn_waits = 1, inside a
 * task) or fails with TSK_EFULL.
 * ------------------------------------------------------------------------------------------- */
typedef struct tsk_group tsk_group_t;
typedef struct tsk_group_opts {
  const char *name;       /* accepted but not kept yet: reports and the inspector show groups
                             by id */
  size_t max_concurrency; /* 0: unlimited */
  size_t max_pending;     /* 0: unlimited (only used with max_concurrency) */
  int spawn_waits;        /* 1: a spawn into a full pending queue waits for room */
} tsk_group_opts_t;

int tsk_group_new(tsk_runtime_t *rt, const tsk_group_opts_t *opts, tsk_group_t **out);
/* Spawns a task owned by the group (the group joins it; there is no handle). Returns TSK_ECLOSED
 * after tsk_group_close began, TSK_EFULL when the pending queue is full and spawn_waits is 0,
 * TSK_ECANCELED once the group was cancelled (by tsk_group_cancel or a first failure: the state
 * is permanent, so a producer cannot refill a failed group). A spawn that is dropped (queued,
 * then cancelled) never runs fn, so it never sees arg: free what arg owns yourself. */
int tsk_group_spawn(tsk_group_t *g, const char *name, tsk_fn fn, void *arg);
/* Waits until every task of the group has finished. Returns 0, the first failure's error (its
 * message in *res when res is given), TSK_ETIMEDOUT (the group's tasks keep running) or
 * TSK_ECANCELED. */
int tsk_group_wait(tsk_group_t *g, int64_t timeout_ms, tsk_result_t *res);
/* Cancels every task of the group, running and pending (pending ones never start). */
int tsk_group_cancel(tsk_group_t *g);
/* Closes the group: no more spawns (TSK_ECLOSED); waits up to timeout_ms for its tasks, then
 * cancels those still running and waits for them to finish; frees the group. Returns 0,
 * the first failure's error, or TSK_ETIMEDOUT when it had to cancel. Outside a task, only a
 * group with no unfinished task can be closed (TSK_EBUSY otherwise). */
int tsk_group_close(tsk_group_t *g, int64_t timeout_ms);
/* Counts: running (started, unfinished), pending (queued, not started), finished. */
void tsk_group_counts(tsk_group_t *g, size_t *running, size_t *pending, size_t *finished);

/* ---------------------------------------------------------------------------------------------
 * Thread-pool offload: runs fn(arg) on libuv's thread pool while the calling task waits.
 * On timeout or cancellation the wait ends but the work cannot be stopped: it keeps running, is
 * counted as abandoned (tsk_offload_abandoned), and arg must stay valid until it finishes —
 * done(arg, result) is called on the loop thread when it does, whether or not it was abandoned
 * (done may be NULL). A cancellation already pending when tsk_offload is called is delivered
 * before anything is queued: it returns TSK_ECANCELED, fn never runs, and done(arg,
 * TSK_ECANCELED, 1) has been called before it returns.
 * ------------------------------------------------------------------------------------------- */
typedef intptr_t (*tsk_work_fn)(void *arg);
typedef void (*tsk_work_done_fn)(void *arg, intptr_t result, int abandoned);
int tsk_offload(tsk_work_fn fn, void *arg, tsk_work_done_fn done, int64_t timeout_ms,
                intptr_t *result);
/* Work items abandoned by their waiter that are still running, and abandoned in total. */
void tsk_offload_abandoned(tsk_runtime_t *rt, size_t *running, size_t *total);

/* ---------------------------------------------------------------------------------------------
 * Awaitable I/O. Each call suspends the calling task until libuv completes the request.
 * Cancellation or timeout of a stream operation closes nothing by itself, except where stated.
 * A cancellation already pending when connect, write or getaddrinfo is called is delivered
 * before anything starts (TSK_ECANCELED; no byte written, no connection attempted, no lookup
 * queued; the connection stays usable).
 * ------------------------------------------------------------------------------------------- */
typedef struct tsk_tcp tsk_tcp_t;
/* Connects to addr. On timeout/cancellation the half-made connection is closed. */
int tsk_tcp_connect(const struct sockaddr *addr, int64_t timeout_ms, tsk_tcp_t **out);
/* Binds and listens; backlog as for listen(2). */
int tsk_tcp_listen(const struct sockaddr *addr, int backlog, tsk_tcp_t **out);
/* The bound address (e.g. to learn the port chosen for port 0). */
int tsk_tcp_sockname(tsk_tcp_t *t, struct sockaddr_storage *addr);
/* Waits for a connection on a listening socket. */
int tsk_tcp_accept(tsk_tcp_t *server, int64_t timeout_ms, tsk_tcp_t **out);
/* Reads at most len bytes; returns the count (> 0), 0 at end of stream, or an error. */
ssize_t tsk_tcp_read(tsk_tcp_t *t, void *buf, size_t len, int64_t timeout_ms);
/* Writes all len bytes; returns 0 or an error. On timeout or cancellation the connection is
 * closed (libuv cannot take back a started write) and TSK_ETIMEDOUT / TSK_ECANCELED returned. */
int tsk_tcp_write(tsk_tcp_t *t, const void *buf, size_t len, int64_t timeout_ms);
/* Half-closes the write side. */
int tsk_tcp_shutdown(tsk_tcp_t *t);
/* Closes and frees. Waits (uninterruptibly, briefly) for libuv to release the handle when
 * called from a task; outside a task the memory is freed by the loop later. */
void tsk_tcp_close(tsk_tcp_t *t);

/* Resolves node/service (getaddrinfo). *res must be freed with uv_freeaddrinfo. On timeout or
 * cancellation the lookup is abandoned (libuv cannot stop a running one) and freed when done. */
int tsk_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                    int64_t timeout_ms, struct addrinfo **res);

/* Awaiting any libuv request (the generic way).
 *   tsk_uv_waiter_t w;
 *   tsk_uv_waiter_init(&w, (uv_req_t *)&req);       // sets req.data = &w
 *   rc = uv_fs_stat(loop, &req, path, my_fs_cb);     // my_fs_cb calls tsk_uv_waiter_done(&w, st)
 *   if (rc == 0) rc = tsk_uv_waiter_wait(&w, timeout);
 * On timeout or cancellation uv_cancel() is tried; if the request cannot be cancelled the task
 * still waits for its callback (the request memory lives in the task's frame), then returns
 * TSK_ETIMEDOUT or TSK_ECANCELED. */
typedef struct tsk_uv_waiter {
  uv_req_t *req;
  int status;
  int done;
  void *priv_; /* internal */
} tsk_uv_waiter_t;
int tsk_uv_waiter_init(tsk_uv_waiter_t *w, uv_req_t *req);
/* Call from the request's callback with its status. */
void tsk_uv_waiter_done(tsk_uv_waiter_t *w, int status);
int tsk_uv_waiter_wait(tsk_uv_waiter_t *w, int64_t timeout_ms);

/* ---------------------------------------------------------------------------------------------
 * Run-time options: the settings of TASKSCOPE_OPTIONS (key=value pairs separated by ':'; every
 * key, value and default is listed in docs/OPTIONS.md), read when the first runtime is created.
 * tsk_options_set changes one setting with the same validation; it applies to runtimes created
 * afterwards. On a bad key or value it returns TSK_EOPTION and writes a one-line reason naming
 * the key into err (may be NULL). tsk_options_get writes the effective options in the same
 * syntax and returns its length (or TSK_EINVAL when size is too small).
 * ------------------------------------------------------------------------------------------- */
int tsk_options_set(const char *key, const char *value, char *err, size_t errlen);
int tsk_options_get(char *buf, size_t size);

/* ---------------------------------------------------------------------------------------------
 * Leak checks, for tests (see also TASKSCOPE_OPTIONS report=, exitcode=, suppressions=).
 *
 *   uint64_t mark = tsk_leak_mark(rt);
 *   ... code under test ...
 *   tsk_check_opts_t o = {.since = mark, .settle_ms = -1};
 *   int leaks = tsk_leak_check(rt, &o, NULL);   // 0: nothing leaked; > 0: a report was printed
 *
 * tsk_leak_check first lets unfinished tasks in scope run for up to settle_ms (running the loop,
 * or sleeping when called from a task; the calling task itself is never in scope), then reports:
 * tasks in scope still unfinished (pending), and destroyed_pending / unretrieved_error records
 * of tasks created since the mark. Those records are then considered reported (they stay in the
 * process's JSON report but are not printed again at close). Returns the number of records not
 * suppressed, or a negative error.
 * ------------------------------------------------------------------------------------------- */
typedef struct tsk_leak_counts {
  size_t pending, destroyed_pending, unretrieved_error, suppressed;
} tsk_leak_counts_t;

typedef struct tsk_check_opts {
  uint64_t since;       /* only tasks created at or after this mark (tsk_leak_mark); 0: all */
  tsk_group_t *group;   /* only this group's tasks (pending check); NULL: any */
  int64_t settle_ms;    /* time unfinished tasks get to finish; -1: the settle_ms option */
  int quiet;            /* 1: do not print the text report */
} tsk_check_opts_t;

/* A mark: tasks created by the calling thread from now on are "since" it. */
uint64_t tsk_leak_mark(tsk_runtime_t *rt);
int tsk_leak_check(tsk_runtime_t *rt, const tsk_check_opts_t *opts, tsk_leak_counts_t *counts);

/* ---------------------------------------------------------------------------------------------
 * Statistics and settings
 * ------------------------------------------------------------------------------------------- */
typedef struct tsk_stats {
  uint64_t spawned;       /* tasks ever created */
  uint64_t live;          /* created and not yet finished */
  uint64_t ready;         /* currently in the ready queue */
  uint64_t waiting;
  uint64_t finished;
  uint64_t switches;      /* task resumptions */
  uint64_t stacks_mapped; /* stacks carved from regions so far */
  uint64_t stacks_pooled; /* stacks in the free pool */
  uint64_t stack_regions; /* reserved regions (each one mapping) */
} tsk_stats_t;
void tsk_runtime_stats(tsk_runtime_t *rt, tsk_stats_t *st);

/* Default virtual size of a task's stack (rounded up to a page; minimum 16 KiB). Memory is
 * committed only as the stack is touched. Default 256 KiB (or TASKSCOPE_OPTIONS stack_size).
 * Only before the first task of rt is spawned: TSK_EBUSY once a pooled stack exists. */
int tsk_runtime_set_stack_size(tsk_runtime_t *rt, size_t bytes);

#ifdef __cplusplus
}
#endif
#endif /* TASKSCOPE_H */
