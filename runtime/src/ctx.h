/*
 * ctx.h — the context switch. One of three back ends is compiled in:
 *   ctx_x86_64.S  (x86-64 System V), ctx_aarch64.S (AAPCS64), ucontext in ctx.c (portable
 *   fallback, forced with -DTSK_CTX_UCONTEXT).
 *
 * Saved state: the assembly back ends push the callee-saved registers onto the suspended
 * context's own stack and keep only the stack pointer in tsk__ctx. The layout (see the .S files)
 * is fixed so that an unwinder can rebuild the registers of a suspended task later:
 *   x86-64:  sp -> [r15][r14][r13][r12][rbx][rbp][return address]
 *   aarch64: sp -> [x19..x28][x29 (fp)][x30 (lr)][d8..d15]
 * Limit: the floating-point control state (x86 MXCSR and x87 control word, aarch64 FPCR) is
 * the thread's, shared by all its tasks, as with most green-thread runtimes. A task that changes
 * the rounding mode or exception masks must restore them before it next suspends.
 */
#ifndef TSK_CTX_H
#define TSK_CTX_H

#include <stddef.h>

#if !defined(TSK_CTX_UCONTEXT) && !defined(__x86_64__) && !defined(__aarch64__)
#define TSK_CTX_UCONTEXT 1
#endif

#ifdef TSK_CTX_UCONTEXT
#include <ucontext.h>
typedef struct tsk__ctx {
  void *sp; /* unused by this back end, kept for a uniform layout */
  ucontext_t uc;
} tsk__ctx;
#else
typedef struct tsk__ctx {
  void *sp;
} tsk__ctx;
#endif

/* Saves the current context into from and resumes to. Returns 0 when something switches back
 * (a value, so that a caller returning 0 can tail-call it: see tsk_yield). */
int tsk__ctx_switch(tsk__ctx *from, tsk__ctx *to);

/* What a new context runs: returns the context to resume when it is done. Its stack is not used
 * any more once it has returned. */
typedef tsk__ctx *(*tsk__ctx_entry)(void *arg);

/* Saves the current context into from (as tsk__ctx_switch does) and calls entry(arg) on the stack
 * [stack_lo, stack_lo + size); self is the new context's own tsk__ctx, which is marked started.
 * Returns when something switches back to from. The first frame on the new stack is the bottom
 * of any unwind (no caller). A context is started once; after that it is resumed with
 * tsk__ctx_switch. Before its start, a tsk__ctx must be zeroed (tsk__ctx_init). */
void tsk__ctx_start(tsk__ctx *from, tsk__ctx *self, char *stack_lo, size_t size,
                    tsk__ctx_entry entry, void *arg);

static inline void tsk__ctx_init(tsk__ctx *ctx) { ctx->sp = NULL; }
/* 0 until tsk__ctx_start ran for it. */
static inline int tsk__ctx_started(const tsk__ctx *ctx) { return ctx->sp != NULL; }

/* Where the suspended context's saved registers are (the assembly layout above); NULL for a
 * context never started; meaningless for the ucontext back end. */
static inline void *tsk__ctx_saved_sp(const tsk__ctx *ctx) { return ctx->sp; }

#endif
