/*
 * cmd_ps.c — `taskscope ps PID`: the live tasks as a table, under a header of counts.
 */
#include "cli.h"
#include "common.h"
#include "text.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WARNINGS_SHOWN 3

/* The states in the order the header lists them; others follow as they come. */
static const char *const state_order[] = {"ready", "running", "waiting", NULL};

typedef struct counts {
  size_t live, by_state[3], other;
} counts;

static counts count_states(const ts_snapshot *s) {
  counts c = {.live = s->ntasks};
  for (size_t i = 0; i < s->ntasks; i++) {
    size_t k = 0;
    while (state_order[k] && strcmp(state_order[k], s->tasks[i].state) != 0) k++;
    if (state_order[k])
      c.by_state[k]++;
    else
      c.other++;
  }
  return c;
}

static double age_ms(const ts_snapshot *s, const ts_task *t) {
  return isfinite(s->time_ms) && isfinite(t->created_ms) ? s->time_ms - t->created_ms : NAN;
}

static long long dropped_events(const ts_snapshot *s) {
  if (s->dropped_events >= 0) return s->dropped_events;
  long long n = 0;
  for (size_t i = 0; i < s->nruntimes; i++) n += s->runtimes[i].dropped_events;
  return n;
}

static long long nonneg(long long v) {
  return v > 0 ? v : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* text                                                                                        */
/* ------------------------------------------------------------------------------------------ */

static void print_header(const ts_ctx *ctx, const ts_snapshot *s, long long pid) {
  const ts_term *t = &ctx->term;
  counts c = count_states(s);
  fputs(ts_sgr(t, TS_SGR_BOLD), stdout);
  ts_put_clean(stdout, t, s->program);
  if (t->color) fputs(TS_SGR_RESET, stdout);
  printf(" (pid %lld): %zu live task%s", pid, c.live, c.live == 1 ? "" : "s");
  const char *sep = " (";
  for (size_t k = 0; state_order[k]; k++) {
    printf("%s%zu %s", sep, c.by_state[k], state_order[k]);
    sep = ", ";
  }
  if (c.other) printf(", %zu other", c.other);
  fputs(")", stdout);
  if (s->finished_total >= 0) printf(", %lld finished", s->finished_total);
  /* Loop lag: the worst runtime's. */
  double lag = NAN;
  long long lag_rt = 0;
  for (size_t i = 0; i < s->nruntimes; i++)
    if (isfinite(s->runtimes[i].lag_ms) && !(s->runtimes[i].lag_ms <= lag)) {
      lag = s->runtimes[i].lag_ms;
      lag_rt = s->runtimes[i].id;
    }
  if (isfinite(lag)) {
    printf(", loop lag %.1f ms", lag);
    if (s->nruntimes > 1) printf(" (runtime %lld)", lag_rt);
  }
  long long dropped = dropped_events(s);
  printf(", %s%lld dropped events%s\n", dropped ? ts_sgr(t, TS_SGR_BOLD_YELLOW) : "", dropped,
         dropped && t->color ? TS_SGR_RESET : "");

  long long lk = nonneg(s->leaks_pending) + nonneg(s->leaks_destroyed_pending) +
                 nonneg(s->leaks_unretrieved_error);
  if (lk > 0)
    printf("%sleaks so far: %lld pending, %lld destroyed_pending, %lld unretrieved_error%s "
           "(taskscope leaks %lld)\n",
           ts_sgr(t, TS_SGR_BOLD_RED), nonneg(s->leaks_pending),
           nonneg(s->leaks_destroyed_pending), nonneg(s->leaks_unretrieved_error),
           t->color ? TS_SGR_RESET : "", pid);

  for (size_t i = 0; i < s->nruntimes; i++) {
    const ts_runtime *r = &s->runtimes[i];
    if (!(r->stalled_ms > 0)) continue;
    printf("%sWARNING: the loop of runtime %lld is stalled: it has not turned for %.0f ms%s\n",
           ts_sgr(t, TS_SGR_BOLD_RED), r->id, r->stalled_ms, t->color ? TS_SGR_RESET : "");
    if (r->stalled_stack && json_array_size(r->stalled_stack)) {
      printf("  loop thread at:\n");
      ts_print_frames(stdout, t, r->stalled_stack, "    ");
    }
  }
  size_t nw = s->warnings ? json_array_size(s->warnings) : 0;
  for (size_t i = nw > WARNINGS_SHOWN ? nw - WARNINGS_SHOWN : 0; i < nw; i++) {
    json_t *w = json_array_get(s->warnings, i);
    const char *msg = json_string_value(json_object_get(w, "message"));
    const char *kind = json_string_value(json_object_get(w, "kind"));
    json_t *tm = json_object_get(w, "time_ms");
    printf("%swarning%s", ts_sgr(t, TS_SGR_YELLOW), t->color ? TS_SGR_RESET : "");
    if (json_is_number(tm) && isfinite(s->time_ms)) {
      char ago[32];
      tsc_fmt_duration(ago, sizeof ago, s->time_ms - json_number_value(tm));
      printf(" (%s ago)", ago);
    }
    fputs(": ", stdout);
    ts_put_clean(stdout, t, msg ? msg : kind ? kind : "?");
    fputc('\n', stdout);
  }
}

static void print_table(const ts_ctx *ctx, const ts_snapshot *s) {
  static const char *const heads[] = {"ID",       "PARENT",   "STATE", "AGE",
                                      "SWITCHES", "AWAITING", "NAME",  NULL};
  ts_table *tb = ts_table_new(&ctx->term, heads, "rrlrrll");
  for (size_t i = 0; i < s->ntasks; i++) {
    const ts_task *t = &s->tasks[i];
    char buf[64];
    ts_table_cellf(tb, NULL, "%lld", t->id);
    if (t->has_parent)
      ts_table_cellf(tb, NULL, "%lld", t->parent);
    else
      ts_table_cell(tb, TS_SGR_DIM, "-");
    ts_table_cell(tb, ts_state_sgr(t->state), t->state);
    tsc_fmt_duration(buf, sizeof buf, age_ms(s, t));
    ts_table_cell(tb, NULL, buf);
    ts_table_cellf(tb, NULL, "%lld", t->switches);
    ts_fmt_awaiting(t, buf, sizeof buf);
    ts_table_cell(tb, NULL, *buf ? buf : "-");
    ts_table_cell(tb, NULL, t->name);
    ts_table_end_row(tb);
  }
  ts_table_print(tb, stdout);
  ts_table_free(tb);
}

/* ------------------------------------------------------------------------------------------ */
/* JSON                                                                                        */
/* ------------------------------------------------------------------------------------------ */

static json_t *num_or_null(double v) {
  return ts_json_number(v);
}

static json_t *int_or_null(long long v) {
  return v >= 0 ? json_integer(v) : json_null();
}

static json_t *task_json(const ts_snapshot *s, const ts_task *t) {
  json_t *aw = json_null();
  if (t->await_kind)
    aw = json_pack("{s:s, s:o}", "kind", t->await_kind,
                   "id", t->await_has_id ? json_integer(t->await_id) : json_null());
  double age = age_ms(s, t);
  return json_pack("{s:I, s:o, s:o, s:s, s:s, s:o, s:I, s:o}", "id", (json_int_t)t->id, "parent",
                   t->has_parent ? json_integer(t->parent) : json_null(), "runtime",
                   json_object_get(t->json, "runtime") &&
                           json_is_integer(json_object_get(t->json, "runtime"))
                       ? json_integer(t->runtime)
                       : json_null(),
                   "name", t->name, "state", t->state, "age_ms", num_or_null(age), "switches",
                   (json_int_t)t->switches, "awaiting", aw);
}

static int print_json(const ts_snapshot *s, long long pid) {
  counts c = count_states(s);
  json_t *tasks = json_array();
  for (size_t i = 0; i < s->ntasks; i++) json_array_append_new(tasks, task_json(s, &s->tasks[i]));
  json_t *rts = json_array();
  for (size_t i = 0; i < s->nruntimes; i++) {
    const ts_runtime *r = &s->runtimes[i];
    json_array_append_new(rts, json_pack("{s:I, s:o, s:o, s:I}", "id", (json_int_t)r->id,
                                         "lag_ms", num_or_null(r->lag_ms), "stalled_ms",
                                         num_or_null(r->stalled_ms), "dropped_events",
                                         (json_int_t)r->dropped_events));
  }
  json_t *warnings = s->warnings ? json_incref(s->warnings) : json_array();
  json_t *root = json_pack(
      "{s:s, s:i, s:I, s:s, s:o, s:{s:I, s:I, s:I, s:I, s:o, s:o}, s:o, s:I, "
      "s:{s:I, s:I, s:I}, s:o, s:o}",
      "format", "taskscope-ps", "version", 1, "pid", (json_int_t)pid, "program", s->program,
      "time_ms", num_or_null(s->time_ms), "counts", "live", (json_int_t)c.live, "ready",
      (json_int_t)c.by_state[0], "running", (json_int_t)c.by_state[1], "waiting",
      (json_int_t)c.by_state[2], "finished", int_or_null(s->finished_total), "spawned",
      int_or_null(s->spawned), "runtimes", rts, "dropped_events", (json_int_t)dropped_events(s),
      "leaks", "pending", (json_int_t)nonneg(s->leaks_pending), "destroyed_pending",
      (json_int_t)nonneg(s->leaks_destroyed_pending), "unretrieved_error",
      (json_int_t)nonneg(s->leaks_unretrieved_error), "warnings",
      warnings, "tasks", tasks);
  int rc = ts_print_json(root);
  json_decref(root);
  return rc;
}

int ts_cmd_ps(ts_ctx *ctx) {
  ts_conn c;
  ts_snapshot s;
  int rc = ts_open_snapshot(ctx, ctx->args[0], &c, &s);
  if (rc) return rc;
  long long pid = s.pid ? s.pid : c.pid;
  if (ctx->json) {
    rc = print_json(&s, pid);
  } else {
    print_header(ctx, &s, pid);
    print_table(ctx, &s);
  }
  ts_snapshot_free(&s);
  ts_conn_close(&c);
  return rc;
}
