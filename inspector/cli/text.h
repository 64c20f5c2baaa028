/*
 * text.h — human output: colours, safe text, display width, durations, aligned tables.
 *
 * Every string that came from the inspected process (task names, file names, messages) goes
 * through ts_clean before it is printed, so it can never move the cursor, change colours or
 * break the layout of the output.
 */
#ifndef TASKSCOPE_CLI_TEXT_H
#define TASKSCOPE_CLI_TEXT_H

#include "cli.h"

#include <stddef.h>
#include <stdio.h>

/* ANSI sequences; use them through ts_sgr so they vanish when colour is off. */
#define TS_SGR_RESET "\033[0m"
#define TS_SGR_BOLD "\033[1m"
#define TS_SGR_DIM "\033[2m"
#define TS_SGR_RED "\033[31m"
#define TS_SGR_BOLD_RED "\033[1;31m"
#define TS_SGR_GREEN "\033[32m"
#define TS_SGR_BOLD_GREEN "\033[1;32m"
#define TS_SGR_YELLOW "\033[33m"
#define TS_SGR_BOLD_YELLOW "\033[1;33m"
#define TS_SGR_MAGENTA "\033[35m"
#define TS_SGR_CYAN "\033[36m"

/* Decides colour and UTF-8 for stdout: colour with --color=always; never with --color=never;
 * with auto, only when stdout is a terminal, NO_COLOR is unset or empty, and TERM is not "dumb".
 * UTF-8 when the locale's codeset is UTF-8. Calls setlocale(LC_ALL, ""). */
void ts_term_init(ts_term *t, ts_color_mode mode);

/* `code` when colour is on, "" otherwise (and for a NULL code). */
const char *ts_sgr(const ts_term *t, const char *code);
/* The colour of a task state ("running", "failed", ...); NULL for none. */
const char *ts_state_sgr(const char *state);

/* Allocation that cannot fail: on exhaustion prints a message and exits with TS_EXIT_ATTACH. */
void *ts_xmalloc(size_t n);
void *ts_xrealloc(void *p, size_t n);
char *ts_xstrdup(const char *s);
char *ts_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A printable copy of s (NULL: ""): control characters as \n, \t, \xNN; invalid UTF-8 bytes,
 * and in a non-UTF-8 locale every non-ASCII byte, as \xNN. The caller frees it. */
char *ts_clean(const ts_term *t, const char *s);
/* Writes ts_clean(s) to out. */
void ts_put_clean(FILE *out, const ts_term *t, const char *s);
/* The number of terminal columns of a string made by ts_clean. */
size_t ts_width(const ts_term *t, const char *clean);

/* Durations ("850ms", "12.3s", ...): tsc_fmt_duration, shared with taskscope-top. */
#include "fmt.h"

/* An aligned table: a header row, then rows of cells; every column but the last is padded to
 * its widest cell (display width), right-aligned where `align` has 'r'. Cells are copied. */
typedef struct ts_table ts_table;
ts_table *ts_table_new(const ts_term *t, const char *const *headers, const char *align);
/* Adds a cell to the current row; `sgr` is its colour (or NULL); `text` is cleaned first. */
void ts_table_cell(ts_table *tb, const char *sgr, const char *text);
void ts_table_cellf(ts_table *tb, const char *sgr, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ts_table_end_row(ts_table *tb);
void ts_table_print(ts_table *tb, FILE *out);
void ts_table_free(ts_table *tb);

#endif
