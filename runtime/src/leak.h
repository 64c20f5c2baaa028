/*
 * leak.h — leak records and the leak report (text on stderr, JSON file).
 *
 * The runtime creates a tsk__leak for each record as it happens (destroyed_pending,
 * unretrieved_error) or when a report is taken (pending). A record is self-contained: it copies
 * everything it shows (names, ids, raw backtraces), so it outlives the task and the runtime.
 * Symbolization happens only when a report is rendered (tsk__report_*), never on the hot path.
 *
 * Ownership: a tsk__leak is heap-allocated and owned by the list it is in; tsk__leak_free frees
 * it and everything it points to.
 */
#ifndef TSK_LEAK_H
#define TSK_LEAK_H

#include "taskscope.h"
#include "json.h"

#include <stdint.h>
#include <stdio.h>

typedef enum {
  TSK__LEAK_PENDING = 0,
  TSK__LEAK_DESTROYED_PENDING,
  TSK__LEAK_UNRETRIEVED_ERROR,
  TSK__LEAK_KINDS
} tsk__leak_kind;

/* "pending", "destroyed_pending", "unretrieved_error" (the JSON kind names). */
const char *tsk__leak_kind_name(tsk__leak_kind k);
/* The kind for a name, or -1. */
int tsk__leak_kind_from_name(const char *name);
/* "running", "waiting", ... (JSON task.state) */
const char *tsk__task_state_name(tsk_task_state_t s);
/* "future", "event", ... (JSON task.awaiting.kind) */
const char *tsk__wait_kind_name(tsk_wait_kind_t k);

typedef struct tsk__bt {
  int n;
  uintptr_t *ips; /* heap, n entries; NULL when n == 0 */
} tsk__bt;

#define TSK__LEAK_CHAIN 8 /* ancestors kept in a record (nearest first) */
#define TSK__LEAK_NAME 64

typedef struct tsk__leak_task {
  uint64_t id;
  char name[TSK__LEAK_NAME];
} tsk__leak_task;

typedef struct tsk__leak {
  struct tsk__leak *next;
  tsk__leak_kind kind;
  char reason[96];          /* e.g. "runtime closed", "stranded: last completer of future 12
                               released", "process exit", "handle detached", "check" */
  tsk__leak_task task;      /* id and name */
  uint64_t parent_id;       /* 0: none */
  int chain_len;            /* ancestors known, nearest first (parent, grandparent, ...) */
  tsk__leak_task chain[TSK__LEAK_CHAIN];
  tsk_task_state_t state;   /* the task's state when recorded */
  tsk_wait_kind_t awaiting; /* what it waited for (TSK_WAIT_NONE if nothing) */
  uint64_t awaiting_id;
  int error;                /* unretrieved_error: the task's code; else 0 */
  char *message;            /* heap, may be NULL */
  uint64_t age_ms;          /* time from creation to the record */
  tsk__bt created_at;       /* creation backtrace (spawn site) */
  tsk__bt suspended_at;     /* live stack where it was suspended (pending, destroyed) */
  tsk__bt raised_at;        /* where the error was raised (tsk_error call site) */
  tsk__bt dropped_at;       /* stranded: where the last completer was released */
  int suppressed;           /* set by tsk__report_build: matched a suppression */
} tsk__leak;

tsk__leak *tsk__leak_new(tsk__leak_kind kind);
void tsk__leak_free(tsk__leak *l);
void tsk__leak_free_list(tsk__leak *head);
/* A deep copy of l (next = NULL), or NULL when memory runs out. */
tsk__leak *tsk__leak_clone(const tsk__leak *l);
/* Copies n addresses into bt (n may be 0). Returns 0 or TSK_ENOMEM. */
int tsk__bt_set(tsk__bt *bt, const uintptr_t *ips, int n);
/* Sets id and name (copied, truncated to TSK__LEAK_NAME - 1 bytes at a UTF-8 boundary; NULL
 * gives ""). */
void tsk__leak_task_set(tsk__leak_task *t, uint64_t id, const char *name);
/* Copies reason into l->reason (truncated like names). */
void tsk__leak_set_reason(tsk__leak *l, const char *reason);
/* Replaces l->message with a copy of msg (NULL or "": none). Returns 0 or TSK_ENOMEM. */
int tsk__leak_set_message(tsk__leak *l, const char *msg);
/* Appends l to the list (*head, *tail); both NULL for an empty list. */
void tsk__leak_list_append(tsk__leak **head, tsk__leak **tail, tsk__leak *l);

/* ---- suppressions ----
 * A file of lines `leak:<glob>` (matches any frame's function or file of any of the record's
 * backtraces), `task:<glob>` (the task name), `kind:<kind>`; '#' starts a comment; blank lines
 * are ignored; glob supports '*' and '?'. */
typedef struct tsk__suppressions tsk__suppressions;
/* Loads path. On a syntax error returns TSK_EINVAL with "PATH:LINE: reason" in err. */
int tsk__suppressions_load(const char *path, tsk__suppressions **out, char *err, size_t errlen);
void tsk__suppressions_free(tsk__suppressions *s);
/* The same from text in memory (len bytes; NUL bytes end a line's content); name is what errors
 * and warnings call the source (e.g. the file's path). Errors as for tsk__suppressions_load; an
 * empty text gives an empty, valid set. Open/read failures of _load return a negative errno with
 * "PATH: reason" in err. */
int tsk__suppressions_parse(const char *text, size_t len, const char *name,
                            tsk__suppressions **out, char *err, size_t errlen);

typedef enum { TSK__SUPP_LEAK = 0, TSK__SUPP_TASK, TSK__SUPP_KIND } tsk__supp_type;
/* One entry, in file order. `leak:` matches, for every frame of created_at, suspended_at,
 * raised_at and dropped_at (untrimmed), the frame's function, its ELF symbol, its file (full
 * path or basename) and its module (full path or basename), LeakSanitizer-like. A glob must
 * match the whole string. A record is suppressed by the first entry (in file order) that
 * matches it; that entry's hits counts it. */
typedef struct tsk__suppression {
  tsk__supp_type type;
  const char *pattern; /* the glob, after "type:" */
  const char *text;    /* the entry as written, "leak:foo*" (for tables and warnings) */
  const char *file;    /* the name given at load */
  int line;            /* 1-based */
  size_t hits;         /* records matched at the last tsk__report_classify */
} tsk__suppression;
size_t tsk__suppressions_count(const tsk__suppressions *s);
/* Entry i (< count), or NULL. */
const tsk__suppression *tsk__suppressions_entry(const tsk__suppressions *s, size_t i);
/* For tsk__report_classify: zero every entry's hits (and drop cached frame lookups). */
void tsk__suppressions_reset_hits(tsk__suppressions *s);
/* The index of the first entry that matches l, or -1; adds a hit to that entry. */
long tsk__suppressions_match(tsk__suppressions *s, const tsk__leak *l);
/* Whole-string glob match: '*' any run of bytes (including '/'), '?' any one byte. */
int tsk__glob_match(const char *pattern, const char *s);

/* ---- reports ---- */
typedef struct tsk__report_info {
  int pid;
  const char *program;       /* argv[0]-like: /proc/self/exe basename or cmdline */
  const char *when;          /* "runtime close", "process exit", "check" */
  unsigned max_groups_text;  /* text: groups printed in full before "... and N more" (0: 20) */
} tsk__report_info;

typedef struct tsk__report_counts {
  size_t pending, destroyed_pending, unretrieved_error, suppressed;
} tsk__report_counts;

/* Marks suppressed records (supp may be NULL), counts the rest. Also records which suppression
 * entries matched, for the "suppressions used" table. */
void tsk__report_classify(tsk__leak *leaks, tsk__suppressions *supp, tsk__report_counts *counts);

/* Writes s (NULL: "") with control characters escaped as \n, \t, \r, \xNN, and '"' and '\'
 * too when quoted, so that a task name or message can never break a report's layout. */
void tsk__report_put_text(FILE *out, const char *s, int quoted);

/* One symbolized frame of the text report, on a line of its own:
 *   "    #3 0x55d0c0de1234 in func at /src/file.c:123"
 *   "    #3 0x7f0c0de12345 in func (/lib/x86_64-linux-gnu/libc.so.6+0x27245)"
 *   "    #3 0x1 in ??"                                                                    */
void tsk__report_put_frame(FILE *out, int index, uintptr_t ip);

/* Text report in the asyncio/LeakSanitizer tradition: one block per group of identical records
 * (same kind, task name and creation backtrace: "N tasks like this"), symbolized stacks with the
 * runtime's own frames trimmed, capped at max_groups_text groups; then the "suppressions used"
 * table and warnings for unused entries (when supp is given); then a final line
 * `SUMMARY: taskscope: N pending, N destroyed_pending, N unretrieved_error (N suppressed)`.
 * Suppressed records are not shown. Prints nothing at all when there is no record. */
void tsk__report_text(FILE *out, tsk__leak *leaks, tsk__suppressions *supp,
                      const tsk__report_info *info);

/* The JSON report per the contract in DESIGN.md (format "taskscope-report", version 1), all
 * records including suppressed ones (those carry "suppressed":true and count in
 * summary.suppressed only). Written atomically: a temporary file in the same directory, fsync,
 * rename — the file is whole or absent. Returns 0 or a negative errno-style code. */
int tsk__report_json_write(const char *path, tsk__leak *leaks, tsk__suppressions *supp,
                           const tsk__report_info *info);
/* The same document to a stream (for tests), rendered one record at a time. */
int tsk__report_json_fprint(FILE *out, tsk__leak *leaks, tsk__suppressions *supp,
                            const tsk__report_info *info);
/* The same document appended to a buffer; compact: on one line, without the final newline (the
 * inspector's `leaks` answer). 0 or TSK_ENOMEM. */
int tsk__report_json_doc(tsk__jbuf *b, tsk__leak *leaks, tsk__suppressions *supp,
                         const tsk__report_info *info, int compact);
/* A task's "awaiting": {"kind":..,"id":..} (id null when 0), or null for TSK_WAIT_NONE. Shared
 * by the report's TASK and the inspector's. */
void tsk__report_json_awaiting(tsk__jbuf *b, tsk_wait_kind_t kind, uint64_t id);
/* One record of the document's "leaks" array (as classified last). */
void tsk__report_json_leak(tsk__jbuf *b, const tsk__leak *l);
/* A FRAME array: the count addresses, trimmed of the runtime's frames (tsk__bt_trim) and
 * symbolized: [{"ip":"0x..","function":..,"file":..,"line":..,"module":..},...]. */
void tsk__report_json_frames(tsk__jbuf *b, const uintptr_t *ips, int count);

#endif
