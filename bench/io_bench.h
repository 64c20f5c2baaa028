/*
 * io_bench.h — io_overhead_pct: what instrumentation costs an I/O-bound program
 * (bench/io_bench.c), called from bench.c's main.
 *
 * The workload: a TCP echo server and 32 client tasks on loopback, each doing a number of
 * 64-byte request/response round trips, all in one runtime. It runs in a child process (this
 * executable with --io-child) so that each run has its own options: instrumented (the
 * defaults: creation backtraces on, the inspector server running) and plain
 * (backtrace=off:socket=off), alternating, best of each. DESIGN.md's target: <= 3 %.
 */
#ifndef TASKSCOPE_BENCH_IO_H
#define TASKSCOPE_BENCH_IO_H

#include <stddef.h>

/* The child's side: runs the workload once in this process and prints `io_echo_ms: X ms`.
 * Returns the process exit status (0 ok). */
int io_bench_child(int quick);

/* The parent's side: runs the children, prints io_echo_instrumented_ms, io_echo_plain_ms and
 * io_overhead_pct. Returns 0, or 1 when a run failed. */
int io_bench_overhead(int quick);

/* From bench.c: runs argv (argv[0] an absolute path) with envp, capturing stdout; see there. */
int bench_run_capture(char *const argv[], char *const envp[], const char *cwd, int timeout_s,
                      char **out, int *status, char *why, size_t whylen);

#endif
