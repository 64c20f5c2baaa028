/*
 * ui.h — taskscope-top's screen: the application state, the view classes, key bindings and the
 * drawing helpers they share.
 *
 * As in htop, each view is an object whose class is a const table (name, draw, its key
 * bindings, its bottom bar); key handlers return a mask of what must be redrawn (UI_REDRAW...),
 * and the main loop draws once per pass when the mask is not empty. Only the rows in view are
 * drawn.
 */
#ifndef TASKSCOPE_TUI_UI_H
#define TASKSCOPE_TUI_UI_H

#include "attach.h"
#include "fmt.h" /* tsc_fmt_duration, tsc_leak_headline (shared with the CLI) */
#include "model.h"
#include "replay.h"
#include "session.h"

#include <jansson.h>
#include <stdint.h>

/* What a key handler asks for. */
enum {
  UI_REDRAW = 1u << 0, /* draw the screen again */
  UI_QUIT = 1u << 1,
  UI_UNHANDLED = 1u << 2, /* not this binding's key after all: try the next table */
};

typedef struct app app;

typedef unsigned (*ui_action)(app *a, int key);

/* One key binding: the keys, the label shown in help (and in the bottom bar when `bar` is set),
 * what it does, the handler. A table ends with a zero entry. */
typedef struct ui_binding {
  int keys[4];
  const char *label; /* "Enter", "/" */
  const char *help;
  const char *bar;   /* short bottom-bar label, NULL: not shown there */
  ui_action fn;
} ui_binding;

typedef struct ui_view_class {
  const char *name;
  /* Draws the body between rows y0 and y0+h-1. */
  void (*draw)(app *a, int y0, int h);
  const ui_binding *keys; /* tried before the global bindings */
} ui_view_class;

typedef enum ui_view_id {
  UI_V_TASKS,
  UI_V_DETAIL,
  UI_V_EVENTS,
  UI_V_EVENT,
  UI_V_HELP,
  UI_V_PICKER,
  UI_NVIEWS
} ui_view_id;

extern const ui_view_class *const ui_views[UI_NVIEWS];
extern const ui_binding ui_global_keys[];

typedef enum ui_prompt {
  UI_PROMPT_NONE,
  UI_PROMPT_FILTER,
  UI_PROMPT_CANCEL,
} ui_prompt;

/* A scrolling position in a list: the selected index and the first index shown. */
typedef struct ui_cursor {
  long sel, top;
} ui_cursor;

#define UI_PICKER_MAX 64
#define UI_PAUSE_QUEUE_MAX 600

struct app {
  tm_model *m;
  /* the source: a live session or a replay */
  int replay;
  ts_sess sess;
  rp_replay rp;
  /* the picker (no target given and several processes) */
  ta_proc procs[UI_PICKER_MAX];
  size_t nprocs;
  int attached;

  ui_view_id view, back; /* the current view; where Esc goes from it */
  int rows, cols;
  /* tasks view */
  int64_t sel_id; /* the selected task (kept across rebuilds) */
  long sel_row, top_row;
  /* detail view */
  int64_t detail_id;
  json_t *where;        /* the last `where` answer for detail_id (reference) */
  int64_t where_req;    /* id of the outstanding where request, 0 none */
  char where_note[200]; /* "fetching...", an error */
  ui_cursor text;       /* scroll of the text views */
  long text_lines;      /* lines of the last drawn text view */
  /* events */
  ui_cursor ev;
  uint64_t ev_sel_seq; /* the event shown in UI_V_EVENT */
  /* picker */
  ui_cursor pick;

  ui_prompt prompt;
  char input[256];
  int64_t cancel_id;
  int64_t cancel_req;

  int paused; /* live: deltas queued, not applied */
  json_t *queue; /* array of queued deltas */
  int queue_overflow;

  char status[256];
  double status_until;
  unsigned redraw;
  int quit;

  /* terminal */
  int utf8, color;
  int64_t interval_ms;
};

/* term.c: the terminal */
void ui_term_start(app *a, int want_color);
void ui_term_stop(void);
void ui_install_signals(void);
extern volatile int ui_signal_quit;
/* Roles of text, mapped to colours or to monochrome attributes. */
typedef enum ui_role {
  R_NORMAL,
  R_TITLE,
  R_BAR_KEY,
  R_BAR_LABEL,
  R_COLHEAD,
  R_SELECTED,
  R_DIM,
  R_GOOD,
  R_BAD,
  R_WARN,
  R_INFO,
  R_TREE,
  R_ST_READY,
  R_ST_RUNNING,
  R_ST_WAITING,
  R_ST_DONE,
  R_ST_FAILED,
  R_ST_CANCELLED,
  R_NROLES
} ui_role;
int ui_attr(ui_role r);
int ui_state_attr(tm_state s);
/* Writes s at (y, x), at most w columns (multibyte aware; control characters as '?'); returns
 * the columns used. */
int ui_put(int y, int x, const char *s, int w, int attr);
/* Pads the rest of a row with spaces in attr, from x to the right edge. */
void ui_fill(int y, int x, int attr);

/* Glyphs (UTF-8 or ASCII). */
typedef struct ui_glyphs {
  const char *vline, *tee, *corner, *blank, *collapsed, *spark[8], *dot_on, *dot_off, *dash;
} ui_glyphs;
extern ui_glyphs ui_g;
void ui_glyphs_set(int utf8);

/* Formatting. */
void ui_fmt_awaiting(const tm_model *m, const tm_task *t, char *out, size_t n);

/* app.c */
void ui_set_status(app *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ui_open_detail(app *a, int64_t id);
void ui_request_where(app *a);
void ui_set_paused(app *a, int paused);
/* Keeps a cursor in [0, n) and the selection within h rows. */
void ui_cursor_fix(ui_cursor *c, long n, long h);
/* Moves a cursor by a navigation key (arrows, j/k, PgUp/PgDn, Home/End); 1 if it was one. */
int ui_cursor_key(ui_cursor *c, int key, long n, long h);
int ui_body_height(const app *a);

/* The views (view_*.c). */
void ui_tasks_sync_sel(app *a); /* keeps sel_row on sel_id after a rebuild */
tm_task *ui_selected_task(app *a);

#endif
