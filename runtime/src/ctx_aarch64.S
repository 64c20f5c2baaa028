/*
 * ctx_aarch64.S — context switch for AArch64 (AAPCS64).
 *
 * tsk__ctx_switch(from, to): stores x19-x30 and d8-d15 in a 160-byte block on the current stack,
 * the stack pointer in from->sp, then loads to->sp and the same block. Layout in ctx.h.
 */
#if defined(__aarch64__) && !defined(TSK_CTX_UCONTEXT)
        .text
        .globl  tsk__ctx_switch
        .hidden tsk__ctx_switch
        .type   tsk__ctx_switch,%function
        .p2align 4
tsk__ctx_switch:
        sub     sp, sp, #160
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8, d9, [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mov     x9, sp
        str     x9, [x0]
        ldr     x9, [x1]
        mov     sp, x9
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8, d9, [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        add     sp, sp, #160
        ret
        .size   tsk__ctx_switch, .-tsk__ctx_switch

/* First code a new context runs: x19 = entry, x20 = its argument; x29 = 0 ends the frame chain. */
        .globl  tsk__ctx_trampoline
        .hidden tsk__ctx_trampoline
        .type   tsk__ctx_trampoline,%function
        .p2align 4
tsk__ctx_trampoline:
        .cfi_startproc
        .cfi_undefined x30
        mov     x0, x20
        blr     x19
        brk     #0
        .cfi_endproc
        .size   tsk__ctx_trampoline, .-tsk__ctx_trampoline
#endif
        .section .note.GNU-stack,"",%progbits
