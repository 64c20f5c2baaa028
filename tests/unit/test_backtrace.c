/*
 * test_backtrace.c — the backtrace module (runtime/src/backtrace.c, symbolize.c): capturing the
 * running stack (frame-pointer walk and libunwind), unwinding a suspended task from its saved
 * context, symbolization to function and file:line with its cache, frame classification and
 * trimming, and a printed (never asserted) measurement of what a capture costs.
 *
 * Line checks use __LINE__ markers around the functions: a frame's line must fall between the
 * markers of the function it names. Checks made inside tasks are the soft TT_CHECK / TT_RC.
 */
#include "common/tt_core.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "backtrace.h"
#include "internal.h"
#include "leak.h" /* tsk__report_put_frame: how reports print a frame */ /* a task's saved context and stack: not observable through the public API */

#if defined(__clang__)
#define NOINLINE __attribute__((noinline)) /* clang does not clone functions */
#else
#define NOINLINE __attribute__((noinline, noclone))
#endif
/* Keeps a call from becoming a tail call (which would drop the caller's frame). */
#define NO_TAIL_CALL() __asm__ volatile("" ::: "memory")

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                     */
/* ------------------------------------------------------------------------------------------ */

typedef int (*capture_fn)(uintptr_t *ips, int max, int skip);

typedef struct capture {
  capture_fn fn;
  uintptr_t ips[TSK__BT_MAX_FRAMES];
  int n;
} capture;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int ends_with(const char *s, const char *suffix) {
  if (!s) return 0;
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The index of the first frame from `from` on whose function is name, or -1. */
static int find_frame(const uintptr_t *ips, int n, int from, const char *name) {
  for (int i = from; i < n; i++) {
    tsk__frame_info fi;
    if (tsk__bt_symbolize(ips[i], &fi) == 0 && strcmp(fi.function, name) == 0) return i;
  }
  return -1;
}

static void print_frames(const char *title, const uintptr_t *ips, int n) {
  fprintf(stderr, "%s (%d frames):\n", title, n);
  for (int i = 0; i < n; i++) tsk__report_put_frame(stderr, i, ips[i]);
}

/* The report's line for frame `index` at ip, into buf. */
static const char *format_frame(char *buf, size_t size, int index, uintptr_t ip) {
  FILE *f = fmemopen(buf, size, "w");
  assert_non_null(f);
  tsk__report_put_frame(f, index, ip);
  fclose(f);
  return buf;
}

/* Soft-checks that ips[i] symbolizes to name, in this file, on a line in [first, last]. */
static int check_frame(const uintptr_t *ips, int n, int i, const char *name, int first,
                       int last) {
  if (!TT_CHECK(i >= 0 && i < n)) return 0;
  tsk__frame_info fi;
  int ok = TT_RC(0, tsk__bt_symbolize(ips[i], &fi));
  ok &= TT_CHECK(strcmp(fi.function, name) == 0);
  ok &= TT_CHECK(fi.ip == ips[i]);
  ok &= TT_CHECK(ends_with(fi.file, "test_backtrace.c"));
  ok &= TT_CHECK(fi.line >= first && fi.line <= last);
  if (!ok)
    fprintf(stderr, "frame %d: want %s in [%d, %d], got %s at %s:%d\n", i, name, first, last,
            fi.function, fi.file ? fi.file : "(null)", fi.line);
  return ok;
}

/* ------------------------------------------------------------------------------------------ */
/* nested functions to capture from                                                            */
/* ------------------------------------------------------------------------------------------ */

enum { LEVEL3_FIRST = __LINE__ };
NOINLINE static void test_level3(capture *c) {
  c->n = c->fn(c->ips, TSK__BT_MAX_FRAMES, 0);
  NO_TAIL_CALL();
}
enum { LEVEL3_LAST = __LINE__ };

enum { LEVEL2_FIRST = __LINE__ };
NOINLINE static void test_level2(capture *c) {
  test_level3(c);
  NO_TAIL_CALL();
}
enum { LEVEL2_LAST = __LINE__ };

enum { LEVEL1_FIRST = __LINE__ };
NOINLINE static void test_level1(capture *c) {
  test_level2(c);
  NO_TAIL_CALL();
}
enum { LEVEL1_LAST = __LINE__ };

/* The capturing function's own frame is never part of the result: ips[0] is in test_level3. */
static int check_levels(const capture *c) {
  int ok = TT_CHECK(c->n >= 4);
  ok &= check_frame(c->ips, c->n, 0, "test_level3", LEVEL3_FIRST, LEVEL3_LAST);
  ok &= check_frame(c->ips, c->n, 1, "test_level2", LEVEL2_FIRST, LEVEL2_LAST);
  ok &= check_frame(c->ips, c->n, 2, "test_level1", LEVEL1_FIRST, LEVEL1_LAST);
  if (!ok) print_frames("capture", c->ips, c->n);
  return ok;
}

static int capture_fp_thread(uintptr_t *ips, int max, int skip) {
  pthread_attr_t attr;
  void *lo = NULL;
  size_t size = 0;
  pthread_getattr_np(pthread_self(), &attr);
  pthread_attr_getstack(&attr, &lo, &size);
  pthread_attr_destroy(&attr);
  return tsk__bt_capture_fp(ips, max, skip, (uintptr_t)lo, (uintptr_t)lo + size);
}

/* ------------------------------------------------------------------------------------------ */
/* capture on the thread's own stack                                                          */
/* ------------------------------------------------------------------------------------------ */

static void capture_default_outside_task(void **state) {
  (void)state;
  capture c = {.fn = tsk__bt_capture};
  test_level1(&c);
  check_levels(&c);
  /* The frame above test_level1 is this test function. */
  TT_CHECK(find_frame(c.ips, c.n, 3, "capture_default_outside_task") == 3);
}

static void capture_unw_outside_task(void **state) {
  (void)state;
  capture c = {.fn = tsk__bt_capture_unw};
  test_level1(&c);
  check_levels(&c);
  TT_CHECK(find_frame(c.ips, c.n, 3, "capture_unw_outside_task") == 3);
  /* libunwind sees past the frames without frame pointers, down to the process's start. */
  TT_CHECK(find_frame(c.ips, c.n, 3, "main") > 3);
}

static void capture_fp_outside_task(void **state) {
  (void)state;
  capture c = {.fn = capture_fp_thread};
  test_level1(&c);
  /* capture_fp_thread's frame comes first here. */
  TT_CHECK(c.n >= 4);
  TT_CHECK(find_frame(c.ips, c.n, 0, "capture_fp_thread") == 0);
  TT_CHECK(find_frame(c.ips, c.n, 0, "test_level3") == 1);
  TT_CHECK(find_frame(c.ips, c.n, 0, "test_level2") == 2);
  TT_CHECK(find_frame(c.ips, c.n, 0, "test_level1") == 3);
  if (tt_failures) print_frames("fp capture", c.ips, c.n);
}

NOINLINE static int capture_skip(uintptr_t *ips, int max, int skip) {
  int n = tsk__bt_capture(ips, max, skip);
  NO_TAIL_CALL();
  return n;
}

/* Inside a task, where every frame down to the task's entry has a frame pointer. */
static int skip_and_max_task(void *arg) {
  (void)arg;
  uintptr_t all[TSK__BT_MAX_FRAMES], skipped[TSK__BT_MAX_FRAMES], few[2];
  int n = capture_skip(all, TSK__BT_MAX_FRAMES, 0);
  int m = capture_skip(skipped, TSK__BT_MAX_FRAMES, 2);
  TT_CHECK(n >= 4);
  TT_CHECK(m == n - 2);
  /* The frames from the caller's caller on are the same. */
  for (int i = 0; i < m && i + 2 < n; i++) TT_CHECK(skipped[i] == all[i + 2]);
  TT_CHECK(find_frame(all, n, 0, "capture_skip") == 0);
  TT_CHECK(find_frame(all, n, 0, "skip_and_max_task") == 1);
  TT_CHECK(capture_skip(few, 2, 0) == 2);
  TT_CHECK(capture_skip(all, TSK__BT_MAX_FRAMES, 100) == 0); /* skipped past the end */
  return 0;
}

static void capture_skip_and_max(void **state) {
  (void)state;
  uintptr_t few[2];
  TT_RUN_OK(skip_and_max_task, NULL);
  assert_int_equal(0, tsk__bt_capture(few, 0, 0));
  assert_int_equal(0, tsk__bt_capture(NULL, 4, 0));
  assert_int_equal(0, tsk__bt_capture_fp(few, 2, 0, 100, 100)); /* empty bounds */
  /* Bounds that exclude the stack: nothing is read. */
  assert_int_equal(0, tsk__bt_capture_fp(few, 2, 0, 4096, 8192));
  assert_int_equal(0, tsk__bt_capture_unw(few, 0, 0));
}

/* On a signal alternate stack (bounds unknown), tsk__bt_capture falls back to libunwind, which
 * also unwinds through the signal frame. */
static capture altstack_capture;

static void altstack_handler(int sig) {
  (void)sig;
  test_level1(&altstack_capture);
  NO_TAIL_CALL();
}

static void capture_on_signal_altstack(void **state) {
  (void)state;
  stack_t ss = {.ss_size = 256 * 1024}, old;
  ss.ss_sp = malloc(ss.ss_size);
  assert_non_null(ss.ss_sp);
  assert_int_equal(0, sigaltstack(&ss, &old));
  struct sigaction sa, old_sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = altstack_handler;
  sa.sa_flags = SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  assert_int_equal(0, sigaction(SIGUSR1, &sa, &old_sa));
  altstack_capture.fn = tsk__bt_capture;
  raise(SIGUSR1);
  sigaction(SIGUSR1, &old_sa, NULL);
  sigaltstack(&old, NULL);
  free(ss.ss_sp);
  capture *c = &altstack_capture;
  check_levels(c);
  TT_CHECK(find_frame(c->ips, c->n, 3, "altstack_handler") == 3);
  TT_CHECK(find_frame(c->ips, c->n, 4, "capture_on_signal_altstack") > 4);
  if (tt_failures) print_frames("altstack", c->ips, c->n);
}

/* ------------------------------------------------------------------------------------------ */
/* capture and unwinding inside tasks                                                          */
/* ------------------------------------------------------------------------------------------ */

static int capture_in_task(void *arg) {
  (void)arg;
  capture c = {.fn = tsk__bt_capture};
  test_level1(&c);
  check_levels(&c);
  /* The walk is bounded by the task's stack and reaches its bottom: the task's entry. */
  TT_CHECK(find_frame(c.ips, c.n, 3, "capture_in_task") == 3);
  TT_CHECK(find_frame(c.ips, c.n, 4, "tsk__task_entry") >= 4);
  tsk__task *t = tsk__current;
  for (int i = 0; i < c.n; i++)
    TT_CHECK(c.ips[i] > 4096);
  TT_CHECK(t && t->stack);

  capture u = {.fn = tsk__bt_capture_unw};
  test_level1(&u);
  check_levels(&u);
  TT_CHECK(find_frame(u.ips, u.n, 3, "capture_in_task") == 3);
  return 0;
}

static void capture_inside_task(void **state) {
  (void)state;
  TT_RUN_OK(capture_in_task, NULL);
}

enum { HELPER_FIRST = __LINE__ };
NOINLINE static int wait_helper(tsk_event_t *ev) {
  int rc = tsk_event_wait(ev, TSK_FOREVER);
  NO_TAIL_CALL();
  return rc;
}
enum { HELPER_LAST = __LINE__ };

enum { WAITER_FIRST = __LINE__ };
static int waiter_task(void *arg) {
  int rc = wait_helper(arg);
  NO_TAIL_CALL();
  return rc;
}
enum { WAITER_LAST = __LINE__ };

static int never_runs(void *arg) {
  (void)arg;
  return 0;
}

static void check_suspended(const char *how, const uintptr_t *ips, int n) {
  int h = find_frame(ips, n, 0, "wait_helper");
  int w = find_frame(ips, n, 0, "waiter_task");
  int ok = TT_CHECK(h >= 1); /* frame 0 is in the runtime's switch to the scheduler */
  ok &= TT_CHECK(w == h + 1);
  ok &= check_frame(ips, n, h, "wait_helper", HELPER_FIRST, HELPER_LAST);
  ok &= check_frame(ips, n, w, "waiter_task", WAITER_FIRST, WAITER_LAST);
  /* Frames between the switch and the helper are the runtime's; trimming starts at the helper
   * and ends at the task function (tsk__task_entry and tsk__ctx_start are the runtime's). */
  for (int i = 0; i < h && i < n; i++) ok &= TT_CHECK(tsk__bt_is_runtime_frame(ips[i]) != 0);
  int first = -1;
  int count = tsk__bt_trim(ips, n, &first);
  ok &= TT_CHECK(first == h);
  ok &= TT_CHECK(count == 2);
  if (!ok) print_frames(how, ips, n);
}

static int unwind_main(void *arg) {
  (void)arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_event_t *ev = NULL;
  TT_RC(0, tsk_event_new(rt, &ev));
  tsk_task_t h, fresh;
  TT_RC(0, tsk_spawn(rt, &h, "waiter", waiter_task, ev));
  tsk_task_state_t st = TSK_TASK_READY;
  for (int i = 0; i < 10 && st != TSK_TASK_WAITING; i++) {
    TT_RC(0, tsk_yield());
    TT_RC(0, tsk_task_state(h, &st));
  }
  TT_CHECK(st == TSK_TASK_WAITING);

  tsk__task *t = h.ptr;
  uintptr_t ips[TSK__BT_MAX_FRAMES], fp_ips[TSK__BT_MAX_FRAMES];
  int n = tsk__bt_unwind_suspended(&t->ctx, ips, TSK__BT_MAX_FRAMES);
  check_suspended("libunwind, suspended task", ips, n);
  uintptr_t lo = (uintptr_t)t->stack->base, hi = lo + t->stack->size;
  int m = tsk__bt_unwind_suspended_fp(&t->ctx, fp_ips, TSK__BT_MAX_FRAMES, lo, hi);
  check_suspended("frame pointers, suspended task", fp_ips, m);
  /* Both methods agree on the frames both see (all of them here: the runtime keeps frame
   * pointers, and a task's stack holds nothing else). */
  TT_CHECK(m == n);
  for (int i = 0; i < n && i < m; i++) TT_CHECK(ips[i] == fp_ips[i]);
  /* What unwinding a suspended task costs (printed, not asserted). */
  enum { UNWIND_ITERS = 1000 };
  uint64_t t0 = now_ns();
  for (int i = 0; i < UNWIND_ITERS; i++)
    tsk__bt_unwind_suspended(&t->ctx, ips, TSK__BT_MAX_FRAMES);
  uint64_t t1 = now_ns();
  for (int i = 0; i < UNWIND_ITERS; i++)
    tsk__bt_unwind_suspended_fp(&t->ctx, fp_ips, TSK__BT_MAX_FRAMES, lo, hi);
  uint64_t t2 = now_ns();
  fprintf(stderr,
          "unwinding a suspended task, %d frames: libunwind %.1f ns, frame pointers %.1f ns\n", n,
          (double)(t1 - t0) / UNWIND_ITERS, (double)(t2 - t1) / UNWIND_ITERS);
  /* max is respected. */
  TT_CHECK(tsk__bt_unwind_suspended(&t->ctx, ips, 2) == 2);
  TT_CHECK(tsk__bt_unwind_suspended_fp(&t->ctx, fp_ips, 1, lo, hi) == 1);
  TT_CHECK(tsk__bt_unwind_suspended(NULL, ips, 4) == 0);

  /* A task that never ran has nothing to unwind. */
  TT_RC(0, tsk_spawn(rt, &fresh, "fresh", never_runs, NULL));
  TT_CHECK(tsk__bt_unwind_suspended(&fresh.ptr->ctx, ips, TSK__BT_MAX_FRAMES) == 0);
  lo = (uintptr_t)fresh.ptr->stack->base;
  hi = lo + fresh.ptr->stack->size;
  TT_CHECK(tsk__bt_unwind_suspended_fp(&fresh.ptr->ctx, ips, TSK__BT_MAX_FRAMES, lo, hi) == 0);

  TT_RC(0, tsk_event_set(ev));
  TT_RC(0, tsk_join(h, TSK_FOREVER, NULL));
  TT_RC(0, tsk_join(fresh, TSK_FOREVER, NULL));
  TT_RC(0, tsk_event_free(ev));
  return 0;
}

static void unwind_suspended_task(void **state) {
  (void)state;
  TT_RUN_OK(unwind_main, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* symbolization                                                                               */
/* ------------------------------------------------------------------------------------------ */

static void symbolize_cache_hit(void **state) {
  (void)state;
  capture c = {.fn = tsk__bt_capture};
  test_level1(&c);
  assert_true(c.n >= 3);
  tsk__frame_info a, b;
  assert_int_equal(0, tsk__bt_symbolize(c.ips[1], &a));
  assert_int_equal(0, tsk__bt_symbolize(c.ips[1], &b));
  assert_memory_equal(&a, &b, sizeof a); /* the same strings, not merely equal ones */
  assert_string_equal("test_level2", a.function);
  assert_non_null(a.module);
  assert_true(a.sym_offset > 0);

  /* After a reset the result is rebuilt: equal, and the old strings are still valid. */
  tsk__bt_symbolize_reset();
  assert_int_equal(0, tsk__bt_symbolize(c.ips[1], &b));
  assert_string_equal(a.function, b.function);
  assert_string_equal(a.file, b.file);
  assert_int_equal(a.line, b.line);
  assert_string_equal(a.module, b.module);

  char line[512];
  format_frame(line, sizeof line, 1, c.ips[1]);
  assert_non_null(strstr(line, "  #1 0x"));
  assert_non_null(strstr(line, " in test_level2 at "));
  assert_non_null(strstr(line, "test_backtrace.c:"));
}

static void symbolize_invalid(void **state) {
  (void)state;
  uintptr_t bad[] = {0x1, 0, 4096, (uintptr_t)-64};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    tsk__frame_info fi;
    assert_int_equal(UV_ENOENT, tsk__bt_symbolize(bad[i], &fi));
    assert_string_equal("??", fi.function);
    assert_null(fi.file);
    assert_int_equal(0, fi.line);
    assert_true(fi.ip == bad[i]);
    assert_int_equal(UV_ENOENT, tsk__bt_symbolize(bad[i], &fi)); /* cached */
    char line[128];
    format_frame(line, sizeof line, 0, bad[i]);
    assert_non_null(strstr(line, " in ??"));
  }
  assert_int_equal(TSK_EINVAL, tsk__bt_symbolize(0x1000, NULL));
}

static void symbolize_shared_library_frames(void **state) {
  (void)state;
  /* libc's and libuv's functions: an ELF symbol and a module at least, with or without their
   * debug files installed. */
  tsk__frame_info fi;
  char line[1024];
  assert_int_equal(0, tsk__bt_symbolize((uintptr_t)&strlen + 1, &fi));
  assert_non_null(fi.module);
  assert_true(fi.module_offset > 0);
  format_frame(line, sizeof line, 0, (uintptr_t)&strlen + 1);
  fprintf(stderr, "libc frame: %s\n", line);
  assert_int_equal(0, tsk__bt_symbolize((uintptr_t)&uv_run + 1, &fi));
  assert_string_equal("uv_run", fi.function);
  assert_string_equal("uv_run", fi.symbol);
  assert_int_equal(1, fi.sym_offset);
  assert_non_null(strstr(fi.module, "libuv"));
  format_frame(line, sizeof line, 0, (uintptr_t)&uv_run + 1);
  fprintf(stderr, "libuv frame: %s\n", line);
}

static void classify_frames(void **state) {
  (void)state;
  assert_int_equal(TSK__BT_FRAME_RUNTIME, tsk__bt_is_runtime_frame((uintptr_t)&tsk_spawn + 1));
  assert_int_equal(TSK__BT_FRAME_RUNTIME,
                   tsk__bt_is_runtime_frame((uintptr_t)&tsk__bt_capture + 1));
  assert_int_equal(TSK__BT_FRAME_LOOP, tsk__bt_is_runtime_frame((uintptr_t)&uv_run + 1));
  assert_int_equal(TSK__BT_FRAME_USER, tsk__bt_is_runtime_frame((uintptr_t)&test_level2 + 1));
  assert_int_equal(TSK__BT_FRAME_USER, tsk__bt_is_runtime_frame((uintptr_t)&strlen + 1));
  assert_int_equal(TSK__BT_FRAME_USER, tsk__bt_is_runtime_frame(1));

  /* A capture taken inside the runtime's own frames trims to the user's first. */
  capture c = {.fn = tsk__bt_capture};
  test_level1(&c);
  int first = -1;
  int count = tsk__bt_trim(c.ips, c.n, &first);
  assert_int_equal(0, first); /* test_level3: already the user's */
  assert_int_equal(c.n, count);
}

/* ------------------------------------------------------------------------------------------ */
/* cost of a capture (printed, not asserted: timing depends on the machine)                   */
/* ------------------------------------------------------------------------------------------ */

#define BENCH_FRAMES 8
#define BENCH_ITERS 200000
#define BENCH_RUNS 5

/* glibc's backtrace() (libgcc's unwinder), looked up in libc itself: linking libunwind
 * interposes a backtrace() of its own on the executable. */
static int (*glibc_backtrace)(void **, int);

static int bench_glibc(uintptr_t *ips, int max, int skip) {
  (void)skip;
  return glibc_backtrace((void **)ips, max);
}

static int bench_unw_step(uintptr_t *ips, int max, int skip) {
  (void)skip;
  unw_context_t uc;
  unw_cursor_t cur;
  unw_getcontext(&uc);
  if (unw_init_local(&cur, &uc) < 0) return 0;
  int n = 0;
  while (n < max && unw_step(&cur) > 0) {
    unw_word_t ip;
    unw_get_reg(&cur, UNW_REG_IP, &ip);
    ips[n++] = (uintptr_t)ip;
  }
  return n;
}

static uintptr_t bench_lo, bench_hi;

static int bench_fp(uintptr_t *ips, int max, int skip) {
  return tsk__bt_capture_fp(ips, max, skip, bench_lo, bench_hi);
}

typedef struct bench {
  const char *name;
  capture_fn fn;
  double ns;
  int frames;
  int iters;
} bench;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

NOINLINE static void bench_run(bench *b) {
  uintptr_t ips[BENCH_FRAMES];
  double runs[BENCH_RUNS];
  b->frames = b->fn(ips, BENCH_FRAMES, 0); /* warm up (libunwind's caches, the bounds) */
  /* At most BENCH_ITERS captures or ~20 ms per run, whichever comes first. */
  uint64_t t0 = now_ns();
  for (int i = 0; i < 100; i++) b->fn(ips, BENCH_FRAMES, 0);
  uint64_t per = (now_ns() - t0) / 100 + 1;
  int iters = (int)(20000000 / per);
  if (iters > BENCH_ITERS) iters = BENCH_ITERS;
  if (iters < 100) iters = 100;
  b->iters = iters;
  for (int r = 0; r < BENCH_RUNS; r++) {
    t0 = now_ns();
    for (int i = 0; i < iters; i++) {
      b->fn(ips, BENCH_FRAMES, 0);
      __asm__ volatile("" : : "r"(ips) : "memory");
    }
    runs[r] = (double)(now_ns() - t0) / iters;
  }
  qsort(runs, BENCH_RUNS, sizeof runs[0], cmp_double);
  b->ns = runs[BENCH_RUNS / 2];
}

/* Runs the benchmarks below `depth` nested frames, so each capture has 8 frames to take. */
NOINLINE static void bench_nest(int depth, bench *benches, int n) {
  if (depth > 0) {
    bench_nest(depth - 1, benches, n);
    NO_TAIL_CALL();
    return;
  }
  for (int i = 0; i < n; i++) bench_run(&benches[i]);
}

static int bench_all(void *arg) {
  const char *where = arg;
  bench benches[] = {
      {"tsk__bt_capture (default: bounds + fp walk)", tsk__bt_capture, 0, 0, 0},
      {"tsk__bt_capture_fp (fp walk, bounds given)", bench_fp, 0, 0, 0},
      {"tsk__bt_capture_unw (unw_backtrace)", tsk__bt_capture_unw, 0, 0, 0},
      {"unw_getcontext + unw_init_local + unw_step", bench_unw_step, 0, 0, 0},
      {"glibc backtrace()", bench_glibc, 0, 0, 0},
  };
  void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  glibc_backtrace = libc ? (int (*)(void **, int))dlsym(libc, "backtrace") : NULL;
  if (!glibc_backtrace) glibc_backtrace = backtrace;
  tsk__task *t = tsk__current;
  if (t) {
    bench_lo = (uintptr_t)t->stack->base;
    bench_hi = bench_lo + t->stack->size;
  } else {
    pthread_attr_t attr;
    void *lo;
    size_t size;
    pthread_getattr_np(pthread_self(), &attr);
    pthread_attr_getstack(&attr, &lo, &size);
    pthread_attr_destroy(&attr);
    bench_lo = (uintptr_t)lo;
    bench_hi = bench_lo + size;
  }
  int n = (int)(sizeof benches / sizeof benches[0]);
  if (libc) dlclose(libc);
  bench_nest(BENCH_FRAMES, benches, n);
  fprintf(stderr, "capture cost, %d frames, %s (median of %d runs):\n", BENCH_FRAMES, where,
          BENCH_RUNS);
  for (int i = 0; i < n; i++)
    fprintf(stderr, "  %-46s %8.1f ns  (%d frames, %d captures per run)\n", benches[i].name,
            benches[i].ns, benches[i].frames, benches[i].iters);
  /* The timings are only printed; but a capture that came back short timed the wrong thing.
   * The runtime's own three each see the BENCH_FRAMES nested frames. */
  for (int i = 0; i < 3; i++) TT_CHECK(benches[i].frames == BENCH_FRAMES);
  return 0;
}

static void capture_cost(void **state) {
  (void)state;
  bench_all("on the thread's stack");
  TT_RUN_OK(bench_all, "inside a task");
}

static int teardown_all(void **state) {
  (void)state;
  tsk__bt_symbolize_cleanup();
  return 0;
}

/* fork() while another thread symbolizes: the child must be able to symbolize too (the
 * symbolizer's lock is taken around fork), never deadlock. */
static volatile int stop_symbolizing;

static void *symbolize_forever(void *arg) {
  (void)arg;
  uintptr_t ips[8];
  int n = tsk__bt_capture(ips, 8, 0);
  while (!stop_symbolizing) {
    tsk__frame_info fi;
    for (int i = 0; i < n; i++) tsk__bt_symbolize(ips[i], &fi);
    tsk__bt_symbolize_reset(); /* also exercise the slow path under the lock */
    /* A pause outside the lock: glibc mutexes are not fair, and a thread that re-locks at once
     * in a tight loop can starve the fork handler for as long as it runs (seen on 2 CPUs). */
    usleep(200);
  }
  return NULL;
}

static void symbolize_across_fork(void **state) {
  (void)state;
  pthread_t th;
  stop_symbolizing = 0;
  assert_int_equal(pthread_create(&th, NULL, symbolize_forever, NULL), 0);
  for (int i = 0; i < 20; i++) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      alarm(10); /* a deadlock would end here, as SIGALRM */
      tsk__frame_info fi;
      tsk__bt_symbolize((uintptr_t)&symbolize_across_fork + 1, &fi);
      _exit(strcmp(fi.function, "symbolize_across_fork") == 0 ? 0 : 1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
  }
  stop_symbolizing = 1;
  pthread_join(th, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TT_TEST(symbolize_across_fork),
      TT_TEST(capture_default_outside_task),
      TT_TEST(capture_unw_outside_task),
      TT_TEST(capture_fp_outside_task),
      TT_TEST(capture_skip_and_max),
      TT_TEST(capture_on_signal_altstack),
      TT_TEST(capture_inside_task),
      TT_TEST(unwind_suspended_task),
      TT_TEST(symbolize_cache_hit),
      TT_TEST(symbolize_invalid),
      TT_TEST(symbolize_shared_library_frames),
      TT_TEST(classify_frames),
      TT_TEST(capture_cost),
  };
  return cmocka_run_group_tests(tests, NULL, teardown_all);
}
