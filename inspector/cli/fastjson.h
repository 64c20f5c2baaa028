/*
 * fastjson.h — the fast path for large answers: a snapshot of 100 000 tasks is one line of
 * ~20 MB, and jansson builds a tree of hash tables for it (about 40 000 instructions and a dozen
 * allocations per task, then as much again to free it). Here:
 *
 *   tsj_scan   validates a whole line the way json_loadb(line, len, JSON_ALLOW_NUL) would, with
 *              no allocation, and finds the value of one top-level member (the snapshot's
 *              "tasks"): the caller hands jansson the line without that value (a small tree)
 *              and reads the value with tsj_tasks;
 *   tsj_tasks  reads a TASK array (inside a line tsj_scan accepted) straight into ts_task
 *              records, checking every field as ts_jv_task does, with the same messages;
 *   tsj_out_*  write JSON exactly as jansson's json_dumpf(JSON_COMPACT) would, for the
 *              `ps --json` task array;
 *   tsj_release  gives a large buffer back in steps (tsc_cooperate, sched_hint.h, between).
 *
 * Exactness: tsj_scan says "valid" only for what jansson accepts (RFC 8259 JSON: UTF-8 checked
 * as jansson checks it, integers within long long, reals that do not overflow, no \u0000 in a
 * key, no lone surrogate escapes, bounded depth), and "not sure" for anything else, including
 * every invalid line: the caller then gives jansson the whole line, which reports the error
 * exactly as before. Duplicate keys: the last one counts, as in jansson.
 *
 * No jansson call here (the unit test builds this file alone).
 */
#ifndef TASKSCOPE_CLI_FASTJSON_H
#define TASKSCOPE_CLI_FASTJSON_H

#include "model.h"
#include "../common/sched_hint.h" /* tsc_cooperate: the CLI's long loops leave the CPU to the app */

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* free(p) of a large buffer of len bytes: its pages are given back a MiB at a time with
 * tsc_cooperate() between (one munmap(2) of 30 MB is a millisecond in the kernel). */
void tsj_release(void *p, size_t len);

/* Lines shorter than this are left to jansson (the fast path would gain nothing). */
#define TSJ_SPLIT_MIN ((size_t)64 << 10)

/* 1 when buf[0..len) is a JSON object that jansson accepts; then *vstart and *vend delimit the
 * value of its last top-level member named `key` (a key without escapes), or are both 0 when it
 * has none. 0 when it is not sure (invalid JSON, an array at the top, a top-level key written
 * with escapes, a nesting deeper than TSJ_MAX_DEPTH, ...). */
#define TSJ_MAX_DEPTH 256
int tsj_scan(const char *buf, size_t len, const char *key, size_t *vstart, size_t *vend);

/* Reads the TASK array text[0..len) (a JSON array, part of a line tsj_scan accepted) into
 * *out (malloc'd, *n records, in the array's order). Strings are decoded in place: the records
 * point into text, which must outlive them. The checks are ts_jv_task's, the array elements
 * named `what`[i] in messages; on the first failure the message goes to err, *out is freed
 * and -1 is returned. */
int tsj_tasks(char *text, size_t len, const char *what, ts_task **out, size_t *n, char *err,
              size_t errlen);

/* JSON output, byte for byte as jansson's dump with JSON_COMPACT, through a buffer (stdio's
 * per-call locking costs more than the formatting for 100 000 tasks): a string (escaping `"`,
 * `\` and control characters; s must be valid UTF-8, as every string read from an answer is),
 * and an integer. tsj_out_flush writes what is buffered (0, or -1 when the write failed). */
typedef struct tsj_out {
  FILE *f;
  size_t len;
  int failed;
  char buf[1 << 16];
} tsj_out;
void tsj_out_put_slow(tsj_out *o, const char *s, size_t n);
static inline void tsj_out_put(tsj_out *o, const char *s, size_t n) {
  if (n > sizeof o->buf - o->len) {
    tsj_out_put_slow(o, s, n);
    return;
  }
  memcpy(o->buf + o->len, s, n); /* (inlined for the constant pieces) */
  o->len += n;
}
static inline void tsj_out_puts(tsj_out *o, const char *s) { tsj_out_put(o, s, strlen(s)); }
void tsj_out_str(tsj_out *o, const char *s);
void tsj_out_int(tsj_out *o, long long v);
int tsj_out_flush(tsj_out *o);

#endif
