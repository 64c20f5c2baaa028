/*
 * cmd_tree.c — `taskscope tree PID`: the live tasks under their parents.
 *
 * Roots are, in order: tasks without a parent; then, per finished parent (by id), the tasks
 * whose parent is no longer live, under a "(parent N finished)" root; then any tasks whose
 * parent links form a loop (only possible with a broken server), so every task is shown once.
 * The walk is iterative (no recursion), so a chain of 100k nested tasks is fine; the JSON is
 * written as it is walked for the same reason.
 */
#include "cli.h"
#include "common.h"
#include "text.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct tree {
  const ts_snapshot *s;
  size_t *child_start; /* children of task i: kids[child_start[i] .. child_start[i + 1]) */
  size_t *kids;
  size_t *orphans; /* indices of tasks whose parent is not live, by (parent, id) */
  size_t norphans;
  unsigned char *seen;
} tree;

typedef struct visitor {
  /* A pseudo root: the orphans of a finished parent, or (is_cycle) the tasks in a loop. */
  void (*group)(struct visitor *v, const tree *tr, int is_cycle, long long parent, int first);
  void (*open)(struct visitor *v, const tree *tr, size_t i, size_t depth, int first, int last);
  void (*close)(struct visitor *v, const tree *tr, size_t i); /* after the children */
  void (*group_close)(struct visitor *v);
} visitor;

static int parent_index(const ts_snapshot *s, const ts_task *t, size_t *out) {
  if (!t->has_parent) return 0;
  const ts_task *p = ts_snapshot_task(s, t->parent);
  if (!p) return 0;
  *out = (size_t)(p - s->tasks);
  return 1;
}

static int cmp_orphan(const void *a, const void *b, void *arg) {
  const ts_snapshot *s = arg;
  const ts_task *x = &s->tasks[*(const size_t *)a], *y = &s->tasks[*(const size_t *)b];
  if (x->parent != y->parent) return x->parent < y->parent ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

static void tree_build(tree *tr, const ts_snapshot *s) {
  size_t n = s->ntasks;
  tr->s = s;
  tr->child_start = ts_xmalloc((n + 1) * sizeof(size_t));
  tr->kids = ts_xmalloc(n * sizeof(size_t));
  tr->orphans = ts_xmalloc(n * sizeof(size_t));
  tr->seen = ts_xmalloc(n);
  memset(tr->seen, 0, n);
  memset(tr->child_start, 0, (n + 1) * sizeof(size_t));
  tr->norphans = 0;
  size_t p;
  for (size_t i = 0; i < n; i++) {
    const ts_task *t = &s->tasks[i];
    if (parent_index(s, t, &p))
      tr->child_start[p + 1]++;
    else if (t->has_parent)
      tr->orphans[tr->norphans++] = i;
  }
  for (size_t i = 0; i < n; i++) tr->child_start[i + 1] += tr->child_start[i];
  size_t *fill = ts_xmalloc((n + 1) * sizeof(size_t));
  memcpy(fill, tr->child_start, (n + 1) * sizeof(size_t));
  for (size_t i = 0; i < n; i++) /* tasks are sorted by id, so children are too */
    if (parent_index(s, &s->tasks[i], &p)) tr->kids[fill[p]++] = i;
  free(fill);
  qsort_r(tr->orphans, tr->norphans, sizeof(size_t), cmp_orphan, (void *)s);
}

static void tree_free(tree *tr) {
  free(tr->child_start);
  free(tr->kids);
  free(tr->orphans);
  free(tr->seen);
}

typedef struct frame {
  size_t i, depth;
  int first, last, closing;
} frame;

typedef struct stack {
  frame *f;
  size_t n, cap;
} stack;

static void push(stack *st, frame f) {
  if (st->n == st->cap) {
    st->cap = st->cap ? st->cap * 2 : 256;
    st->f = ts_xrealloc(st->f, st->cap * sizeof *st->f);
  }
  st->f[st->n++] = f;
}

/* Walks the subtrees of starts[0..n) (siblings at `depth`), depth first, children by id.
 * `more`: siblings were already shown before starts[0] (so it is not the first). */
static void walk(visitor *v, tree *tr, stack *st, const size_t *starts, size_t n, size_t depth,
                 int more) {
  size_t base = st->n, m = 0;
  for (size_t k = n; k-- > 0;) { /* pushed in reverse, so the first comes out first */
    if (tr->seen[starts[k]]) continue;
    tr->seen[starts[k]] = 1;
    push(st, (frame){.i = starts[k], .depth = depth, .last = m == 0});
    m++;
  }
  if (m && !more) st->f[st->n - 1].first = 1;
  while (st->n > base) {
    frame f = st->f[--st->n];
    if (f.closing) {
      if (v->close) v->close(v, tr, f.i);
      continue;
    }
    v->open(v, tr, f.i, f.depth, f.first, f.last);
    push(st, (frame){.i = f.i, .closing = 1});
    size_t a = tr->child_start[f.i], b = tr->child_start[f.i + 1], pushed = 0;
    for (size_t k = b; k-- > a;) {
      size_t c = tr->kids[k];
      if (tr->seen[c]) continue;
      tr->seen[c] = 1;
      push(st, (frame){.i = c, .depth = f.depth + 1, .last = pushed == 0});
      pushed++;
    }
    if (pushed) st->f[st->n - 1].first = 1;
  }
}

static void tree_walk(visitor *v, tree *tr) {
  const ts_snapshot *s = tr->s;
  stack st = {0};
  int first_root = 1;
  /* Real roots. */
  for (size_t i = 0; i < s->ntasks; i++) {
    if (s->tasks[i].has_parent) continue;
    tr->seen[i] = 1;
    v->open(v, tr, i, 0, first_root, 0);
    first_root = 0;
    size_t a = tr->child_start[i], b = tr->child_start[i + 1];
    walk(v, tr, &st, tr->kids + a, b - a, 1, 0);
    if (v->close) v->close(v, tr, i);
  }
  /* Orphans, one group per finished parent. */
  for (size_t k = 0; k < tr->norphans;) {
    long long parent = s->tasks[tr->orphans[k]].parent;
    size_t e = k;
    while (e < tr->norphans && s->tasks[tr->orphans[e]].parent == parent) e++;
    v->group(v, tr, 0, parent, first_root);
    first_root = 0;
    walk(v, tr, &st, tr->orphans + k, e - k, 1, 0);
    if (v->group_close) v->group_close(v);
    k = e;
  }
  /* Whatever is left hangs in a parent loop. */
  for (size_t i = 0; i < s->ntasks; i++) {
    if (tr->seen[i]) continue;
    v->group(v, tr, 1, 0, first_root);
    first_root = 0;
    for (size_t j = i; j < s->ntasks; j++)
      if (!tr->seen[j]) walk(v, tr, &st, &j, 1, 1, j != i);
    if (v->group_close) v->group_close(v);
    break;
  }
  free(st.f);
}

/* ------------------------------------------------------------------------------------------ */
/* text                                                                                        */
/* ------------------------------------------------------------------------------------------ */

typedef struct text_visitor {
  visitor v;
  const ts_term *t;
  const char *tee, *elbow, *pipe, *blank, *arrow;
  unsigned char *last; /* last[d]: the node at depth d was its parent's last child */
  size_t cap;
} text_visitor;

static void awaits_text(const text_visitor *tv, const ts_snapshot *s, const ts_task *t) {
  if (!t->await_kind) return;
  const ts_term *term = tv->t;
  printf(" %s%s awaits ", ts_sgr(term, TS_SGR_CYAN), tv->arrow);
  ts_put_clean(stdout, term, t->await_kind);
  if (t->await_has_id) printf(" %lld", t->await_id);
  if (strcmp(t->await_kind, "task") == 0 && t->await_has_id) {
    const char *name = ts_task_name(s, t->await_id);
    if (name) {
      fputs(" (", stdout);
      ts_put_clean(stdout, term, name);
      if (!ts_snapshot_task(s, t->await_id)) fputs(", finished", stdout);
      fputc(')', stdout);
    }
  }
  if (term->color) fputs(TS_SGR_RESET, stdout);
}

static void text_open(visitor *v, const tree *tr, size_t i, size_t depth, int first, int last) {
  (void)first;
  text_visitor *tv = (text_visitor *)v;
  const ts_term *term = tv->t;
  const ts_task *t = &tr->s->tasks[i];
  if (depth >= tv->cap) {
    tv->cap = depth * 2 + 16;
    tv->last = ts_xrealloc(tv->last, tv->cap);
  }
  tv->last[depth] = (unsigned char)last;
  for (size_t d = 1; d < depth; d++) fputs(tv->last[d] ? tv->blank : tv->pipe, stdout);
  if (depth > 0) fputs(last ? tv->elbow : tv->tee, stdout);
  printf("%lld ", t->id);
  fputs(ts_sgr(term, TS_SGR_BOLD), stdout);
  ts_put_clean(stdout, term, *t->name ? t->name : "?");
  if (term->color) fputs(TS_SGR_RESET, stdout);
  const char *sgr = ts_sgr(term, ts_state_sgr(t->state));
  fputs(" [", stdout);
  fputs(sgr, stdout);
  ts_put_clean(stdout, term, t->state);
  if (*sgr) fputs(TS_SGR_RESET, stdout);
  fputc(']', stdout);
  awaits_text(tv, tr->s, t);
  fputc('\n', stdout);
}

static void text_group(visitor *v, const tree *tr, int is_cycle, long long parent, int first) {
  (void)first;
  text_visitor *tv = (text_visitor *)v;
  const ts_term *term = tv->t;
  fputs(ts_sgr(term, TS_SGR_DIM), stdout);
  if (is_cycle) {
    fputs("(tasks whose parents form a loop)", stdout);
  } else {
    printf("(parent %lld finished", parent);
    const ts_finished *f = ts_snapshot_finished(tr->s, parent);
    if (f) {
      fputs(": ", stdout);
      ts_put_clean(stdout, term, *f->name ? f->name : "?");
      fputs(" [", stdout);
      ts_put_clean(stdout, term, f->state);
      fputc(']', stdout);
    }
    fputc(')', stdout);
  }
  if (term->color) fputs(TS_SGR_RESET, stdout);
  fputc('\n', stdout);
}

static void print_text(const ts_ctx *ctx, const ts_snapshot *s, long long pid) {
  const ts_term *t = &ctx->term;
  fputs(ts_sgr(t, TS_SGR_BOLD), stdout);
  ts_put_clean(stdout, t, s->program);
  if (t->color) fputs(TS_SGR_RESET, stdout);
  printf(" (pid %lld): %zu live task%s\n", pid, s->ntasks, s->ntasks == 1 ? "" : "s");
  text_visitor tv = {.v = {.group = text_group, .open = text_open}, .t = t};
  if (t->utf8 && !ctx->ascii) {
    tv.tee = "\u251c\u2500 ";   /* ├─ */
    tv.elbow = "\u2514\u2500 "; /* └─ */
    tv.pipe = "\u2502  ";       /* │ */
    tv.arrow = "\u2192";        /* → */
  } else {
    tv.tee = "|- ";
    tv.elbow = "\\- ";
    tv.pipe = "|  ";
    tv.arrow = "->";
  }
  tv.blank = "   ";
  tree tr;
  tree_build(&tr, s);
  tree_walk(&tv.v, &tr);
  tree_free(&tr);
  free(tv.last);
}

/* ------------------------------------------------------------------------------------------ */
/* JSON, written while walking                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* s is valid UTF-8 (it came through jansson). */
static void put_json_str(FILE *out, const char *s) {
  if (!s) {
    fputs("null", out);
    return;
  }
  fputc('"', out);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(out, "\\%c", *p);
    else if (*p < 0x20)
      fprintf(out, "\\u%04x", *p);
    else
      fputc(*p, out);
  }
  fputc('"', out);
}

static void json_open(visitor *v, const tree *tr, size_t i, size_t depth, int first, int last) {
  (void)v, (void)depth, (void)last;
  const ts_task *t = &tr->s->tasks[i];
  printf("%s{\"id\":%lld,\"name\":", first ? "" : ",", t->id);
  put_json_str(stdout, t->name);
  fputs(",\"state\":", stdout);
  put_json_str(stdout, t->state);
  fputs(",\"awaiting\":", stdout);
  if (t->await_kind) {
    fputs("{\"kind\":", stdout);
    put_json_str(stdout, t->await_kind);
    if (t->await_has_id)
      printf(",\"id\":%lld", t->await_id);
    else
      fputs(",\"id\":null", stdout);
    if (strcmp(t->await_kind, "task") == 0 && t->await_has_id) {
      fputs(",\"name\":", stdout);
      put_json_str(stdout, ts_task_name(tr->s, t->await_id));
    }
    fputc('}', stdout);
  } else {
    fputs("null", stdout);
  }
  fputs(",\"children\":[", stdout);
}

static void json_close(visitor *v, const tree *tr, size_t i) {
  (void)v, (void)tr, (void)i;
  fputs("]}", stdout);
}

static void json_group(visitor *v, const tree *tr, int is_cycle, long long parent, int first) {
  (void)v;
  fputs(first ? "" : ",", stdout);
  if (is_cycle) {
    fputs("{\"cycle\":true,\"children\":[", stdout);
    return;
  }
  const ts_finished *f = ts_snapshot_finished(tr->s, parent);
  printf("{\"finished_parent\":%lld,\"name\":", parent);
  put_json_str(stdout, f ? f->name : NULL);
  fputs(",\"state\":", stdout);
  put_json_str(stdout, f ? f->state : NULL);
  fputs(",\"children\":[", stdout);
}

static void json_group_close(visitor *v) {
  (void)v;
  fputs("]}", stdout);
}

static int print_json(const ts_snapshot *s, long long pid) {
  printf("{\"format\":\"taskscope-tree\",\"version\":1,\"pid\":%lld,\"program\":", pid);
  put_json_str(stdout, s->program);
  if (isfinite(s->time_ms))
    printf(",\"time_ms\":%.15g", s->time_ms);
  else
    fputs(",\"time_ms\":null", stdout);
  fputs(",\"roots\":[", stdout);
  visitor v = {.group = json_group, .open = json_open, .close = json_close,
               .group_close = json_group_close};
  tree tr;
  tree_build(&tr, s);
  tree_walk(&v, &tr);
  tree_free(&tr);
  fputs("]}\n", stdout);
  return 0;
}

int ts_cmd_tree(ts_ctx *ctx) {
  ts_conn c;
  ts_snapshot s;
  int rc = ts_open_snapshot(ctx, ctx->args[0], &c, &s);
  if (rc) return rc;
  long long pid = s.pid ? s.pid : c.pid;
  if (ctx->json)
    rc = print_json(&s, pid);
  else
    print_text(ctx, &s, pid);
  ts_snapshot_free(&s);
  ts_conn_close(&c);
  return rc;
}
