/*
 * inspector_bench.h — taskscope-bench figures of the inspector's cost to the application
 * (bench/inspector_bench.c), called from bench.c's main.
 *
 *   inspector_ps_ms, inspector_max_lag_ms   100 000 waiting tasks; `taskscope ps PID --json`
 *                                           run several times from a helper thread while a
 *                                           1 ms timer on the app's loop measures its lag
 *   inspector_subscribed_overhead           a fixed task workload with and without one
 *                                           subscribed client (and with socket=off)
 */
#ifndef TASKSCOPE_BENCH_INSPECTOR_H
#define TASKSCOPE_BENCH_INSPECTOR_H

#include "taskscope.h"

#include <stddef.h>

typedef struct insp_bench_opts {
  int quick;         /* --quick: fewer runs, shorter windows */
  size_t stack_size; /* --stack-size (0: the runtime's default) */
} insp_bench_opts_t;

/* What a figure function returns. */
enum { INSP_BENCH_OK = 0, INSP_BENCH_FAILED = 1, INSP_BENCH_SKIPPED = 2 };

/* inspector_ps_ms and inspector_max_lag_ms: measured in one run, both printed. */
int insp_bench_ps(const insp_bench_opts_t *o);
/* inspector_subscribed_overhead (and inspector_subscribed_cpu_ratio). */
int insp_bench_subscribed(const insp_bench_opts_t *o);

/* From bench.c: runs fn(ctx) as the only top-level task of a new runtime (with --stack-size)
 * until its loop has nothing left to do; 0, or an error with its description in err. */
int bench_run_in_runtime(const char *name, tsk_fn fn, void *ctx, char *err, size_t errlen);

#endif
