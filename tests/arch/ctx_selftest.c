/*
 * ctx_selftest — checks the context switch back end on its own (no libuv, no runtime), so that
 * it can run natively and, cross-compiled, under qemu-user for the other architecture.
 *
 * Checks: a new context starts in its entry with its argument and a 16-byte aligned stack; values
 * held in callee-saved registers (integer and floating point) survive many switches in both
 * directions; two contexts ping-pong a counter; when the entry returns a context, that context
 * resumes with its registers intact. Exit status 0 = pass.
 */
#include "ctx.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static tsk__ctx main_ctx, co_ctx;
#define ROUNDS 100000
static volatile long counter;
static volatile int returned;
/* Expected values read from memory, so the compiler cannot compare a register with a copy. */
static volatile long ea = 11, eb = 22, ec = 33, ed = 44, ee = 55, ep = 101, eq = 202, er = 303;
static volatile double ex = 1.5, ey = 2.25, ez = 3.125, eu = 4.5, ev = 5.75;
static void *seen_arg;
static uintptr_t seen_frame;

__attribute__((noinline)) static void check_alignment(void) {
  /* The frame address of a function called from a correctly aligned entry is 16-aligned. */
  seen_frame = (uintptr_t)__builtin_frame_address(0);
}

static tsk__ctx *coroutine(void *arg) {
  seen_arg = arg;
  check_alignment();
  /* Keep values live across switches in many registers, including floating point ones. */
#if defined(__aarch64__) && !defined(TSK_CTX_UCONTEXT)
  /* Pin the values to the callee-saved registers the switch must preserve. */
  register long a __asm__("x19") = 11, b __asm__("x23") = 22, c __asm__("x28") = 33;
  register long d __asm__("x21") = 44, e __asm__("x26") = 55;
  register double x __asm__("d8") = 1.5, y __asm__("d11") = 2.25, z __asm__("d15") = 3.125;
#elif defined(__x86_64__) && !defined(TSK_CTX_UCONTEXT)
  register long a __asm__("rbx") = 11, b __asm__("r12") = 22, c __asm__("r13") = 33;
  register long d __asm__("r14") = 44, e __asm__("r15") = 55;
  register double x = 1.5, y = 2.25, z = 3.125;
#else
  register long a = 11, b = 22, c = 33, d = 44, e = 55;
  register double x = 1.5, y = 2.25, z = 3.125;
#endif
  for (;;) {
    counter++;
    if (counter == ROUNDS) {
      returned = 1;
      return &main_ctx; /* resumes main's last switch, through the start's return path */
    }
    tsk__ctx_switch(&co_ctx, &main_ctx);
    if (a != ea || b != eb || c != ec || d != ed || e != ee || x != ex || y != ey || z != ez) {
      fprintf(stderr, "coroutine: callee-saved register clobbered\n");
      exit(1);
    }
    a += 0, b += 0, c += 0, d += 0, e += 0;
    __asm__ volatile("" : "+r"(a), "+r"(b), "+r"(c), "+r"(d), "+r"(e));
#if defined(__aarch64__)
    __asm__ volatile("" : "+w"(x), "+w"(y), "+w"(z));
#elif defined(__x86_64__)
    __asm__ volatile("" : "+x"(x), "+x"(y), "+x"(z));
#endif
    __asm__ volatile("" ::: "memory");
  }
}

int main(void) {
  size_t size = 64 * 1024;
  char *stack = malloc(size);
  if (!stack) return 1;
  tsk__ctx_init(&co_ctx);
  /* The same registers as the coroutine, with other values: a register the switch fails to
   * save/restore then shows up on one side or the other. */
#if defined(__aarch64__) && !defined(TSK_CTX_UCONTEXT)
  register long p __asm__("x19") = 101, q __asm__("x23") = 202, r __asm__("x28") = 303;
  register double u __asm__("d8") = 4.5, v __asm__("d15") = 5.75;
#elif defined(__x86_64__) && !defined(TSK_CTX_UCONTEXT)
  register long p __asm__("rbx") = 101, q __asm__("r12") = 202, r __asm__("r15") = 303;
  register double u = 4.5, v = 5.75;
#else
  register long p = 101, q = 202, r = 303;
  register double u = 4.5, v = 5.75;
#endif
  for (int i = 0; i < ROUNDS; i++) {
    if (i == 0)
      tsk__ctx_start(&main_ctx, &co_ctx, stack, size, coroutine, (void *)0x1234);
    else
      tsk__ctx_switch(&main_ctx, &co_ctx);
    if (p != ep || q != eq || r != er || u != eu || v != ev) {
      fprintf(stderr, "main: callee-saved register clobbered\n");
      return 1;
    }
    __asm__ volatile("" : "+r"(p), "+r"(q), "+r"(r));
#if defined(__aarch64__)
    __asm__ volatile("" : "+w"(u), "+w"(v));
#endif
  }
  if (counter != ROUNDS || !returned) {
    fprintf(stderr, "counter %ld != %d, or the entry did not return (%d)\n", counter, ROUNDS,
            returned);
    return 1;
  }
  if (seen_arg != (void *)0x1234) {
    fprintf(stderr, "entry argument lost\n");
    return 1;
  }
  if (seen_frame % 16 != 0) {
    fprintf(stderr, "misaligned stack in a new context (frame %#lx)\n", (unsigned long)seen_frame);
    return 1;
  }
  printf("ctx_selftest: %d switches and a return ok, argument and alignment ok\n", 2 * ROUNDS);
  free(stack);
  return 0;
}
