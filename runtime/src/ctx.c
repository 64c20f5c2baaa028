/* ctx.c — building the first frame of a new context (the switch itself is in ctx_*.S), and the
 * portable ucontext back end. */
#include "ctx.h"

#include <stdint.h>
#include <string.h>

#if defined(TSK_CTX_UCONTEXT)

static void ucontext_entry(unsigned hi_fn, unsigned lo_fn, unsigned hi_arg, unsigned lo_arg) {
  void (*entry)(void *) =
      (void (*)(void *))(uintptr_t)(((uint64_t)hi_fn << 32) | (uint64_t)lo_fn);
  void *arg = (void *)(uintptr_t)(((uint64_t)hi_arg << 32) | (uint64_t)lo_arg);
  entry(arg);
}

void tsk__ctx_switch(tsk__ctx *from, tsk__ctx *to) { swapcontext(&from->uc, &to->uc); }

void tsk__ctx_make(tsk__ctx *ctx, char *stack_lo, size_t size, void (*entry)(void *), void *arg) {
  uint64_t f = (uint64_t)(uintptr_t)entry, a = (uint64_t)(uintptr_t)arg;
  memset(ctx, 0, sizeof *ctx);
  getcontext(&ctx->uc);
  ctx->uc.uc_stack.ss_sp = stack_lo;
  ctx->uc.uc_stack.ss_size = size;
  ctx->uc.uc_link = NULL;
  makecontext(&ctx->uc, (void (*)(void))ucontext_entry, 4, (unsigned)(f >> 32), (unsigned)f,
              (unsigned)(a >> 32), (unsigned)a);
}

#elif defined(__x86_64__)

void tsk__ctx_trampoline(void);

void tsk__ctx_make(tsk__ctx *ctx, char *stack_lo, size_t size, void (*entry)(void *), void *arg) {
  uintptr_t top = ((uintptr_t)stack_lo + size) & ~(uintptr_t)15;
  /* 16 zero bytes above the first frame: a clean end for frame-pointer walkers. */
  /* After the switch pops 6 registers and returns, rsp = top - 16: 16-aligned, as a call
   * instruction in the trampoline needs. */
  uint64_t *sp = (uint64_t *)(top - 16 - 56);
  memset((void *)(top - 16), 0, 16);
  sp[0] = 0;                          /* r15 */
  sp[1] = 0;                          /* r14 */
  sp[2] = (uint64_t)(uintptr_t)arg;   /* r13 */
  sp[3] = (uint64_t)(uintptr_t)entry; /* r12 */
  sp[4] = 0;                          /* rbx */
  sp[5] = 0;                          /* rbp */
  sp[6] = (uint64_t)(uintptr_t)tsk__ctx_trampoline;
  ctx->sp = sp;
}

#elif defined(__aarch64__)

void tsk__ctx_trampoline(void);

void tsk__ctx_make(tsk__ctx *ctx, char *stack_lo, size_t size, void (*entry)(void *), void *arg) {
  uintptr_t top = ((uintptr_t)stack_lo + size) & ~(uintptr_t)15;
  uint64_t *sp = (uint64_t *)(top - 160);
  memset(sp, 0, 160);
  sp[0] = (uint64_t)(uintptr_t)entry; /* x19 */
  sp[1] = (uint64_t)(uintptr_t)arg;   /* x20 */
  sp[10] = 0;                         /* x29 */
  sp[11] = (uint64_t)(uintptr_t)tsk__ctx_trampoline; /* x30 */
  ctx->sp = sp;
}

#endif
