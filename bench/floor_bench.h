/*
 * floor_bench.h — the machine's floor for spawn_join_ns and switch_ns (bench/floor_bench.c):
 * the runtime's own context switch with none of its bookkeeping, measured in the same run.
 *
 *   spawn_join_floor_ns  start a context on a stack that calls a trivial function and returns
 *                        to its starter: the two switches every spawn+join needs
 *   switch_floor_ns      two contexts alternating through a yield called from two different
 *                        functions, as tsk_yield is (so the one mispredicted return of every
 *                        switch between different call chains is in it)
 *
 * The ratios to these floors say how much the runtime adds to what the hardware costs anyway
 * (useful on a shared VM whose speed changes from minute to minute).
 */
#ifndef TASKSCOPE_BENCH_FLOOR_H
#define TASKSCOPE_BENCH_FLOOR_H

#include <stddef.h>

/* n spawn+joins and 5n round trips per run, best of runs. 0, or -1 when out of memory. */
int floor_bench(size_t n, int runs, double *spawn_join_ns, double *switch_ns);

#endif
