/*
 * backtrace.c — capturing return addresses: of the running stack (at spawn), and of a
 * suspended task from the registers its context switch saved.
 *
 * Method and measured costs (x86-64, 2-core Xeon VM shared with other builds, Debian 12,
 * gcc 12 -O2 RelWithDebInfo, libunwind 1.6.2, static library; one capture of 8 frames from
 * below 8 nested noinline functions, warm caches; median of 5 runs of up to 200k captures each,
 * timed with CLOCK_MONOTONIC; printed by tests/unit/test_backtrace.c, test capture_cost; ranges
 * are over repeated runs, on the thread's stack and in a task alike):
 *     tsk__bt_capture (bounds lookup + fp walk)            14-27 ns
 *     tsk__bt_capture_fp (fp walk, bounds given)           13-25 ns
 *     tsk__bt_capture_unw (unw_backtrace, its fast path)   88-160 ns
 *     unw_getcontext + unw_init_local + unw_step loop      3700-5500 ns
 *     glibc backtrace() (libgcc's unwinder), reference     1350-2400 ns
 * Unwinding a suspended task (7 frames): tsk__bt_unwind_suspended ~3000-4200 ns (unw_step
 * costs ~500 ns a frame), tsk__bt_unwind_suspended_fp 12-18 ns.
 * Through the shared library tsk__bt_capture costs ~20 ns (its TLS goes through
 * __tls_get_addr). The spawn budget for creation backtraces is ~40 ns (DESIGN.md: spawn+join
 * <= 60 ns tracked, <= 100 ns with backtraces), which only the frame-pointer walk meets, so it
 * is the default. The build keeps frame pointers (-fno-omit-frame-pointer) and a task's stack
 * holds only the runtime's frames and the user's, so in a task the walk sees every frame of
 * code built with frame pointers. What it misses (frames of code built without them) is
 * documented in backtrace.h; tsk__bt_capture_unw remains for callers that prefer completeness
 * to speed (e.g. a raise backtrace, which is rare) and is the fallback off known stacks.
 *
 * A suspended task is unwound with libunwind from a ucontext built from the saved registers
 * (the layout is in ctx.h): a report or a "where" query unwinds a few tasks, so completeness
 * wins there. Whoever unwinds many tasks at once (an inspector snapshot of 100k tasks would take
 * ~0.4 s through libunwind) should use tsk__bt_unwind_suspended_fp.
 */
#define UNW_LOCAL_ONLY
#include "backtrace.h"

#include "internal.h"

#include <libunwind.h>
#include <pthread.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define TSK__BT_NO_ASAN __attribute__((no_sanitize_address))
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TSK__BT_NO_ASAN __attribute__((no_sanitize_address))
#endif
#endif
#ifndef TSK__BT_NO_ASAN
#define TSK__BT_NO_ASAN
#endif

static inline int clamp_max(int max) { return max > TSK__BT_MAX_FRAMES ? TSK__BT_MAX_FRAMES : max; }

/* Walks frame records (x86-64 and aarch64 alike: fp -> [saved fp][return address]) starting at
 * fp, reading only inside [lo, hi). Every record must lie strictly above the previous one, so
 * the walk only moves towards the stack's top and always ends. The records it reads belong to
 * live frames, which AddressSanitizer does not poison; the attribute keeps it from checking the
 * reads anyway (another task's stack has no shadow state of its own). */
static inline __attribute__((always_inline)) TSK__BT_NO_ASAN int
fp_walk(uintptr_t fp, uintptr_t *ips, int max, int skip, uintptr_t lo, uintptr_t hi) {
  int n = 0;
  if (hi < 2 * sizeof(uintptr_t)) return 0;
  while (n < max) {
    if (fp < lo || fp > hi - 2 * sizeof(uintptr_t) || (fp & (sizeof(uintptr_t) - 1))) break;
    const uintptr_t *rec = (const uintptr_t *)fp;
    uintptr_t next = rec[0], ip = rec[1];
    if (ip < 4096) break;
    if (skip > 0)
      skip--;
    else
      ips[n++] = ip;
    if (next <= fp) break;
    fp = next;
  }
  return n;
}

/* The calling thread's stack [lo, hi), looked up once per thread (pthread_getattr_np parses
 * /proc/self/maps for the main thread: slow, hence the cache). */
typedef struct thread_stack {
  uintptr_t lo, hi;
  int state; /* 0 not looked up, 1 known, -1 unknown */
} thread_stack;

static __thread thread_stack tls_stack;

static __attribute__((noinline)) int thread_stack_lookup(void) {
  pthread_attr_t attr;
  tls_stack.state = -1;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return -1;
  void *lo;
  size_t size;
  if (pthread_attr_getstack(&attr, &lo, &size) == 0 && size > 0) {
    tls_stack.lo = (uintptr_t)lo;
    tls_stack.hi = (uintptr_t)lo + size;
    tls_stack.state = 1;
  }
  pthread_attr_destroy(&attr);
  return tls_stack.state;
}

/* The bounds of the stack that fp lies on: the running task's, else the thread's. 0 if fp is on
 * neither (a signal alternate stack, a stack switched to by other means). */
static inline int current_bounds(uintptr_t fp, uintptr_t *lo, uintptr_t *hi) {
  tsk__task *t = tsk__current;
  if (t && t->stack) {
    uintptr_t b = (uintptr_t)t->stack->base;
    if (fp >= b && fp < b + t->stack->size) {
      *lo = b;
      *hi = b + t->stack->size;
      return 1;
    }
  }
  if (TSK__UNLIKELY(tls_stack.state == 0)) thread_stack_lookup();
  if (tls_stack.state == 1 && fp >= tls_stack.lo && fp < tls_stack.hi) {
    *lo = tls_stack.lo;
    *hi = tls_stack.hi;
    return 1;
  }
  return 0;
}

__attribute__((noinline)) int tsk__bt_capture_unw(uintptr_t *ips, int max, int skip) {
  /* unw_backtrace's first entry is the return address into this function (both its fast path,
   * tdep_trace, and its slow path step once before recording): drop it, then skip. */
  void *buf[TSK__BT_MAX_FRAMES + 1 + 32];
  if (!ips || max <= 0) return 0;
  if (skip < 0) skip = 0;
  max = clamp_max(max);
  int drop = 1 + skip;
  int want = drop + max;
  if (want > (int)(sizeof buf / sizeof buf[0])) want = (int)(sizeof buf / sizeof buf[0]);
  int n = unw_backtrace(buf, want);
  int out = 0;
  for (int i = drop; i < n && out < max; i++) ips[out++] = (uintptr_t)buf[i];
  return out;
}

TSK__BT_NO_ASAN __attribute__((noinline)) int
tsk__bt_capture_fp(uintptr_t *ips, int max, int skip, uintptr_t lo, uintptr_t hi) {
  if (!ips || max <= 0 || lo >= hi) return 0;
  if (skip < 0) skip = 0;
  return fp_walk((uintptr_t)__builtin_frame_address(0), ips, clamp_max(max), skip, lo, hi);
}

TSK__BT_NO_ASAN int tsk__bt_walk_fp(uintptr_t fp, uintptr_t *ips, int max, uintptr_t lo,
                                    uintptr_t hi) {
  if (!ips || max <= 0 || lo >= hi) return 0;
  return fp_walk(fp, ips, clamp_max(max), 0, lo, hi);
}

TSK__BT_NO_ASAN __attribute__((noinline)) int
tsk__bt_capture(uintptr_t *ips, int max, int skip) {
  if (TSK__UNLIKELY(!ips || max <= 0)) return 0;
  if (skip < 0) skip = 0;
  uintptr_t fp = (uintptr_t)__builtin_frame_address(0), lo, hi;
  if (TSK__LIKELY(current_bounds(fp, &lo, &hi)))
    return fp_walk(fp, ips, clamp_max(max), skip, lo, hi);
  /* tsk__bt_capture_unw drops its own frame; ask it to drop this one too (which must then not
   * be a tail call: the frame would be gone). */
  int n = tsk__bt_capture_unw(ips, max, skip + 1);
  __asm__ volatile("" ::: "memory");
  return n;
}

/* ---- suspended contexts ---- */

TSK__BT_NO_ASAN int tsk__bt_unwind_suspended(const tsk__ctx *ctx, uintptr_t *ips, int max) {
  if (!ctx || !ips || max <= 0) return 0;
  max = clamp_max(max);
  unw_context_t uc;
  memset(&uc, 0, sizeof uc);
#if defined(TSK_CTX_UCONTEXT) && defined(__x86_64__)
  /* libunwind's x86-64 context is a ucontext_t: the one swapcontext saved serves as is. */
  memcpy(&uc, &ctx->uc, sizeof uc < sizeof ctx->uc ? sizeof uc : sizeof ctx->uc);
#elif defined(TSK_CTX_UCONTEXT)
  return 0;
#elif defined(__x86_64__)
  const uint64_t *s = (const uint64_t *)tsk__ctx_saved_sp(ctx);
  if (!s) return 0; /* never ran */
  greg_t *g = uc.uc_mcontext.gregs;
  g[REG_R15] = (greg_t)s[0];
  g[REG_R14] = (greg_t)s[1];
  g[REG_R13] = (greg_t)s[2];
  g[REG_R12] = (greg_t)s[3];
  g[REG_RBX] = (greg_t)s[4];
  g[REG_RBP] = (greg_t)s[5];
  g[REG_RIP] = (greg_t)s[6];
  g[REG_RSP] = (greg_t)((uintptr_t)s + 56); /* after the switch's six pops and its ret */
#elif defined(__aarch64__)
  const uint64_t *s = (const uint64_t *)tsk__ctx_saved_sp(ctx);
  if (!s) return 0; /* never ran */
  for (int i = 0; i < 10; i++) uc.uc_mcontext.regs[19 + i] = s[i];
  uc.uc_mcontext.regs[29] = s[10];
  uc.uc_mcontext.regs[30] = s[11];
  uc.uc_mcontext.pc = s[11];
  uc.uc_mcontext.sp = (uintptr_t)s + 160; /* after the switch's 160-byte frame is popped */
#else
  return 0;
#endif
  unw_cursor_t cur;
  if (unw_init_local(&cur, &uc) < 0) return 0;
  int n = 0;
  do {
    unw_word_t ip;
    if (unw_get_reg(&cur, UNW_REG_IP, &ip) < 0 || ip == 0) break;
    ips[n++] = (uintptr_t)ip;
  } while (n < max && unw_step(&cur) > 0);
  return n;
}

TSK__BT_NO_ASAN int tsk__bt_unwind_suspended_fp(const tsk__ctx *ctx, uintptr_t *ips, int max,
                                                uintptr_t lo, uintptr_t hi) {
  if (!ctx || !ips || max <= 0 || lo >= hi) return 0;
#if defined(TSK_CTX_UCONTEXT) || !(defined(__x86_64__) || defined(__aarch64__))
  (void)lo, (void)hi;
  return 0;
#else
  const uint64_t *s = (const uint64_t *)tsk__ctx_saved_sp(ctx);
#if defined(__x86_64__)
  const int fp_slot = 5, ra_slot = 6; /* rbp, return address */
#else
  const int fp_slot = 10, ra_slot = 11; /* x29, x30 */
#endif
  if (!s || (uintptr_t)s < lo || (uintptr_t)(s + ra_slot + 1) > hi) return 0;
  uintptr_t ra = (uintptr_t)s[ra_slot];
  if (ra < 4096) return 0;
  max = clamp_max(max);
  ips[0] = ra;
  return 1 + fp_walk((uintptr_t)s[fp_slot], ips + 1, max - 1, 0, lo, hi);
#endif
}
