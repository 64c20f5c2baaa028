/*
 * view_events.c — the events view (leak records and warnings as they happen, newest first) and
 * the process picker.
 */
#include "ui.h"

#include <curses.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static int event_attr(const tm_event *e) {
  if (e->kind == TM_EV_WARNING) return ui_attr(R_WARN);
  return ui_attr(R_BAD);
}

static void events_draw(app *a, int y0, int h) {
  tm_model *m = a->m;
  int head = ui_attr(R_COLHEAD);
  ui_fill(y0, 0, head);
  char buf[64];
  snprintf(buf, sizeof buf, "%9s  %-18s %-28s", "WHEN", "KIND", "TASK");
  int x = ui_put(y0, 0, buf, a->cols, head);
  ui_put(y0, x, " WHAT (newest first)", a->cols - x, head);
  h--;
  ui_cursor_fix(&a->ev, (long)m->nevents, h);
  if (m->nevents == 0) {
    ui_put(y0 + 2, 2, "(no leak records or warnings yet)", a->cols - 4, ui_attr(R_DIM));
    return;
  }
  for (int i = 0; i < h; i++) {
    long k = a->ev.top + i;
    if (k >= (long)m->nevents) break;
    tm_event *e = tm_event_at(m, (size_t)k);
    int y = y0 + 1 + i, sel = k == a->ev.sel;
    int base = sel ? ui_attr(R_SELECTED) : (int)A_NORMAL;
    if (sel) ui_fill(y, 0, base);
    char when[32] = "earlier";
    if (!isnan(e->time_ms) && !isnan(m->time_ms))
      tsc_fmt_duration(when, sizeof when, m->time_ms - e->time_ms);
    char line[128];
    snprintf(line, sizeof line, "%9.9s  ", when);
    x = ui_put(y, 0, line, a->cols, base);
    snprintf(line, sizeof line, "%-18.18s ", e->what);
    x += ui_put(y, x, line, a->cols - x, sel ? base : event_attr(e));
    if (e->task_id)
      snprintf(line, sizeof line, "%-7lld %-20.20s ", (long long)e->task_id,
               e->task_name ? e->task_name : "");
    else
      snprintf(line, sizeof line, "%-28s ", "");
    x += ui_put(y, x, line, a->cols - x, base);
    ui_put(y, x, e->summary, a->cols - x, base);
  }
}

static unsigned act_open_event(app *a, int key) {
  (void)key;
  tm_event *e = tm_event_at(a->m, (size_t)a->ev.sel);
  if (!e) return 0;
  a->ev_sel_seq = e->seq;
  a->text = (ui_cursor){0, 0};
  a->view = UI_V_EVENT;
  a->back = UI_V_EVENTS;
  return UI_REDRAW;
}

static unsigned act_task_of_event(app *a, int key) {
  (void)key;
  tm_event *e = tm_event_at(a->m, (size_t)a->ev.sel);
  if (!e || !e->task_id) return 0;
  ui_open_detail(a, e->task_id);
  a->back = UI_V_EVENTS;
  return UI_REDRAW;
}

static const ui_binding events_keys[] = {
    {{'\n', '\r', KEY_ENTER}, "Enter", "the selected record in full (stacks)", "Record",
     act_open_event},
    {{'d'}, "d", "the detail of the record's task", "Task", act_task_of_event},
    {{0}, NULL, NULL, NULL, NULL},
};

const ui_view_class ui_view_events = {"Events", events_draw, events_keys};

/* ------------------------------------------------------------------------------------------ */
/* picker                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void picker_draw(app *a, int y0, int h) {
  ui_put(y0, 1, "Several instrumented processes are running: choose one (Enter), or q to quit.",
         a->cols - 2, ui_attr(R_TITLE));
  int head = ui_attr(R_COLHEAD);
  ui_fill(y0 + 2, 0, head);
  char buf[256];
  snprintf(buf, sizeof buf, "%8s  %-20s %s", "PID", "PROGRAM", "SOCKET");
  ui_put(y0 + 2, 0, buf, a->cols, head);
  h -= 3;
  long n = (long)(a->nprocs < UI_PICKER_MAX ? a->nprocs : UI_PICKER_MAX);
  ui_cursor_fix(&a->pick, n, h);
  for (int i = 0; i < h && a->pick.top + i < n; i++) {
    long k = a->pick.top + i;
    const ta_proc *p = &a->procs[k];
    int sel = k == a->pick.sel, attr = sel ? ui_attr(R_SELECTED) : (int)A_NORMAL;
    if (sel) ui_fill(y0 + 3 + i, 0, attr);
    snprintf(buf, sizeof buf, "%8d  %-20.20s %s", p->pid, p->program, p->path);
    ui_put(y0 + 3 + i, 0, buf, a->cols, attr);
  }
}

static unsigned act_pick(app *a, int key) {
  (void)key;
  if (a->pick.sel < 0 || (size_t)a->pick.sel >= a->nprocs) return 0;
  const ta_proc *p = &a->procs[a->pick.sel];
  ts_sess_init(&a->sess, p->path, 1, (int)a->interval_ms);
  snprintf(a->sess.program, sizeof a->sess.program, "%s", p->program);
  a->sess.pid = p->pid;
  ts_sess_connect(&a->sess, ts_now_ms());
  a->attached = 1;
  a->view = a->back = UI_V_TASKS;
  return UI_REDRAW;
}

static unsigned act_rescan(app *a, int key) {
  (void)key;
  a->nprocs = ta_scan(a->procs, UI_PICKER_MAX);
  return UI_REDRAW;
}

static const ui_binding picker_keys[] = {
    {{'\n', '\r', KEY_ENTER}, "Enter", "attach to the selected process", "Attach", act_pick},
    {{'r'}, "r", "look for processes again", "Rescan", act_rescan},
    {{0}, NULL, NULL, NULL, NULL},
};

const ui_view_class ui_view_picker = {"Processes", picker_draw, picker_keys};
