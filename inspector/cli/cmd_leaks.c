/*
 * cmd_leaks.c — `taskscope leaks PID`: the leak records so far, in the runtime's text report
 * format (runtime/src/report.c): one block per group of identical records (same kind, task name
 * and creation stack), at most MAX_GROUPS blocks, then the suppressions and the SUMMARY line.
 */
#include "cli.h"
#include "common.h"
#include "target.h"
#include "text.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define IDS_SHOWN 8
#define MAX_GROUPS 20

typedef struct leak {
  json_t *o;
  const char *kind;
  long long id;
  const char *name;
  long long parent;
  int has_parent;
  const char *state;
  const char *await_kind;
  long long await_id;
  int await_has_id;
  double age_ms;
  const char *reason;
  int suppressed;
  json_t *chain, *error;
  json_t *created_at, *suspended_at, *raised_at, *dropped_at;
  char *key; /* kind, name and creation ips: records with equal keys are grouped; owned */
  size_t index;
} leak;

typedef struct group {
  size_t first; /* index into leaks of the shown record */
  size_t count;
  long long ids[IDS_SHOWN];
} group;

/* ------------------------------------------------------------------------------------------ */
/* checking                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static void parse_leak(ts_jv *v, json_t *o, leak *l, size_t index) {
  *l = (leak){.o = o, .name = "", .state = "?", .age_ms = NAN, .index = index};
  char where[64];
  snprintf(where, sizeof where, "report.leaks[%zu]", index);
  ts_jv_at(v, "%s", where);
  if (!json_is_object(o)) {
    if (!v->failed) {
      v->failed = 1;
      snprintf(v->err, v->errlen, "%s: expected an object", where);
    }
    return;
  }
  ts_jv_str(v, o, "kind", TS_JV_REQUIRED, &l->kind);
  ts_jv_str(v, o, "reason", TS_JV_NULLABLE, &l->reason);
  ts_jv_num(v, o, "age_ms", TS_JV_NULLABLE, &l->age_ms);
  json_t *sup = json_object_get(o, "suppressed");
  if (sup && !json_is_boolean(sup) && !json_is_null(sup) && !v->failed) {
    v->failed = 1;
    snprintf(v->err, v->errlen, "%s.suppressed: expected a boolean", where);
  }
  l->suppressed = json_is_true(sup);
  json_t *task = ts_jv_obj(v, o, "task", TS_JV_REQUIRED);
  l->chain = ts_jv_arr(v, o, "chain", TS_JV_NULLABLE);
  l->error = ts_jv_obj(v, o, "error", TS_JV_NULLABLE);
  if (task) {
    ts_jv_at(v, "%s.task", where);
    ts_jv_int(v, task, "id", TS_JV_REQUIRED, &l->id);
    ts_jv_str(v, task, "name", TS_JV_NULLABLE, &l->name);
    l->has_parent = ts_jv_int(v, task, "parent", TS_JV_NULLABLE, &l->parent);
    ts_jv_str(v, task, "state", TS_JV_NULLABLE, &l->state);
    json_t *aw = ts_jv_obj(v, task, "awaiting", TS_JV_NULLABLE);
    if (aw) {
      ts_jv_at(v, "%s.task.awaiting", where);
      ts_jv_str(v, aw, "kind", TS_JV_REQUIRED, &l->await_kind);
      l->await_has_id = ts_jv_int(v, aw, "id", TS_JV_NULLABLE, &l->await_id);
    }
  }
  size_t i;
  json_t *c;
  if (l->chain) json_array_foreach(l->chain, i, c) {
      ts_jv_at(v, "%s.chain[%zu]", where, i);
      long long id;
      const char *s;
      if (!json_is_object(c) && !v->failed) {
        v->failed = 1;
        snprintf(v->err, v->errlen, "%s: expected an object", v->where);
      }
      ts_jv_int(v, c, "id", TS_JV_REQUIRED, &id);
      ts_jv_str(v, c, "name", TS_JV_NULLABLE, &s);
    }
  if (l->error) {
    ts_jv_at(v, "%s.error", where);
    long long code;
    const char *s;
    ts_jv_int(v, l->error, "code", TS_JV_NULLABLE, &code);
    ts_jv_str(v, l->error, "name", TS_JV_NULLABLE, &s);
    ts_jv_str(v, l->error, "message", TS_JV_NULLABLE, &s);
    ts_jv_str(v, l->error, "description", TS_JV_NULLABLE, &s);
  }
  static const char *const stacks[] = {"created_at", "suspended_at", "raised_at", "dropped_at"};
  json_t **dst[] = {&l->created_at, &l->suspended_at, &l->raised_at, &l->dropped_at};
  for (size_t k = 0; k < 4; k++) {
    char what[96];
    snprintf(what, sizeof what, "%s.%s", where, stacks[k]);
    json_t *f = json_object_get(o, stacks[k]);
    if (ts_jv_frames(v, f, what) == 0 && json_is_array(f)) *dst[k] = f;
  }
}

static char *leak_key(const leak *l) {
  size_t n = strlen(l->kind) + strlen(l->name) + 3, cap = n + 64;
  char *k = ts_xmalloc(cap);
  int len = snprintf(k, cap, "%s%c%s%c", l->kind, 1, l->name, 1);
  size_t off = (size_t)len;
  size_t i;
  json_t *f;
  if (l->created_at) json_array_foreach(l->created_at, i, f) {
      const char *ip = json_string_value(json_object_get(f, "ip"));
      size_t m = strlen(ip) + 2;
      if (off + m + 1 > cap) {
        cap = (off + m + 1) * 2;
        k = ts_xrealloc(k, cap);
      }
      off += (size_t)snprintf(k + off, cap - off, "%s,", ip);
    }
  return k;
}

static int cmp_key(const void *a, const void *b) {
  const leak *x = *(leak *const *)a, *y = *(leak *const *)b;
  int c = strcmp(x->key, y->key);
  if (c) return c;
  return x->index < y->index ? -1 : x->index > y->index;
}

static int cmp_group(const void *a, const void *b) {
  const group *x = a, *y = b;
  return x->first < y->first ? -1 : x->first > y->first;
}

/* Groups the records that are not suppressed, in order of first appearance. */
static group *group_leaks(leak *ls, size_t n, size_t *ngroups) {
  leak **order = ts_xmalloc(n * sizeof *order);
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (!ls[i].suppressed) order[m++] = &ls[i];
  qsort(order, m, sizeof *order, cmp_key);
  group *gs = ts_xmalloc(m * sizeof *gs);
  size_t ng = 0;
  for (size_t i = 0; i < m; i++) {
    if (i == 0 || strcmp(order[i]->key, order[i - 1]->key) != 0)
      gs[ng++] = (group){.first = order[i]->index};
    group *g = &gs[ng - 1];
    if (g->count < IDS_SHOWN) g->ids[g->count] = order[i]->id;
    g->count++;
  }
  qsort(gs, ng, sizeof *gs, cmp_group);
  free(order);
  *ngroups = ng;
  return gs;
}

/* ------------------------------------------------------------------------------------------ */
/* text, as runtime/src/report.c writes it                                                     */
/* ------------------------------------------------------------------------------------------ */

static void put_task(const ts_term *t, long long id, const char *name) {
  printf("%lld", id);
  if (name && *name) {
    fputs(" \"", stdout);
    ts_put_clean(stdout, t, name);
    fputc('"', stdout);
  }
}

static void put_stack(const ts_term *t, const char *title, json_t *frames, int always) {
  if (!frames || json_array_size(frames) == 0) {
    if (always) printf("  %s: (not recorded)\n", title);
    return;
  }
  printf("  %s:\n", title);
  ts_print_frames(stdout, t, frames, "    ");
}

static void put_group(const ts_term *t, const group *g, const leak *l, const char *when) {
  const char *h = tsc_leak_headline(l->kind, l->reason);
  printf("%staskscope: ", ts_sgr(t, TS_SGR_BOLD_RED));
  if (h)
    fputs(h, stdout);
  else if (strcmp(l->kind, "pending") == 0) {
    fputs("Task is still pending at ", stdout);
    ts_put_clean(stdout, t, when);
  } else {
    fputs("leak of kind ", stdout);
    ts_put_clean(stdout, t, l->kind);
  }
  printf("%s\n", t->color ? TS_SGR_RESET : "");

  fputs("  task ", stdout);
  put_task(t, l->id, l->name);
  if (g->count > 1) {
    printf(" (%zu tasks like this; ids ", g->count);
    size_t shown = g->count < IDS_SHOWN ? g->count : IDS_SHOWN;
    for (size_t i = 0; i < shown; i++) printf("%s%lld", i ? ", " : "", g->ids[i]);
    fputs(g->count > IDS_SHOWN ? ", ...)" : ")", stdout);
  }
  fputc('\n', stdout);

  size_t nchain = l->chain ? json_array_size(l->chain) : 0;
  if (nchain > 0 || l->has_parent) {
    fputs("  spawned by ", stdout);
    if (nchain > 0) {
      for (size_t i = 0; i < nchain; i++) {
        json_t *c = json_array_get(l->chain, i);
        if (i) fputs(" <- ", stdout);
        put_task(t, json_integer_value(json_object_get(c, "id")),
                 json_string_value(json_object_get(c, "name")));
      }
    } else {
      put_task(t, l->parent, NULL);
    }
    fputc('\n', stdout);
  }

  fputs("  state: ", stdout);
  ts_put_clean(stdout, t, l->state);
  if (l->await_kind) {
    fputs(", waiting on ", stdout);
    ts_put_clean(stdout, t, l->await_kind);
    if (l->await_has_id && l->await_id) printf(" %lld", l->await_id);
  }
  if (isfinite(l->age_ms)) printf(" (age %.0f ms)", l->age_ms);
  fputc('\n', stdout);

  if (l->reason && *l->reason) {
    fputs("  reason: ", stdout);
    ts_put_clean(stdout, t, l->reason);
    fputc('\n', stdout);
  }
  if (l->error) {
    const char *name = json_string_value(json_object_get(l->error, "name"));
    const char *desc = json_string_value(json_object_get(l->error, "description"));
    const char *msg = json_string_value(json_object_get(l->error, "message"));
    json_t *code = json_object_get(l->error, "code");
    fputs("  error: ", stdout);
    if (name)
      ts_put_clean(stdout, t, name);
    else if (json_is_integer(code))
      printf("%lld", (long long)json_integer_value(code));
    else
      fputs("?", stdout);
    if (desc) {
      fputs(" (", stdout);
      ts_put_clean(stdout, t, desc);
      fputc(')', stdout);
    }
    if (msg && *msg && !(desc && strcmp(msg, desc) == 0)) {
      fputs(": ", stdout);
      ts_put_clean(stdout, t, msg);
    }
    fputc('\n', stdout);
  }

  put_stack(t, "created at", l->created_at, 1);
  put_stack(t, "suspended at", l->suspended_at, 0);
  put_stack(t, "raised at", l->raised_at, 0);
  put_stack(t, "last completer dropped at", l->dropped_at, 0);
  fputc('\n', stdout);
}

static void put_suppressions(const ts_term *t, json_t *supp) {
  if (!json_is_array(supp) || json_array_size(supp) == 0) return;
  size_t i, used = 0;
  json_t *e;
  json_array_foreach(supp, i, e) {
    json_t *hits = json_object_get(e, "hits");
    used += json_is_integer(hits) && json_integer_value(hits) > 0;
  }
  if (used) {
    fputs("Suppressions used:\n  count  pattern\n", stdout);
    json_array_foreach(supp, i, e) {
      json_t *hits = json_object_get(e, "hits");
      if (!json_is_integer(hits) || json_integer_value(hits) <= 0) continue;
      printf("  %5lld  ", (long long)json_integer_value(hits));
      ts_put_clean(stdout, t, json_string_value(json_object_get(e, "pattern")));
      fputc('\n', stdout);
    }
  }
  json_array_foreach(supp, i, e) {
    json_t *hits = json_object_get(e, "hits");
    if (json_is_integer(hits) && json_integer_value(hits) > 0) continue;
    fputs("warning: suppression '", stdout);
    ts_put_clean(stdout, t, json_string_value(json_object_get(e, "pattern")));
    fputs("' (", stdout);
    ts_put_clean(stdout, t, json_string_value(json_object_get(e, "file")));
    json_t *line = json_object_get(e, "line");
    printf(":%lld) matched nothing\n", json_is_integer(line) ? (long long)json_integer_value(line) : 0);
  }
  fputc('\n', stdout);
}

static int print_text(const ts_ctx *ctx, json_t *report, leak *ls, size_t n) {
  const ts_term *t = &ctx->term;
  const char *when = json_string_value(json_object_get(report, "when"));
  if (!when || !*when) when = "report";
  size_t ng;
  group *gs = group_leaks(ls, n, &ng);
  size_t shown = ng < MAX_GROUPS ? ng : MAX_GROUPS;
  for (size_t i = 0; i < shown; i++) put_group(t, &gs[i], &ls[gs[i].first], when);
  if (ng > shown) {
    size_t records = 0;
    for (size_t i = shown; i < ng; i++) records += gs[i].count;
    printf("... and %zu more groups (%zu records) not shown (taskscope leaks --json has them "
           "all)\n\n",
           ng - shown, records);
  }
  free(gs);
  put_suppressions(t, json_object_get(report, "suppressions"));

  /* The counts: the report's summary, or counted here when it has none. */
  long long c[4] = {0, 0, 0, 0};
  static const char *const kinds[] = {"pending", "destroyed_pending", "unretrieved_error",
                                      "suppressed"};
  json_t *sum = json_object_get(report, "summary");
  if (json_is_object(sum)) {
    for (size_t k = 0; k < 4; k++) {
      json_t *v = json_object_get(sum, kinds[k]);
      if (json_is_integer(v)) c[k] = json_integer_value(v);
    }
  } else {
    for (size_t i = 0; i < n; i++) {
      if (ls[i].suppressed) {
        c[3]++;
        continue;
      }
      for (size_t k = 0; k < 3; k++) c[k] += strcmp(ls[i].kind, kinds[k]) == 0;
    }
  }
  int any = c[0] || c[1] || c[2];
  printf("%sSUMMARY: taskscope: %lld pending, %lld destroyed_pending, %lld unretrieved_error "
         "(%lld suppressed)%s\n",
         ts_sgr(t, any ? TS_SGR_BOLD_RED : TS_SGR_BOLD), c[0], c[1], c[2], c[3],
         t->color ? TS_SGR_RESET : "");
  return 0;
}

int ts_cmd_leaks(ts_ctx *ctx) {
  ts_conn c;
  int rc = ts_attach(ctx, ctx->args[0], &c);
  if (rc) return rc;
  json_t *req = ctx->pending ? json_pack("{s:s, s:b}", "type", "leaks", "pending", 1)
                             : json_pack("{s:s}", "type", "leaks");
  json_t *ans;
  if ((rc = ts_request(&c, req, "leaks", &ans))) return rc;

  char err[400];
  ts_jv v = {.err = err, .errlen = sizeof err};
  ts_jv_at(&v, "leaks");
  json_t *report = ts_jv_obj(&v, ans, "report", TS_JV_REQUIRED);
  const char *format = NULL;
  long long version = 1;
  json_t *arr = NULL;
  if (report) {
    ts_jv_at(&v, "report");
    ts_jv_str(&v, report, "format", TS_JV_NULLABLE, &format);
    ts_jv_int(&v, report, "version", TS_JV_NULLABLE, &version);
    json_t *sum = ts_jv_obj(&v, report, "summary", TS_JV_NULLABLE);
    if (sum) {
      ts_jv_at(&v, "report.summary");
      long long x;
      ts_jv_int(&v, sum, "pending", TS_JV_NULLABLE, &x);
      ts_jv_int(&v, sum, "destroyed_pending", TS_JV_NULLABLE, &x);
      ts_jv_int(&v, sum, "unretrieved_error", TS_JV_NULLABLE, &x);
      ts_jv_int(&v, sum, "suppressed", TS_JV_NULLABLE, &x);
      ts_jv_at(&v, "report");
    }
    ts_jv_arr(&v, report, "suppressions", TS_JV_NULLABLE);
    arr = ts_jv_arr(&v, report, "leaks", TS_JV_REQUIRED);
  }
  if (!v.failed && format && strcmp(format, "taskscope-report") != 0) {
    v.failed = 1;
    snprintf(err, sizeof err, "report.format is not \"taskscope-report\"");
  }
  if (!v.failed && version != 1) {
    v.failed = 1;
    snprintf(err, sizeof err, "the leak report has version %lld; this taskscope reads version 1",
             version);
  }
  size_t n = arr ? json_array_size(arr) : 0;
  leak *ls = ts_xmalloc(n * sizeof *ls);
  size_t parsed = 0;
  for (; parsed < n && !v.failed; parsed++) parse_leak(&v, json_array_get(arr, parsed), &ls[parsed], parsed);
  if (v.failed) {
    free(ls);
    json_decref(ans);
    return ts_malformed(&c, err);
  }
  for (size_t i = 0; i < n; i++) ls[i].key = leak_key(&ls[i]);

  if (ctx->json)
    rc = ts_print_json(report);
  else
    rc = print_text(ctx, report, ls, n);
  for (size_t i = 0; i < n; i++) free(ls[i].key);
  free(ls);
  json_decref(ans);
  ts_conn_close(&c);
  return rc;
}
