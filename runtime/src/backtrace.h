/*
 * backtrace.h — capturing, unwinding and symbolizing backtraces (internal).
 *
 * Three separate steps, so that the hot path stays cheap:
 *   1. capture: raw return addresses of the calling thread's stack (at every spawn when
 *      backtrace=spawn, so it must cost a few tens of nanoseconds), or of a suspended task's
 *      stack from its saved context (when a report or the inspector asks where it waits);
 *   2. symbolize: one address to function, file:line and module, lazily and cached, only when a
 *      backtrace is shown;
 *   3. trim: tell the runtime's own frames (and libuv's) from the user's, so a report can show
 *      the user's first frame first.
 *
 * Address conventions: every captured address is a return address (the instruction after a
 * call), reported as captured. Symbolization looks up ip - 1 (the call instruction itself), so
 * that file:line names the call site even when the call is a function's last instruction.
 */
#ifndef TSK_BACKTRACE_H
#define TSK_BACKTRACE_H

#include "ctx.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The most frames any function here records; larger max values are clamped to it. */
#define TSK__BT_MAX_FRAMES 64

/* ---- 1. capture (any thread) ----
 * The frame-pointer functions only read memory and are async-signal-safe, except that the first
 * tsk__bt_capture of a thread outside any task looks up the thread's stack bounds
 * (pthread_getattr_np, which allocates). */

/* Records up to max return addresses of the calling thread's current stack into ips and returns
 * how many it recorded (0..max). ips[0] is the return address into the function that called
 * tsk__bt_capture (its call site); skip > 0 drops that many further innermost frames first.
 * The default method is the frame-pointer walk of tsk__bt_capture_fp, bounded by the current
 * stack: the running task's stack inside a task, else the thread's stack (looked up once per
 * thread). When the current frame is on neither (e.g. a signal alternate stack), it falls back
 * to tsk__bt_capture_unw. See backtrace.c for the measured costs behind this choice. */
int tsk__bt_capture(uintptr_t *ips, int max, int skip);

/* The frame-pointer walk: follows the chain of saved frame pointers from the caller's frame,
 * reading only inside [lo, hi) (the current stack's bounds; lo < hi), and stops at the first
 * record that is out of bounds, misaligned, not strictly above the previous one, or holds a
 * return address below 4096. Same ips/max/skip contract as tsk__bt_capture.
 * Limit: a function compiled without frame pointers (libc, libuv, or user code built with
 * -fomit-frame-pointer) does not appear, and the walk may stop early at it; the bounds make
 * that harmless, never a crash. */
int tsk__bt_capture_fp(uintptr_t *ips, int max, int skip, uintptr_t lo, uintptr_t hi);

/* The same walk from a given frame pointer (e.g. an interrupted thread's, in a signal handler:
 * it only reads memory inside [lo, hi)); ips[0] is the return address of fp's frame record. */
int tsk__bt_walk_fp(uintptr_t fp, uintptr_t *ips, int max, uintptr_t lo, uintptr_t hi);

/* libunwind's unw_backtrace (DWARF CFI; sees frames without frame pointers). Same contract as
 * tsk__bt_capture. Slower: see backtrace.c. */
int tsk__bt_capture_unw(uintptr_t *ips, int max, int skip);

/* ---- unwinding a suspended task (the owner thread, while the task is suspended) ---- */

/* Records up to max return addresses of the suspended context ctx (a task that ran and is now
 * suspended: READY after a yield, or WAITING) and returns how many. ips[0] is the return address
 * into the caller of tsk__ctx_switch; the last one is in tsk__ctx_start (the call of the task's
 * entry), whose unwind information ends the walk.
 * Builds a libunwind context from the registers saved on the task's stack (see ctx.h) and steps
 * with DWARF CFI; it only reads the task's stack. Returns 0 for a context that never ran (a new
 * task: nothing to unwind) and for a NULL ctx.
 * Cost: ~4 us for 7 frames (libunwind's unw_step); for many tasks at once use the _fp variant.
 * Limit: with the ucontext back end (TSK_CTX_UCONTEXT) the first frame may be tsk__ctx_switch
 * itself; on architectures other than x86-64 and aarch64 it returns 0. */
int tsk__bt_unwind_suspended(const tsk__ctx *ctx, uintptr_t *ips, int max);

/* The frame-pointer alternative: starts from the saved frame pointer (rbp / x29) and return
 * address, bounded by the task's stack [lo, hi). Same result shape and limits as
 * tsk__bt_capture_fp; ~15 ns for 7 frames. Returns 0 for a context that never ran and with the
 * ucontext back end. */
int tsk__bt_unwind_suspended_fp(const tsk__ctx *ctx, uintptr_t *ips, int max, uintptr_t lo,
                                uintptr_t hi);

/* ---- 2. symbolization (symbolize.c; thread-safe) ---- */

/* What is known about one address. Every string is owned by the symbolizer and stays valid
 * until tsk__bt_symbolize_cleanup() (not merely until the entry leaves the cache: the strings
 * are interned and outlive evictions and tsk__bt_symbolize_reset()). */
typedef struct tsk__frame_info {
  uintptr_t ip;          /* the address asked about, as given */
  const char *function;  /* the innermost function at the call site (an inlined one when the
                            call was inlined, per DWARF), else the ELF symbol; "??" if unknown */
  const char *symbol;    /* the ELF symbol containing ip (the outer function); NULL if unknown */
  uintptr_t sym_offset;  /* ip - the symbol's start; 0 if unknown */
  const char *file;      /* source file of the call site as recorded in DWARF; NULL if unknown */
  int line;              /* its line; 0 if unknown */
  const char *module;    /* path of the loaded object holding ip; NULL if unknown */
  uintptr_t module_offset; /* ip - the object's load address; 0 if unknown */
} tsk__frame_info;

/* Fills *out for ip (a return address; see the top of this file). Not async-signal-safe (it
 * takes a mutex and allocates). Debug files are looked for on this machine only, never
 * downloaded (debuginfod), whatever DEBUGINFOD_URLS says. Returns 0 when something was
 * found (at least a function name or a module), UV_ENOENT when nothing was (out then says "??"),
 * TSK_EINVAL for a NULL out. The first call builds a libdw session for the process (about a
 * millisecond) and the first lookup in a module loads its debug info (up to ~100 ms for a large
 * one such as libc's); results are cached by ip (up to 65536 entries; the cache is emptied when
 * full: the strings handed out survive that). When objects
 * were loaded or unloaded since the session was built (dlopen, dlclose), the session and cache
 * are rebuilt on the next lookup that is not a cache hit. */
int tsk__bt_symbolize(uintptr_t ip, tsk__frame_info *out);

/* Drops the libdw session and the address cache (the next lookup rebuilds them); strings
 * already returned stay valid. */
void tsk__bt_symbolize_reset(void);

/* Frees everything the symbolizer holds, the interned strings included: every string returned
 * so far becomes invalid. For tests and tools that check for leaks at exit; must not run
 * concurrently with other users of the symbolizer. */
void tsk__bt_symbolize_cleanup(void);

/* The name of the function starting at fn (a task's entry function: the default task name), or
 * "task" when it has none; into buf (NUL-terminated when size > 0). */
void tsk__bt_entry_name(uintptr_t fn, char *buf, size_t size);

/* (Frames are printed, symbolized, by the leak report's tsk__report_put_frame: leak.h.) */

/* ---- 3. trimming (symbolize.c; thread-safe) ---- */

enum {
  TSK__BT_FRAME_USER = 0,    /* the application's code, libc, anything else */
  TSK__BT_FRAME_RUNTIME = 1, /* libtaskscope's own code */
  TSK__BT_FRAME_LOOP = 2     /* libuv's code */
};

/* Classifies a return address (one of TSK__BT_FRAME_*). The rule:
 *   - libtaskscope as a shared object: an address inside that object's executable segments is
 *     RUNTIME, one inside libuv's shared object is LOOP (address ranges, no symbolization);
 *   - code linked into the main executable (the static library, or a static libuv): symbolized,
 *     RUNTIME when the ELF symbol or the function name starts with "tsk_" (which includes
 *     "tsk__", the runtime's namespace) or the call site's source file lies in the directory of
 *     the runtime's own sources (as recorded in DWARF for this file; this catches the runtime's
 *     static functions such as tsk__task_entry); LOOP when the name starts with "uv_" (or "uv__");
 *   - everything else is USER.
 * Limit: in a static build without debug info, the runtime's static functions (no "tsk_" prefix)
 * are classified USER; an application's own functions named tsk_* are classified RUNTIME. */
int tsk__bt_is_runtime_frame(uintptr_t ip);

/* Which frames of a captured backtrace a report should show: skips the leading frames that are
 * RUNTIME or LOOP (capture site, spawn functions), and drops the trailing ones (the task's
 * entry and tsk__ctx_start, or uv_run below a loop callback). Sets *first and returns the count;
 * when every frame is the runtime's, shows them all (*first = 0, returns n). */
int tsk__bt_trim(const uintptr_t *ips, int n, int *first);

#endif
