/*
 * ctx_x86_64.S — context switch for x86-64 (System V ABI).
 *
 * tsk__ctx_switch(from, to): pushes the callee-saved registers (rbp, rbx, r12-r15) on the
 * current stack, stores the stack pointer in from->sp, loads to->sp and pops the same layout;
 * returns 0 (ctx.h says why).
 * The floating-point control words (MXCSR, x87 CW) are not switched: they belong to the thread
 * (saving them cost more than half of a switch); see ctx.h. The layout is documented in ctx.h and read by
 * the unwinder for suspended tasks: do not change one without the other.
 */
#if defined(__x86_64__) && !defined(TSK_CTX_UCONTEXT)
        .text

/* SAVE_CONTEXT: pushes the callee-saved registers (the layout in ctx.h) and stores the stack
 * pointer in *rdi. RESUME_CONTEXT: with rsp at such a block, pops it and returns 0 into the
 * code that saved it. Shared by both entry points, so the layout exists once. */
        .macro SAVE_CONTEXT
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
        .endm

        .macro RESUME_CONTEXT
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
        xorl    %eax, %eax
        ret
        .endm
        .globl  tsk__ctx_switch
        .hidden tsk__ctx_switch
        .type   tsk__ctx_switch,@function
        .p2align 4
tsk__ctx_switch:
        .cfi_startproc
        SAVE_CONTEXT
        movq    (%rsi), %rsp
        RESUME_CONTEXT
        .cfi_endproc
        .size   tsk__ctx_switch, .-tsk__ctx_switch

/* tsk__ctx_start(from, self, stack_lo, size, entry, arg): saves the current context into from
 * exactly as tsk__ctx_switch does, then calls entry(arg) on the new stack (self is unused here;
 * the ucontext back end needs it). rbp is zeroed first so that frame-pointer walkers stop at the
 * new stack's first frame, and the return address of that call is marked undefined so that
 * unwinders stop there too. When entry returns a context, the new stack is abandoned and that
 * context is resumed: the same pops and ret as the second half of tsk__ctx_switch.
 *
 * Why a call rather than a prepared first frame: the call keeps the CPU's return-stack predictor
 * in step. When entry returns the very context that started it (a task that ran to its end
 * without suspending and hands back to its starter: every spawn+join of a short task), each
 * return on both sides is predicted, where a switch into a prepared frame mispredicts two or
 * three of them. */
        .globl  tsk__ctx_start
        .hidden tsk__ctx_start
        .type   tsk__ctx_start,@function
        .p2align 4
tsk__ctx_start:
        .cfi_startproc
        SAVE_CONTEXT
        leaq    (%rdx,%rcx), %rsp
        andq    $-16, %rsp
        /* From here on this frame lives on the new stack and has no caller. */
        .cfi_def_cfa rsp, 0
        .cfi_undefined rip
        .cfi_undefined rbp
        .cfi_undefined rbx
        .cfi_undefined r12
        .cfi_undefined r13
        .cfi_undefined r14
        .cfi_undefined r15
        xorl    %ebp, %ebp
        movq    %r9, %rdi
        callq   *%r8
        /* rax = the context to resume; its saved block is [r15][r14][r13][r12][rbx][rbp][ra]. */
        movq    (%rax), %rsp
        .cfi_def_cfa rsp, 56
        .cfi_offset rip, -8
        .cfi_offset rbp, -16
        .cfi_offset rbx, -24
        .cfi_offset r12, -32
        .cfi_offset r13, -40
        .cfi_offset r14, -48
        .cfi_offset r15, -56
        RESUME_CONTEXT
        .cfi_endproc
        .size   tsk__ctx_start, .-tsk__ctx_start
#endif
        .section .note.GNU-stack,"",@progbits
