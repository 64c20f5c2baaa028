/*
 * ctx_aarch64.S — context switch for AArch64 (AAPCS64).
 *
 * tsk__ctx_switch(from, to): stores x19-x30 and d8-d15 in a 160-byte block on the current stack,
 * the stack pointer in from->sp, then loads to->sp and the same block; returns 0. Layout in
 * ctx.h.
 */
#if defined(__aarch64__) && !defined(TSK_CTX_UCONTEXT)
        .text

/* SAVE_CONTEXT: stores the callee-saved registers in a block on the stack (the layout in ctx.h)
 * and the stack pointer in *x0. RESUME_CONTEXT: with sp at such a block, loads it and returns 0
 * into the code that saved it. Shared by both entry points, so the layout exists once. */
        .macro SAVE_CONTEXT
        sub     sp, sp, #160
        .cfi_def_cfa_offset 160
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        .cfi_offset x29, -80
        .cfi_offset x30, -72
        stp     d8, d9, [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mov     x9, sp
        str     x9, [x0]
        .endm

        .macro RESUME_CONTEXT
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
        .cfi_def_cfa_offset 0
        .cfi_restore x29
        .cfi_restore x30
        mov     w0, #0
        ret
        .endm

        .globl  tsk__ctx_switch
        .hidden tsk__ctx_switch
        .type   tsk__ctx_switch,%function
        .p2align 4
tsk__ctx_switch:
        .cfi_startproc
        SAVE_CONTEXT
        ldr     x9, [x1]
        mov     sp, x9 /* the block to load has the same layout: the CFI rows still hold */
        RESUME_CONTEXT
        .cfi_endproc
        .size   tsk__ctx_switch, .-tsk__ctx_switch

/* tsk__ctx_start(from, self, stack_lo, size, entry, arg): saves the current context into from
 * as tsk__ctx_switch does, then calls entry(arg) on the new stack with x29 = 0 (frame-pointer
 * walkers stop there) and the return address marked undefined for unwinders. When entry returns
 * a context, the new stack is abandoned and that context is resumed. Why a call: see
 * ctx_x86_64.S (it keeps the return predictor in step). */
        .globl  tsk__ctx_start
        .hidden tsk__ctx_start
        .type   tsk__ctx_start,%function
        .p2align 4
tsk__ctx_start:
        .cfi_startproc
        SAVE_CONTEXT
        add     x9, x2, x3
        and     x9, x9, #-16
        mov     sp, x9
        /* From here on this frame lives on the new stack and has no caller. */
        .cfi_def_cfa sp, 0
        .cfi_undefined x30
        .cfi_undefined x29
        mov     x29, #0
        mov     x0, x5
        blr     x4
        /* x0 = the context to resume: the block tsk__ctx_switch or this function saved. */
        ldr     x9, [x0]
        mov     sp, x9
        .cfi_def_cfa sp, 160
        .cfi_offset x29, -80
        .cfi_offset x30, -72
        RESUME_CONTEXT
        .cfi_endproc
        .size   tsk__ctx_start, .-tsk__ctx_start
#endif
        .section .note.GNU-stack,"",%progbits
