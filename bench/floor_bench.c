/*
 * floor_bench.c — what this machine allows at all: the bare context switch of the runtime,
 * without any of its bookkeeping (see floor_bench.h).
 */
#include "floor_bench.h"

#include "bench_util.h"

#include <stdint.h>
#include <stdlib.h>

/* The runtime's own switch (runtime/src/ctx.h, ctx_*.S): internal symbols of libtaskscope,
 * reachable because the bench links the static library. */
typedef struct floor_ctx {
  void *sp;
} floor_ctx;
int tsk__ctx_switch(floor_ctx *from, floor_ctx *to);
void tsk__ctx_start(floor_ctx *from, floor_ctx *self, char *stack_lo, size_t size,
                    floor_ctx *(*entry)(void *), void *arg);

#define FLOOR_STACK (64 * 1024)

/* ---- spawn+join: start a context that runs a trivial function and returns to its starter ---- */

static floor_ctx starter;
static volatile int sink;

static __attribute__((noinline)) int trivial(void) { return sink; }

static floor_ctx *run_trivial(void *arg) {
  (void)arg;
  sink = trivial();
  return &starter;
}

/* ---- switch: two contexts handing over through a yield, from two different functions ---- */

static floor_ctx ping_ctx, pong_ctx, main_ctx;
static floor_ctx *cur, *other;
static size_t rounds;
static uint64_t t0, t1;

static __attribute__((noinline)) int yield(void) {
  floor_ctx *from = cur;
  cur = other;
  other = from;
  return tsk__ctx_switch(from, cur);
}

static floor_ctx *pinger(void *arg) {
  (void)arg;
  t0 = bench_now_ns();
  for (size_t i = 0; i < rounds; i++) yield();
  t1 = bench_now_ns();
  return &main_ctx; /* ponger stays suspended: its stack is simply dropped */
}

/* Parks itself right away (main resumes), then answers every yield of pinger. Never ends: its
 * stack is dropped when the measurement is over. */
static floor_ctx *ponger(void *arg) {
  (void)arg;
  tsk__ctx_switch(&pong_ctx, &main_ctx);
  for (;;) yield();
  return &main_ctx;
}

int floor_bench(size_t n, int runs, double *spawn_join_ns, double *switch_ns) {
  char *stack = malloc(FLOOR_STACK), *stack2 = malloc(FLOOR_STACK);
  if (!stack || !stack2) {
    free(stack);
    free(stack2);
    return -1;
  }
  double best_sj = -1, best_sw = -1;
  for (int r = 0; r < runs; r++) {
    uint64_t a = bench_now_ns();
    for (size_t i = 0; i < n; i++) {
      floor_ctx child = {NULL};
      tsk__ctx_start(&starter, &child, stack, FLOOR_STACK, run_trivial, NULL);
    }
    double sj = (double)(bench_now_ns() - a) / (double)n;
    if (best_sj < 0 || sj < best_sj) best_sj = sj;

    rounds = n * 5;
    ping_ctx.sp = pong_ctx.sp = NULL;
    tsk__ctx_start(&main_ctx, &pong_ctx, stack2, FLOOR_STACK, ponger, NULL);
    cur = &ping_ctx;
    other = &pong_ctx;
    tsk__ctx_start(&main_ctx, &ping_ctx, stack, FLOOR_STACK, pinger, NULL);
    double sw = (double)(t1 - t0) / (double)(2 * rounds);
    if (best_sw < 0 || sw < best_sw) best_sw = sw;
  }
  free(stack);
  free(stack2);
  *spawn_join_ns = best_sj;
  *switch_ns = best_sw;
  return 0;
}
