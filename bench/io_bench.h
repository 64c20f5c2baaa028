/*
 * io_bench.h — io_overhead_pct: what instrumentation costs an I/O-bound program
 * (bench/io_bench.c), called from bench.c's main.
 *
 * The workload: a TCP echo server and 8 client tasks on loopback, each doing 1 500 (--quick:
 * 300) 64-byte request/response round trips, all in one runtime. Rounds alternate between a
 * runtime made instrumented (creation backtraces on, attached to the inspector server: the
 * defaults) and one made plain (backtrace=off, socket=off: no backtraces, no events), in this
 * process; the figure is the median of the rounds' ratios. Limit: on this VM one run's time
 * varies by up to +-30% from the next (the kernel's loopback path), so a single figure is good
 * to a few percent only; the paired ratios are printed. DESIGN.md's target: <= 3 %.
 */
#ifndef TASKSCOPE_BENCH_IO_H
#define TASKSCOPE_BENCH_IO_H

#include <stddef.h>

/* Runs the rounds and prints io_echo_plain_ms, io_echo_instrumented_ms and io_overhead_pct.
 * Returns 0, or 1 when a run failed. */
int io_bench_overhead(int quick);

#endif
