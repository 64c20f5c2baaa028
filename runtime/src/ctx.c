/* ctx.c — the portable ucontext back end (the assembly back ends are ctx_*.S). */
#include "ctx.h"

#if defined(TSK_CTX_UCONTEXT)

#include <stdint.h>
#include <stdlib.h>

/* makecontext passes int arguments only: pointers travel as two halves. */
static void ucontext_entry(unsigned hi_fn, unsigned lo_fn, unsigned hi_arg, unsigned lo_arg) {
  tsk__ctx_entry entry = (tsk__ctx_entry)(uintptr_t)(((uint64_t)hi_fn << 32) | (uint64_t)lo_fn);
  void *arg = (void *)(uintptr_t)(((uint64_t)hi_arg << 32) | (uint64_t)lo_arg);
  tsk__ctx *to = entry(arg);
  setcontext(&to->uc);
  abort(); /* setcontext does not return on success */
}

int tsk__ctx_switch(tsk__ctx *from, tsk__ctx *to) {
  swapcontext(&from->uc, &to->uc);
  return 0;
}

void tsk__ctx_start(tsk__ctx *from, tsk__ctx *self, char *stack_lo, size_t size,
                    tsk__ctx_entry entry, void *arg) {
  uint64_t f = (uint64_t)(uintptr_t)entry, a = (uint64_t)(uintptr_t)arg;
  getcontext(&self->uc);
  self->uc.uc_stack.ss_sp = stack_lo;
  self->uc.uc_stack.ss_size = size;
  self->uc.uc_link = NULL;
  self->sp = self; /* started */
  makecontext(&self->uc, (void (*)(void))ucontext_entry, 4, (unsigned)(f >> 32), (unsigned)f,
              (unsigned)(a >> 32), (unsigned)a);
  swapcontext(&from->uc, &self->uc);
}

#else
/* ISO C forbids an empty translation unit. */
typedef int tsk__ctx_c_unused;
#endif
