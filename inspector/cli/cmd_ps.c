/*
 * cmd_ps.c — `taskscope ps PID`: the live tasks as a table, under a header of counts.
 */
#include "cli.h"
#include "common.h"
#include "fastjson.h"
#include "text.h"

#include <errno.h>
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
    if ((i & 255) == 255) tsc_cooperate();
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

/* The task array is written directly rather than built as a jansson tree (100 000 tasks cost
 * jansson about a second), byte for byte as json_dumpf(JSON_COMPACT | JSON_REAL_PRECISION(15))
 * wrote the objects {id, parent, runtime, name, state, age_ms, switches, awaiting} before. */
#define PS_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

static void put_int_or_null(tsj_out *out, int has, long long v) {
  if (has)
    tsj_out_int(out, v);
  else
    tsj_out_puts(out, "null");
}

/* ts_json_number(v), dumped. */
static void put_number(tsj_out *out, double v) {
  if (!isfinite(v)) {
    tsj_out_puts(out, "null");
  } else if (v == floor(v) && fabs(v) < 9e15) {
    tsj_out_int(out, (long long)v);
  } else { /* a real: jansson's own formatting */
    json_t *j = json_real(v);
    char buf[64];
    size_t n = j ? json_dumpb(j, buf, sizeof buf, PS_JSON_FLAGS | JSON_ENCODE_ANY) : 0;
    json_decref(j);
    if (n > 0 && n <= sizeof buf)
      tsj_out_put(out, buf, n);
    else
      tsj_out_puts(out, "null");
  }
}

static void put_task(tsj_out *out, const ts_snapshot *s, const ts_task *t) {
  tsj_out_puts(out, "{\"id\":");
  tsj_out_int(out, t->id);
  tsj_out_puts(out, ",\"parent\":");
  put_int_or_null(out, t->has_parent, t->parent);
  tsj_out_puts(out, ",\"runtime\":");
  put_int_or_null(out, t->has_runtime, t->runtime);
  tsj_out_puts(out, ",\"name\":");
  tsj_out_str(out, t->name);
  tsj_out_puts(out, ",\"state\":");
  tsj_out_str(out, t->state);
  tsj_out_puts(out, ",\"age_ms\":");
  put_number(out, age_ms(s, t));
  tsj_out_puts(out, ",\"switches\":");
  tsj_out_int(out, t->switches);
  tsj_out_puts(out, ",\"awaiting\":");
  if (t->await_kind) {
    tsj_out_puts(out, "{\"kind\":");
    tsj_out_str(out, t->await_kind);
    tsj_out_puts(out, ",\"id\":");
    put_int_or_null(out, t->await_has_id, t->await_id);
    tsj_out_puts(out, "}");
  } else {
    tsj_out_puts(out, "null");
  }
  tsj_out_puts(out, "}");
}

static int print_json(const ts_snapshot *s, long long pid) {
  counts c = count_states(s);
  json_t *rts = json_array();
  for (size_t i = 0; i < s->nruntimes; i++) {
    const ts_runtime *r = &s->runtimes[i];
    json_array_append_new(rts, json_pack("{s:I, s:o, s:o, s:I}", "id", (json_int_t)r->id,
                                         "lag_ms", num_or_null(r->lag_ms), "stalled_ms",
                                         num_or_null(r->stalled_ms), "dropped_events",
                                         (json_int_t)r->dropped_events));
  }
  json_t *warnings = s->warnings ? json_incref(s->warnings) : json_array();
  /* Everything but the tasks, which come last. */
  json_t *root = json_pack(
      "{s:s, s:i, s:I, s:s, s:o, s:{s:I, s:I, s:I, s:I, s:o, s:o}, s:o, s:I, "
      "s:{s:I, s:I, s:I}, s:o}",
      "format", "taskscope-ps", "version", 1, "pid", (json_int_t)pid, "program", s->program,
      "time_ms", num_or_null(s->time_ms), "counts", "live", (json_int_t)c.live, "ready",
      (json_int_t)c.by_state[0], "running", (json_int_t)c.by_state[1], "waiting",
      (json_int_t)c.by_state[2], "finished", int_or_null(s->finished_total), "spawned",
      int_or_null(s->spawned), "runtimes", rts, "dropped_events", (json_int_t)dropped_events(s),
      "leaks", "pending", (json_int_t)nonneg(s->leaks_pending), "destroyed_pending",
      (json_int_t)nonneg(s->leaks_destroyed_pending), "unretrieved_error",
      (json_int_t)nonneg(s->leaks_unretrieved_error), "warnings", warnings);
  if (!root) return ts_fail(TS_EXIT_ATTACH, "out of memory");
  char *head = json_dumps(root, PS_JSON_FLAGS);
  json_decref(root);
  if (!head) return ts_fail(TS_EXIT_ATTACH, "writing the output: %s", strerror(ENOMEM));
  tsj_out *out = ts_xmalloc(sizeof *out);
  out->f = stdout;
  out->len = 0;
  out->failed = 0;
  tsj_out_put(out, head, strlen(head) - 1); /* {...} less its } */
  free(head);
  tsj_out_puts(out, ",\"tasks\":[");
  for (size_t i = 0; i < s->ntasks; i++) {
    if (i) tsj_out_puts(out, ",");
    put_task(out, s, &s->tasks[i]);
    if ((i & 255) == 255) tsc_cooperate();
  }
  tsj_out_puts(out, "]}\n");
  int bad = tsj_out_flush(out) != 0;
  free(out);
  if (fflush(stdout) != 0 || bad) {
    if (errno == EPIPE) return 0;
    return ts_fail(TS_EXIT_ATTACH, "writing the output: %s", strerror(errno));
  }
  return 0;
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
