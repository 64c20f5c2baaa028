/*
 * sched_hint.h — how the inspector's own threads (the CLI, the TUI, the in-process server
 * thread) leave the CPU to the application's threads: a long time slice, and yielding during
 * long loops.
 *
 * Linux's EEVDF scheduler (6.6+) lets a running thread finish its time slice before a thread
 * that wakes up gets the CPU: on a machine whose CPUs are all busy, the application's loop
 * thread, woken by its timer or a socket, may wait for up to a tick behind an inspector thread.
 * Since Linux 6.12 a thread may ask for a longer slice for itself (sched_setattr, sched_runtime
 * of a SCHED_OTHER thread; no privilege needed), and a waking thread with a shorter slice, the
 * default, preempts it at once. Asking is harmless elsewhere: older kernels ignore the field.
 * The thread keeps its share of the CPU; only who waits on a wake-up changes.
 */
#ifndef TASKSCOPE_SCHED_HINT_H
#define TASKSCOPE_SCHED_HINT_H

#include <sched.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define TSC_BACKGROUND_SLICE_NS (20u * 1000 * 1000) /* the kernel's upper bound is 100 ms */

/* Asks for a long time slice for the calling thread (see above). 0, or -1 (errno) when the
 * kernel refused; nothing else changes either way. */
static inline int tsc_sched_background_slice(void) {
#ifdef SYS_sched_setattr
  struct {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime, deadline, period;
  } attr = {sizeof attr, 0 /* SCHED_OTHER */, 0, 0, 0, TSC_BACKGROUND_SLICE_NS, 0, 0};
  return syscall(SYS_sched_setattr, 0, &attr, 0) == 0 ? 0 : -1;
#else
  return -1;
#endif
}

/* Yields the CPU (sched_yield) when the last yield of the calling thread was more than 0.2 ms
 * ago: a thread of the application that woke up on this CPU gets it now rather than at the
 * scheduler's next tick. Nothing happens when nobody waits for the CPU. For the inspector's
 * long loops (reading, rendering, writing 100 000 tasks), called every few hundred items. */
static inline void tsc_cooperate(void) {
  static __thread uint64_t last;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
  if (now - last < 200000) return;
  sched_yield();
  clock_gettime(CLOCK_MONOTONIC, &ts);
  last = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
