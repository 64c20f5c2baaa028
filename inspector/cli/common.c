/*
 * common.c — what several commands do.
 */
#include "common.h"

#include "target.h"
#include "text.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int ts_request(ts_conn *c, json_t *req, const char *want, json_t **answer) {
  ts_conn_status st = ts_conn_request(c, req, want, answer);
  if (st == TS_CONN_OK) return 0;
  int code = ts_conn_exit_code(st);
  ts_fail(code, "%s", c->err);
  ts_conn_close(c);
  return code;
}

int ts_malformed(ts_conn *c, const char *what) {
  ts_fail(TS_EXIT_ATTACH, "malformed answer from %s: %s", c->path, what);
  ts_conn_close(c);
  return TS_EXIT_ATTACH;
}

int ts_take_snapshot(ts_conn *c, ts_snapshot *s) {
  json_t *ans;
  ts_conn_raw raw;
  /* A snapshot of many tasks is a long line: its task array is read by the fast path. */
  ts_conn_status st = ts_conn_request_split(c, json_pack("{s:s}", "type", "snapshot"),
                                            "snapshot", "tasks", &ans, &raw);
  if (st != TS_CONN_OK) {
    int code = ts_conn_exit_code(st);
    ts_fail(code, "%s", c->err);
    ts_conn_close(c);
    return code;
  }
  char err[400];
  if (ts_snapshot_parse_split(ans, &raw, s, err, sizeof err) != 0) return ts_malformed(c, err);
  return 0;
}

int ts_open_snapshot(const ts_ctx *ctx, const char *target, ts_conn *c, ts_snapshot *s) {
  int rc = ts_attach(ctx, target, c);
  return rc ? rc : ts_take_snapshot(c, s);
}

void ts_fmt_awaiting(const ts_task *t, char *buf, size_t n) {
  if (!t->await_kind) {
    snprintf(buf, n, "%s", "");
  } else if (t->await_has_id) {
    snprintf(buf, n, "%s %lld", t->await_kind, t->await_id);
  } else {
    snprintf(buf, n, "%s", t->await_kind);
  }
}

const char *ts_task_name(const ts_snapshot *s, long long id) {
  const ts_task *t = ts_snapshot_task(s, id);
  if (t) return t->name;
  const ts_finished *f = ts_snapshot_finished(s, id);
  return f ? f->name : NULL;
}

void ts_print_frames(FILE *out, const ts_term *t, json_t *frames, const char *indent) {
  size_t i;
  json_t *f;
  json_array_foreach(frames, i, f) {
    const char *ip = json_string_value(json_object_get(f, "ip"));
    const char *fn = json_string_value(json_object_get(f, "function"));
    const char *file = json_string_value(json_object_get(f, "file"));
    const char *module = json_string_value(json_object_get(f, "module"));
    json_t *line = json_object_get(f, "line");
    fprintf(out, "%s#%zu ", indent, i);
    ts_put_clean(out, t, ip ? ip : "0x0");
    fputs(" in ", out);
    fputs(ts_sgr(t, TS_SGR_BOLD), out);
    ts_put_clean(out, t, fn ? fn : "??");
    if (t->color) fputs(TS_SGR_RESET, out);
    if (file) {
      fputs(" at ", out);
      ts_put_clean(out, t, file);
      if (json_is_integer(line) && json_integer_value(line) > 0)
        fprintf(out, ":%lld", (long long)json_integer_value(line));
    } else if (module) {
      fputs(" (", out);
      ts_put_clean(out, t, module);
      fputc(')', out);
    }
    fputc('\n', out);
  }
}

json_t *ts_json_string(const char *s) {
  if (!s) return json_null();
  json_t *j = json_string(s);
  if (j) return j;
  char *clean = ts_clean(&(ts_term){0, 0}, s);
  j = json_string(clean);
  free(clean);
  return j ? j : json_null();
}

json_t *ts_json_number(double v) {
  if (!isfinite(v)) return json_null();
  if (v == floor(v) && fabs(v) < 9e15) return json_integer((json_int_t)v);
  return json_real(v);
}

int ts_print_json(json_t *j) {
  if (!j) return ts_fail(TS_EXIT_ATTACH, "out of memory");
  int rc = json_dumpf(j, stdout, JSON_COMPACT | JSON_REAL_PRECISION(15));
  fputc('\n', stdout);
  if (rc != 0 || fflush(stdout) != 0) {
    if (errno == EPIPE) return 0;
    return ts_fail(TS_EXIT_ATTACH, "writing the output: %s", strerror(errno));
  }
  return 0;
}
