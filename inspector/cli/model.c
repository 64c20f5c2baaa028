/*
 * model.c — a `snapshot` answer, checked and indexed.
 */
#include "model.h"

#include "conn.h"
#include "fastjson.h"
#include "text.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* checked field access                                                                        */
/* ------------------------------------------------------------------------------------------ */

static const char *type_name(json_t *j) {
  switch (json_typeof(j)) {
  case JSON_OBJECT: return "an object";
  case JSON_ARRAY: return "an array";
  case JSON_STRING: return "a string";
  case JSON_INTEGER: return "an integer";
  case JSON_REAL: return "a number";
  case JSON_TRUE:
  case JSON_FALSE: return "a boolean";
  case JSON_NULL: return "null";
  }
  return "?";
}

/* Returns the field, or NULL when it is absent (or null and nullable); records an error for a
 * missing required field or a null that is not allowed. */
static json_t *field(ts_jv *v, json_t *o, const char *key, unsigned flags, const char *want) {
  json_t *j = json_is_object(o) ? json_object_get(o, key) : NULL;
  if (!j || (json_is_null(j) && (flags & TS_JV_NULLABLE))) {
    if (!j && (flags & TS_JV_REQUIRED)) ts_jv_missing(v, key, want);
    return NULL;
  }
  return j;
}

static int wrong(ts_jv *v, const char *key, json_t *j, const char *want, unsigned flags) {
  return ts_jv_wrong(v, key, want, flags, type_name(j));
}

int ts_jv_int(ts_jv *v, json_t *o, const char *key, unsigned flags, long long *out) {
  json_t *j = field(v, o, key, flags, "an integer");
  if (!j) return 0;
  if (!json_is_integer(j)) return wrong(v, key, j, "an integer", flags);
  *out = json_integer_value(j);
  return 1;
}

int ts_jv_num(ts_jv *v, json_t *o, const char *key, unsigned flags, double *out) {
  json_t *j = field(v, o, key, flags, "a number");
  if (!j) return 0;
  if (!json_is_number(j)) return wrong(v, key, j, "a number", flags);
  *out = json_number_value(j);
  return 1;
}

int ts_jv_str(ts_jv *v, json_t *o, const char *key, unsigned flags, const char **out) {
  json_t *j = field(v, o, key, flags, "a string");
  if (!j) return 0;
  if (!json_is_string(j)) return wrong(v, key, j, "a string", flags);
  *out = json_string_value(j);
  return 1;
}

json_t *ts_jv_obj(ts_jv *v, json_t *o, const char *key, unsigned flags) {
  json_t *j = field(v, o, key, flags, "an object");
  if (!j) return NULL;
  if (!json_is_object(j)) return wrong(v, key, j, "an object", flags), NULL;
  return j;
}

json_t *ts_jv_arr(ts_jv *v, json_t *o, const char *key, unsigned flags) {
  json_t *j = field(v, o, key, flags, "an array");
  if (!j) return NULL;
  if (!json_is_array(j)) return wrong(v, key, j, "an array", flags), NULL;
  return j;
}

int ts_jv_frames(ts_jv *v, json_t *frames, const char *what) {
  if (!frames || json_is_null(frames)) return 0;
  char saved[sizeof v->where];
  memcpy(saved, v->where, sizeof saved);
  if (!json_is_array(frames)) {
    if (!v->failed) {
      v->failed = 1;
      snprintf(v->err, v->errlen, "%s: expected an array of frames, got %s", what,
               type_name(frames));
    }
    return -1;
  }
  size_t i;
  json_t *f;
  json_array_foreach(frames, i, f) {
    ts_jv_at(v, "%s[%zu]", what, i);
    if (!json_is_object(f)) {
      if (!v->failed) {
        v->failed = 1;
        snprintf(v->err, v->errlen, "%s: expected a frame object, got %s", v->where, type_name(f));
      }
      break;
    }
    const char *s;
    long long n;
    ts_jv_str(v, f, "ip", TS_JV_REQUIRED, &s);
    ts_jv_str(v, f, "function", TS_JV_NULLABLE, &s);
    ts_jv_str(v, f, "file", TS_JV_NULLABLE, &s);
    ts_jv_int(v, f, "line", TS_JV_NULLABLE, &n);
    ts_jv_str(v, f, "module", TS_JV_NULLABLE, &s);
    if (v->failed) break;
  }
  memcpy(v->where, saved, sizeof saved);
  return v->failed ? -1 : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* snapshot                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static int cmp_task(const void *a, const void *b) {
  long long x = ((const ts_task *)a)->id, y = ((const ts_task *)b)->id;
  return x < y ? -1 : x > y;
}

void ts_jv_task(ts_jv *v, json_t *o, ts_task *t) {
  *t = (ts_task){.name = "", .state = "?", .created_ms = NAN};
  if (!json_is_object(o)) {
    if (!v->failed) {
      v->failed = 1;
      snprintf(v->err, v->errlen, "%s: expected a task object, got %s", v->where, type_name(o));
    }
    return;
  }
  ts_jv_int(v, o, "id", TS_JV_REQUIRED, &t->id);
  t->has_parent = ts_jv_int(v, o, "parent", TS_JV_NULLABLE, &t->parent);
  t->has_runtime = ts_jv_int(v, o, "runtime", TS_JV_NULLABLE, &t->runtime);
  ts_jv_str(v, o, "name", TS_JV_NULLABLE, &t->name);
  ts_jv_str(v, o, "state", TS_JV_REQUIRED, &t->state);
  ts_jv_num(v, o, "created_ms", TS_JV_NULLABLE, &t->created_ms);
  ts_jv_int(v, o, "switches", TS_JV_NULLABLE, &t->switches);
  json_t *aw = ts_jv_obj(v, o, "awaiting", TS_JV_NULLABLE);
  if (aw) {
    char saved[sizeof v->where];
    memcpy(saved, v->where, sizeof saved);
    ts_jv_at(v, "%s.awaiting", saved);
    ts_jv_str(v, aw, "kind", TS_JV_REQUIRED, &t->await_kind);
    t->await_has_id = ts_jv_int(v, aw, "id", TS_JV_NULLABLE, &t->await_id);
    memcpy(v->where, saved, sizeof saved);
  }
}

static void parse_finished(ts_jv *v, json_t *o, ts_finished *f) {
  *f = (ts_finished){.name = "", .state = "?", .finished_ms = NAN};
  if (!json_is_object(o)) {
    if (!v->failed) {
      v->failed = 1;
      snprintf(v->err, v->errlen, "%s: expected a task object, got %s", v->where, type_name(o));
    }
    return;
  }
  ts_jv_int(v, o, "id", TS_JV_REQUIRED, &f->id);
  f->has_parent = ts_jv_int(v, o, "parent", TS_JV_NULLABLE, &f->parent);
  ts_jv_str(v, o, "name", TS_JV_NULLABLE, &f->name);
  ts_jv_str(v, o, "state", TS_JV_NULLABLE, &f->state);
  ts_jv_str(v, o, "error_name", TS_JV_NULLABLE, &f->error_name);
  ts_jv_num(v, o, "finished_ms", TS_JV_NULLABLE, &f->finished_ms);
}

static void parse_runtime(ts_jv *v, json_t *o, ts_runtime *r) {
  *r = (ts_runtime){.lag_ms = NAN, .stalled_ms = NAN};
  if (!json_is_object(o)) {
    if (!v->failed) {
      v->failed = 1;
      snprintf(v->err, v->errlen, "%s: expected an object, got %s", v->where, type_name(o));
    }
    return;
  }
  ts_jv_int(v, o, "id", TS_JV_NULLABLE, &r->id);
  ts_jv_int(v, o, "dropped_events", TS_JV_NULLABLE, &r->dropped_events);
  json_t *loop = ts_jv_obj(v, o, "loop", TS_JV_NULLABLE);
  if (loop) {
    char saved[sizeof v->where];
    memcpy(saved, v->where, sizeof saved);
    ts_jv_at(v, "%s.loop", saved);
    ts_jv_num(v, loop, "lag_ms", TS_JV_NULLABLE, &r->lag_ms);
    ts_jv_num(v, loop, "stalled_ms", TS_JV_NULLABLE, &r->stalled_ms);
    json_t *stack = json_object_get(loop, "stalled_stack");
    char what[96];
    snprintf(what, sizeof what, "%s.stalled_stack", v->where);
    if (ts_jv_frames(v, stack, what) == 0 && json_is_array(stack)) r->stalled_stack = stack;
    memcpy(v->where, saved, sizeof saved);
  }
}

static void parse_stats(ts_jv *v, json_t *stats, ts_snapshot *s) {
  ts_jv_at(v, "stats");
  ts_jv_int(v, stats, "spawned", TS_JV_NULLABLE, &s->spawned);
  ts_jv_int(v, stats, "finished", TS_JV_NULLABLE, &s->finished_total);
  ts_jv_int(v, stats, "dropped_events", TS_JV_NULLABLE, &s->dropped_events);
  json_t *lk = ts_jv_obj(v, stats, "leaks", TS_JV_NULLABLE);
  if (lk) {
    ts_jv_at(v, "stats.leaks");
    ts_jv_int(v, lk, "pending", TS_JV_NULLABLE, &s->leaks_pending);
    ts_jv_int(v, lk, "destroyed_pending", TS_JV_NULLABLE, &s->leaks_destroyed_pending);
    ts_jv_int(v, lk, "unretrieved_error", TS_JV_NULLABLE, &s->leaks_unretrieved_error);
  }
}

static void check_warnings(ts_jv *v, json_t *w) {
  size_t i;
  json_t *o;
  json_array_foreach(w, i, o) {
    ts_jv_at(v, "warnings[%zu]", i);
    if (!json_is_object(o)) {
      if (!v->failed) {
        v->failed = 1;
        snprintf(v->err, v->errlen, "%s: expected an object, got %s", v->where, type_name(o));
      }
      return;
    }
    const char *str;
    double d;
    long long n;
    ts_jv_str(v, o, "kind", TS_JV_NULLABLE, &str);
    ts_jv_str(v, o, "message", TS_JV_NULLABLE, &str);
    ts_jv_num(v, o, "time_ms", TS_JV_NULLABLE, &d);
    ts_jv_int(v, o, "runtime", TS_JV_NULLABLE, &n);
    char what[96];
    snprintf(what, sizeof what, "%s.stack", v->where);
    ts_jv_frames(v, json_object_get(o, "stack"), what);
    if (v->failed) return;
  }
}

/* Sorts by id. A snapshot lists the tasks by their last change: mostly by id (in spawn order),
 * the recently changed ones at the end. So: the sorted prefix as it is, the rest sorted, then the
 * two merged from the end, in place (the same order as sorting it all: ids are unique, or the
 * snapshot is refused). */
static void sort_tasks(ts_task *t, size_t n) {
  size_t k = 1;
  while (k < n && t[k].id >= t[k - 1].id) k++;
  if (k >= n) return;
  size_t m = n - k;
  qsort(t + k, m, sizeof *t, cmp_task);
  if (t[k - 1].id <= t[k].id) return;
  ts_task *tail = ts_xmalloc(m * sizeof *t);
  memcpy(tail, t + k, m * sizeof *t);
  size_t i = k, j = m, o = n;
  while (j > 0) {
    if (i > 0 && t[i - 1].id > tail[j - 1].id)
      t[--o] = t[--i];
    else
      t[--o] = tail[--j];
    if ((o & 4095) == 0) tsc_cooperate();
  }
  tsj_release(tail, m * sizeof *t);
}

/* raw: the "tasks" array's text when it was split off the answer (root then holds an empty
 * array in its place), else NULL. */
static int parse_snapshot(json_t *root, ts_conn_raw *raw, ts_snapshot *s, char *err,
                          size_t errlen) {
  memset(s, 0, sizeof *s);
  s->root = root;
  if (raw) {
    s->text = raw->owner; /* the tasks' strings will point into it */
    s->text_size = raw->owner_size;
    raw->owner = NULL;
  }
  s->program = "?";
  s->time_ms = NAN;
  s->spawned = s->finished_total = s->dropped_events = -1;
  s->leaks_pending = s->leaks_destroyed_pending = s->leaks_unretrieved_error = -1;
  ts_jv v = {.err = err, .errlen = errlen};
  ts_jv_int(&v, root, "pid", TS_JV_NULLABLE, &s->pid);
  ts_jv_str(&v, root, "program", TS_JV_NULLABLE, &s->program);
  ts_jv_num(&v, root, "time_ms", TS_JV_NULLABLE, &s->time_ms);
  json_t *tasks = ts_jv_arr(&v, root, "tasks", TS_JV_REQUIRED);
  json_t *finished = ts_jv_arr(&v, root, "finished", TS_JV_NULLABLE);
  json_t *runtimes = ts_jv_arr(&v, root, "runtimes", TS_JV_NULLABLE);
  s->warnings = ts_jv_arr(&v, root, "warnings", TS_JV_NULLABLE);
  s->leaks = ts_jv_arr(&v, root, "leaks", TS_JV_NULLABLE);
  json_t *stats = ts_jv_obj(&v, root, "stats", TS_JV_NULLABLE);
  if (v.failed) goto bad;

  if (s->text) {
    /* The same checks and messages as below, without a tree (fastjson.c). */
    if (tsj_tasks(raw->text, raw->len, "tasks", &s->tasks, &s->ntasks, err, errlen) != 0) {
      s->ntasks = 0;
      goto bad;
    }
  } else {
    s->ntasks = json_array_size(tasks);
    s->tasks = ts_xmalloc(s->ntasks * sizeof *s->tasks);
    for (size_t i = 0; i < s->ntasks && !v.failed; i++) {
      ts_jv_at(&v, "tasks[%zu]", i);
      ts_jv_task(&v, json_array_get(tasks, i), &s->tasks[i]);
    }
  }
  s->nfinished = json_array_size(finished);
  s->finished = ts_xmalloc(s->nfinished * sizeof *s->finished);
  for (size_t i = 0; i < s->nfinished && !v.failed; i++) {
    ts_jv_at(&v, "finished[%zu]", i);
    parse_finished(&v, json_array_get(finished, i), &s->finished[i]);
  }
  s->nruntimes = json_array_size(runtimes);
  s->runtimes = ts_xmalloc(s->nruntimes * sizeof *s->runtimes);
  for (size_t i = 0; i < s->nruntimes && !v.failed; i++) {
    ts_jv_at(&v, "runtimes[%zu]", i);
    parse_runtime(&v, json_array_get(runtimes, i), &s->runtimes[i]);
  }
  if (stats && !v.failed) parse_stats(&v, stats, s);
  if (s->warnings && !v.failed) check_warnings(&v, s->warnings);
  if (v.failed) goto bad;
  sort_tasks(s->tasks, s->ntasks);
  for (size_t i = 1; i < s->ntasks; i++) {
    if (s->tasks[i].id == s->tasks[i - 1].id) {
      snprintf(err, errlen, "tasks: task id %lld appears twice", s->tasks[i].id);
      goto bad;
    }
  }
  return 0;

bad:
  ts_snapshot_free(s);
  return -1;
}

int ts_snapshot_parse(json_t *root, ts_snapshot *s, char *err, size_t errlen) {
  return parse_snapshot(root, NULL, s, err, errlen);
}

int ts_snapshot_parse_split(json_t *root, ts_conn_raw *raw, ts_snapshot *s, char *err,
                            size_t errlen) {
  int rc = parse_snapshot(root, raw && raw->owner ? raw : NULL, s, err, errlen);
  if (raw) ts_conn_raw_free(raw);
  return rc;
}

void ts_snapshot_free(ts_snapshot *s) {
  tsj_release(s->tasks, s->ntasks * sizeof *s->tasks);
  tsj_release(s->text, s->text_size);
  free(s->finished);
  free(s->runtimes);
  json_decref(s->root);
  memset(s, 0, sizeof *s);
}

const ts_task *ts_snapshot_task(const ts_snapshot *s, long long id) {
  size_t lo = 0, hi = s->ntasks;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (s->tasks[mid].id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < s->ntasks && s->tasks[lo].id == id ? &s->tasks[lo] : NULL;
}

const ts_finished *ts_snapshot_finished(const ts_snapshot *s, long long id) {
  for (size_t i = s->nfinished; i-- > 0;)
    if (s->finished[i].id == id) return &s->finished[i];
  return NULL;
}
