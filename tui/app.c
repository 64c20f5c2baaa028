/*
 * app.c — taskscope-top's main loop: poll() on the terminal and the socket (input never waits on
 * the network), messages into the model, keys through the binding tables, one redraw per pass.
 */
#include "app.h"

#include "ui.h"

#include <curses.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_BUDGET ((size_t)4 << 20) /* bytes read per loop pass, so keys are handled between */
#define STATUS_MS 4000.0

extern const ui_view_class ui_view_tasks, ui_view_detail, ui_view_events, ui_view_event,
    ui_view_help, ui_view_picker;

const ui_view_class *const ui_views[UI_NVIEWS] = {
    [UI_V_TASKS] = &ui_view_tasks, [UI_V_DETAIL] = &ui_view_detail,
    [UI_V_EVENTS] = &ui_view_events, [UI_V_EVENT] = &ui_view_event,
    [UI_V_HELP] = &ui_view_help,   [UI_V_PICKER] = &ui_view_picker,
};

/* ------------------------------------------------------------------------------------------ */
/* helpers shared by the views                                                                 */
/* ------------------------------------------------------------------------------------------ */

void ui_set_status(app *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(a->status, sizeof a->status, fmt, ap);
  va_end(ap);
  a->status_until = ts_now_ms() + STATUS_MS;
}

int ui_body_height(const app *a) {
  int h = a->rows - 4; /* three header lines, the bottom bar */
  return h < 2 ? 2 : h;
}

void ui_cursor_fix(ui_cursor *c, long n, long h) {
  if (h < 1) h = 1;
  if (c->sel >= n) c->sel = n - 1;
  if (c->sel < 0) c->sel = 0;
  if (c->top > c->sel) c->top = c->sel;
  if (c->sel >= c->top + h) c->top = c->sel - h + 1;
  if (c->top > n - h) c->top = n - h;
  if (c->top < 0) c->top = 0;
}

int ui_cursor_key(ui_cursor *c, int key, long n, long h) {
  switch (key) {
  case KEY_UP:
  case 'k': c->sel--; break;
  case KEY_DOWN:
  case 'j': c->sel++; break;
  case KEY_PPAGE: c->sel -= h, c->top -= h; break;
  case KEY_NPAGE: c->sel += h, c->top += h; break;
  case KEY_HOME: c->sel = 0; break;
  case KEY_END: c->sel = n - 1; break;
  default: return 0;
  }
  ui_cursor_fix(c, n, h);
  return 1;
}

void ui_request_where(app *a) {
  json_decref(a->where);
  a->where = NULL;
  a->where_req = 0;
  if (a->replay) {
    snprintf(a->where_note, sizeof a->where_note,
             "(stacks are fetched from a live process: not available in a replay)");
    return;
  }
  const tm_task *t = tm_lookup(a->m, a->detail_id);
  if (t && !t->live) {
    snprintf(a->where_note, sizeof a->where_note, "(the task has finished: no live stack)");
    return;
  }
  json_t *req = json_pack("{s:s, s:I, s:i}", "type", "where", "task", (json_int_t)a->detail_id,
                          "timeout_ms", 1000);
  int64_t id = ts_sess_request(&a->sess, req);
  json_decref(req);
  if (id < 0) {
    snprintf(a->where_note, sizeof a->where_note, "(not connected: cannot fetch the stack)");
    return;
  }
  a->where_req = id;
  snprintf(a->where_note, sizeof a->where_note, "(fetching the stack...)");
}

void ui_open_detail(app *a, int64_t id) {
  a->detail_id = id;
  a->back = a->view == UI_V_DETAIL ? a->back : a->view;
  a->view = UI_V_DETAIL;
  a->text = (ui_cursor){0, 0};
  ui_request_where(a);
}

void ui_set_paused(app *a, int paused) {
  if (a->replay) {
    rp_set_paused(&a->rp, paused, ts_now_ms());
    return;
  }
  a->paused = paused;
  if (paused) return;
  /* Apply what arrived meanwhile, in order; after an overflow, start afresh. */
  if (a->queue_overflow) {
    json_array_clear(a->queue);
    a->queue_overflow = 0;
    ts_sess_resubscribe(&a->sess);
    ui_set_status(a, "resumed: too much happened while paused; fetching a new snapshot");
    return;
  }
  size_t i;
  json_t *msg;
  json_array_foreach(a->queue, i, msg) tm_apply(a->m, msg, NULL, 0);
  json_array_clear(a->queue);
}

/* ------------------------------------------------------------------------------------------ */
/* messages                                                                                    */
/* ------------------------------------------------------------------------------------------ */

void app_on_msg(void *ctx, json_t *msg) {
  app *a = ctx;
  const char *type = json_string_value(json_object_get(msg, "type"));
  json_t *jid = json_object_get(msg, "id");
  int64_t id = json_is_integer(jid) ? (int64_t)json_integer_value(jid) : -1;
  if (!type) return;
  if (strcmp(type, "snapshot") == 0 || strcmp(type, "delta") == 0) {
    if (a->paused) {
      if (json_array_size(a->queue) >= UI_PAUSE_QUEUE_MAX) {
        json_array_clear(a->queue);
        a->queue_overflow = 1;
      }
      if (!a->queue_overflow) json_array_append(a->queue, msg);
      a->redraw |= UI_REDRAW; /* the header counts what waits */
      return;
    }
    char err[200];
    if (tm_apply(a->m, msg, err, sizeof err) < 0) ui_set_status(a, "%s", err);
    a->redraw |= UI_REDRAW;
    return;
  }
  if (strcmp(type, "where") == 0 && id == a->where_req && id > 0) {
    json_decref(a->where);
    a->where = json_incref(msg);
    a->where_req = 0;
    tm_note_functions(a->m, a->detail_id, json_object_get(msg, "suspended_at"));
    tm_note_functions(a->m, a->detail_id, json_object_get(msg, "created_at"));
    a->redraw |= UI_REDRAW;
    return;
  }
  if (strcmp(type, "ok") == 0 && id == a->cancel_req && id > 0) {
    ui_set_status(a, "cancellation of task %lld requested (delivered at its next wait)",
                  (long long)a->cancel_id);
    a->cancel_req = 0;
    a->redraw |= UI_REDRAW;
    return;
  }
  if (strcmp(type, "error") == 0 && id > 0) {
    const char *m = json_string_value(json_object_get(msg, "message"));
    const char *code = json_string_value(json_object_get(msg, "code"));
    if (id == a->where_req) {
      snprintf(a->where_note, sizeof a->where_note, "(no stack: %s)", m ? m : code ? code : "?");
      a->where_req = 0;
    } else if (id == a->cancel_req) {
      ui_set_status(a, "cannot cancel task %lld: %s", (long long)a->cancel_id,
                    m ? m : code ? code : "?");
      a->cancel_req = 0;
    }
    a->redraw |= UI_REDRAW;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* global key bindings                                                                         */
/* ------------------------------------------------------------------------------------------ */

static unsigned act_quit(app *a, int key) {
  (void)a, (void)key;
  return UI_QUIT;
}

static unsigned act_help(app *a, int key) {
  (void)key;
  if (a->view == UI_V_HELP) {
    a->view = a->back;
  } else {
    a->back = a->view == UI_V_PICKER ? UI_V_PICKER : a->view;
    a->view = UI_V_HELP;
    a->text = (ui_cursor){0, 0};
  }
  return UI_REDRAW;
}

static unsigned act_events(app *a, int key) {
  (void)key;
  if (a->view == UI_V_PICKER) return 0;
  if (a->view == UI_V_EVENTS) {
    a->view = UI_V_TASKS;
  } else {
    a->view = UI_V_EVENTS;
    a->back = UI_V_TASKS;
  }
  return UI_REDRAW;
}

static unsigned act_back(app *a, int key) {
  (void)key;
  if (a->view == UI_V_TASKS || a->view == UI_V_PICKER) return 0;
  ui_view_id to = a->back;
  if (to == a->view || (a->view == UI_V_DETAIL && to == UI_V_DETAIL)) to = UI_V_TASKS;
  if (a->view == UI_V_EVENTS) to = UI_V_TASKS;
  a->view = to;
  a->back = UI_V_TASKS;
  a->text = (ui_cursor){0, 0};
  return UI_REDRAW;
}

static unsigned act_pause(app *a, int key) {
  (void)key;
  int p = a->replay ? !a->rp.paused : !a->paused;
  if (a->replay && !p && a->rp.pos_ms >= a->rp.duration_ms) {
    rp_seek(&a->rp, a->m, 0); /* play again from the start */
  }
  ui_set_paused(a, p);
  return UI_REDRAW;
}

static unsigned act_cancel(app *a, int key) {
  (void)key;
  if (a->replay) {
    ui_set_status(a, "cancel: not available in a replay");
    return UI_REDRAW;
  }
  const tm_task *t = NULL;
  if (a->view == UI_V_TASKS)
    t = ui_selected_task(a);
  else if (a->view == UI_V_DETAIL)
    t = tm_find(a->m, a->detail_id);
  if (!t || !t->live) {
    ui_set_status(a, "cancel: select a live task first");
    return UI_REDRAW;
  }
  a->cancel_id = t->id;
  a->prompt = UI_PROMPT_CANCEL;
  return UI_REDRAW;
}

static unsigned replay_only(app *a) {
  if (a->replay) return 0;
  ui_set_status(a, "that key works in a replay (taskscope-top --replay FILE)");
  return UI_REDRAW;
}

static unsigned act_step(app *a, int key) {
  (void)key;
  if (!a->replay) return replay_only(a);
  if (rp_step(&a->rp, a->m) < 0) ui_set_status(a, "at the end of the recording");
  return UI_REDRAW;
}

static unsigned act_speed(app *a, int key) {
  if (!a->replay) return replay_only(a);
  if (key == ']')
    rp_faster(&a->rp);
  else
    rp_slower(&a->rp);
  return UI_REDRAW;
}

static unsigned act_seek(app *a, int key) {
  if (!a->replay) return replay_only(a);
  double t = a->rp.pos_ms;
  if (key == 'g') t = 0;
  if (key == 'G') t = a->rp.duration_ms;
  if (key == '<' || key == KEY_SLEFT) t -= 5000;
  if (key == '>' || key == KEY_SRIGHT) t += 5000;
  rp_seek(&a->rp, a->m, t);
  a->rp.wall_ms = ts_now_ms();
  return UI_REDRAW;
}

const ui_binding ui_global_keys[] = {
    {{'e'}, "e", "events: leak records and warnings as they happen", "Events", act_events},
    {{'p'}, "p", "pause (stop applying updates) / resume; in a replay: pause / play", "Pause",
     act_pause},
    {{'c'}, "c", "cancel the selected task (asks y/n; sends 'cancel')", "Cancel", act_cancel},
    {{'?', 'h', KEY_F(1)}, "? h", "this help", "Help", act_help},
    {{27}, "Esc", "back to the main view", NULL, act_back},
    {{'q', 'Q'}, "q", "quit", "Quit", act_quit},
    {{'n', '.'}, "n .", "replay: one message forward (pauses)", NULL, act_step},
    {{'[', ']'}, "[ ]", "replay: slower / faster", NULL, act_speed},
    {{'<', '>', KEY_SLEFT, KEY_SRIGHT}, "< > S-Left/Right", "replay: seek 5 s back / forward",
     NULL, act_seek},
    {{'g', 'G'}, "g G", "replay: go to the start / the end", NULL, act_seek},
    {{0}, NULL, NULL, NULL, NULL},
};

static const ui_binding *find_binding(const ui_binding *b, int key) {
  for (; b && b->fn; b++)
    for (int i = 0; i < 4 && (b->keys[i] || i == 0); i++)
      if (b->keys[i] == key) return b;
  return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* input                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static unsigned prompt_key(app *a, int key) {
  if (a->prompt == UI_PROMPT_CANCEL) {
    a->prompt = UI_PROMPT_NONE;
    if (key == 'y' || key == 'Y') {
      json_t *req = json_pack("{s:s, s:I}", "type", "cancel", "task", (json_int_t)a->cancel_id);
      int64_t id = ts_sess_request(&a->sess, req);
      json_decref(req);
      if (id < 0)
        ui_set_status(a, "cannot cancel: not connected");
      else
        a->cancel_req = id, ui_set_status(a, "cancelling task %lld...", (long long)a->cancel_id);
    } else {
      ui_set_status(a, "not cancelled");
    }
    return UI_REDRAW;
  }
  /* the filter prompt: narrows as you type */
  size_t n = strlen(a->input);
  if (key == 27) {
    a->input[0] = '\0';
    a->prompt = UI_PROMPT_NONE;
  } else if (key == '\n' || key == '\r' || key == KEY_ENTER) {
    a->prompt = UI_PROMPT_NONE;
  } else if (key == KEY_BACKSPACE || key == 127 || key == 8) {
    while (n > 0 && ((unsigned char)a->input[n - 1] & 0xC0) == 0x80) n--; /* UTF-8 tail */
    if (n > 0) n--;
    a->input[n] = '\0';
  } else if (key == 21) { /* ^U */
    a->input[0] = '\0';
  } else if (key >= 0x20 && key < 0x100 && key != 0x7f && n + 1 < sizeof a->input) {
    a->input[n] = (char)key;
    a->input[n + 1] = '\0';
  } else {
    return 0;
  }
  tm_set_filter(a->m, a->input);
  ui_tasks_sync_sel(a);
  return UI_REDRAW;
}

static unsigned nav_key(app *a, int key) {
  long h = ui_body_height(a);
  switch (a->view) {
  case UI_V_TASKS: {
    ui_tasks_sync_sel(a);
    ui_cursor c = {a->sel_row, a->top_row};
    if (!ui_cursor_key(&c, key, (long)a->m->nrows, h - 1)) return 0;
    a->sel_row = c.sel, a->top_row = c.top;
    a->sel_id = a->m->nrows ? a->m->rows[a->sel_row].task->id : 0;
    return UI_REDRAW;
  }
  case UI_V_EVENTS: return ui_cursor_key(&a->ev, key, (long)a->m->nevents, h - 1) ? UI_REDRAW : 0;
  case UI_V_PICKER: return ui_cursor_key(&a->pick, key, (long)a->nprocs, h - 3) ? UI_REDRAW : 0;
  default: {
    /* Text views scroll: the cursor is the top line. */
    ui_cursor c = {a->text.top, a->text.top};
    long n = a->text_lines - h + 1;
    if (n < 1) n = 1;
    if (!ui_cursor_key(&c, key, n, 1)) return 0;
    a->text.top = a->text.sel = c.sel;
    return UI_REDRAW;
  }
  }
}

static unsigned handle_key(app *a, int key) {
  if (key == KEY_RESIZE) {
    getmaxyx(stdscr, a->rows, a->cols);
    return UI_REDRAW;
  }
  if (a->prompt != UI_PROMPT_NONE) return prompt_key(a, key);
  tm_rebuild(a->m);
  const ui_binding *b = find_binding(ui_views[a->view]->keys, key);
  if (b) {
    unsigned r = b->fn(a, key);
    if (!(r & UI_UNHANDLED) && r) return r;
  }
  unsigned r = nav_key(a, key);
  if (r) return r;
  b = find_binding(ui_global_keys, key);
  if (b) return b->fn(a, key) & ~UI_UNHANDLED;
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* drawing                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static void fmt_clock(double ms, char *out, size_t n) {
  long s = (long)(ms / 1000);
  if (s >= 3600)
    snprintf(out, n, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else
    snprintf(out, n, "%02ld:%02ld", s / 60, s % 60);
}

static void draw_header(app *a) {
  tm_model *m = a->m;
  char buf[512];
  int x = ui_put(0, 0, "taskscope-top", a->cols, ui_attr(R_TITLE));
  const char *prog = a->replay ? a->rp.program : (a->sess.program[0] ? a->sess.program : "?");
  long long pid = a->replay ? (long long)a->rp.pid : (long long)(a->sess.pid ? a->sess.pid : 0);
  if (m->program) prog = m->program;
  if (m->pid) pid = (long long)m->pid;
  snprintf(buf, sizeof buf, "  %s (pid %lld)  ", prog, pid);
  x += ui_put(0, x, buf, a->cols - x, (int)A_BOLD);
  if (a->replay) {
    char pos[32], dur[32];
    fmt_clock(a->rp.pos_ms, pos, sizeof pos);
    fmt_clock(a->rp.duration_ms, dur, sizeof dur);
    snprintf(buf, sizeof buf, a->rp.speed >= 1 ? "REPLAY %s / %s x%.1f" : "REPLAY %s / %s x%.3g", pos, dur,
             a->rp.speed);
    x += ui_put(0, x, buf, a->cols - x, ui_attr(R_INFO) | (int)A_BOLD);
    if (a->rp.paused) {
      const char *p = a->rp.pos_ms >= a->rp.duration_ms ? "  END (p plays again)" : "  PAUSED";
      x += ui_put(0, x, p, a->cols - x, ui_attr(R_WARN));
    }
    if (a->rp.started[0]) {
      snprintf(buf, sizeof buf, "  recorded %s", a->rp.started);
      x += ui_put(0, x, buf, a->cols - x, ui_attr(R_DIM));
    }
  } else {
    const ts_sess *s = &a->sess;
    switch (s->state) {
    case TS_SESS_LIVE:
      snprintf(buf, sizeof buf, "%s connected", ui_g.dot_on);
      x += ui_put(0, x, buf, a->cols - x, ui_attr(R_GOOD));
      if (s->connects > 1) {
        snprintf(buf, sizeof buf, " (reconnected %lld times)", (long long)s->connects - 1);
        x += ui_put(0, x, buf, a->cols - x, ui_attr(R_DIM));
      }
      break;
    case TS_SESS_HELLO:
    case TS_SESS_SUBSCRIBING:
      x += ui_put(0, x, "connecting...", a->cols - x, ui_attr(R_WARN));
      break;
    case TS_SESS_DOWN:
      snprintf(buf, sizeof buf, "%s disconnected %s retrying: %.400s", ui_g.dot_off, ui_g.dash,
               s->err);
      x += ui_put(0, x, buf, a->cols - x, ui_attr(R_BAD));
      break;
    }
    if (a->paused) {
      snprintf(buf, sizeof buf, "  PAUSED (%zu updates waiting; p resumes)",
               json_array_size(a->queue));
      x += ui_put(0, x, buf, a->cols - x, ui_attr(R_WARN) | (int)A_REVERSE);
    }
  }

  /* line 1: tasks and leaks */
  size_t off = (size_t)snprintf(buf, sizeof buf, "Tasks: %zu live (%zu running, %zu ready, %zu waiting)",
                                m->nlive, m->nstate[TM_RUNNING], m->nstate[TM_READY],
                                m->nstate[TM_WAITING]);
  if (m->spawned >= 0)
    off += (size_t)snprintf(buf + off, sizeof buf - off, "  spawned %lld", (long long)m->spawned);
  if (m->finished_total >= 0 && off < sizeof buf)
    off += (size_t)snprintf(buf + off, sizeof buf - off, "  finished %lld",
                            (long long)m->finished_total);
  x = ui_put(1, 0, buf, a->cols, (int)A_NORMAL);
  long long leaks = (m->leaks_destroyed > 0 ? m->leaks_destroyed : 0) +
                    (m->leaks_unretrieved > 0 ? m->leaks_unretrieved : 0) +
                    (m->leaks_pending > 0 ? m->leaks_pending : 0);
  snprintf(buf, sizeof buf, "   Leaks: %lld destroyed_pending, %lld unretrieved_error",
           (long long)(m->leaks_destroyed > 0 ? m->leaks_destroyed : 0),
           (long long)(m->leaks_unretrieved > 0 ? m->leaks_unretrieved : 0));
  x += ui_put(1, x, buf, a->cols - x, leaks ? ui_attr(R_BAD) : (int)A_NORMAL);
  snprintf(buf, sizeof buf, "   Events: %zu (e)", m->nevents);
  ui_put(1, x, buf, a->cols - x, (int)A_NORMAL);

  /* line 2: loop, drops, the sparkline, filter, status */
  double lag = tm_lag_ms(m), stall = tm_stalled_ms(m);
  if (isnan(lag))
    snprintf(buf, sizeof buf, "Loop lag -");
  else
    snprintf(buf, sizeof buf, "Loop lag %.1f ms", lag);
  x = ui_put(2, 0, buf, a->cols, lag > 100 ? ui_attr(R_WARN) : (int)A_NORMAL);
  if (!isnan(stall) && stall > 0) {
    snprintf(buf, sizeof buf, "  STALLED %.0f ms", stall);
    x += ui_put(2, x, buf, a->cols - x, ui_attr(R_BAD));
  }
  snprintf(buf, sizeof buf, "   Dropped events %lld", (long long)(m->dropped_events > 0 ? m->dropped_events : 0));
  x += ui_put(2, x, buf, a->cols - x, m->dropped_events > 0 ? ui_attr(R_WARN) : (int)A_NORMAL);
  int samples[TM_SPARK_SAMPLES];
  size_t ns = tm_spark(m, samples, 40);
  if (ns > 0) {
    x += ui_put(2, x, "   Tasks ", a->cols - x, (int)A_NORMAL);
    int hi = 0;
    for (size_t i = 0; i < ns; i++)
      if (samples[i] > hi) hi = samples[i];
    for (size_t i = 0; i < ns; i++) {
      /* Scaled from zero, so a steady count looks steady. */
      int lvl = hi > 0 ? (int)((double)samples[i] * 7.0 / hi + 0.5) : 0;
      x += ui_put(2, x, ui_g.spark[lvl], a->cols - x, ui_attr(R_INFO));
    }
    snprintf(buf, sizeof buf, " %d", samples[ns - 1]);
    x += ui_put(2, x, buf, a->cols - x, (int)A_NORMAL);
  }
  if (*m->filter) {
    snprintf(buf, sizeof buf, "   Filter: %s (%zu shown)", m->filter, m->nrows);
    x += ui_put(2, x, buf, a->cols - x, ui_attr(R_WARN));
  }
  if (a->status[0] && ts_now_ms() < a->status_until) {
    snprintf(buf, sizeof buf, "   %s", a->status);
    ui_put(2, x, buf, a->cols - x, (int)A_BOLD);
  }
}

/* The bottom bar: htop's F-key-less labels, the key then its label in a coloured cell. */
static int bar_item(int y, int x, int w, const char *key, const char *label) {
  int used = ui_put(y, x, key, w, ui_attr(R_BAR_KEY) | (int)A_BOLD);
  char buf[64];
  snprintf(buf, sizeof buf, "%-6s ", label);
  used += ui_put(y, x + used, buf, w - used, ui_attr(R_BAR_LABEL));
  return used + ui_put(y, x + used + 0, "", 0, 0);
}

static const char *first_key_label(const ui_binding *b, char *buf, size_t n) {
  snprintf(buf, n, "%s", b->label);
  char *sp = strchr(buf, ' ');
  if (sp && strcmp(b->label, "Enter") != 0) *sp = '\0';
  return buf;
}

static void draw_bar(app *a) {
  int y = a->rows - 1, x = 0;
  ui_fill(y, 0, (int)A_NORMAL);
  if (a->prompt == UI_PROMPT_FILTER) {
    x = ui_put(y, 0, "Filter: ", a->cols, ui_attr(R_BAR_LABEL));
    x += ui_put(y, x, a->input, a->cols - x - 1, (int)A_BOLD);
    x += ui_put(y, x, "_", 1, (int)A_BLINK);
    ui_put(y, x, "   (Enter keeps it, Esc clears it)", a->cols - x, ui_attr(R_DIM));
    return;
  }
  if (a->prompt == UI_PROMPT_CANCEL) {
    const tm_task *t = tm_find(a->m, a->cancel_id);
    char buf[300];
    snprintf(buf, sizeof buf, "Cancel task %lld \"%s\"? (y/n) ", (long long)a->cancel_id,
             t ? t->name : "?");
    ui_put(y, 0, buf, a->cols, ui_attr(R_WARN) | (int)A_REVERSE);
    return;
  }
  char kb[32];
  const ui_binding *vk = ui_views[a->view]->keys;
  for (const ui_binding *b = vk; b && b->fn; b++)
    if (b->bar) x += bar_item(y, x, a->cols - x, first_key_label(b, kb, sizeof kb), b->bar);
  if (a->view != UI_V_TASKS && a->view != UI_V_PICKER) x += bar_item(y, x, a->cols - x, "Esc", "Back");
  for (const ui_binding *b = ui_global_keys; b->fn; b++) {
    if (!b->bar) continue;
    if (a->view == UI_V_PICKER && b->fn != act_quit && b->fn != act_help) continue;
    if (a->replay && b->fn == act_cancel) continue;
    x += bar_item(y, x, a->cols - x, first_key_label(b, kb, sizeof kb), b->bar);
  }
  if (a->replay) {
    x += bar_item(y, x, a->cols - x, "n", "Step");
    x += bar_item(y, x, a->cols - x, "[]", "Speed");
    x += bar_item(y, x, a->cols - x, "<>", "Seek");
    x += bar_item(y, x, a->cols - x, "gG", "Start/End");
  }
}

static void draw(app *a) {
  getmaxyx(stdscr, a->rows, a->cols);
  erase();
  if (a->rows < 6 || a->cols < 40) {
    ui_put(0, 0, "taskscope-top: the terminal is too small", a->cols, (int)A_BOLD);
    refresh();
    return;
  }
  if (a->view == UI_V_PICKER) {
    ui_put(0, 0, "taskscope-top", a->cols, ui_attr(R_TITLE));
    ui_views[UI_V_PICKER]->draw(a, 2, a->rows - 3);
  } else {
    draw_header(a);
    ui_views[a->view]->draw(a, 3, ui_body_height(a));
  }
  draw_bar(a);
  refresh();
}

/* ------------------------------------------------------------------------------------------ */
/* the loop                                                                                    */
/* ------------------------------------------------------------------------------------------ */

int app_run(app *a) {
  if (!a->queue) a->queue = json_array();
  a->redraw = UI_REDRAW;
  for (;;) {
    if (ui_signal_quit) break;
    double now = ts_now_ms();
    struct pollfd pfd[2] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = -1}};
    int nfds = 1;
    int timeout = 1000;
    if (!a->replay && a->attached) {
      short ev = ts_sess_events(&a->sess);
      if (ev) pfd[1] = (struct pollfd){.fd = a->sess.peer.fd, .events = ev}, nfds = 2;
      if (a->sess.state == TS_SESS_DOWN) {
        double d = a->sess.next_retry_ms - now;
        if (d < timeout) timeout = d < 0 ? 0 : (int)d + 1;
      }
      if (a->sess.state == TS_SESS_HELLO && timeout > 250) timeout = 250;
      if (a->sess.peer.rlen > a->sess.peer.rstart) timeout = 0; /* buffered bytes to handle */
    }
    if (a->replay) {
      double d = rp_next_due(&a->rp);
      if (d >= 0 && d < timeout) timeout = (int)d + 1;
      if (!a->rp.paused && timeout > 250) timeout = 250; /* the clock in the header */
    }
    if (a->status[0] && a->status_until > now) {
      double d = a->status_until - now;
      if (d < timeout) timeout = (int)d + 1;
    }
    int r = poll(pfd, (nfds_t)nfds, timeout);
    if (r < 0 && errno != EINTR) break;
    now = ts_now_ms();

    /* Keys first: everything waiting (KEY_RESIZE comes this way after SIGWINCH). */
    int key;
    while ((key = getch()) != ERR) {
      unsigned f = handle_key(a, key);
      if (f & UI_QUIT) return 0;
      a->redraw |= f;
    }
    if (!a->replay && a->attached) {
      short rev = nfds == 2 && r > 0 ? pfd[1].revents : 0;
      if (ts_sess_io(&a->sess, rev, now, READ_BUDGET, app_on_msg, a)) a->redraw |= UI_REDRAW;
    }
    if (a->replay && rp_advance(&a->rp, a->m, now)) a->redraw |= UI_REDRAW;
    if (a->status[0] && now >= a->status_until) {
      a->status[0] = '\0';
      a->redraw |= UI_REDRAW;
    }
    /* One redraw per pass, whatever asked for it. */
    if (a->redraw) {
      if (a->view == UI_V_TASKS) ui_tasks_sync_sel(a);
      draw(a);
      a->redraw = 0;
    }
  }
  return 0;
}
