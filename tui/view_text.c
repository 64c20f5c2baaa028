/*
 * view_text.c — the scrolling text views: a task's detail, an event's record, and help.
 *
 * Each builds its lines afresh when drawn (a few hundred lines at most: cheap), then draws the
 * ones in view.
 */
#include "ui.h"

#include <curses.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct doc_line {
  int attr;
  char *s;
} doc_line;

typedef struct doc {
  doc_line *l;
  size_t n, cap;
} doc;

static void add(doc *d, int attr, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add(doc *d, int attr, const char *fmt, ...) {
  if (d->n == d->cap) {
    d->cap = d->cap ? d->cap * 2 : 64;
    doc_line *nl = realloc(d->l, d->cap * sizeof *nl);
    if (!nl) abort();
    d->l = nl;
  }
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  d->l[d->n].attr = attr;
  d->l[d->n].s = strdup(buf);
  if (!d->l[d->n].s) abort();
  d->n++;
}

static void doc_free(doc *d) {
  for (size_t i = 0; i < d->n; i++) free(d->l[i].s);
  free(d->l);
}

static void doc_draw(app *a, doc *d, int y0, int h) {
  a->text_lines = (long)d->n;
  ui_cursor_fix(&a->text, (long)d->n, h);
  /* The text views scroll by their top line: keep sel == top. */
  if (a->text.top > (long)d->n - h) a->text.top = (long)d->n - h;
  if (a->text.top < 0) a->text.top = 0;
  for (int i = 0; i < h; i++) {
    long k = a->text.top + i;
    if (k >= (long)d->n) break;
    ui_put(y0 + i, 0, d->l[k].s, a->cols, d->l[k].attr);
  }
  doc_free(d);
}

static const char *js(json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : NULL;
}

/* A FRAME array, one line per frame, as in the runtime's report. */
static void add_frames(doc *d, json_t *frames, const char *indent) {
  if (!json_is_array(frames) || json_array_size(frames) == 0) {
    add(d, ui_attr(R_DIM), "%s(no frames)", indent);
    return;
  }
  size_t i;
  json_t *f;
  json_array_foreach(frames, i, f) {
    const char *ip = js(f, "ip"), *fn = js(f, "function"), *file = js(f, "file");
    const char *module = js(f, "module");
    json_t *line = json_object_get(f, "line");
    char where[600] = "";
    if (file && json_is_integer(line) && json_integer_value(line) > 0)
      snprintf(where, sizeof where, " at %s:%lld", file, (long long)json_integer_value(line));
    else if (file)
      snprintf(where, sizeof where, " at %s", file);
    else if (module) /* as the CLI and the runtime's report: the module of an unknown frame */
      snprintf(where, sizeof where, " (%s)", module);
    add(d, (int)A_NORMAL, "%s#%zu %s in %s%s", indent, i, ip ? ip : "0x?", fn ? fn : "??", where);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* task detail                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static void task_ref(const tm_model *m, int64_t id, char *out, size_t n) {
  const tm_task *t = tm_lookup(m, id);
  if (!t)
    snprintf(out, n, "%lld", (long long)id);
  else
    snprintf(out, n, "%lld \"%s\"%s", (long long)id, t->name, t->live ? "" : " (finished)");
}

static void detail_draw(app *a, int y0, int h) {
  tm_model *m = a->m;
  doc d = {0};
  const tm_task *t = tm_lookup(m, a->detail_id);
  int title = ui_attr(R_TITLE), dim = ui_attr(R_DIM);
  char buf[512], tmp[64];
  if (!t) {
    add(&d, title, "Task %lld", (long long)a->detail_id);
    add(&d, dim, "  (no longer known: it finished and left the history)");
  } else {
    add(&d, title, "Task %lld \"%s\"  %s%s", (long long)t->id, t->name, tm_state_name(t->state),
        t->live ? "" : "  (finished)");
    if (t->parent)
      task_ref(m, t->parent, buf, sizeof buf);
    else
      snprintf(buf, sizeof buf, "none (spawned outside any task)");
    add(&d, (int)A_NORMAL, "  parent      %s", buf);
    add(&d, (int)A_NORMAL, "  runtime     %lld", (long long)t->runtime);
    double now = m->time_ms;
    tsc_fmt_duration(tmp, sizeof tmp, now - t->created_ms);
    char fr[64] = "-";
    if (!isnan(t->first_run_ms) && !isnan(t->created_ms))
      tsc_fmt_duration(fr, sizeof fr, t->first_run_ms - t->created_ms);
    add(&d, (int)A_NORMAL, "  age         %s   (created at %.0f ms; first run %s after)", tmp,
        t->created_ms, fr);
    char busy[32];
    tsc_fmt_duration(busy, sizeof busy, t->busy_ms);
    add(&d, (int)A_NORMAL, "  switches    %lld   busy %s", (long long)t->switches,
        m->have_busy ? busy : "(not reported by this server)");
    if (!t->live) {
      tsc_fmt_duration(tmp, sizeof tmp, t->finished_ms - t->created_ms);
      add(&d, t->state == TM_FAILED ? ui_attr(R_BAD) : (int)A_NORMAL,
          "  finished    %s at %.0f ms (lived %s)%s%s%s", tm_state_name(t->state),
          t->finished_ms, tmp, t->error_name ? ", error " : "",
          t->error_name ? t->error_name : "", "");
    }
    ui_fmt_awaiting(m, t, buf, sizeof buf);
    add(&d, (int)A_NORMAL, "  awaits      %s", *buf ? buf : "nothing");
    tm_task *by[8];
    size_t nby = t->live ? tm_awaited_by(m, t->id, by, 8) : 0;
    if (nby == 0) {
      add(&d, (int)A_NORMAL, "  awaited by  no task");
    } else {
      size_t off = 0;
      buf[0] = '\0';
      for (size_t i = 0; i < nby && i < 8 && off < sizeof buf; i++)
        off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%lld \"%s\"", i ? ", " : "",
                                (long long)by[i]->id, by[i]->name);
      add(&d, (int)A_NORMAL, "  awaited by  %s%s", buf, nby > 8 ? ", ..." : "");
    }
    if (t->live) {
      size_t nc = 0, off = 0;
      buf[0] = '\0';
      for (tm_task *c = t->first_child; c; c = c->next_sib, nc++)
        if (nc < 6 && off < sizeof buf)
          off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%lld \"%s\"", nc ? ", " : "",
                                  (long long)c->id, c->name);
      add(&d, (int)A_NORMAL, "  children    %zu live%s%s%s", nc, nc ? ": " : "", buf,
          nc > 6 ? ", ..." : "");
    }
  }
  add(&d, (int)A_NORMAL, "%s", "");
  json_t *w = a->where;
  const char *method = js(w, "method");
  if (json_is_true(json_object_get(w, "running"))) {
    add(&d, title, "Current stack");
    add(&d, dim, "  (the task is running: it has no suspended stack)");
  } else {
    add(&d, title, "Current stack (suspended at%s%s)", method ? ", method " : "",
        method ? method : "");
    if (w)
      add_frames(&d, json_object_get(w, "suspended_at"), "  ");
    else
      add(&d, dim, "  %s", a->where_note[0] ? a->where_note : "(not fetched)");
  }
  add(&d, (int)A_NORMAL, "%s", "");
  add(&d, title, "Created at");
  if (w)
    add_frames(&d, json_object_get(w, "created_at"), "  ");
  else
    add(&d, dim, "  %s", a->where_note[0] ? a->where_note : "(not fetched)");
  /* Leak records about this task: the error and where it was raised, or why it is stuck. */
  for (size_t i = 0; i < m->nevents; i++) {
    tm_event *e = tm_event_at(m, i);
    if (e->kind != TM_EV_LEAK || e->task_id != a->detail_id) continue;
    add(&d, (int)A_NORMAL, "%s", "");
    add(&d, ui_attr(R_BAD), "Leak record: %s", e->what);
    add(&d, (int)A_NORMAL, "  %s", e->summary);
    json_t *err = json_object_get(e->json, "error");
    if (json_is_object(err)) {
      add(&d, (int)A_NORMAL, "  error       %s (%lld): %s", js(err, "name") ? js(err, "name") : "?",
          (long long)json_integer_value(json_object_get(err, "code")),
          js(err, "message") ? js(err, "message") : "");
      add(&d, title, "  Raised at");
      add_frames(&d, json_object_get(e->json, "raised_at"), "    ");
    }
    json_t *dropped = json_object_get(e->json, "dropped_at");
    if (json_array_size(dropped) > 0) {
      add(&d, title, "  Last completer dropped at");
      add_frames(&d, dropped, "    ");
    }
    if (!w && json_array_size(json_object_get(e->json, "suspended_at")) > 0) {
      add(&d, title, "  Suspended at (when recorded)");
      add_frames(&d, json_object_get(e->json, "suspended_at"), "    ");
    }
  }
  doc_draw(a, &d, y0, h);
}

static unsigned act_refresh(app *a, int key) {
  (void)key;
  ui_request_where(a);
  return UI_REDRAW;
}

static const ui_binding detail_keys[] = {
    {{'r'}, "r", "fetch the current stack again", "Refresh", act_refresh},
    {{0}, NULL, NULL, NULL, NULL},
};

const ui_view_class ui_view_detail = {"Task detail", detail_draw, detail_keys};

/* ------------------------------------------------------------------------------------------ */
/* event record                                                                                */
/* ------------------------------------------------------------------------------------------ */

/* The record's headline as the runtime's report writes it, then its kind when not in it. */
static void add_leak_headline(doc *d, const char *kind, const char *reason) {
  const char *h = tsc_leak_headline(kind, reason);
  if (!h) h = kind && strcmp(kind, "pending") == 0 ? "Task is still pending" : "Leak record";
  if (kind && !strstr(h, kind))
    add(d, ui_attr(R_BAD), "%s (%s)", h, kind);
  else
    add(d, ui_attr(R_BAD), "%s", h);
}

static void event_draw(app *a, int y0, int h) {
  tm_model *m = a->m;
  doc d = {0};
  int title = ui_attr(R_TITLE);
  tm_event *e = NULL;
  for (size_t i = 0; i < m->nevents; i++)
    if (tm_event_at(m, i)->seq == a->ev_sel_seq) e = tm_event_at(m, i);
  if (!e) {
    add(&d, ui_attr(R_DIM), "(this event is no longer in the list)");
    doc_draw(a, &d, y0, h);
    return;
  }
  json_t *j = e->json;
  char when[64] = "before the inspector attached";
  if (!isnan(e->time_ms) && !isnan(m->time_ms)) {
    tsc_fmt_duration(when, sizeof when, m->time_ms - e->time_ms);
    strncat(when, " ago", sizeof when - strlen(when) - 1);
  }
  if (e->kind == TM_EV_LEAK) {
    json_t *task = json_object_get(j, "task");
    add_leak_headline(&d, e->what, js(j, "reason"));
    add(&d, (int)A_NORMAL, "  task        %lld \"%s\"", (long long)e->task_id,
        e->task_name ? e->task_name : "?");
    json_t *chain = json_object_get(j, "chain");
    if (json_array_size(chain) > 0) {
      char buf[512] = "";
      size_t off = 0, i;
      json_t *c;
      json_array_foreach(chain, i, c) {
        if (off >= sizeof buf) break;
        off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%lld \"%s\"", i ? " <- " : "",
                                (long long)json_integer_value(json_object_get(c, "id")),
                                js(c, "name") ? js(c, "name") : "?");
      }
      add(&d, (int)A_NORMAL, "  spawned by  %s", buf);
    }
    add(&d, (int)A_NORMAL, "  state       %s", js(task, "state") ? js(task, "state") : "?");
    json_t *aw = json_object_get(task, "awaiting");
    if (json_is_object(aw)) {
      json_t *aid = json_object_get(aw, "id");
      char idbuf[32] = "";
      if (json_is_integer(aid))
        snprintf(idbuf, sizeof idbuf, " %lld", (long long)json_integer_value(aid));
      add(&d, (int)A_NORMAL, "  awaiting    %s%s", js(aw, "kind") ? js(aw, "kind") : "?", idbuf);
    }
    if (js(j, "reason")) add(&d, (int)A_NORMAL, "  reason      %s", js(j, "reason"));
    add(&d, (int)A_NORMAL, "  recorded    %s", when);
    json_t *err = json_object_get(j, "error");
    if (json_is_object(err))
      add(&d, ui_attr(R_BAD), "  error       %s (%lld): %s",
          js(err, "name") ? js(err, "name") : "?",
          (long long)json_integer_value(json_object_get(err, "code")),
          js(err, "message") ? js(err, "message") : "");
    static const struct {
      const char *key, *label;
    } stacks[] = {{"created_at", "Created at"},
                  {"suspended_at", "Suspended at"},
                  {"raised_at", "Raised at"},
                  {"dropped_at", "Last completer dropped at"}};
    for (size_t i = 0; i < sizeof stacks / sizeof stacks[0]; i++) {
      json_t *f = json_object_get(j, stacks[i].key);
      if (json_array_size(f) == 0) continue;
      add(&d, (int)A_NORMAL, "%s", "");
      add(&d, title, "%s", stacks[i].label);
      add_frames(&d, f, "  ");
    }
  } else {
    add(&d, ui_attr(R_WARN), "Warning: %s", e->what);
    add(&d, (int)A_NORMAL, "  %s", e->summary);
    add(&d, (int)A_NORMAL, "  when        %s", when);
    json_t *rt = json_object_get(j, "runtime");
    if (json_is_integer(rt)) add(&d, (int)A_NORMAL, "  runtime     %lld", (long long)json_integer_value(rt));
    json_t *st = json_object_get(j, "stack");
    if (json_is_array(st)) {
      add(&d, (int)A_NORMAL, "%s", "");
      add(&d, title, "%s", strcmp(e->what, "loop_stalled") == 0 ? "The loop's stack while stalled"
                                                                 : "Stack");
      add_frames(&d, st, "  ");
    }
  }
  doc_draw(a, &d, y0, h);
}

const ui_view_class ui_view_event = {"Event", event_draw, NULL};

/* ------------------------------------------------------------------------------------------ */
/* help                                                                                        */
/* ------------------------------------------------------------------------------------------ */

static void add_keys(doc *d, const ui_binding *b) {
  for (; b && b->fn; b++) add(d, (int)A_NORMAL, "  %-14s %s", b->label, b->help);
}

static void help_draw(app *a, int y0, int h) {
  doc d = {0};
  int title = ui_attr(R_TITLE);
  add(&d, title, "taskscope-top " TASKSCOPE_VERSION " — live view of a program's async tasks");
  add(&d, (int)A_NORMAL, "%s", "");
  add(&d, title, "Everywhere");
  add(&d, (int)A_NORMAL, "  %-14s %s", "Up Down j k", "move");
  add(&d, (int)A_NORMAL, "  %-14s %s", "PgUp PgDn", "a page");
  add(&d, (int)A_NORMAL, "  %-14s %s", "Home End", "first / last");
  add_keys(&d, ui_global_keys);
  static const ui_view_id order[] = {UI_V_TASKS, UI_V_DETAIL, UI_V_EVENTS};
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
    const ui_view_class *vc = ui_views[order[i]];
    add(&d, (int)A_NORMAL, "%s", "");
    add(&d, title, "%s view", vc->name);
    add_keys(&d, vc->keys);
  }
  add(&d, (int)A_NORMAL, "%s", "");
  add(&d, title, "Columns");
  add(&d, (int)A_NORMAL, "  ID task id; STATE ready/running/waiting/...; AGE since spawn; BUSY time "
                    "on the CPU (when the");
  add(&d, (int)A_NORMAL, "  server reports it); SWITCH times it was switched in; AWAITING what it "
                    "waits for; NAME (tree lines in");
  add(&d, (int)A_NORMAL, "  the tree view; ▸/> marks a collapsed subtree, (+N) its hidden tasks).");
  add(&d, (int)A_NORMAL, "  The filter matches names and the functions of stacks already fetched "
                    "(Enter on a task).");
  add(&d, (int)A_NORMAL, "%s", "");
  add(&d, title, "Header");
  add(&d, (int)A_NORMAL, "  live tasks by state, loop lag, dropped events, leak records so far, the "
                    "connection, and the");
  add(&d, (int)A_NORMAL, "  live task count over the last two minutes. Esc or ? leaves this screen.");
  doc_draw(a, &d, y0, h);
}

const ui_view_class ui_view_help = {"Help", help_draw, NULL};
