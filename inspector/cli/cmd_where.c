/*
 * cmd_where.c — `taskscope where PID TASK`: where a task is suspended, and where it was created.
 */
#include "cli.h"
#include "common.h"
#include "target.h"
#include "text.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define IDS_SHOWN 8
#define WHERE_TIMEOUT_MS 1000

static int is_id(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (!isdigit((unsigned char)*s)) return 0;
  return 1;
}

/* TASK given by name: the one live task with that name. */
static int resolve_name(const ts_ctx *ctx, ts_conn *c, const char *name, long long *id) {
  ts_snapshot s;
  int rc = ts_take_snapshot(c, &s);
  if (rc) return rc;
  size_t n = 0;
  long long ids[IDS_SHOWN];
  for (size_t i = 0; i < s.ntasks; i++) {
    if (strcmp(s.tasks[i].name, name) != 0) continue;
    if (n < IDS_SHOWN) ids[n] = s.tasks[i].id;
    n++;
  }
  char *cn = ts_clean(&ctx->term, name);
  if (n == 1) {
    *id = ids[0];
  } else if (n == 0) {
    size_t fin = 0;
    for (size_t i = 0; i < s.nfinished; i++) fin += strcmp(s.finished[i].name, name) == 0;
    if (fin)
      rc = ts_fail(TS_EXIT_USAGE, "no live task named '%s' (%zu recently finished)", cn, fin);
    else
      rc = ts_fail(TS_EXIT_USAGE, "no live task named '%s' (taskscope ps %s lists them)", cn,
                   ctx->args[0]);
  } else {
    char list[200] = "";
    size_t off = 0;
    for (size_t i = 0; i < n && i < IDS_SHOWN && off < sizeof list; i++)
      off += (size_t)snprintf(list + off, sizeof list - off, "%s%lld", i ? ", " : "", ids[i]);
    rc = ts_fail(TS_EXIT_USAGE, "'%s' is ambiguous: %zu live tasks have that name (ids %s%s); "
                                "give an id",
                 cn, n, list, n > IDS_SHOWN ? ", ..." : "");
  }
  free(cn);
  ts_snapshot_free(&s);
  if (rc) ts_conn_close(c);
  return rc;
}

/* The server says no live task has that id: say whether it finished. */
static int no_such_task(ts_conn *c, long long id) {
  ts_snapshot s;
  if (ts_take_snapshot(c, &s) != 0) return ts_fail(TS_EXIT_USAGE, "no live task %lld", id);
  const ts_finished *f = ts_snapshot_finished(&s, id);
  int rc;
  if (f) {
    ts_term plain = {0, 1};
    char *name = ts_clean(&plain, f->name), *state = ts_clean(&plain, f->state);
    char when[64] = "";
    if (isfinite(s.time_ms) && isfinite(f->finished_ms)) {
      char ago[32];
      tsc_fmt_duration(ago, sizeof ago, s.time_ms - f->finished_ms);
      snprintf(when, sizeof when, " %s ago", ago);
    }
    rc = ts_fail(TS_EXIT_USAGE, "task %lld \"%s\" is not live: it finished%s (%s%s%s)", id, name,
                 when, state, f->error_name ? ", " : "", f->error_name ? f->error_name : "");
    free(name);
    free(state);
  } else {
    rc = ts_fail(TS_EXIT_USAGE, "no live task %lld", id);
  }
  ts_snapshot_free(&s);
  ts_conn_close(c);
  return rc;
}

static void print_task_line(const ts_term *t, const ts_task *task) {
  printf("task %lld \"", task->id);
  fputs(ts_sgr(t, TS_SGR_BOLD), stdout);
  ts_put_clean(stdout, t, task->name);
  if (t->color) fputs(TS_SGR_RESET, stdout);
  fputs("\" [", stdout);
  const char *sgr = ts_sgr(t, ts_state_sgr(task->state));
  fputs(sgr, stdout);
  ts_put_clean(stdout, t, task->state);
  if (*sgr) fputs(TS_SGR_RESET, stdout);
  fputc(']', stdout);
  if (task->await_kind) {
    char aw[64];
    ts_fmt_awaiting(task, aw, sizeof aw);
    fputs(", awaiting ", stdout);
    ts_put_clean(stdout, t, aw);
  }
  if (task->has_parent) printf(", parent %lld", task->parent);
  printf(", %lld switches\n", task->switches);
}

static void print_stack(const ts_term *t, const char *title, json_t *frames) {
  printf("%s%s:%s", ts_sgr(t, TS_SGR_BOLD), title, t->color ? TS_SGR_RESET : "");
  if (!json_is_array(frames) || json_array_size(frames) == 0) {
    puts(" (not recorded)");
    return;
  }
  fputc('\n', stdout);
  ts_print_frames(stdout, t, frames, "  ");
}

static int print_answer(const ts_ctx *ctx, ts_conn *c, json_t *ans) {
  char err[400];
  ts_jv v = {.err = err, .errlen = sizeof err};
  ts_jv_at(&v, "where");
  json_t *tj = ts_jv_obj(&v, ans, "task", TS_JV_REQUIRED);
  json_t *susp = json_object_get(ans, "suspended_at");
  json_t *created = json_object_get(ans, "created_at");
  const char *method = NULL;
  ts_jv_str(&v, ans, "method", TS_JV_NULLABLE, &method);
  json_t *running = json_object_get(ans, "running");
  if (running && !json_is_boolean(running) && !json_is_null(running) && !v.failed) {
    v.failed = 1;
    snprintf(err, sizeof err, "where.running: expected a boolean");
  }
  ts_jv_frames(&v, susp, "where.suspended_at");
  ts_jv_frames(&v, created, "where.created_at");
  /* The task object is checked like a snapshot's. */
  ts_task task = {.name = "", .state = "?"};
  if (!v.failed) {
    ts_jv_at(&v, "where.task");
    ts_jv_task(&v, tj, &task);
  }
  if (v.failed) return ts_malformed(c, err);
  int is_running = json_is_true(running) || strcmp(task.state, "running") == 0;

  if (ctx->json) {
    json_t *root = json_pack("{s:s, s:i, s:I, s:s, s:O, s:b, s:o, s:o, s:o}", "format",
                             "taskscope-where", "version", 1, "pid", (json_int_t)c->pid, "program",
                             c->program, "task", tj, "running", is_running, "method",
                             method ? json_string(method) : json_null(), "suspended_at",
                             json_is_array(susp) ? json_incref(susp) : json_null(), "created_at",
                             json_is_array(created) ? json_incref(created) : json_array());
    int rc = ts_print_json(root);
    json_decref(root);
    return rc;
  }
  const ts_term *t = &ctx->term;
  print_task_line(t, &task);
  if (is_running && !json_array_size(susp)) {
    printf("%ssuspended at:%s (running now: it has no suspended stack)\n", ts_sgr(t, TS_SGR_BOLD),
           t->color ? TS_SGR_RESET : "");
  } else {
    /* How the stack was read, unless the usual way (on the loop thread). */
    const char *how = !method || strcmp(method, "loop") == 0 ? NULL
                      : strcmp(method, "direct") == 0        ? "the server: the loop is blocked"
                                                             : method;
    char title[96] = "suspended at";
    if (how) {
      char *clean = ts_clean(t, how); /* the server's text */
      snprintf(title, sizeof title, "suspended at (read by %s)", clean);
      free(clean);
    }
    print_stack(t, title, susp);
  }
  print_stack(t, "created at", created);
  return 0;
}

int ts_cmd_where(ts_ctx *ctx) {
  ts_conn c;
  int rc = ts_attach(ctx, ctx->args[0], &c);
  if (rc) return rc;
  const char *arg = ctx->args[1];
  long long id = 0;
  if (is_id(arg)) {
    char *end;
    id = strtoll(arg, &end, 10);
  } else if ((rc = resolve_name(ctx, &c, arg, &id))) {
    return rc;
  }
  int wait_ms = ctx->timeout_ms / 2;
  if (wait_ms > WHERE_TIMEOUT_MS) wait_ms = WHERE_TIMEOUT_MS;
  if (wait_ms < 1) wait_ms = 1;
  json_t *ans;
  ts_conn_status st = ts_conn_request(
      &c, json_pack("{s:s, s:I, s:i}", "type", "where", "task", (json_int_t)id, "timeout_ms", wait_ms),
      "where", &ans);
  if (st == TS_CONN_NO_TASK) return no_such_task(&c, id);
  if (st) {
    rc = ts_fail(ts_conn_exit_code(st), "%s", c.err);
    ts_conn_close(&c);
    return rc;
  }
  rc = print_answer(ctx, &c, ans);
  json_decref(ans);
  if (c.fd >= 0) ts_conn_close(&c);
  return rc;
}
