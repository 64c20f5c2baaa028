/*
 * sched_hint.h — how the inspector's own threads (the CLI, the in-process server thread) ask the
 * kernel to let the application's threads preempt them.
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

#include <stdint.h>
#include <sys/syscall.h>
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

#endif
