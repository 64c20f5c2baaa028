/*
 * main.c — `taskscope`: the command table, the command line, help and version.
 *
 *   taskscope [OPTIONS] COMMAND [OPTIONS] [ARGS]
 *
 * Options may come before or after the command; `--` ends them. A command is one entry of
 * `commands` below: adding one (e.g. `check`) takes an entry and its run function.
 */
#include "cli.h"
#include "sched_hint.h"

#include "check.h"
int taskscope_cmd_record(int argc, char **argv); /* record.c */

#include "text.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int cmd_help(ts_ctx *ctx);

static const ts_command commands[] = {
    {"list", "", "list the processes you can attach to",
     "Scans the socket directories ($XDG_RUNTIME_DIR/taskscope/ and /tmp/taskscope-$UID/),\n"
     "asks every process there for a snapshot, and prints one line per process:\n"
     "PID, PROGRAM, TASKS (live), WAITING, LEAKS (recorded so far) and SOCKET. A socket whose\n"
     "process is gone, or that nobody answers on, is shown as \"(stale: ...)\" or with the\n"
     "reason in the PROGRAM column. Each process gets at most 1 s (or --timeout if shorter).\n"
     "Processes using TASKSCOPE_OPTIONS=socket=PATH are not listed: pass PATH to the other\n"
     "commands.\n"
     "\n"
     "--json: {\"socket_dirs\":[DIR...],\"processes\":[{\"pid\":N,\"program\":S|null,\n"
     "  \"socket\":S,\"status\":\"ok\"|\"stale\"|\"error\",\"error\":S|null,\"tasks\":N|null,\n"
     "  \"waiting\":N|null,\"leaks\":N|null}...]}",
     TS_OPT_JSON, 0, 0, ts_cmd_list, NULL},
    {"ps", "PID", "the live tasks, as a table",
     "Prints a header (program, pid, live tasks by state, finished count, loop lag, a loop\n"
     "stall warning, dropped events, leaks so far), then one row per live task, by id:\n"
     "ID, PARENT, STATE, AGE, SWITCHES, AWAITING (e.g. \"future 12\", \"task 17\"), NAME.\n"
     "\n"
     "--json: {\"format\":\"taskscope-ps\",\"version\":1,\"pid\":N,\"program\":S,\"time_ms\":T,\n"
     "  \"counts\":{\"live\":N,\"ready\":N,\"running\":N,\"waiting\":N,\"finished\":N|null,\n"
     "            \"spawned\":N|null},\n"
     "  \"runtimes\":[{\"id\":N,\"lag_ms\":X|null,\"stalled_ms\":X|null,\"dropped_events\":N}],\n"
     "  \"dropped_events\":N,\"leaks\":{\"pending\":N,\"destroyed_pending\":N,\n"
     "  \"unretrieved_error\":N},\"warnings\":[WARNING...],\n"
     "  \"tasks\":[{\"id\":N,\"parent\":N|null,\"runtime\":N|null,\"name\":S,\"state\":S,\n"
     "             \"age_ms\":X|null,\"switches\":N,\"awaiting\":{\"kind\":S,\"id\":N|null}|null}]}\n"
     "WARNING is passed through from the protocol (inspector/PROTOCOL.md).",
     TS_OPT_JSON, 1, 1, ts_cmd_ps, NULL},
    {"tree", "PID", "the task tree (parent and children)",
     "Prints every live task under its parent, with what it awaits (\"-> awaits task 17\n"
     "(fetch_page)\"). Tasks whose parent has finished are shown under a \"(parent N finished)\"\n"
     "root. Tree lines are UTF-8 in a UTF-8 locale, ASCII otherwise or with --ascii.\n"
     "\n"
     "--json: {\"format\":\"taskscope-tree\",\"version\":1,\"pid\":N,\"program\":S,\"time_ms\":T,\n"
     "  \"roots\":[NODE...]}; NODE is a task, {\"id\":N,\"name\":S,\"state\":S,\n"
     "  \"awaiting\":{\"kind\":S,\"id\":N|null,\"name\":S (for a task)}|null,\"children\":[NODE...]},\n"
     "  or a group of orphans {\"finished_parent\":N,\"name\":S|null,\"children\":[NODE...]},\n"
     "  or {\"cycle\":true,\"children\":[NODE...]} for tasks whose parents form a loop.",
     TS_OPT_JSON | TS_OPT_ASCII, 1, 1, ts_cmd_tree, NULL},
    {"where", "PID TASK", "a task's current stack and creation stack",
     "TASK is a live task's id, or its name when exactly one live task has it. Prints where\n"
     "the task is suspended (its live stack) and where it was created, one frame a line:\n"
     "  #0 0x55d0c0a1b2c3 in fetch_page at /src/crawler.c:42\n"
     "A TASK that names no live task (or several) is a usage error (exit 2).\n"
     "\n"
     "--json: {\"format\":\"taskscope-where\",\"version\":1,\"pid\":N,\"program\":S,\n"
     "  \"task\":TASK,\"running\":B,\"method\":S|null,\"suspended_at\":[FRAME...]|null,\n"
     "  \"created_at\":[FRAME...]}; TASK and FRAME as in inspector/PROTOCOL.md.",
     TS_OPT_JSON, 2, 2, ts_cmd_where, NULL},
    {"leaks", "PID", "the leak records so far, as in the runtime's report",
     "Prints the leak records the process has made so far in the runtime's report format\n"
     "(\"Task was destroyed but it is pending!\", \"Task exception was never retrieved\", with\n"
     "stacks, identical records grouped) and the SUMMARY line. With --pending the live tasks\n"
     "are included as pending records. This is a query: the exit status is 0 whatever it\n"
     "finds (`taskscope check` is the CI gate).\n"
     "\n"
     "--json: the report document as the process sends it (format \"taskscope-report\",\n"
     "version 1, as in the JSON leak report file).",
     TS_OPT_JSON | TS_OPT_PENDING, 1, 1, ts_cmd_leaks, NULL},
    {"check", "[OPTIONS] -- CMD [ARGS...]", "run CMD; exit 1 when it leaked tasks", NULL, 0, 0,
     -1, NULL, taskscope_cmd_check},
    {"record", "PID -o FILE [--duration S] [--interval MS]",
     "record the task stream for taskscope-top --replay", NULL, 0, 0, -1, NULL,
     taskscope_cmd_record},
    {"help", "[COMMAND]", "this help, or a command's", NULL, 0, 0, 1, cmd_help, NULL},
};
static const size_t ncommands = sizeof commands / sizeof commands[0];

/* ------------------------------------------------------------------------------------------ */
/* messages                                                                                    */
/* ------------------------------------------------------------------------------------------ */

int ts_fail(int code, const char *fmt, ...) {
  fflush(stdout);
  va_list ap;
  va_start(ap, fmt);
  fputs("taskscope: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return code;
}

static void print_usage_line(FILE *out, const ts_command *cmd) {
  if (!cmd) {
    fputs("usage: taskscope [--help] [--version] COMMAND [OPTIONS] [ARGS]\n", out);
    return;
  }
  fprintf(out, "usage: taskscope %s", cmd->name);
  if (cmd->run != cmd_help) {
    if (cmd->options & TS_OPT_JSON) fputs(" [--json]", out);
    if (cmd->options & TS_OPT_ASCII) fputs(" [--ascii]", out);
    if (cmd->options & TS_OPT_PENDING) fputs(" [--pending]", out);
    fputs(" [--color=WHEN] [--timeout=SECONDS]", out);
  }
  if (*cmd->synopsis) fprintf(out, " %s", cmd->synopsis);
  fputc('\n', out);
}

int ts_usage_error(const ts_ctx *ctx, const char *fmt, ...) {
  fflush(stdout);
  va_list ap;
  va_start(ap, fmt);
  fputs("taskscope: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  const ts_command *cmd = ctx ? ctx->cmd : NULL;
  print_usage_line(stderr, cmd);
  if (cmd)
    fprintf(stderr, "Run 'taskscope %s --help' for more.\n", cmd->name);
  else
    fputs("Run 'taskscope --help' for more.\n", stderr);
  return TS_EXIT_USAGE;
}

static void global_help(FILE *out) {
  print_usage_line(out, NULL);
  fputs("\nInspect a running program that uses the taskscope task runtime (libtaskscope), over\n"
        "its inspector socket.\n\ncommands:\n",
        out);
  for (size_t i = 0; i < ncommands; i++) {
    char head[128];
    snprintf(head, sizeof head, "%s %s", commands[i].name, commands[i].synopsis);
    if (strlen(head) < 18)
      fprintf(out, "  %-18s%s\n", head, commands[i].summary);
    else /* a long synopsis: the summary on its own line */
      fprintf(out, "  %s\n  %-18s%s\n", head, "", commands[i].summary);
  }
  fputs("\nPID is a process id, or the path of an inspector socket (anything containing '/').\n"
        "\noptions (before or after the command):\n"
        "  --json             machine-readable output: one line of JSON (see each command's\n"
        "                     --help for its structure)\n"
        "  --color[=WHEN]     colour: auto (default: when stdout is a terminal and NO_COLOR is\n"
        "                     unset), always, never; --no-color is never\n"
        "  --timeout=SECONDS  give up when the process sends nothing for this long (default 5)\n"
        "  --ascii            (tree) ASCII tree lines even in a UTF-8 locale\n"
        "  --pending          (leaks) include the live tasks as pending records\n"
        "  -h, --help         help (taskscope COMMAND --help: that command's)\n"
        "  --version          the version, and the inspector protocol version\n"
        "\nexit status: 0 ok; 1 leaks found (check); 2 usage error, or TASK names no live task;\n"
        "3 cannot attach (no such process, no socket, permission denied, protocol version\n"
        "mismatch, timeout, or a malformed answer).\n"
        "\nsockets: $XDG_RUNTIME_DIR/taskscope/<pid>.sock, or /tmp/taskscope-<uid>/<pid>.sock\n"
        "when XDG_RUNTIME_DIR is unset; TASKSCOPE_OPTIONS=socket=PATH|off in the program's\n"
        "environment moves or disables it.\n",
        out);
}

static void command_help(FILE *out, const ts_command *cmd) {
  print_usage_line(out, cmd);
  fprintf(out, "\n%s%s\n", cmd->summary, cmd->help ? "." : "");
  if (cmd->help) fprintf(out, "\n%s\n", cmd->help);
  fputs("\nRun 'taskscope --help' for the options and exit codes shared by every command.\n", out);
}

static const ts_command *find_command(const char *name) {
  for (size_t i = 0; i < ncommands; i++)
    if (strcmp(commands[i].name, name) == 0) return &commands[i];
  return NULL;
}

static int cmd_help(ts_ctx *ctx) {
  if (ctx->nargs == 0) {
    global_help(stdout);
    return TS_EXIT_OK;
  }
  const ts_command *cmd = find_command(ctx->args[0]);
  if (!cmd) return ts_usage_error(NULL, "unknown command '%s'", ctx->args[0]);
  if (cmd->run_argv) {
    char *help_argv[] = {ctx->args[0], "--help", NULL};
    return cmd->run_argv(2, help_argv);
  }
  command_help(stdout, cmd);
  return TS_EXIT_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* command line                                                                                */
/* ------------------------------------------------------------------------------------------ */

double ts_parse_seconds(const char *s) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || errno || !isfinite(v) || v <= 0) return -1;
  if (strcmp(end, "ms") == 0) return v;
  if (*end == '\0' || strcmp(end, "s") == 0) return v * 1000;
  return -1;
}

typedef struct parsed {
  unsigned seen;  /* TS_OPT_* given */
  int help, version;
  const char *cmd_name;
} parsed;

/* Handles one option (arg starts with '-'); returns 0, or an exit code. `*i` may advance. */
static int parse_option(ts_ctx *ctx, parsed *p, int argc, char **argv, int *i) {
  const char *a = argv[*i];
  const char *val = NULL;
  if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
    p->help = 1;
  } else if (strcmp(a, "--version") == 0) {
    p->version = 1;
  } else if (strcmp(a, "--json") == 0) {
    ctx->json = 1;
    p->seen |= TS_OPT_JSON;
  } else if (strcmp(a, "--ascii") == 0) {
    ctx->ascii = 1;
    p->seen |= TS_OPT_ASCII;
  } else if (strcmp(a, "--pending") == 0) {
    ctx->pending = 1;
    p->seen |= TS_OPT_PENDING;
  } else if (strcmp(a, "--no-color") == 0) {
    ctx->color_mode = TS_COLOR_NEVER;
  } else if (strcmp(a, "--color") == 0 || strcmp(a, "--colour") == 0) {
    ctx->color_mode = TS_COLOR_ALWAYS;
  } else if (strncmp(a, "--color=", 8) == 0 || strncmp(a, "--colour=", 9) == 0) {
    val = strchr(a, '=') + 1;
    if (strcmp(val, "auto") == 0)
      ctx->color_mode = TS_COLOR_AUTO;
    else if (strcmp(val, "always") == 0 || strcmp(val, "yes") == 0)
      ctx->color_mode = TS_COLOR_ALWAYS;
    else if (strcmp(val, "never") == 0 || strcmp(val, "no") == 0)
      ctx->color_mode = TS_COLOR_NEVER;
    else
      return ts_usage_error(ctx, "--color takes auto, always or never, not '%s'", val);
  } else if (strcmp(a, "--timeout") == 0 || strncmp(a, "--timeout=", 10) == 0) {
    if (a[9] == '=') {
      val = a + 10;
    } else {
      if (*i + 1 >= argc) return ts_usage_error(ctx, "--timeout needs a value (seconds)");
      val = argv[++*i];
    }
    double ms = ts_parse_seconds(val);
    if (ms < 1 || ms > TS_MAX_TIMEOUT_MS)
      return ts_usage_error(ctx, "--timeout takes seconds (e.g. 5, 0.5, 500ms), not '%s'", val);
    ctx->timeout_ms = (int)ms;
  } else {
    return ts_usage_error(ctx, "unknown option '%s'", a);
  }
  return 0;
}

static const char *option_name(unsigned opt) {
  switch (opt) {
  case TS_OPT_JSON: return "--json";
  case TS_OPT_ASCII: return "--ascii";
  case TS_OPT_PENDING: return "--pending";
  }
  return "?";
}

int main(int argc, char **argv) {
  tsc_sched_background_slice(); /* the inspected app preempts us on wake-up (sched_hint.h) */
  ts_ctx ctx = {.timeout_ms = TS_DEFAULT_TIMEOUT_MS, .color_mode = TS_COLOR_AUTO};
  parsed p = {0};
  char **pos = calloc((size_t)argc + 1, sizeof *pos);
  if (!pos) return ts_fail(TS_EXIT_ATTACH, "out of memory");
  int npos = 0, rc = 0, options_done = 0;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!options_done && strcmp(a, "--") == 0) {
      options_done = 1;
    } else if (!options_done && a[0] == '-' && a[1] != '\0') {
      if ((rc = parse_option(&ctx, &p, argc, argv, &i))) goto out;
    } else if (!p.cmd_name) {
      p.cmd_name = a;
      ctx.cmd = find_command(a);
      if (!ctx.cmd) {
        rc = ts_usage_error(NULL, "unknown command '%s'", a);
        goto out;
      }
      if (ctx.cmd->run_argv) { /* it parses the rest itself */
        if (p.version) break;
        if (p.help) {
          char *help_argv[] = {argv[i], "--help", NULL};
          rc = ctx.cmd->run_argv(2, help_argv);
        } else {
          rc = ctx.cmd->run_argv(argc - i, argv + i);
        }
        goto out;
      }
    } else {
      pos[npos++] = argv[i];
    }
  }

  if (p.version) {
    printf("taskscope %s (inspector protocol %d)\n", TASKSCOPE_VERSION, TS_PROTOCOL_VERSION);
    goto out;
  }
  if (p.help) {
    if (ctx.cmd && ctx.cmd->run != cmd_help)
      command_help(stdout, ctx.cmd);
    else if (ctx.cmd && npos > 0) {
      ctx.args = pos;
      ctx.nargs = npos;
      rc = cmd_help(&ctx);
    } else
      global_help(stdout);
    goto out;
  }
  if (!ctx.cmd) {
    rc = ts_usage_error(NULL, "no command given");
    goto out;
  }
  unsigned extra = p.seen & ~ctx.cmd->options;
  if (extra) {
    unsigned bit = extra & -extra;
    rc = ts_usage_error(&ctx, "option %s does not apply to '%s'", option_name(bit),
                        ctx.cmd->name);
    goto out;
  }
  if (npos < ctx.cmd->min_args) {
    rc = ts_usage_error(&ctx, "'%s' needs %s", ctx.cmd->name, ctx.cmd->synopsis);
    goto out;
  }
  if (ctx.cmd->max_args >= 0 && npos > ctx.cmd->max_args) {
    rc = ts_usage_error(&ctx, "too many arguments for '%s': '%s'", ctx.cmd->name,
                        pos[ctx.cmd->max_args]);
    goto out;
  }
  ctx.args = pos;
  ctx.nargs = npos;
  ts_term_init(&ctx.term, ctx.color_mode);
  rc = ctx.cmd->run(&ctx);
  if (fflush(stdout) != 0 && errno != EPIPE && rc == 0)
    rc = ts_fail(TS_EXIT_ATTACH, "writing the output: %s", strerror(errno));

out:
  free(pos);
  return rc;
}
