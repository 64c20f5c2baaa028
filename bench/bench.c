/*
 * taskscope-bench — microbenchmarks of libtaskscope, side by side with peer runtimes.
 *
 * Measures, through the public API only (taskscope.h):
 *   spawn_join_ns   spawn a trivial task and join it, ns per spawn+join (best of runs)
 *   instrumentation_ratio
 *                   spawn_join_ns with creation backtraces on / off (backtrace=spawn / off)
 *   switch_ns       two ready tasks alternating with tsk_yield, ns per handoff (best of runs)
 *   pending_bytes   RSS growth per task for N tasks waiting on one event (default 1,000,000)
 *   timer_churn_ns  a wait with a 1 s timeout that is satisfied first, ns per cycle
 *   inspector_ps_ms, inspector_max_lag_ms, inspector_subscribed_overhead
 *                   what an attached inspector costs the application (inspector_bench.c)
 *   io_overhead_pct what instrumentation costs an I/O-bound program: TCP echo on loopback in a
 *                   runtime instrumented as by default against a plain one (io_bench.c)
 * and, with spawn_join_ns and switch_ns, the machine's floor for them (floor_bench.c): the bare
 * context switch, so that the figures can be read as ratios on a VM whose speed varies.
 * then runs the peers found in the bench-peers directory (python asyncio, asyncio in debug mode,
 * Node, Go), parses their `NAME: VALUE UNIT` lines and prints peer / taskscope ratios.
 *
 * Output: one line per figure, `NAME: VALUE UNIT`, optionally followed by a comment in
 * parentheses; note lines start with '#'. Exit status: 0 when every figure was measured, 1 when
 * a benchmark failed (a runtime call returned an error), 2 on a usage error. Missing a target
 * does not change the exit status: these are benchmarks, not timed tests.
 */
#define _GNU_SOURCE
#include "taskscope.h"
#include "inspector_bench.h"
#include "io_bench.h"
#include "floor_bench.h"
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ---------------------------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------------------------- */
typedef struct options {
  int quick;
  int no_peers;
  const char *only;      /* NULL: every figure */
  const char *peers_dir; /* NULL: <dir of the executable>/../bench-peers */
  size_t pending;        /* tasks in the pending_bytes figure */
  size_t stack_size;     /* 0: the runtime's default */
  int peer_timeout_s;    /* each peer run (and the Go build) is killed after this */
  int figure_timeout_s;  /* each taskscope figure aborts the program after this */
} options_t;

static options_t opts = {
    .pending = 1000000,
    .peer_timeout_s = 120,
    .figure_timeout_s = 300,
};

static const char *const figure_names[] = {"spawn_join_ns",
                                           "instrumentation_ratio",
                                           "switch_ns",
                                           "pending_bytes",
                                           "timer_churn_ns",
                                           "inspector_ps_ms",
                                           "inspector_max_lag_ms",
                                           "inspector_subscribed_overhead",
                                           "io_overhead_pct"};
#define N_FIGURES (sizeof figure_names / sizeof figure_names[0])
/* The figures the peers also measure, in the order of the ratio table. */
static const char *const peer_figures[] = {"spawn_join_ns", "switch_ns", "pending_bytes"};
#define N_PEER_FIGURES (sizeof peer_figures / sizeof peer_figures[0])

static int wants(const char *name) { return opts.only == NULL || strcmp(opts.only, name) == 0; }

/* The machine's floors measured in this run (floor_bench.c); 0 when not measured. */
static double floor_sj_ns, floor_sw_ns;

/* " (N.Nx the floor)" for a figure with a measured floor, else "". */
static const char *vs_floor(double value, double floor, char *buf, size_t len) {
  if (floor <= 0) return "";
  snprintf(buf, len, "; %.1fx the floor", value / floor);
  return buf;
}

/* taskscope's own results, by figure name, for the ratio table. */
static double ts_value[N_FIGURES];
static int ts_have[N_FIGURES];
static int any_failure;

static void record(const char *name, double value) {
  for (size_t i = 0; i < N_FIGURES; i++) {
    if (strcmp(figure_names[i], name) == 0) {
      ts_value[i] = value;
      ts_have[i] = 1;
    }
  }
}

static int lookup(const char *name, double *value) {
  for (size_t i = 0; i < N_FIGURES; i++) {
    if (strcmp(figure_names[i], name) == 0 && ts_have[i]) {
      *value = ts_value[i];
      return 1;
    }
  }
  return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Small helpers: time, memory, watchdog
 * ------------------------------------------------------------------------------------------- */

/* Resident set size from /proc/self/statm (resident pages * page size); -1 when unreadable. */
static long long rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long long size = 0, resident = -1;
  if (f == NULL) return -1;
  if (fscanf(f, "%lld %lld", &size, &resident) != 2) resident = -1;
  fclose(f);
  return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

/* Page-table memory (VmPTE in /proc/self/status, bytes). It is not part of RSS; -1 if absent. */
static long long pte_bytes(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long long kb = -1;
  if (f == NULL) return -1;
  while (fgets(line, sizeof line, f) != NULL) {
    if (sscanf(line, "VmPTE: %lld kB", &kb) == 1) break;
  }
  fclose(f);
  return kb < 0 ? -1 : kb * 1024;
}

static long count_mappings(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  long n = 0;
  int c;
  if (f == NULL) return -1;
  while ((c = getc(f)) != EOF) n += c == '\n';
  fclose(f);
  return n;
}

static const char *volatile watchdog_figure = "";

static void watchdog_fired(int sig) {
  static const char msg1[] = "taskscope-bench: timed out in figure ";
  static const char msg2[] = " (a hang in the runtime?)\n";
  const char *name = watchdog_figure;
  (void)sig;
  if (write(2, msg1, sizeof msg1 - 1) < 0 || write(2, name, strlen(name)) < 0 ||
      write(2, msg2, sizeof msg2 - 1) < 0) {
    /* nothing more can be done */
  }
  _exit(1);
}

static void watchdog_arm(const char *figure) {
  watchdog_figure = figure;
  alarm((unsigned)opts.figure_timeout_s);
}

static void watchdog_disarm(void) { alarm(0); }

/* ---------------------------------------------------------------------------------------------
 * Running a benchmark body as the main task of a fresh runtime
 * ------------------------------------------------------------------------------------------- */

/* Runs fn(ctx) as the only top-level task of a new runtime until the loop has nothing left to do.
 * Returns the task's code; on failure, a description in err (size errlen). */
static int run_in_runtime(const char *name, tsk_fn fn, void *ctx, char *err, size_t errlen) {
  tsk_runtime_t *rt = NULL;
  tsk_task_t main_task;
  tsk_result_t res;
  int rc;

  err[0] = '\0';
  rc = tsk_runtime_new(&rt);
  if (rc != 0) {
    snprintf(err, errlen, "tsk_runtime_new: %s", tsk_strerror(rc));
    return rc;
  }
  if (opts.stack_size != 0) {
    rc = tsk_runtime_set_stack_size(rt, opts.stack_size);
    if (rc != 0) {
      snprintf(err, errlen, "tsk_runtime_set_stack_size(%zu): %s", opts.stack_size,
               tsk_strerror(rc));
      tsk_runtime_close(rt);
      return rc;
    }
  }
  rc = tsk_spawn(rt, &main_task, name, fn, ctx);
  if (rc != 0) {
    snprintf(err, errlen, "tsk_spawn(main): %s", tsk_strerror(rc));
    tsk_runtime_close(rt);
    return rc;
  }
  rc = tsk_run(rt);
  if (rc != 0) {
    snprintf(err, errlen, "tsk_run: %s", tsk_strerror(rc));
  } else {
    memset(&res, 0, sizeof res);
    rc = tsk_join(main_task, 0, &res);
    if (rc == TSK_ENOTASK) {
      snprintf(err, errlen, "the loop stopped before the benchmark task finished (deadlock?)");
    } else if (rc != 0) {
      snprintf(err, errlen, "%s", res.message[0] ? res.message : tsk_strerror(rc));
    }
  }
  int close_rc = tsk_runtime_close(rt);
  if (rc == 0 && close_rc != 0) {
    snprintf(err, errlen, "tsk_runtime_close: %s", tsk_strerror(close_rc));
    rc = close_rc;
  }
  return rc;
}

int bench_run_in_runtime(const char *name, tsk_fn fn, void *ctx, char *err, size_t errlen) {
  return run_in_runtime(name, fn, ctx, err, errlen);
}

static void report_failure(const char *figure, const char *err) {
  printf("%s: error (%s)\n", figure, err);
  fflush(stdout);
  any_failure = 1;
}

/* ---------------------------------------------------------------------------------------------
 * spawn_join_ns: spawn a trivial task and join it, N times, inside a task
 * ------------------------------------------------------------------------------------------- */
typedef struct spawn_ctx {
  size_t n;
  int runs;
  double best_ns;
} spawn_ctx_t;

static int trivial(void *arg) {
  (void)arg;
  return 0;
}

static int spawn_join_main(void *arg) {
  spawn_ctx_t *c = arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  c->best_ns = -1;
  for (int run = 0; run < c->runs; run++) {
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < c->n; i++) {
      tsk_task_t t;
      int rc = tsk_spawn(rt, &t, NULL, trivial, NULL);
      if (rc != 0) return tsk_error(rc, "tsk_spawn #%zu: %s", i, tsk_strerror(rc));
      rc = tsk_join(t, TSK_FOREVER, NULL);
      if (rc != 0) return tsk_error(rc, "tsk_join #%zu: %s", i, tsk_strerror(rc));
    }
    double dt = (double)(bench_now_ns() - t0) / (double)c->n;
    if (c->best_ns < 0 || dt < c->best_ns) c->best_ns = dt;
  }
  return 0;
}

static void bench_spawn_join(void) {
  spawn_ctx_t c = {.n = opts.quick ? 100000 : 200000, .runs = opts.quick ? 3 : 5};
  char err[256];
  if (run_in_runtime("bench-spawn-join", spawn_join_main, &c, err, sizeof err) != 0) {
    report_failure("spawn_join_ns", err);
    return;
  }
  const char *verdict = c.best_ns <= 60    ? "meets both"
                        : c.best_ns <= 100 ? "meets <= 100 only"
                                           : "meets neither";
  char fl[48];
  printf("spawn_join_ns: %.1f ns (target <= 60 tracking on, <= 100 with creation backtraces: "
         "%s; best of %d x %zu%s)\n",
         c.best_ns, verdict, c.runs, c.n, vs_floor(c.best_ns, floor_sj_ns, fl, sizeof fl));
  fflush(stdout);
  record("spawn_join_ns", c.best_ns);
}

/* ---------------------------------------------------------------------------------------------
 * instrumentation_ratio: spawn+join with creation backtraces on (backtrace=spawn, the default)
 * against the same build with them off (backtrace=off), alternating runs, best of each.
 * ------------------------------------------------------------------------------------------- */
static int set_backtrace(const char *mode) {
  char err[256];
  int rc = tsk_options_set("backtrace", mode, err, sizeof err);
  if (rc != 0) printf("# tsk_options_set(backtrace=%s): %s\n", mode, err);
  return rc;
}

static void bench_instrumentation(void) {
  char restore[16];
  bench_option("backtrace", "spawn", restore, sizeof restore);
  double best[2] = {-1, -1}; /* [0] off, [1] on */
  char err[256];
  for (int round = 0; round < (opts.quick ? 2 : 4); round++) {
    for (int on = 0; on < 2; on++) {
      if (set_backtrace(on ? "spawn" : "off") != 0) return;
      spawn_ctx_t c = {.n = opts.quick ? 50000 : 100000, .runs = 2};
      if (run_in_runtime("bench-instrumentation", spawn_join_main, &c, err, sizeof err) != 0) {
        report_failure("instrumentation_ratio", err);
        set_backtrace(restore);
        return;
      }
      if (best[on] < 0 || c.best_ns < best[on]) best[on] = c.best_ns;
    }
  }
  set_backtrace(restore);
  double ratio = best[1] / best[0];
  printf("spawn_join_backtrace_off_ns: %.1f ns\n", best[0]);
  printf("spawn_join_backtrace_on_ns: %.1f ns\n", best[1]);
  printf("instrumentation_ratio: %.2f x (creation backtraces on / off; target <= 1.5: %s)\n",
         ratio, ratio <= 1.5 ? "met" : "not met");
  fflush(stdout);
  record("instrumentation_ratio", ratio);
}

/* ---------------------------------------------------------------------------------------------
 * switch_ns: two ready tasks alternating with tsk_yield (each yield hands control to the other)
 * ------------------------------------------------------------------------------------------- */
typedef struct switch_ctx {
  size_t n; /* yields per task */
  uint64_t t0, t1;
  uint64_t resumptions; /* the runtime's count of switches during the timed span */
} switch_ctx_t;

/* The timing side. Between t0 and t1 it yields n times and the other side n times: 2n handoffs
 * (2n - 1 if the other side happened to start first). */
static int pinger(void *arg) {
  switch_ctx_t *c = arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_stats_t s0, s1;
  tsk_runtime_stats(rt, &s0);
  c->t0 = bench_now_ns();
  for (size_t i = 0; i < c->n; i++) {
    int rc = tsk_yield();
    if (rc != 0) return rc;
  }
  c->t1 = bench_now_ns();
  tsk_runtime_stats(rt, &s1);
  c->resumptions = s1.switches - s0.switches;
  return 0;
}

static int ponger(void *arg) {
  switch_ctx_t *c = arg;
  for (size_t i = 0; i < c->n; i++) {
    int rc = tsk_yield();
    if (rc != 0) return rc;
  }
  return 0;
}

static int switch_main(void *arg) {
  switch_ctx_t *c = arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_task_t a, b;
  int rc = tsk_spawn(rt, &a, "pinger", pinger, c);
  if (rc != 0) return tsk_error(rc, "tsk_spawn: %s", tsk_strerror(rc));
  rc = tsk_spawn(rt, &b, "ponger", ponger, c);
  if (rc != 0) {
    tsk_cancel(a);
    tsk_join(a, TSK_FOREVER, NULL);
    return tsk_error(rc, "tsk_spawn: %s", tsk_strerror(rc));
  }
  /* While this task waits in the joins, exactly two tasks are ready. */
  int rca = tsk_join(a, TSK_FOREVER, NULL);
  int rcb = tsk_join(b, TSK_FOREVER, NULL);
  if (rca != 0) return tsk_error(rca, "pinger: %s", tsk_strerror(rca));
  if (rcb != 0) return tsk_error(rcb, "ponger: %s", tsk_strerror(rcb));
  return 0;
}

static void bench_switch(void) {
  size_t n = opts.quick ? 100000 : 1000000;
  int runs = opts.quick ? 3 : 5;
  double best = -1;
  uint64_t resumptions = 0;
  char err[256];
  for (int run = 0; run < runs; run++) {
    switch_ctx_t c = {.n = n};
    if (run_in_runtime("bench-switch", switch_main, &c, err, sizeof err) != 0) {
      report_failure("switch_ns", err);
      return;
    }
    double dt = (double)(c.t1 - c.t0) / (double)(2 * n);
    if (best < 0 || dt < best) {
      best = dt;
      resumptions = c.resumptions;
    }
  }
  char fl[48];
  printf("switch_ns: %.1f ns (target <= 20 with tracking on: %s; best of %d x %zu handoffs%s)\n",
         best, best <= 20 ? "met" : "not met", runs, 2 * n,
         vs_floor(best, floor_sw_ns, fl, sizeof fl));
  printf("# switch_ns: the runtime counted %llu resumptions for %zu handoffs\n",
         (unsigned long long)resumptions, 2 * n);
  fflush(stdout);
  record("switch_ns", best);
}

/* ---------------------------------------------------------------------------------------------
 * pending_bytes: N tasks waiting on one event; RSS growth per task
 * ------------------------------------------------------------------------------------------- */
typedef struct pending_ctx {
  size_t n;
  size_t spawned;
  int spawn_error;       /* the tsk_spawn error that stopped spawning early, or 0 */
  int settled;           /* every spawned task reached its wait */
  long long rss0, rss1, pte0, pte1;
  double spawn_ms, settle_ms, teardown_ms;
  size_t joined_ok;
  long mappings;
  tsk_stats_t stats; /* at the peak */
} pending_ctx_t;

static int pending_waiter(void *arg) { return tsk_event_wait(arg, TSK_FOREVER); }

static int pending_main(void *arg) {
  pending_ctx_t *c = arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_event_t *ev = NULL;
  tsk_task_t *handles;
  tsk_stats_t st;
  int rc;

  /* The handles are ours, not the runtime's: allocate and touch them before measuring (a
   * non-zero fill, so the compiler cannot turn this into an untouched calloc). */
  handles = malloc(c->n * sizeof *handles);
  if (handles == NULL) return tsk_error(TSK_ENOMEM, "no memory for %zu handles", c->n);
  memset(handles, 0xff, c->n * sizeof *handles);
  rc = tsk_event_new(rt, &ev);
  if (rc != 0) {
    free(handles);
    return tsk_error(rc, "tsk_event_new: %s", tsk_strerror(rc));
  }

  c->rss0 = rss_bytes();
  c->pte0 = pte_bytes();
  uint64_t t0 = bench_now_ns();
  for (c->spawned = 0; c->spawned < c->n; c->spawned++) {
    rc = tsk_spawn(rt, &handles[c->spawned], NULL, pending_waiter, ev);
    if (rc != 0) {
      c->spawn_error = rc;
      break;
    }
  }
  uint64_t t1 = bench_now_ns();

  /* Let every task run to its wait. One yield should do (the ready queue is FIFO); fall back to
   * short sleeps in case the runtime runs ready tasks in bounded batches per loop pass. */
  uint64_t deadline = t1 + 60ull * 1000000000u;
  unsigned rounds = 0;
  for (;;) {
    tsk_runtime_stats(rt, &st);
    if (st.waiting >= c->spawned) {
      c->settled = 1;
      break;
    }
    if (bench_now_ns() > deadline) break;
    rc = ++rounds <= 100 ? tsk_yield() : tsk_sleep(1);
    if (rc != 0) break;
  }
  uint64_t t2 = bench_now_ns();
  c->rss1 = rss_bytes();
  c->pte1 = pte_bytes();
  c->mappings = count_mappings();
  c->stats = st;

  /* Tear down: wake everyone, join everyone. */
  rc = tsk_event_set(ev);
  for (size_t i = 0; i < c->spawned; i++) {
    if (tsk_join(handles[i], TSK_FOREVER, NULL) == 0) c->joined_ok++;
  }
  uint64_t t3 = bench_now_ns();
  int free_rc = tsk_event_free(ev);
  free(handles);

  c->spawn_ms = (double)(t1 - t0) / 1e6;
  c->settle_ms = (double)(t2 - t1) / 1e6;
  c->teardown_ms = (double)(t3 - t2) / 1e6;
  if (rc != 0) return tsk_error(rc, "tsk_event_set: %s", tsk_strerror(rc));
  if (free_rc != 0) return tsk_error(free_rc, "tsk_event_free: %s", tsk_strerror(free_rc));
  return 0;
}

static void bench_pending(void) {
  pending_ctx_t c;
  char err[256];
  memset(&c, 0, sizeof c);
  c.n = opts.pending;
  if (run_in_runtime("bench-pending", pending_main, &c, err, sizeof err) != 0) {
    report_failure("pending_bytes", err);
    return;
  }
  if (c.spawned == 0) {
    snprintf(err, sizeof err, "no task could be spawned: %s", tsk_strerror(c.spawn_error));
    report_failure("pending_bytes", err);
    return;
  }
  double per = (double)(c.rss1 - c.rss0) / (double)c.spawned;
  printf("pending_bytes: %.1f bytes (target <= 4608: %s)\n", per,
         per <= 4608 ? "met" : "not met");
  printf("pending_tasks: %zu count (target: 1000000 on a stock kernel%s)\n", c.spawned,
         c.spawned >= 1000000 ? ": met" : c.n < 1000000 ? ": not tried, see --pending" : ": not met");
  if (c.spawn_error != 0) {
    printf("# pending: spawning stopped after %zu of %zu tasks: %s (%s)\n", c.spawned, c.n,
           tsk_err_name(c.spawn_error), tsk_strerror(c.spawn_error));
    any_failure = 1;
  }
  if (!c.settled) {
    printf("# pending: only %llu of %zu tasks reached their wait within 60 s\n",
           (unsigned long long)c.stats.waiting, c.spawned);
    any_failure = 1;
  }
  if (c.pte0 >= 0 && c.pte1 >= 0) {
    printf("pending_pte_bytes: %.1f bytes (page tables per task, not counted in RSS)\n",
           (double)(c.pte1 - c.pte0) / (double)c.spawned);
  }
  printf("# pending: spawn %.1f ms, reach wait %.1f ms, wake+join %.1f ms; %zu of %zu joined "
         "with 0 (teardown %s)\n",
         c.spawn_ms, c.settle_ms, c.teardown_ms, c.joined_ok, c.spawned,
         c.joined_ok == c.spawned ? "ok" : "FAILED");
  printf("# pending: at the peak %llu stacks mapped in %llu regions, %ld mappings in "
         "/proc/self/maps\n",
         (unsigned long long)c.stats.stacks_mapped, (unsigned long long)c.stats.stack_regions,
         c.mappings);
  fflush(stdout);
  if (c.joined_ok != c.spawned) any_failure = 1;
  record("pending_bytes", per);
}

/* ---------------------------------------------------------------------------------------------
 * timer_churn_ns: W tasks each wait on their own event with a 1 s timeout; a setter task sets
 * all the events, so every wait arms a timer and is satisfied (disarming it) long before it
 * fires. One cycle = arm + set/disarm + wake + re-wait. The same loop with TSK_FOREVER gives
 * the cost without a timer.
 * ------------------------------------------------------------------------------------------- */
typedef struct churn_ctx {
  size_t w, rounds;
  int64_t timeout_ms;
  tsk_event_t **ev;
  size_t armed; /* waiters currently (about to be) suspended in their wait */
  int stop;
  int waiter_error;
  uint64_t t0, t1;
} churn_ctx_t;

typedef struct churn_arg {
  churn_ctx_t *c;
  size_t i;
} churn_arg_t;

static int churn_waiter(void *arg) {
  churn_arg_t *a = arg;
  churn_ctx_t *c = a->c;
  for (;;) {
    c->armed++;
    int rc = tsk_event_wait(c->ev[a->i], c->timeout_ms);
    if (rc != 0) {
      c->waiter_error = rc;
      return rc;
    }
    if (c->stop) return 0;
    tsk_event_clear(c->ev[a->i]);
  }
}

/* Yields until every waiter is suspended again; gives up when a waiter failed. */
static int churn_wait_armed(churn_ctx_t *c) {
  while (c->armed < c->w) {
    if (c->waiter_error != 0) return c->waiter_error;
    int rc = tsk_yield();
    if (rc != 0) return rc;
  }
  return 0;
}

static int churn_setter(void *arg) {
  churn_ctx_t *c = arg;
  int rc = churn_wait_armed(c);
  if (rc != 0) return rc;
  c->t0 = bench_now_ns();
  for (size_t r = 0; r < c->rounds; r++) {
    c->armed = 0;
    for (size_t i = 0; i < c->w; i++) tsk_event_set(c->ev[i]);
    rc = churn_wait_armed(c);
    if (rc != 0) return rc;
  }
  c->t1 = bench_now_ns();
  c->stop = 1;
  for (size_t i = 0; i < c->w; i++) tsk_event_set(c->ev[i]);
  return 0;
}

static int churn_main(void *arg) {
  churn_ctx_t *c = arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  int rc = 0;
  size_t n_ev = 0, n_tasks = 0;
  tsk_task_t setter;
  tsk_task_t *tasks = calloc(c->w, sizeof *tasks);
  churn_arg_t *args = calloc(c->w, sizeof *args);
  c->ev = calloc(c->w, sizeof *c->ev);
  if (tasks == NULL || args == NULL || c->ev == NULL) {
    rc = tsk_error(TSK_ENOMEM, "out of memory");
    goto out;
  }
  for (; n_ev < c->w; n_ev++) {
    rc = tsk_event_new(rt, &c->ev[n_ev]);
    if (rc != 0) {
      rc = tsk_error(rc, "tsk_event_new: %s", tsk_strerror(rc));
      goto out;
    }
  }
  for (; n_tasks < c->w; n_tasks++) {
    args[n_tasks].c = c;
    args[n_tasks].i = n_tasks;
    rc = tsk_spawn(rt, &tasks[n_tasks], "churn-waiter", churn_waiter, &args[n_tasks]);
    if (rc != 0) {
      rc = tsk_error(rc, "tsk_spawn: %s", tsk_strerror(rc));
      goto out;
    }
  }
  rc = tsk_spawn(rt, &setter, "churn-setter", churn_setter, c);
  if (rc != 0) {
    rc = tsk_error(rc, "tsk_spawn: %s", tsk_strerror(rc));
    goto out;
  }
  rc = tsk_join(setter, TSK_FOREVER, NULL);
  if (rc != 0) {
    rc = tsk_error(rc, "setter: %s%s", tsk_strerror(rc),
                   rc == TSK_ETIMEDOUT ? " (a timer fired: a round took over 1 s)" : "");
  }
out:
  /* On an early failure the waiters still running are stopped: set every event. */
  c->stop = 1;
  for (size_t i = 0; i < n_ev; i++) tsk_event_set(c->ev[i]);
  for (size_t i = 0; i < n_tasks; i++) {
    int jrc = tsk_join(tasks[i], TSK_FOREVER, NULL);
    if (rc == 0 && jrc != 0) rc = tsk_error(jrc, "waiter: %s", tsk_strerror(jrc));
  }
  for (size_t i = 0; i < n_ev; i++) tsk_event_free(c->ev[i]);
  free(c->ev);
  free(args);
  free(tasks);
  return rc;
}

/* Best ns per cycle over runs, or -1 with err filled. */
static double churn_measure(int64_t timeout_ms, int runs, char *err, size_t errlen) {
  double best = -1;
  for (int run = 0; run < runs; run++) {
    churn_ctx_t c;
    memset(&c, 0, sizeof c);
    c.w = opts.quick ? 100 : 1000;
    c.rounds = 200;
    c.timeout_ms = timeout_ms;
    if (run_in_runtime("bench-timer-churn", churn_main, &c, err, errlen) != 0) return -1;
    double dt = (double)(c.t1 - c.t0) / (double)(c.w * c.rounds);
    if (best < 0 || dt < best) best = dt;
  }
  return best;
}

static void bench_timer_churn(void) {
  char err[256];
  int runs = opts.quick ? 3 : 5;
  double timed = churn_measure(1000, runs, err, sizeof err);
  if (timed < 0) {
    report_failure("timer_churn_ns", err);
    return;
  }
  double base = churn_measure(TSK_FOREVER, runs, err, sizeof err);
  if (base < 0) {
    report_failure("timer_wait_base_ns", err);
    return;
  }
  printf("timer_churn_ns: %.1f ns (no target in DESIGN.md; one wait with a 1 s timeout, "
         "satisfied first: arm + disarm + wake-up; %zu waiters)\n",
         timed, (size_t)(opts.quick ? 100 : 1000));
  printf("timer_wait_base_ns: %.1f ns (the same cycle with TSK_FOREVER: timer cost %.1f ns)\n",
         base, timed - base);
  fflush(stdout);
  record("timer_churn_ns", timed);
}

/* ---------------------------------------------------------------------------------------------
 * Peers: child processes with a time limit, their `NAME: VALUE UNIT` lines parsed
 * ------------------------------------------------------------------------------------------- */
#define MAX_PEER_FIGURES 32

typedef struct peer_figure {
  char name[64];
  char unit[16];
  double value;
} peer_figure_t;

typedef struct peer {
  const char *label;
  const char *tool; /* the program that must be on PATH */
  int ran;
  char status[256]; /* why it did not run or failed; "" when fine */
  peer_figure_t fig[MAX_PEER_FIGURES];
  int n_fig;
} peer_t;

/* snprintf into a path buffer; -1 when the result would not fit. */
static int pathf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int pathf(char *buf, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, len, fmt, ap);
  va_end(ap);
  return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Finds prog on PATH; returns a malloc'd path or NULL. */
static char *find_in_path(const char *prog) {
  const char *path = getenv("PATH");
  if (strchr(prog, '/') != NULL) return access(prog, X_OK) == 0 ? strdup(prog) : NULL;
  if (path == NULL || *path == '\0') path = "/usr/local/bin:/usr/bin:/bin";
  while (*path != '\0') {
    const char *end = strchr(path, ':');
    size_t len = end ? (size_t)(end - path) : strlen(path);
    char buf[PATH_MAX];
    int ok;
    if (len == 0) {
      ok = pathf(buf, sizeof buf, "./%s", prog) == 0;
    } else {
      ok = pathf(buf, sizeof buf, "%.*s/%s", (int)len, path, prog) == 0;
    }
    struct stat st;
    if (ok && stat(buf, &st) == 0 && S_ISREG(st.st_mode) && access(buf, X_OK) == 0) return strdup(buf);
    if (end == NULL) break;
    path = end + 1;
  }
  return NULL;
}

typedef struct env_list {
  char **v;
  size_t n, cap;
} env_list_t;

/* A copy of the environment with name=value set (replacing any existing name). */
static void env_set(env_list_t *e, const char *name, const char *value) {
  size_t nlen = strlen(name);
  char *entry = malloc(nlen + strlen(value) + 2);
  if (entry == NULL) return;
  sprintf(entry, "%s=%s", name, value);
  for (size_t i = 0; i < e->n; i++) {
    if (strncmp(e->v[i], name, nlen) == 0 && e->v[i][nlen] == '=') {
      free(e->v[i]);
      e->v[i] = entry;
      return;
    }
  }
  if (e->n + 2 > e->cap) {
    size_t cap = e->cap ? e->cap * 2 : 64;
    char **v = realloc(e->v, cap * sizeof *v);
    if (v == NULL) {
      free(entry);
      return;
    }
    e->v = v;
    e->cap = cap;
  }
  e->v[e->n++] = entry;
  e->v[e->n] = NULL;
}

static void env_init(env_list_t *e) {
  memset(e, 0, sizeof *e);
  for (char **p = environ; *p != NULL; p++) {
    char *eq = strchr(*p, '=');
    if (eq == NULL) continue;
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(eq - *p), *p);
    env_set(e, name, eq + 1);
  }
  if (e->v == NULL) env_set(e, "PATH", "/usr/bin:/bin");
}

static void env_free(env_list_t *e) {
  for (size_t i = 0; i < e->n; i++) free(e->v[i]);
  free(e->v);
}

/* Runs argv (argv[0] an absolute path) in cwd with envp, capturing stdout (stderr is inherited),
 * killing its whole process group after timeout_s. Returns 0 when it ran to an exit status (in
 * *status), -1 with why[] otherwise. *out is a malloc'd NUL-terminated string. */
static int run_capture(char *const argv[], char *const envp[], const char *cwd, int timeout_s,
                       char **out, int *status, char *why, size_t whylen) {
  int fds[2];
  size_t len = 0, cap = 4096;
  char *buf = malloc(cap);
  *out = NULL;
  if (buf == NULL || pipe2(fds, O_CLOEXEC) != 0) {
    snprintf(why, whylen, "pipe: %s", strerror(errno));
    free(buf);
    return -1;
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    snprintf(why, whylen, "fork: %s", strerror(errno));
    close(fds[0]);
    close(fds[1]);
    free(buf);
    return -1;
  }
  if (pid == 0) {
    /* Only async-signal-safe calls from here on: the runtime may have started threads. */
    int devnull = open("/dev/null", O_RDONLY);
    setpgid(0, 0);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(fds[1], 1);
    if (cwd != NULL && chdir(cwd) != 0) _exit(126);
    execve(argv[0], argv, envp);
    _exit(127);
  }
  setpgid(pid, pid);
  close(fds[1]);

  int timed_out = 0, eof = 0;
  uint64_t deadline = bench_now_ns() + (uint64_t)timeout_s * 1000000000u;
  while (!eof) {
    uint64_t now = bench_now_ns();
    if (now >= deadline) {
      timed_out = 1;
      break;
    }
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    int left_ms = (int)((deadline - now) / 1000000u) + 1;
    int pr = poll(&pfd, 1, left_ms);
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) continue;
    if (len + 1024 > cap) {
      char *nb = realloc(buf, cap * 2);
      if (nb == NULL) break;
      buf = nb;
      cap *= 2;
    }
    ssize_t r = read(fds[0], buf + len, cap - len - 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      eof = 1;
    } else {
      len += (size_t)r;
    }
  }
  close(fds[0]);
  buf[len] = '\0';
  *out = buf;

  /* Output closed: give the process until the deadline to exit. */
  int st = 0;
  for (;;) {
    pid_t w = waitpid(pid, &st, timed_out ? 0 : WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) break;
    if (timed_out) continue;
    if (bench_now_ns() >= deadline) {
      timed_out = 1;
      kill(-pid, SIGKILL);
      continue;
    }
    usleep(10000);
  }
  if (timed_out) {
    kill(-pid, SIGKILL); /* the process group we created for it */
    snprintf(why, whylen, "killed after the %d s time limit", timeout_s);
    return -1;
  }
  *status = st;
  return 0;
}

/* Parses `NAME: VALUE UNIT` lines (notes and anything else are ignored) and echoes them. */
static void parse_peer_output(peer_t *p, const char *text) {
  const char *line = text;
  while (*line != '\0') {
    const char *nl = strchr(line, '\n');
    size_t n = nl ? (size_t)(nl - line) : strlen(line);
    char buf[512];
    snprintf(buf, sizeof buf, "%.*s", (int)(n < sizeof buf - 1 ? n : sizeof buf - 1), line);
    if (buf[0] != '\0') printf("  %-14s %s\n", p->label, buf);
    peer_figure_t f;
    char extra;
    if (buf[0] != '#' && p->n_fig < MAX_PEER_FIGURES &&
        sscanf(buf, "%63[A-Za-z0-9_]: %lf %15s %c", f.name, &f.value, f.unit, &extra) == 3) {
      p->fig[p->n_fig++] = f;
    }
    line += n;
    if (*line == '\n') line++;
  }
}

static int peer_lookup(const peer_t *p, const char *name, double *value) {
  for (int i = 0; i < p->n_fig; i++) {
    if (strcmp(p->fig[i].name, name) == 0) {
      *value = p->fig[i].value;
      return 1;
    }
  }
  return 0;
}

static void describe_status(int st, char *why, size_t whylen) {
  if (WIFEXITED(st)) {
    snprintf(why, whylen, "exited with status %d", WEXITSTATUS(st));
  } else if (WIFSIGNALED(st)) {
    snprintf(why, whylen, "killed by signal %d", WTERMSIG(st));
  } else {
    snprintf(why, whylen, "ended abnormally");
  }
}

/* Runs one peer command and parses its figures into p. */
static void run_peer(peer_t *p, char *const argv[], char *const envp[], const char *cwd) {
  char *out = NULL;
  int st = 0;
  char why[200];
  printf("# running %s:", p->label);
  for (int i = 0; argv[i] != NULL; i++) printf(" %s", argv[i]);
  printf("\n");
  if (run_capture(argv, envp, cwd, opts.peer_timeout_s, &out, &st, why, sizeof why) != 0) {
    if (out != NULL) parse_peer_output(p, out);
    snprintf(p->status, sizeof p->status, "failed (%s)", why);
    free(out);
    return;
  }
  parse_peer_output(p, out);
  free(out);
  p->ran = 1;
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    describe_status(st, why, sizeof why);
    snprintf(p->status, sizeof p->status, "failed (%s)", why);
  } else if (p->n_fig == 0) {
    snprintf(p->status, sizeof p->status, "failed (printed no figures)");
  }
}

/* The directory holding this executable, or "." */
static void exe_dir(char *buf, size_t len) {
  ssize_t n = readlink("/proc/self/exe", buf, len - 1);
  if (n <= 0) {
    snprintf(buf, len, ".");
    return;
  }
  buf[n] = '\0';
  char *slash = strrchr(buf, '/');
  if (slash == buf) {
    buf[1] = '\0';
  } else if (slash != NULL) {
    *slash = '\0';
  }
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

static int writable_dir(const char *dir) {
  struct stat st;
  return dir != NULL && *dir != '\0' && stat(dir, &st) == 0 && S_ISDIR(st.st_mode) &&
         access(dir, W_OK) == 0;
}

/* Builds peers/go_bench.go into tmp and runs it. */
static void run_go_peer(peer_t *p, const char *dir, const char *go, const char *tmp,
                        char **extra_args, int n_extra) {
  char src[PATH_MAX], bin[PATH_MAX], cache[PATH_MAX];
  env_list_t env;
  if (pathf(src, sizeof src, "%s/go_bench.go", dir) != 0 ||
      pathf(bin, sizeof bin, "%s/go_bench", tmp) != 0) {
    snprintf(p->status, sizeof p->status, "skipped (path too long)");
    return;
  }
  env_init(&env);
  env_set(&env, "GOTOOLCHAIN", "local");
  /* Go needs a writable build cache: keep the user's, unless there is none to write to. */
  if (getenv("GOCACHE") == NULL) {
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (!writable_dir(xdg) && !writable_dir(home)) {
      if (pathf(cache, sizeof cache, "%s/gocache", tmp) == 0) env_set(&env, "GOCACHE", cache);
    }
  }
  if (getenv("GOPATH") == NULL && !writable_dir(getenv("HOME"))) {
    if (pathf(cache, sizeof cache, "%s/gopath", tmp) == 0) env_set(&env, "GOPATH", cache);
  }

  char *build_argv[] = {(char *)go, "build", "-o", bin, src, NULL};
  char *out = NULL;
  int st = 0;
  char why[200];
  printf("# building go peer: %s build -o %s %s\n", go, bin, src);
  if (run_capture(build_argv, env.v, tmp, opts.peer_timeout_s, &out, &st, why, sizeof why) != 0) {
    snprintf(p->status, sizeof p->status, "skipped (go build %s)", why);
  } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    describe_status(st, why, sizeof why);
    snprintf(p->status, sizeof p->status, "skipped (go build %s)", why);
  } else {
    char *argv[8] = {bin};
    for (int i = 0; i < n_extra && i < 6; i++) argv[1 + i] = extra_args[i];
    run_peer(p, argv, env.v, tmp);
  }
  free(out);
  env_free(&env);
}

static void print_ratio_table(peer_t *peers, int n_peers) {
  printf("\n== taskscope vs peers (ratio = peer / taskscope) ==\n");
  for (int i = 0; i < n_peers; i++) {
    if (peers[i].status[0] != '\0') printf("%-14s %s\n", peers[i].label, peers[i].status);
  }
  for (size_t f = 0; f < N_PEER_FIGURES; f++) {
    const char *name = peer_figures[f];
    int is_bytes = strcmp(name, "pending_bytes") == 0;
    const char *unit = is_bytes ? "bytes" : "ns";
    double ts;
    if (!wants(name)) continue;
    if (!lookup(name, &ts)) {
      printf("%s: taskscope has no figure\n", name);
      continue;
    }
    printf("%s (taskscope %.1f %s)\n", name, ts, unit);
    for (int i = 0; i < n_peers; i++) {
      double v;
      if (!peer_lookup(&peers[i], name, &v)) {
        if (peers[i].ran) printf("  %-14s no figure\n", peers[i].label);
        continue;
      }
      printf("  %-14s %12.1f %-5s ", peers[i].label, v, unit);
      if (ts <= 0 || v <= 0) {
        printf("(no ratio: a value is not positive)\n");
        continue;
      }
      double r = v / ts;
      if (is_bytes) {
        if (r >= 1) {
          printf("%8.1fx   %s uses %.1fx the memory per pending task\n", r, peers[i].label, r);
        } else {
          printf("%8.2fx   %s uses %.1fx less memory per pending task\n", r, peers[i].label,
                 1 / r);
        }
      } else if (r >= 1) {
        printf("%8.1fx   %s is %.1fx slower\n", r, peers[i].label, r);
      } else {
        printf("%8.2fx   %s is %.1fx faster\n", r, peers[i].label, 1 / r);
      }
    }
  }
  fflush(stdout);
}

static void run_peers(void) {
  char dir[PATH_MAX], tmp[PATH_MAX];
  const char *tmpbase = getenv("TMPDIR");
  enum { ASYNCIO, ASYNCIO_DEBUG, NODE, GO, N_PEERS };
  peer_t peers[N_PEERS] = {
      [ASYNCIO] = {.label = "asyncio", .tool = "python3"},
      [ASYNCIO_DEBUG] = {.label = "asyncio-debug", .tool = "python3"},
      [NODE] = {.label = "node", .tool = "node"},
      [GO] = {.label = "go", .tool = "go"},
  };
  static const char *const scripts[N_PEERS] = {"asyncio_bench.py", "asyncio_bench.py",
                                               "node_bench.js", "go_bench.go"};

  if (opts.only != NULL) {
    int has_peer = 0;
    for (size_t f = 0; f < N_PEER_FIGURES; f++) has_peer |= strcmp(opts.only, peer_figures[f]) == 0;
    if (!has_peer) {
      printf("# peers: no peer measures %s\n", opts.only);
      return;
    }
  }
  if (opts.peers_dir != NULL) {
    snprintf(dir, sizeof dir, "%s", opts.peers_dir);
  } else {
    char exe[PATH_MAX - 32];
    exe_dir(exe, sizeof exe);
    if (pathf(dir, sizeof dir, "%s/../bench-peers", exe) != 0) {
      printf("\n# peers: skipped (executable path too long)\n");
      return;
    }
  }
  char *real = realpath(dir, NULL);
  if (real == NULL) {
    printf("\n# peers: skipped (%s: %s; use --peers DIR)\n", dir, strerror(errno));
    return;
  }
  snprintf(dir, sizeof dir, "%s", real);
  free(real);
  printf("\n== peers (from %s; each limited to %d s) ==\n", dir, opts.peer_timeout_s);

  snprintf(tmp, sizeof tmp, "%s/taskscope-bench-XXXXXX",
           writable_dir(tmpbase) ? tmpbase : "/tmp");
  int have_tmp = mkdtemp(tmp) != NULL;

  /* Arguments passed on to every peer. */
  char *extra[4];
  int n_extra = 0;
  if (opts.quick) extra[n_extra++] = "--quick";
  if (opts.only != NULL) {
    extra[n_extra++] = "--only";
    extra[n_extra++] = (char *)opts.only;
  }

  env_list_t env;
  env_init(&env);
  for (int i = 0; i < N_PEERS; i++) {
    peer_t *p = &peers[i];
    char script[PATH_MAX];
    char *tool = find_in_path(p->tool);
    int script_ok = pathf(script, sizeof script, "%s/%s", dir, scripts[i]) == 0;
    if (tool == NULL) {
      snprintf(p->status, sizeof p->status, "skipped (%s not found)", p->tool);
    } else if (!script_ok || access(script, R_OK) != 0) {
      snprintf(p->status, sizeof p->status, "skipped (%.160s: %s)", script,
               script_ok ? strerror(errno) : "path too long");
    } else if (i == GO) {
      if (have_tmp) {
        run_go_peer(p, dir, tool, tmp, extra, n_extra);
      } else {
        snprintf(p->status, sizeof p->status, "skipped (no temporary directory: %s)",
                 strerror(errno));
      }
    } else {
      char *argv[10];
      int n = 0;
      argv[n++] = tool;
      if (i == NODE) argv[n++] = "--expose-gc";
      argv[n++] = script;
      if (i == ASYNCIO_DEBUG) argv[n++] = "--debug";
      for (int k = 0; k < n_extra; k++) argv[n++] = extra[k];
      argv[n] = NULL;
      run_peer(p, argv, env.v, NULL);
    }
    if (p->status[0] != '\0' && !p->ran) printf("  %-14s %s\n", p->label, p->status);
    free(tool);
  }
  env_free(&env);
  if (have_tmp) nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  print_ratio_table(peers, N_PEERS);
}

/* ---------------------------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------------------------- */
static void usage(FILE *f) {
  fprintf(f,
          "usage: taskscope-bench [options]\n"
          "\n"
          "Microbenchmarks of libtaskscope, then the same workloads in peer runtimes\n"
          "(python3 asyncio, asyncio debug mode, node, go) with peer/taskscope ratios.\n"
          "Each figure prints as `NAME: VALUE UNIT`; notes start with '#'.\n"
          "The inspector_* figures run the taskscope CLI found next to this executable.\n"
          "\n"
          "  --quick          fewer iterations, --pending 100000 (peers run with --quick too),\n"
          "                   inspector_ps_ms with 50000 tasks and one CLI run\n"
          "  --pending N      tasks in the pending_bytes figure (default 1000000)\n"
          "  --only NAME      one figure: spawn_join_ns, instrumentation_ratio, switch_ns,\n"
          "                   pending_bytes, timer_churn_ns, inspector_ps_ms,\n"
          "                   inspector_max_lag_ms (measured together with inspector_ps_ms),\n"
          "                   inspector_subscribed_overhead, io_overhead_pct\n"
          "  --no-peers       do not run the peers\n"
          "  --peers DIR      the peers' directory (default: <exe dir>/../bench-peers)\n"
          "  --peer-timeout S kill a peer after S seconds (default 120)\n"
          "  --stack-size B   task stack size in bytes (default: the runtime's)\n"
          "  --help           this text\n"
          "\n"
          "TASKSCOPE_OPTIONS applies as for any taskscope program (e.g. backtrace=off).\n");
}

static int parse_size(const char *s, size_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-') return -1;
  *out = (size_t)v;
  return 0;
}

static int parse_args(int argc, char **argv) {
  int pending_given = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    size_t sz;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      exit(0);
    } else if (strcmp(a, "--quick") == 0) {
      opts.quick = 1;
    } else if (strcmp(a, "--no-peers") == 0) {
      opts.no_peers = 1;

    } else if (strcmp(a, "--pending") == 0 && val != NULL) {
      if (parse_size(val, &sz) != 0 || sz == 0) {
        fprintf(stderr, "taskscope-bench: --pending wants a positive count, not '%s'\n", val);
        return -1;
      }
      opts.pending = sz;
      pending_given = 1;
      i++;
    } else if (strcmp(a, "--stack-size") == 0 && val != NULL) {
      if (parse_size(val, &sz) != 0 || sz == 0) {
        fprintf(stderr, "taskscope-bench: --stack-size wants a byte count, not '%s'\n", val);
        return -1;
      }
      opts.stack_size = sz;
      i++;
    } else if (strcmp(a, "--peer-timeout") == 0 && val != NULL) {
      if (parse_size(val, &sz) != 0 || sz == 0 || sz > 86400) {
        fprintf(stderr, "taskscope-bench: --peer-timeout wants seconds, not '%s'\n", val);
        return -1;
      }
      opts.peer_timeout_s = (int)sz;
      i++;
    } else if (strcmp(a, "--only") == 0 && val != NULL) {
      int known = 0;
      for (size_t f = 0; f < N_FIGURES; f++) known |= strcmp(val, figure_names[f]) == 0;
      if (!known) {
        fprintf(stderr, "taskscope-bench: unknown figure '%s' (see --help)\n", val);
        return -1;
      }
      opts.only = val;
      i++;
    } else if (strcmp(a, "--peers") == 0 && val != NULL) {
      opts.peers_dir = val;
      i++;
    } else {
      fprintf(stderr, "taskscope-bench: %s '%s' (see --help)\n",
              val == NULL && a[0] == '-' && a[1] == '-' ? "missing value or unknown option"
                                                         : "unknown argument",
              a);
      return -1;
    }
  }
  if (opts.quick && !pending_given) opts.pending = 100000;
  return 0;
}

int main(int argc, char **argv) {
  if (parse_args(argc, argv) != 0) return 2;
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGALRM, watchdog_fired);
  signal(SIGPIPE, SIG_IGN);

  const char *topts = getenv("TASKSCOPE_OPTIONS");
  printf("# taskscope-bench %s, %ld CPUs online, TASKSCOPE_OPTIONS=%s%s\n", TSK_VERSION_STRING,
         sysconf(_SC_NPROCESSORS_ONLN), topts ? topts : "(unset)", opts.quick ? ", quick" : "");

  if (wants("spawn_join_ns") || wants("switch_ns")) {
    double sj, sw;
    if (floor_bench(opts.quick ? 200000 : 1000000, opts.quick ? 3 : 5, &sj, &sw) == 0) {
      floor_sj_ns = sj;
      floor_sw_ns = sw;
      printf("spawn_join_floor_ns: %.1f ns (the bare start of a context and its return: two "
             "switches, no bookkeeping)\n",
             sj);
      printf("switch_floor_ns: %.1f ns (two bare contexts alternating through a yield)\n", sw);
    }
  }
  if (wants("spawn_join_ns")) {
    watchdog_arm("spawn_join_ns");
    bench_spawn_join();
  }
  if (wants("instrumentation_ratio")) {
    watchdog_arm("instrumentation_ratio");
    bench_instrumentation();
  }
  if (wants("switch_ns")) {
    watchdog_arm("switch_ns");
    bench_switch();
  }
  if (wants("pending_bytes")) {
    watchdog_arm("pending_bytes");
    bench_pending();
  }
  if (wants("timer_churn_ns")) {
    watchdog_arm("timer_churn_ns");
    bench_timer_churn();
  }
  insp_bench_opts_t iopts = {.quick = opts.quick, .stack_size = opts.stack_size};
  if (wants("inspector_ps_ms") || wants("inspector_max_lag_ms")) {
    watchdog_arm("inspector_ps_ms");
    if (insp_bench_ps(&iopts) == INSP_BENCH_FAILED) any_failure = 1;
  }
  if (wants("inspector_subscribed_overhead")) {
    watchdog_arm("inspector_subscribed_overhead");
    if (insp_bench_subscribed(&iopts) == INSP_BENCH_FAILED) any_failure = 1;
  }
  if (wants("io_overhead_pct")) {
    watchdog_arm("io_overhead_pct");
    if (io_bench_overhead(opts.quick) != 0) any_failure = 1;
  }
  watchdog_disarm();

  if (!opts.no_peers) run_peers();
  return any_failure ? 1 : 0;
}
