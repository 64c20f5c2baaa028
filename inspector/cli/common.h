/*
 * common.h — what several commands do: attach and take a snapshot, describe what a task awaits,
 * print stacks, print JSON.
 */
#ifndef TASKSCOPE_CLI_COMMON_H
#define TASKSCOPE_CLI_COMMON_H

#include "cli.h"
#include "conn.h"
#include "model.h"

#include <jansson.h>
#include <stdio.h>

/* Attaches to `target` and takes a snapshot. On failure prints why, closes c and returns the
 * exit code; 0 on success (the caller then owns c and s). */
int ts_open_snapshot(const ts_ctx *ctx, const char *target, ts_conn *c, ts_snapshot *s);

/* Takes a snapshot on an open connection; on failure prints why, closes c and returns the exit
 * code; 0 on success (the caller then owns s). */
int ts_take_snapshot(ts_conn *c, ts_snapshot *s);

/* Sends a request and reports a failure (printing it and closing c); 0 or an exit code. */
int ts_request(ts_conn *c, json_t *req, const char *want, json_t **answer);

/* Reports a malformed answer from c's server (printing "malformed answer from ..."), closes c,
 * returns TS_EXIT_ATTACH. */
int ts_malformed(ts_conn *c, const char *what);

/* What a task awaits, for a table: "future 12", "task 17", "sleep", or "" when not waiting. */
void ts_fmt_awaiting(const ts_task *t, char *buf, size_t n);

/* The name of a task by id, live or recently finished; NULL when unknown. */
const char *ts_task_name(const ts_snapshot *s, long long id);

/* Prints a FRAME array (already checked with ts_jv_frames), one line per frame:
 *   <indent>#0 0x55d0c0a1b2c3 in fetch_page at /src/crawler.c:42
 * (the runtime's text report format). */
void ts_print_frames(FILE *out, const ts_term *t, json_t *frames, const char *indent);

/* A JSON string of s that is always valid: s itself, or (for invalid UTF-8) an ASCII escaped
 * copy; JSON null for NULL. */
json_t *ts_json_string(const char *s);

/* A JSON number for ms-like values: an integer when v is integral, null when not finite. */
json_t *ts_json_number(double v);

/* Writes j as one line of compact JSON to stdout, then a newline. 0 or TS_EXIT_ATTACH. */
int ts_print_json(json_t *j);

#endif
