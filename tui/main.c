/*
 * main.c — `taskscope-top`: the command line, attaching (or replaying), then the main loop.
 *
 *   taskscope-top [OPTIONS] [PID | SOCKET]
 *   taskscope-top [OPTIONS] --replay FILE
 *
 * Exit status: 0 ok; 2 usage error; 3 cannot attach (no such process, not instrumented,
 * permission denied, protocol version mismatch) or cannot replay the file.
 */
#include "app.h"
#include "sched_hint.h"
#include "ui.h"

#include <curses.h>
#include <locale.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { EXIT_USAGE = 2, EXIT_ATTACH = 3 };

static void usage(FILE *out) {
  fputs("usage: taskscope-top [OPTIONS] [PID | SOCKET]\n"
        "       taskscope-top [OPTIONS] --replay FILE\n"
        "\n"
        "A live, top-like view of the tasks of a program that uses libtaskscope: the task tree,\n"
        "a sortable list, each task's stack and what it awaits, leak records and warnings.\n"
        "\n"
        "PID is a process id, SOCKET the path of its inspector socket (anything with a '/').\n"
        "Without either: the only instrumented process running, or a list to choose from.\n"
        "\n"
        "options:\n"
        "  --replay FILE     play back a recording made by `taskscope record`\n"
        "  --interval MS     how often the process sends updates (50..60000; default 1000)\n"
        "  --ascii           ASCII tree lines and sparkline even in a UTF-8 locale\n"
        "  --no-color        no colours (also when NO_COLOR is set)\n"
        "  -h, --help        this help\n"
        "  --version         the version and the inspector protocol version\n"
        "\n"
        "Keys: ? in the program. exit status: 0 ok, 2 usage error, 3 cannot attach or replay.\n",
        out);
}

static int usage_error(const char *msg, const char *arg) {
  fprintf(stderr, "taskscope-top: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
  fputs("Run 'taskscope-top --help' for more.\n", stderr);
  return EXIT_USAGE;
}

/* Connects before the screen is taken over, so a failure is a plain message on stderr. Waits
 * until the server accepted the session (hello exchanged), at most ~5 s. */
static int first_attach(app *a, const char *path, int by_pid) {
  ts_sess_init(&a->sess, path, by_pid, (int)a->interval_ms);
  double start = ts_now_ms();
  ts_sess_connect(&a->sess, start);
  while (a->sess.state == TS_SESS_HELLO) {
    struct pollfd p = {.fd = a->sess.peer.fd, .events = ts_sess_events(&a->sess)};
    poll(&p, 1, 100);
    ts_sess_io(&a->sess, p.revents, ts_now_ms(), (size_t)1 << 20, app_on_msg, a);
  }
  if (a->sess.state == TS_SESS_DOWN) {
    fprintf(stderr, "taskscope-top: cannot attach: %s\n", a->sess.err);
    ts_sess_close(&a->sess);
    return EXIT_ATTACH;
  }
  a->attached = 1;
  return 0;
}

int main(int argc, char **argv) {
  tsc_sched_background_slice(); /* the inspected app preempts us on wake-up (sched_hint.h) */
  const char *target = NULL, *replay = NULL;
  int ascii = 0, no_color = 0;
  long interval = 1000;
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(s, "--version") == 0) {
      printf("taskscope-top %s (inspector protocol %d, recording format %d)\n", TASKSCOPE_VERSION,
             TS_PROTOCOL_VERSION, RP_VERSION);
      return 0;
    } else if (strcmp(s, "--ascii") == 0) {
      ascii = 1;
    } else if (strcmp(s, "--no-color") == 0 || strcmp(s, "--no-colour") == 0) {
      no_color = 1;
    } else if (strcmp(s, "--replay") == 0 || strncmp(s, "--replay=", 9) == 0) {
      if (s[8] == '=')
        replay = s + 9;
      else if (i + 1 < argc)
        replay = argv[++i];
      else
        return usage_error("--replay needs a FILE", NULL);
    } else if (strcmp(s, "--interval") == 0 || strncmp(s, "--interval=", 11) == 0) {
      const char *v = s[10] == '=' ? s + 11 : (i + 1 < argc ? argv[++i] : NULL);
      char *end;
      if (!v) return usage_error("--interval needs milliseconds", NULL);
      interval = strtol(v, &end, 10);
      if (*end || interval < 50 || interval > 60000)
        return usage_error("--interval takes 50..60000 (milliseconds), not", v);
    } else if (strcmp(s, "--") == 0 && i + 1 < argc && !target) {
      target = argv[++i];
    } else if (s[0] == '-' && s[1]) {
      return usage_error("unknown option", s);
    } else if (!target) {
      target = s;
    } else {
      return usage_error("too many arguments", s);
    }
  }
  if (replay && target) return usage_error("--replay takes no PID", target);

  setlocale(LC_ALL, "");
  int utf8 = !ascii && tsc_utf8_locale();
  const char *nc = getenv("NO_COLOR");
  int color = !no_color && !(nc && *nc);
  ui_glyphs_set(utf8);

  static tm_model model; /* large (event and history rings): not on the stack */
  tm_init(&model);
  static app a;
  a.m = &model;
  a.utf8 = utf8;
  a.interval_ms = interval;
  a.view = a.back = UI_V_TASKS;
  a.queue = json_array();

  int rc = 0;
  char err[600];
  if (replay) {
    if (rp_open(&a.rp, replay, err, sizeof err) != 0) {
      fprintf(stderr, "taskscope-top: cannot replay: %s\n", err);
      return EXIT_ATTACH;
    }
    a.replay = 1;
    rp_seek(&a.rp, a.m, 0);
    rp_set_paused(&a.rp, 0, ts_now_ms());
  } else if (target) {
    char path[TA_PATH_MAX];
    int pid;
    int r = ta_resolve(target, path, sizeof path, &pid, err, sizeof err);
    if (r == TA_NOT_TARGET) return usage_error(err, NULL);
    if (r != 0) {
      fprintf(stderr, "taskscope-top: cannot attach: %s\n", err);
      return EXIT_ATTACH;
    }
    if ((rc = first_attach(&a, path, pid > 0))) return rc;
  } else {
    a.nprocs = ta_scan(a.procs, UI_PICKER_MAX);
    if (a.nprocs == 0) {
      char dirs[TSC_MAX_SOCKET_DIRS][TSC_DIR_MAX], looked[600];
      size_t nd = tsc_socket_dirs((unsigned)getuid(), dirs, TSC_MAX_SOCKET_DIRS);
      tsc_dirs_text(dirs, nd, looked, sizeof looked);
      fprintf(stderr,
              "taskscope-top: cannot attach: no instrumented process is running (no sockets in "
              "%s); start one linked with libtaskscope, or pass a PID or socket path\n",
              looked);
      return EXIT_ATTACH;
    }
    if (a.nprocs == 1) {
      if ((rc = first_attach(&a, a.procs[0].path, 1))) return rc;
    } else {
      a.view = a.back = UI_V_PICKER;
    }
  }

  ui_install_signals();
  ui_term_start(&a, color);
  rc = app_run(&a);
  ui_term_stop();

  if (a.replay) rp_close(&a.rp);
  if (a.attached) ts_sess_close(&a.sess);
  json_decref(a.where);
  json_decref(a.queue);
  tm_free(&model);
  return rc;
}
