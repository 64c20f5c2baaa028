/*
 * term.c — the terminal: curses start and stop (restored on every exit path, signals included),
 * colours with a monochrome fallback, width-aware text output, glyphs, formatting.
 */
#include "ui.h"

#include <curses.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

volatile int ui_signal_quit;
static volatile sig_atomic_t curses_active;
static int have_color;

/* ------------------------------------------------------------------------------------------ */
/* start, stop, signals                                                                        */
/* ------------------------------------------------------------------------------------------ */

void ui_term_stop(void) {
  if (!curses_active) return;
  curses_active = 0;
  endwin();
}

/* SIGINT, SIGTERM, SIGHUP: leave the main loop, which restores the terminal. */
static void on_quit_signal(int sig) {
  (void)sig;
  ui_signal_quit = 1;
}

/* A crash: restore the terminal, then die of the same signal (core dump and exit status as
 * without us). endwin is not async-signal-safe, but the process is lost anyway and a terminal
 * left in raw mode is worse; htop does the same. */
static void on_fatal_signal(int sig) {
  if (curses_active) {
    curses_active = 0;
    endwin();
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

/* Under ASan/UBSan a finding ends the process without a signal or atexit handlers: restore
 * the terminal from the sanitizers' death callback (a weak symbol: absent in normal builds). */
void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

void ui_install_signals(void) {
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(ui_term_stop);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = on_quit_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  sa.sa_handler = on_fatal_signal;
  sa.sa_flags = SA_RESETHAND;
  sigaction(SIGSEGV, &sa, NULL);
  sigaction(SIGABRT, &sa, NULL);
  sigaction(SIGBUS, &sa, NULL);
  sigaction(SIGFPE, &sa, NULL);
  sigaction(SIGILL, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

enum { P_TITLE = 1, P_BAR_KEY, P_COLHEAD, P_SELECTED, P_GOOD, P_BAD, P_WARN, P_INFO, P_TREE,
       P_MAGENTA };

void ui_term_start(app *a, int want_color) {
  initscr();
  curses_active = 1;
  atexit(ui_term_stop);
  cbreak();
  noecho();
  nonl();
  keypad(stdscr, TRUE);
  nodelay(stdscr, TRUE);
  set_escdelay(25);
  curs_set(0);
  have_color = want_color && has_colors();
  if (have_color) {
    start_color();
    use_default_colors();
    init_pair(P_TITLE, COLOR_CYAN, -1);
    init_pair(P_BAR_KEY, COLOR_BLACK, COLOR_CYAN);
    init_pair(P_COLHEAD, COLOR_BLACK, COLOR_GREEN);
    init_pair(P_SELECTED, COLOR_BLACK, COLOR_CYAN);
    init_pair(P_GOOD, COLOR_GREEN, -1);
    init_pair(P_BAD, COLOR_RED, -1);
    init_pair(P_WARN, COLOR_YELLOW, -1);
    init_pair(P_INFO, COLOR_CYAN, -1);
    init_pair(P_TREE, COLOR_BLUE, -1);
    init_pair(P_MAGENTA, COLOR_MAGENTA, -1);
  }
  a->color = have_color;
  getmaxyx(stdscr, a->rows, a->cols);
}

int ui_attr(ui_role r) {
  if (have_color) {
    switch (r) {
    case R_NORMAL: return A_NORMAL;
    case R_TITLE: return (int)(COLOR_PAIR(P_TITLE) | A_BOLD);
    case R_BAR_KEY: return A_NORMAL;
    case R_BAR_LABEL: return (int)COLOR_PAIR(P_BAR_KEY);
    case R_COLHEAD: return (int)COLOR_PAIR(P_COLHEAD);
    case R_SELECTED: return (int)COLOR_PAIR(P_SELECTED);
    case R_DIM: return A_DIM;
    case R_GOOD: return (int)(COLOR_PAIR(P_GOOD) | A_BOLD);
    case R_BAD: return (int)(COLOR_PAIR(P_BAD) | A_BOLD);
    case R_WARN: return (int)(COLOR_PAIR(P_WARN) | A_BOLD);
    case R_INFO: return (int)COLOR_PAIR(P_INFO);
    case R_TREE: return (int)COLOR_PAIR(P_TREE);
    case R_ST_READY: return (int)COLOR_PAIR(P_INFO);
    case R_ST_RUNNING: return (int)(COLOR_PAIR(P_GOOD) | A_BOLD);
    case R_ST_WAITING: return A_NORMAL;
    case R_ST_DONE: return A_DIM;
    case R_ST_FAILED: return (int)(COLOR_PAIR(P_BAD) | A_BOLD);
    case R_ST_CANCELLED: return (int)COLOR_PAIR(P_MAGENTA);
    case R_NROLES: break;
    }
    return A_NORMAL;
  }
  switch (r) {
  case R_TITLE: return A_BOLD;
  case R_BAR_LABEL: return A_REVERSE;
  case R_COLHEAD: return A_REVERSE;
  case R_SELECTED: return A_REVERSE | A_BOLD;
  case R_DIM: return A_DIM;
  case R_BAD: return A_BOLD;
  case R_WARN: return A_BOLD;
  case R_ST_RUNNING: return A_BOLD;
  case R_ST_FAILED: return A_BOLD | A_UNDERLINE;
  case R_ST_DONE: return A_DIM;
  default: return A_NORMAL;
  }
}

int ui_state_attr(tm_state s) {
  switch (s) {
  case TM_READY: return ui_attr(R_ST_READY);
  case TM_RUNNING: return ui_attr(R_ST_RUNNING);
  case TM_WAITING: return ui_attr(R_ST_WAITING);
  case TM_DONE: return ui_attr(R_ST_DONE);
  case TM_FAILED:
  case TM_DESTROYED: return ui_attr(R_ST_FAILED);
  case TM_CANCELLED: return ui_attr(R_ST_CANCELLED);
  default: return A_NORMAL;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* text                                                                                        */
/* ------------------------------------------------------------------------------------------ */

/* Decodes the next character of s: its wide value and display width (>= 0). */
static size_t next_char(const char *s, size_t len, mbstate_t *st, wchar_t *wc, int *w) {
  size_t k = mbrtowc(wc, s, len, st);
  if (k == (size_t)-1 || k == (size_t)-2 || k == 0) {
    memset(st, 0, sizeof *st);
    *wc = L'?';
    *w = 1;
    return 1;
  }
  int cw = wcwidth(*wc);
  if (cw < 0 || *wc < 0x20) {
    *wc = L'?';
    cw = 1;
  }
  *w = cw;
  return k;
}

int ui_put(int y, int x, const char *s, int w, int attr) {
  if (w <= 0 || !s) return 0;
  wchar_t buf[512];
  int n = 0, used = 0;
  mbstate_t st;
  memset(&st, 0, sizeof st);
  size_t len = strlen(s);
  while (len > 0 && n < (int)(sizeof buf / sizeof buf[0]) - 1) {
    wchar_t wc;
    int cw;
    size_t k = next_char(s, len, &st, &wc, &cw);
    if (used + cw > w) break;
    buf[n++] = wc;
    used += cw;
    s += k, len -= k;
  }
  buf[n] = 0;
  attron(attr);
  mvaddnwstr(y, x, buf, n);
  attroff(attr);
  return used;
}

void ui_fill(int y, int x, int attr) {
  int cols = getmaxx(stdscr);
  if (x >= cols) return;
  attron(attr);
  mvhline(y, x, ' ', cols - x);
  attroff(attr);
}

/* ------------------------------------------------------------------------------------------ */
/* glyphs, formatting                                                                          */
/* ------------------------------------------------------------------------------------------ */

ui_glyphs ui_g;

void ui_glyphs_set(int utf8) {
  static const char *const spark_u[8] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  static const char *const spark_a[8] = {"_", ".", ",", "-", "=", "+", "*", "#"};
  if (utf8) {
    ui_g = (ui_glyphs){"│  ", "├─ ", "└─ ", "   ", "▸ ", {0}, "●", "○", "—"};
    memcpy(ui_g.spark, spark_u, sizeof spark_u);
  } else {
    ui_g = (ui_glyphs){"|  ", "|- ", "`- ", "   ", "> ", {0}, "*", "o", "-"};
    memcpy(ui_g.spark, spark_a, sizeof spark_a);
  }
}

void ui_fmt_awaiting(const tm_model *m, const tm_task *t, char *out, size_t n) {
  if (!t->await_kind[0]) {
    out[0] = '\0';
    return;
  }
  if (strcmp(t->await_kind, "task") == 0 && t->await_id) {
    const tm_task *o = tm_lookup(m, t->await_id);
    snprintf(out, n, "task %lld%s%s%s", (long long)t->await_id, o ? " (" : "", o ? o->name : "",
             o ? ")" : "");
  } else if (t->await_id) {
    snprintf(out, n, "%s %lld", t->await_kind, (long long)t->await_id);
  } else {
    snprintf(out, n, "%s", t->await_kind);
  }
}
