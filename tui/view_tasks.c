/*
 * view_tasks.c — the main view: the task tree, or the flat list sorted by any column.
 */
#include "ui.h"

#include <curses.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Column widths (the name takes the rest). */
enum { W_ID = 8, W_STATE = 10, W_AGE = 8, W_BUSY = 8, W_SW = 9 };
/* AWAITING narrows in narrow terminals, leaving room for the names (set at each draw). */
static int W_AWAIT = 28;

tm_task *ui_selected_task(app *a) {
  tm_rebuild(a->m);
  if (a->sel_row < 0 || (size_t)a->sel_row >= a->m->nrows) return NULL;
  return a->m->rows[a->sel_row].task;
}

void ui_tasks_sync_sel(app *a) {
  tm_model *m = a->m;
  tm_rebuild(m);
  tm_task *t = a->sel_id ? tm_find(m, a->sel_id) : NULL;
  if (t && t->row >= 0) {
    a->sel_row = t->row;
  } else {
    if (a->sel_row >= (long)m->nrows) a->sel_row = (long)m->nrows - 1;
    if (a->sel_row < 0) a->sel_row = 0;
    a->sel_id = m->nrows ? m->rows[a->sel_row].task->id : 0;
  }
  ui_cursor c = {a->sel_row, a->top_row};
  ui_cursor_fix(&c, (long)m->nrows, ui_body_height(a) - 1);
  a->sel_row = c.sel;
  a->top_row = c.top;
}

static void put_col(int y, int *x, const char *s, int w, int right, int attr) {
  char buf[64];
  if (right)
    snprintf(buf, sizeof buf, "%*.*s ", w - 1, w - 1, s);
  else
    snprintf(buf, sizeof buf, "%-*.*s ", w - 1, w - 1, s);
  ui_put(y, *x, buf, w, attr);
  *x += w;
}

static void draw_colhead(app *a, int y) {
  tm_model *m = a->m;
  int x = 0, attr = ui_attr(R_COLHEAD);
  ui_fill(y, 0, attr);
  const struct {
    tm_col col;
    int w, right;
  } cols[] = {{TM_COL_ID, W_ID, 1},       {TM_COL_STATE, W_STATE, 0}, {TM_COL_AGE, W_AGE, 1},
              {TM_COL_BUSY, W_BUSY, 1},   {TM_COL_SWITCHES, W_SW, 1}, {TM_COL_AWAIT, W_AWAIT, 0},
              {TM_COL_NAME, 0, 0}};
  for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
    if (cols[i].col == TM_COL_BUSY && !m->have_busy) continue;
    char label[40];
    const char *name = cols[i].col == TM_COL_SWITCHES ? "SWITCH" : tm_col_name(cols[i].col);
    if (cols[i].col == TM_COL_NAME && m->tree) name = "NAME (tree)";
    int sorted = cols[i].col == m->sort_col && !(m->tree && cols[i].col == TM_COL_ID && 0);
    snprintf(label, sizeof label, "%s%s", name, sorted ? (m->sort_desc ? "v" : "^") : "");
    int at = sorted ? attr | (int)A_BOLD : attr;
    if (cols[i].w)
      put_col(y, &x, label, cols[i].w, cols[i].right, at);
    else
      ui_put(y, x, label, a->cols - x, at);
  }
}

/* The tree lines before a name: one column group per ancestor level. */
static int draw_tree_prefix(int y, int x, int w, const tm_row *r, int attr) {
  int used = 0;
  if (r->depth == 0) return 0;
  uint32_t levels = r->depth;
  uint32_t first = 1;
  /* Deep trees: show the last levels only, after a depth marker. */
  if ((int)levels * 3 > w / 2) {
    char mark[24];
    uint32_t keep = (uint32_t)(w / 2 / 3);
    if (keep < 1) keep = 1;
    first = levels - keep + 1;
    snprintf(mark, sizeof mark, "[%u]", (unsigned)r->depth);
    used += ui_put(y, x + used, mark, w - used, attr);
  }
  for (uint32_t d = first; d < levels; d++) {
    int cont = d < 64 && ((r->lines >> d) & 1);
    used += ui_put(y, x + used, cont ? ui_g.vline : ui_g.blank, w - used, attr);
  }
  used += ui_put(y, x + used, r->last ? ui_g.corner : ui_g.tee, w - used, attr);
  return used;
}

static void draw_row(app *a, int y, const tm_row *r, int selected) {
  tm_model *m = a->m;
  const tm_task *t = r->task;
  int base = selected ? ui_attr(R_SELECTED) : (int)A_NORMAL;
  int dim = (!selected && !t->match) ? ui_attr(R_DIM) : 0;
  if (selected) ui_fill(y, 0, base);
  int x = 0;
  char buf[128];
  snprintf(buf, sizeof buf, "%lld", (long long)t->id);
  put_col(y, &x, buf, W_ID, 1, base | dim);
  put_col(y, &x, tm_state_name(t->state), W_STATE, 0,
          selected ? base : (dim ? dim : ui_state_attr(t->state)));
  double age = isnan(m->time_ms) ? NAN : m->time_ms - t->created_ms;
  tsc_fmt_duration(buf, sizeof buf, age);
  put_col(y, &x, buf, W_AGE, 1, base | dim);
  if (m->have_busy) {
    tsc_fmt_duration(buf, sizeof buf, t->busy_ms);
    put_col(y, &x, buf, W_BUSY, 1, base | dim);
  }
  snprintf(buf, sizeof buf, "%lld", (long long)t->switches);
  put_col(y, &x, buf, W_SW, 1, base | dim);
  ui_fmt_awaiting(m, t, buf, sizeof buf);
  put_col(y, &x, buf, W_AWAIT, 0, base | dim);
  int w = a->cols - x;
  if (m->tree) {
    int used = draw_tree_prefix(y, x, w, r, selected ? base : ui_attr(R_TREE));
    x += used, w -= used;
    if (t->collapsed && t->first_child)
      used = ui_put(y, x, ui_g.collapsed, w, selected ? base : ui_attr(R_INFO)), x += used,
      w -= used;
  }
  int used = ui_put(y, x, t->name, w, base | dim | (t->match && *m->filter ? (int)A_BOLD : 0));
  x += used, w -= used;
  if (m->tree && t->collapsed && t->first_child) {
    snprintf(buf, sizeof buf, " (+%u)", (unsigned)t->ndesc);
    ui_put(y, x, buf, w, selected ? base : ui_attr(R_INFO));
  }
}

static void tasks_draw(app *a, int y0, int h) {
  tm_model *m = a->m;
  W_AWAIT = a->cols >= 140 ? 28 : a->cols >= 100 ? 20 : 13;
  ui_tasks_sync_sel(a);
  draw_colhead(a, y0);
  h--;
  if (m->nrows == 0) {
    const char *msg = !m->have_data ? "(waiting for the first snapshot)"
                      : *m->filter  ? "(no task matches the filter; Esc clears it)"
                                    : "(no live tasks)";
    ui_put(y0 + 2, 2, msg, a->cols - 4, ui_attr(R_DIM));
    return;
  }
  for (int i = 0; i < h; i++) {
    long r = a->top_row + i;
    if (r >= (long)m->nrows) break;
    draw_row(a, y0 + 1 + i, &m->rows[r], r == a->sel_row);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* keys                                                                                        */
/* ------------------------------------------------------------------------------------------ */

static unsigned act_detail(app *a, int key) {
  (void)key;
  tm_task *t = ui_selected_task(a);
  if (!t) return 0;
  ui_open_detail(a, t->id);
  return UI_REDRAW;
}

static unsigned act_collapse(app *a, int key) {
  tm_model *m = a->m;
  tm_task *t = ui_selected_task(a);
  if (!m->tree || !t) return key == KEY_LEFT || key == KEY_RIGHT ? UI_UNHANDLED : 0;
  int want = key == '-' || key == KEY_LEFT ? 1 : key == '+' || key == KEY_RIGHT ? 0 : -1;
  if (key == KEY_LEFT && (t->collapsed || !t->first_child) && t->tparent) {
    /* Left on a leaf or a collapsed node: go to the parent, as in file managers. */
    a->sel_id = t->tparent->id;
    ui_tasks_sync_sel(a);
    return UI_REDRAW;
  }
  tm_set_collapsed(m, t, want);
  ui_tasks_sync_sel(a);
  return UI_REDRAW;
}

static unsigned act_tree(app *a, int key) {
  (void)key;
  tm_set_tree(a->m, !a->m->tree);
  ui_tasks_sync_sel(a);
  ui_set_status(a, "%s view", a->m->tree ? "tree" : "list");
  return UI_REDRAW;
}

static unsigned act_sort(app *a, int key) {
  tm_model *m = a->m;
  if (key == 'S') {
    tm_set_sort(m, m->sort_col, !m->sort_desc);
  } else {
    tm_col c = (tm_col)((m->sort_col + 1) % TM__NCOLS);
    if (c == TM_COL_BUSY && !m->have_busy) c = (tm_col)((c + 1) % TM__NCOLS);
    tm_set_sort(m, c, 0);
  }
  ui_tasks_sync_sel(a);
  ui_set_status(a, "sorted by %s, %s%s", tm_col_name(m->sort_col),
                m->sort_desc ? "descending" : "ascending",
                m->tree ? " (siblings in the tree; t for the flat list)" : "");
  return UI_REDRAW;
}

static unsigned act_filter(app *a, int key) {
  (void)key;
  a->prompt = UI_PROMPT_FILTER;
  snprintf(a->input, sizeof a->input, "%s", a->m->filter);
  return UI_REDRAW;
}

static unsigned act_escape(app *a, int key) {
  (void)key;
  if (*a->m->filter) {
    tm_set_filter(a->m, "");
    ui_tasks_sync_sel(a);
    ui_set_status(a, "filter cleared");
    return UI_REDRAW;
  }
  return 0;
}

static const ui_binding tasks_keys[] = {
    {{'\n', '\r', KEY_ENTER}, "Enter", "the selected task's detail (stack, awaits, timings)",
     "Detail", act_detail},
    {{' ', '+', '-'}, "Space + -", "collapse / expand the selected subtree (tree view)", NULL,
     act_collapse},
    {{KEY_LEFT, KEY_RIGHT}, "Left Right", "collapse / expand (Left on a leaf: go to the parent)",
     NULL, act_collapse},
    {{'t'}, "t", "tree view / flat list", "Tree", act_tree},
    {{'s', 'S'}, "s S", "sort by the next column / reverse the order", "Sort", act_sort},
    {{'/'}, "/", "filter by name or function (typing narrows at once; Enter keeps, Esc clears)",
     "Filter", act_filter},
    {{27}, "Esc", "clear the filter", NULL, act_escape},
    {{0}, NULL, NULL, NULL, NULL},
};

const ui_view_class ui_view_tasks = {"Tasks", tasks_draw, tasks_keys};
