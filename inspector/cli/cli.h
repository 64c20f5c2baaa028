/*
 * cli.h — what the parts of the `taskscope` command line tool share: exit codes, the parsed
 * options, the command table entry, and the output context.
 *
 * Adding a command is one entry in the table in main.c (name, synopsis, help, accepted options,
 * argument count, run function) plus its run function in a cmd_<name>.c file, and the file in
 * inspector/CMakeLists.txt.
 */
#ifndef TASKSCOPE_CLI_H
#define TASKSCOPE_CLI_H

#include <stdarg.h>
#include <stdio.h>

/* TS_PROTOCOL_VERSION, TASKSCOPE_VERSION (inspector/common/hello.h, shared with taskscope-top) */
#include "hello.h"
#define TS_DEFAULT_TIMEOUT_MS 5000
#define TS_MAX_TIMEOUT_MS 86400e3 /* --timeout: 1 ms .. 24 h */

/* Exit codes, the documented contract (DESIGN.md). */
enum {
  TS_EXIT_OK = 0,
  TS_EXIT_LEAKS = 1,  /* leaks found (`check`) */
  TS_EXIT_USAGE = 2,  /* bad command line, or TASK names no live task */
  TS_EXIT_ATTACH = 3, /* cannot attach: no process, no socket, permission, version, bad answers */
};

typedef enum ts_color_mode { TS_COLOR_AUTO, TS_COLOR_ALWAYS, TS_COLOR_NEVER } ts_color_mode;

/* Options a command may accept (ts_command.options); --help, --timeout and --color are accepted
 * by every command. */
enum {
  TS_OPT_JSON = 1u << 0,
  TS_OPT_ASCII = 1u << 1,
  TS_OPT_PENDING = 1u << 2,
};

/* How human output is written. `color`: emit ANSI colours; `utf8`: the locale is UTF-8 (tree
 * lines, arrows, and the display width of names). */
typedef struct ts_term {
  int color;
  int utf8;
} ts_term;

/* The parsed command line; argv strings are borrowed from main's argv. */
typedef struct ts_ctx {
  int json;
  int ascii;
  int pending;
  int timeout_ms;
  ts_color_mode color_mode;
  char **args; /* positional arguments after the command name */
  int nargs;
  ts_term term;
  const struct ts_command *cmd;
} ts_ctx;

/* One command. Either `run` (the common options and the positional arguments are parsed for
 * it into a ts_ctx), or `run_argv` for a command that parses its own arguments: it gets argv
 * from its name on (argv[0] is the command name), untouched, and its `--help` is its own
 * (options given before the command name are not passed on, except --help). For example the CI
 * gate is one entry:
 *   {"check", "[OPTIONS] -- CMD [ARGS...]", "run CMD; exit 1 when it leaked tasks", NULL, 0, 0,
 *    -1, NULL, taskscope_cmd_check},
 */
typedef struct ts_command {
  const char *name;
  const char *synopsis; /* the arguments, e.g. "PID TASK" */
  const char *summary;  /* one line for the global help */
  const char *help;     /* the command's own help, after its usage line (run only) */
  unsigned options;     /* TS_OPT_* it accepts (run only) */
  int min_args, max_args; /* max_args < 0: no limit (run only) */
  int (*run)(ts_ctx *ctx);
  int (*run_argv)(int argc, char **argv);
} ts_command;

/* The commands (cmd_*.c). */
int ts_cmd_list(ts_ctx *ctx);
int ts_cmd_ps(ts_ctx *ctx);
int ts_cmd_tree(ts_ctx *ctx);
int ts_cmd_where(ts_ctx *ctx);
int ts_cmd_leaks(ts_ctx *ctx);

/* "5", "0.5", "2.5s", "500ms" -> milliseconds (> 0); -1 when invalid (--timeout, --duration). */
double ts_parse_seconds(const char *s);

/* Prints "taskscope: <message>" on stderr and returns `code` (an exit code). */
int ts_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "taskscope: <message>", the command's usage line and a --help hint; returns
 * TS_EXIT_USAGE. */
int ts_usage_error(const ts_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
