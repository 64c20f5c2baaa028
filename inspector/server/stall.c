/*
 * stall.c — blocked-loop truth: the watchdog that notices a loop that stopped turning, the
 * signal handler that samples the loop thread's stack at that moment, and the fault-proof reads
 * behind `where` in "direct" mode.
 *
 * Watchdog: on every server tick (10 ms) it looks at each runtime's loop: the number of turns
 * it completed and the time it has slept in poll (libuv's idle-time metric, which keeps growing
 * while the loop sleeps). A loop that is being run and for which neither moved for longer than
 * TSK__SRV_STALL_MS (100 ms) is stalled, in whatever phase it is blocked (a task, a timer, an
 * I/O callback): snapshots and deltas say so (runtime.loop.stalled_ms, measured from the last
 * movement the watchdog saw, so within a tick), and once per stall a warning
 * "loop stalled for N ms" is recorded with the loop thread's stack. A loop that moves again and
 * blocks again is a new stall.
 *
 * Sampling: the server sends TSK__STALL_SIGNAL (SIGRTMIN+3) to the loop thread (tgkill). The
 * handler, installed at server start only if the signal had no handler, runs on the loop thread,
 * writes the return addresses into the runtime's sample buffer and publishes them; the server
 * waits up to TSK__SRV_SAMPLE_WAIT_MS for it, then symbolizes on its own thread. Two methods:
 *   - x86-64: libunwind from the interrupted context (unw_init_local2 with
 *     UNW_INIT_SIGNAL_FRAME, then unw_step), i.e. DWARF CFI. A blocking loop is very often
 *     inside libc or the vDSO (clock_gettime, memcpy, a system call wrapper), which are built
 *     without frame pointers: a frame-pointer walk from there skips the caller, which is the very
 *     function the user needs to see. libunwind's local unwinding is meant for signal handlers
 *     (it allocates from its own mmap-based pool; the loader lock it may take for a first lookup
 *     in a module is recursive, so interrupting a thread that holds it cannot deadlock).
 *   - otherwise, or when libunwind gives up: the frame-pointer walk from the interrupted
 *     registers (rip/rbp, pc/fp), bounded by the running task's stack when the frame lies on it,
 *     else by the thread's stack; it only reads memory.
 * Both read only the loop thread's own memory, on that thread, which is stopped meanwhile.
 * The signal is not sent while the loop thread sleeps in a system call that a signal would cut
 * short even with SA_RESTART (nanosleep, poll, epoll_wait, ...): the warning then has no stack
 * rather than changing what the application sees.
 */
#define UNW_LOCAL_ONLY
#include "srv.h"

#include "backtrace.h"

#include <libunwind.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

#define TSK__STALL_SIGNAL (SIGRTMIN + 3)

#if defined(__SANITIZE_ADDRESS__)
#define NO_ASAN __attribute__((no_sanitize_address))
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NO_ASAN __attribute__((no_sanitize_address))
#endif
#endif
#ifndef NO_ASAN
#define NO_ASAN
#endif

static int handler_installed;
static _Atomic(tsk__insp_rt *) sample_target;

/* ---- the signal handler (loop thread) ---- */

#if defined(__x86_64__)
/* libunwind's x86-64 unw_context_t is a ucontext_t: the signal's context serves as is. */
static NO_ASAN int unwind_signal_frame(ucontext_t *uc, uintptr_t *ips, int max) {
  unw_cursor_t cur;
  if (unw_init_local2(&cur, (unw_context_t *)uc, UNW_INIT_SIGNAL_FRAME) < 0) return 0;
  int n = 0;
  do {
    unw_word_t ip;
    if (unw_get_reg(&cur, UNW_REG_IP, &ip) < 0 || ip == 0) break;
    ips[n] = (uintptr_t)ip + (n == 0); /* the first is the interrupted pc itself */
    n++;
  } while (n < max && unw_step(&cur) > 0);
  return n;
}
#endif

static NO_ASAN void on_sample_signal(int sig, siginfo_t *si, void *ucv) {
  (void)sig, (void)si;
  int saved_errno = errno;
  tsk__insp_rt *in = atomic_load(&sample_target);
  if (!in || in->tid != (pid_t)syscall(SYS_gettid)) goto out;
  int expected = 1;
  if (!atomic_compare_exchange_strong(&in->sample_state, &expected, 3)) goto out;
  int n = 0;
  uint64_t task_id = 0;
  /* The runtime is alive while closed is 0: only this thread closes it, and it is interrupted. */
  if (!atomic_load(&in->closed)) {
    const ucontext_t *uc = ucv;
    uintptr_t pc = 0, fp = 0;
#if defined(__x86_64__)
    pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
#elif defined(__aarch64__)
    pc = (uintptr_t)uc->uc_mcontext.pc;
    fp = (uintptr_t)uc->uc_mcontext.regs[29];
#else
    (void)uc;
#endif
    tsk_runtime_t *rt = in->rt;
    tsk__task *cur = rt->current;
    uintptr_t lo = 0, hi = 0;
    if (cur && cur->stack && fp >= (uintptr_t)cur->stack->base &&
        fp < (uintptr_t)cur->stack->base + cur->stack->size) {
      lo = (uintptr_t)cur->stack->base;
      hi = lo + cur->stack->size;
    } else if (rt->sched_stack_lo && fp >= (uintptr_t)rt->sched_stack_lo &&
               fp < (uintptr_t)rt->sched_stack_lo + rt->sched_stack_size) {
      lo = (uintptr_t)rt->sched_stack_lo;
      hi = lo + rt->sched_stack_size;
    }
    /* pc + 1: symbolization looks up ip - 1 (return-address convention); this one is the
     * interrupted instruction itself. */
#if defined(__x86_64__)
    n = unwind_signal_frame((ucontext_t *)ucv, in->sample_ips, TSK__SRV_STACK_MAX);
#endif
    if (n <= 1) {
      n = 0;
      if (pc) in->sample_ips[n++] = pc + 1;
      if (hi) n += tsk__bt_walk_fp(fp, in->sample_ips + n, TSK__SRV_STACK_MAX - n, lo, hi);
    }
    task_id = cur ? cur->id : 0;
  }
  in->sample_n = n;
  in->sample_task_id = task_id;
  atomic_store_explicit(&in->sample_state, 2, memory_order_release);
out:
  errno = saved_errno;
}

int tsk__stall_init(tsk__srv *s) {
  s->safe_pipe[0] = s->safe_pipe[1] = -1;
  if (pipe2(s->safe_pipe, O_CLOEXEC | O_NONBLOCK) != 0) s->safe_pipe[0] = s->safe_pipe[1] = -1;
  if (handler_installed) return 0;
  struct sigaction old;
  if (sigaction(TSK__STALL_SIGNAL, NULL, &old) != 0) return -1;
  if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL) return -1; /* someone's */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sample_signal;
  sa.sa_flags = SA_RESTART | SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (sigaction(TSK__STALL_SIGNAL, &sa, NULL) != 0) return -1;
  handler_installed = 1;
  return 0;
}

/* ---- the watchdog (server thread) ---- */

/* Whether the thread may be interrupted without changing what the application sees: not while
 * it sleeps in a system call that returns EINTR despite SA_RESTART (see signal(7)). Unknown
 * (no /proc) counts as interruptible. */
static int interruptible(pid_t tid) {
  char path[64], buf[64];
  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 1;
  buf[n] = 0;
  if (strncmp(buf, "running", 7) == 0) return 1;
  long nr = strtol(buf, NULL, 10);
  static const long sleepy[] = {
#ifdef SYS_nanosleep
      SYS_nanosleep,
#endif
#ifdef SYS_clock_nanosleep
      SYS_clock_nanosleep,
#endif
#ifdef SYS_select
      SYS_select,
#endif
#ifdef SYS_pselect6
      SYS_pselect6,
#endif
#ifdef SYS_poll
      SYS_poll,
#endif
#ifdef SYS_ppoll
      SYS_ppoll,
#endif
#ifdef SYS_epoll_wait
      SYS_epoll_wait,
#endif
#ifdef SYS_epoll_pwait
      SYS_epoll_pwait,
#endif
#ifdef SYS_epoll_pwait2
      SYS_epoll_pwait2,
#endif
#ifdef SYS_pause
      SYS_pause,
#endif
#ifdef SYS_rt_sigsuspend
      SYS_rt_sigsuspend,
#endif
#ifdef SYS_rt_sigtimedwait
      SYS_rt_sigtimedwait,
#endif
      -1000};
  for (size_t i = 0; i < sizeof sleepy / sizeof sleepy[0]; i++)
    if (nr == sleepy[i]) return 0;
  return 1;
}

static void warn_stall(tsk__srv *s, srv_rt *r, const char *extra) {
  char msg[128];
  snprintf(msg, sizeof msg, "loop stalled for %llu ms%s", (unsigned long long)r->stalled_ms,
           extra);
  tsk__mirror_warn(s, r, "loop_stalled", msg, r->nstack >= 0 ? r->stack : NULL,
                   r->nstack >= 0 ? r->nstack : 0);
}

/* A sample in flight: take it, or give up after the wait. */
static void sample_progress(tsk__srv *s, srv_rt *r, uint64_t now) {
  tsk__insp_rt *in = r->in;
  int st = atomic_load_explicit(&in->sample_state, memory_order_acquire);
  if (st == 2) {
    int n = in->sample_n;
    if (n < 0) n = 0;
    if (n > TSK__SRV_STACK_MAX) n = TSK__SRV_STACK_MAX;
    memcpy(r->stack, in->sample_ips, (size_t)n * sizeof(uintptr_t));
    r->nstack = n;
    r->running_id = in->sample_task_id;
    atomic_store(&in->sample_state, 0);
    atomic_store(&sample_target, NULL);
    r->sampling = 0;
    warn_stall(s, r, "");
    return;
  }
  if (now < r->sample_deadline_ns) return;
  int expected = 1;
  if (atomic_compare_exchange_strong(&in->sample_state, &expected, 0)) {
    /* The handler did not run (yet): it may still, late, so `in` must outlive it. */
    r->sample_lost = 1;
    atomic_store(&sample_target, NULL);
    r->sampling = 0;
    warn_stall(s, r, " (its stack could not be sampled)");
  } /* else the handler is writing: next tick */
}

void tsk__stall_watch(tsk__srv *s, srv_rt *r, uint64_t now) {
  tsk__insp_rt *in = r->in;
  if (r->sampling) sample_progress(s, r, now);
  if (atomic_load_explicit(&in->closed, memory_order_acquire)) {
    r->stalled_ms = 0;
    return;
  }
  int state = atomic_load_explicit(&in->loop_state, memory_order_acquire);
  uint64_t it = atomic_load_explicit(&in->iterations, memory_order_relaxed);
  uint64_t idle = r->seen_idle;
  pthread_mutex_lock(&in->lock);
  if (!atomic_load(&in->closed)) idle = uv_metrics_idle_time(in->loop);
  pthread_mutex_unlock(&in->lock);
  if (state == TSK__LOOP_OUTSIDE || !r->progress_ns || it != r->seen_iter ||
      idle != r->seen_idle) {
    r->seen_iter = it;
    r->seen_idle = idle;
    r->progress_ns = now;
    r->stalled_ms = 0;
    return;
  }
  uint64_t limit = (uint64_t)TSK__SRV_STALL_MS * 1000000;
  if (now - r->progress_ns <= limit) {
    r->stalled_ms = 0;
    return;
  }
  r->stalled_ms = (now - r->progress_ns) / 1000000;
  if (r->stall_key == r->progress_ns) return; /* this stall was handled */
  r->stall_key = r->progress_ns;
  r->nstack = -1;
  r->running_id = 0;
  if (handler_installed && !r->sampling && !atomic_load(&sample_target) &&
      interruptible(r->tid)) {
    atomic_store(&in->sample_state, 1);
    atomic_store(&sample_target, in);
    if (syscall(SYS_tgkill, (pid_t)getpid(), r->tid, TSK__STALL_SIGNAL) == 0) {
      r->sampling = 1;
      r->sample_deadline_ns = now + (uint64_t)TSK__SRV_SAMPLE_WAIT_MS * 1000000;
      return; /* the warning comes with the sample */
    }
    atomic_store(&in->sample_state, 0);
    atomic_store(&sample_target, NULL);
  }
  warn_stall(s, r, handler_installed ? " (blocked in a system call; stack not sampled)"
                                     : " (stack sampling unavailable)");
}

/* ---- fault-proof reads for `where` in direct mode ---- */

/* Copies n bytes at src into dst without ever faulting: 0, or -1 when src is not readable. */
static int safe_read(tsk__srv *s, void *dst, uintptr_t src, size_t n) {
  struct iovec l = {dst, n}, r = {(void *)src, n};
  ssize_t k = process_vm_readv(getpid(), &l, 1, &r, 1, 0);
  if (k == (ssize_t)n) return 0;
  if (k >= 0 || errno == EFAULT || s->safe_pipe[1] < 0 || n > 4096) return -1;
  /* process_vm_readv is not allowed here (seccomp): a write(2) from src reports EFAULT too. */
  char sink[4096];
  while (read(s->safe_pipe[0], sink, sizeof sink) > 0) {
  }
  if (write(s->safe_pipe[1], (const void *)src, n) != (ssize_t)n) return -1;
  return read(s->safe_pipe[0], dst, n) == (ssize_t)n ? 0 : -1;
}

static int walk_saved(tsk__srv *s, uintptr_t sp, uintptr_t lo, uintptr_t hi, uintptr_t *ips,
                      int max) {
#if defined(TSK_CTX_UCONTEXT) || !(defined(__x86_64__) || defined(__aarch64__))
  (void)s, (void)sp, (void)lo, (void)hi, (void)ips, (void)max;
  return 0;
#else
#if defined(__x86_64__)
  enum { FP_SLOT = 5, RA_SLOT = 6 }; /* ctx.h: [r15][r14][r13][r12][rbx][rbp][ra] */
#else
  enum { FP_SLOT = 10, RA_SLOT = 11 }; /* [x19..x28][x29][x30] */
#endif
  uint64_t saved[RA_SLOT + 1];
  if (sp < lo || sp + sizeof saved > hi || safe_read(s, saved, sp, sizeof saved)) return 0;
  uintptr_t ra = (uintptr_t)saved[RA_SLOT], fp = (uintptr_t)saved[FP_SLOT];
  if (ra < 4096) return 0;
  int n = 0;
  ips[n++] = ra;
  while (n < max) {
    uintptr_t rec[2];
    if (fp < lo || fp > hi - sizeof rec || (fp & (sizeof(uintptr_t) - 1))) break;
    if (safe_read(s, rec, fp, sizeof rec)) break;
    if (rec[1] < 4096) break;
    ips[n++] = rec[1];
    if (rec[0] <= fp) break;
    fp = rec[0];
  }
  return n;
#endif
}

void tsk__stall_direct_where(tsk__srv *s, tsk__insp_rt *in, tsk__insp_req *q) {
  q->rc = TSK_ESTALE;
  pthread_mutex_lock(&in->lock); /* the runtime cannot close (and unmap stacks) meanwhile */
  if (atomic_load(&in->closed)) goto out;
  tsk__task t;
  if (safe_read(s, &t, q->task_ptr, sizeof t)) goto out;
  if (t.id != q->task_id || t.rt != in->rt || t.state > TSK_TASK_WAITING) goto out;
  q->rc = 0;
  q->state_now = (uint8_t)t.state;
  q->first_run_ms = t.first_run_ms;
  q->switches = t.switches;
  q->running = t.state == TSK_TASK_RUNNING;
  tsk__stack st;
  if (!t.stack || safe_read(s, &st, (uintptr_t)t.stack, sizeof st)) goto out;
  uintptr_t lo = (uintptr_t)st.base, hi = lo + st.size - TSK__STACK_RESERVED;
  tsk__stack_hdr hdr;
  if (st.size > sizeof hdr && safe_read(s, &hdr, hi, sizeof hdr) == 0) {
    q->ncreated = hdr.ncreated > 64 ? 64 : hdr.ncreated;
    memcpy(q->created, hdr.created, (size_t)q->ncreated * sizeof(uintptr_t));
  }
  if (!q->running && t.first_run_ms)
    q->nsusp = walk_saved(s, (uintptr_t)tsk__ctx_saved_sp(&t.ctx), lo, hi, q->susp, 64);
out:
  pthread_mutex_unlock(&in->lock);
}
