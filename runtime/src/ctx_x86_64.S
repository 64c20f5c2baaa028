/*
 * ctx_x86_64.S — context switch for x86-64 (System V ABI).
 *
 * tsk__ctx_switch(from, to): pushes the callee-saved registers (rbp, rbx, r12-r15) on the
 * current stack, stores the stack pointer in from->sp, loads to->sp and pops the same layout.
 * The floating-point control words (MXCSR, x87 CW) are not switched: they belong to the thread
 * (saving them cost more than half of a switch); see ctx.h. The layout is documented in ctx.h and read by
 * the unwinder for suspended tasks: do not change one without the other.
 */
#if defined(__x86_64__) && !defined(TSK_CTX_UCONTEXT)
        .text
        .globl  tsk__ctx_switch
        .hidden tsk__ctx_switch
        .type   tsk__ctx_switch,@function
        .p2align 4
tsk__ctx_switch:
        .cfi_startproc
        pushq   %rbp
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset rbp, 0
        pushq   %rbx
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset rbx, 0
        pushq   %r12
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r12, 0
        pushq   %r13
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r13, 0
        pushq   %r14
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r14, 0
        pushq   %r15
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r15, 0
        movq    %rsp, (%rdi)
        movq    (%rsi), %rsp
        popq    %r15
        .cfi_adjust_cfa_offset -8
        popq    %r14
        .cfi_adjust_cfa_offset -8
        popq    %r13
        .cfi_adjust_cfa_offset -8
        popq    %r12
        .cfi_adjust_cfa_offset -8
        popq    %rbx
        .cfi_adjust_cfa_offset -8
        popq    %rbp
        .cfi_adjust_cfa_offset -8
        ret
        .cfi_endproc
        .size   tsk__ctx_switch, .-tsk__ctx_switch

/* First code a new context runs: r12 = entry, r13 = its argument. The return address is marked
 * undefined so unwinders stop here: this is the bottom of every task's stack. */
        .globl  tsk__ctx_trampoline
        .hidden tsk__ctx_trampoline
        .type   tsk__ctx_trampoline,@function
        .p2align 4
tsk__ctx_trampoline:
        .cfi_startproc
        .cfi_undefined rip
        movq    %r13, %rdi
        callq   *%r12
        ud2
        .cfi_endproc
        .size   tsk__ctx_trampoline, .-tsk__ctx_trampoline
#endif
        .section .note.GNU-stack,"",@progbits
