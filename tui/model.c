/*
 * model.c — the task table, tree, display list and events of taskscope-top.
 */
#include "model.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) {
    fputs("taskscope-top: out of memory\n", stderr);
    abort();
  }
  return q;
}

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (!p) {
    fputs("taskscope-top: out of memory\n", stderr);
    abort();
  }
  return p;
}

/* A copy of s with control characters replaced by '?', so a hostile task name cannot move the
 * cursor or change the terminal's state. */
static char *clean_dup(const char *s) {
  if (!s) s = "";
  size_t n = strlen(s);
  char *d = xrealloc(NULL, n + 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    d[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  d[n] = '\0';
  return d;
}

static const char *const state_names[TM__NSTATES] = {
    "ready", "running", "waiting", "done", "failed", "cancelled", "destroyed", "?"};

const char *tm_state_name(tm_state s) {
  return s < TM__NSTATES ? state_names[s] : "?";
}

tm_state tm_state_parse(const char *s) {
  for (int i = 0; s && i < TM_UNKNOWN; i++)
    if (strcmp(s, state_names[i]) == 0) return (tm_state)i;
  return TM_UNKNOWN;
}

static const char *const col_names[TM__NCOLS] = {"ID",   "NAME",     "STATE",   "AGE",
                                                  "BUSY", "SWITCHES", "AWAITING"};

const char *tm_col_name(tm_col c) {
  return c < TM__NCOLS ? col_names[c] : "?";
}

/* ------------------------------------------------------------------------------------------ */
/* the id hash (open addressing, linear probing, backward-shift deletion)                     */
/* ------------------------------------------------------------------------------------------ */

static size_t hash_id(int64_t id, size_t cap) {
  uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ull;
  return (size_t)(x >> 17) & (cap - 1);
}

static void hash_grow(tm_model *m) {
  size_t ncap = m->hash_cap ? m->hash_cap * 2 : 1024;
  tm_task **nh = xcalloc(ncap, sizeof *nh);
  for (size_t i = 0; i < m->hash_cap; i++) {
    tm_task *t = m->hash[i];
    if (!t) continue;
    size_t j = hash_id(t->id, ncap);
    while (nh[j]) j = (j + 1) & (ncap - 1);
    nh[j] = t;
  }
  free(m->hash);
  m->hash = nh;
  m->hash_cap = ncap;
}

tm_task *tm_find(const tm_model *m, int64_t id) {
  if (!m->hash_cap) return NULL;
  for (size_t j = hash_id(id, m->hash_cap);; j = (j + 1) & (m->hash_cap - 1)) {
    tm_task *t = m->hash[j];
    if (!t) return NULL;
    if (t->id == id) return t;
  }
}

static void hash_put(tm_model *m, tm_task *t) {
  if ((m->nlive + 1) * 2 > m->hash_cap) hash_grow(m);
  size_t j = hash_id(t->id, m->hash_cap);
  while (m->hash[j]) j = (j + 1) & (m->hash_cap - 1);
  m->hash[j] = t;
}

static void hash_del(tm_model *m, int64_t id) {
  size_t cap = m->hash_cap, j = hash_id(id, cap);
  while (m->hash[j] && m->hash[j]->id != id) j = (j + 1) & (cap - 1);
  if (!m->hash[j]) return;
  m->hash[j] = NULL;
  /* Shift back the entries of the probe run that follows, so lookups never stop early. */
  for (size_t k = (j + 1) & (cap - 1); m->hash[k]; k = (k + 1) & (cap - 1)) {
    size_t home = hash_id(m->hash[k]->id, cap);
    /* Entry k may move to j if its home is not in (j, k] (cyclically). */
    int in_range = j <= k ? (home > j && home <= k) : (home > j || home <= k);
    if (!in_range) {
      m->hash[j] = m->hash[k];
      m->hash[k] = NULL;
      j = k;
    }
  }
}

/* ------------------------------------------------------------------------------------------ */
/* tasks                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void task_free(tm_task *t) {
  if (!t) return;
  free(t->name);
  free(t->error_name);
  free(t->functions);
  free(t);
}

static tm_task *task_new(int64_t id) {
  tm_task *t = xcalloc(1, sizeof *t);
  t->id = id;
  t->created_ms = t->first_run_ms = t->busy_ms = t->finished_ms = NAN;
  t->state = TM_UNKNOWN;
  t->row = -1;
  return t;
}

static int64_t int_or(json_t *o, const char *key, int64_t def) {
  json_t *j = json_object_get(o, key);
  return json_is_integer(j) ? (int64_t)json_integer_value(j) : def;
}

static double num_or(json_t *o, const char *key, double def) {
  json_t *j = json_object_get(o, key);
  return json_is_number(j) ? json_number_value(j) : def;
}

/* Fills t from a TASK or FINISHED object; only the fields present are changed. Returns a mask
 * of what changed: 1 the parent, 2 another field. */
static unsigned task_fill(tm_model *m, tm_task *t, json_t *o) {
  unsigned ch = 0;
  json_t *j;
  if ((j = json_object_get(o, "parent"))) {
    int64_t p = json_is_integer(j) ? (int64_t)json_integer_value(j) : 0;
    if (p != t->parent) t->parent = p, ch |= 1;
  }
  t->runtime = int_or(o, "runtime", t->runtime);
  const char *name = json_string_value(json_object_get(o, "name"));
  if (name && (!t->name || strcmp(name, t->name) != 0)) {
    free(t->name);
    t->name = clean_dup(name);
    ch |= 2;
  }
  if (!t->name) t->name = clean_dup("");
  const char *st = json_string_value(json_object_get(o, "state"));
  if (st) {
    tm_state s = tm_state_parse(st);
    if (s != t->state) ch |= 2;
    if (t->live) m->nstate[t->state]--, m->nstate[s]++;
    t->state = s;
  }
  if ((j = json_object_get(o, "awaiting"))) {
    const char *kind = json_string_value(json_object_get(j, "kind"));
    int64_t aid = int_or(j, "id", 0);
    char k[sizeof t->await_kind];
    snprintf(k, sizeof k, "%s", kind ? kind : "");
    for (char *p = k; *p; p++)
      if ((unsigned char)*p < 0x20) *p = '?';
    if (strcmp(k, t->await_kind) != 0 || aid != t->await_id) ch |= 2;
    memcpy(t->await_kind, k, sizeof k);
    t->await_id = aid;
  }
  t->created_ms = num_or(o, "created_ms", t->created_ms);
  t->first_run_ms = num_or(o, "first_run_ms", t->first_run_ms);
  t->finished_ms = num_or(o, "finished_ms", t->finished_ms);
  if ((j = json_object_get(o, "busy_ms")) && json_is_number(j)) {
    t->busy_ms = json_number_value(j);
    m->have_busy = 1;
    ch |= 2;
  }
  int64_t sw = int_or(o, "switches", t->switches);
  if (sw != t->switches) t->switches = sw, ch |= 2;
  if ((j = json_object_get(o, "error"))) {
    t->error = json_is_integer(j) ? (int64_t)json_integer_value(j) : 0;
    const char *en = json_string_value(json_object_get(o, "error_name"));
    free(t->error_name);
    t->error_name = en ? clean_dup(en) : NULL;
  }
  return ch;
}

static void live_add(tm_model *m, tm_task *t) {
  if (m->nlive == m->live_cap) {
    m->live_cap = m->live_cap ? m->live_cap * 2 : 1024;
    m->live = xrealloc(m->live, m->live_cap * sizeof *m->live);
  }
  hash_put(m, t);
  t->slot = (uint32_t)m->nlive;
  m->live[m->nlive++] = t;
  t->live = 1;
  m->nstate[t->state]++;
}

/* Removes t from the live table (the caller keeps or frees it). */
static void live_remove(tm_model *m, tm_task *t) {
  hash_del(m, t->id);
  size_t i = t->slot;
  m->live[i] = m->live[--m->nlive];
  m->live[i]->slot = (uint32_t)i;
  m->nstate[t->state]--;
  t->live = 0;
  t->row = -1;
  t->tparent = t->first_child = t->last_child = t->next_sib = NULL;
}

static void hist_push(tm_model *m, tm_task *t) {
  size_t i = m->hist_head;
  task_free(m->hist[i]);
  m->hist[i] = t;
  m->hist_head = (i + 1) % TM_HISTORY_MAX;
  if (m->nhist < TM_HISTORY_MAX) m->nhist++;
}

tm_task *tm_lookup(const tm_model *m, int64_t id) {
  tm_task *t = tm_find(m, id);
  if (t) return t;
  for (size_t k = 0; k < m->nhist; k++) {
    size_t i = (m->hist_head + TM_HISTORY_MAX - 1 - k) % TM_HISTORY_MAX;
    if (m->hist[i] && m->hist[i]->id == id) return m->hist[i];
  }
  return NULL;
}

/* A live task from a TASK object: inserted or updated. */
static void upsert(tm_model *m, json_t *o) {
  json_t *jid = json_object_get(o, "id");
  if (!json_is_integer(jid)) return;
  int64_t id = (int64_t)json_integer_value(jid);
  tm_task *t = tm_find(m, id);
  if (!t) {
    t = task_new(id);
    task_fill(m, t, o);
    live_add(m, t);
    m->dirty |= TM_DIRTY_LINKS;
    return;
  }
  unsigned ch = task_fill(m, t, o);
  if (ch & 1) m->dirty |= TM_DIRTY_LINKS;
  if (ch & 2) m->dirty |= TM_DIRTY_SORT;
}

/* A task finished (FINISHED object): out of the live table, into the history. */
static void finish(tm_model *m, json_t *o) {
  json_t *jid = json_object_get(o, "id");
  if (!json_is_integer(jid)) return;
  int64_t id = (int64_t)json_integer_value(jid);
  tm_task *t = tm_find(m, id);
  if (t) {
    live_remove(m, t);
    m->dirty |= TM_DIRTY_LINKS;
  } else {
    t = task_new(id);
  }
  task_fill(m, t, o);
  hist_push(m, t);
}

/* ------------------------------------------------------------------------------------------ */
/* events                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void event_free(tm_event *e) {
  free(e->what);
  free(e->task_name);
  free(e->summary);
  json_decref(e->json);
  memset(e, 0, sizeof *e);
}

tm_event *tm_event_at(const tm_model *m, size_t i) {
  if (i >= m->nevents) return NULL;
  size_t k = (m->ev_head + TM_EVENTS_MAX - 1 - i) % TM_EVENTS_MAX;
  return (tm_event *)&m->events[k];
}

static void event_push(tm_model *m, tm_event_kind kind, double t, json_t *rec) {
  tm_event *e = &m->events[m->ev_head];
  event_free(e);
  m->ev_head = (m->ev_head + 1) % TM_EVENTS_MAX;
  if (m->nevents < TM_EVENTS_MAX) m->nevents++;
  e->kind = kind;
  e->seq = ++m->ev_seq;
  e->json = json_incref(rec);
  char buf[512];
  if (kind == TM_EV_LEAK) {
    json_t *task = json_object_get(rec, "task");
    const char *what = json_string_value(json_object_get(rec, "kind"));
    const char *reason = json_string_value(json_object_get(rec, "reason"));
    const char *name = json_string_value(json_object_get(task, "name"));
    json_t *err = json_object_get(rec, "error");
    const char *ename = json_string_value(json_object_get(err, "name"));
    const char *emsg = json_string_value(json_object_get(err, "message"));
    e->what = clean_dup(what ? what : "leak");
    e->task_id = int_or(task, "id", 0);
    e->task_name = name ? clean_dup(name) : NULL;
    e->time_ms = num_or(rec, "time_ms", t);
    if (ename)
      snprintf(buf, sizeof buf, "%s: %s%s%s", ename, emsg ? emsg : "", reason ? " — " : "",
               reason ? reason : "");
    else
      snprintf(buf, sizeof buf, "%s", reason ? reason : "");
  } else {
    const char *what = json_string_value(json_object_get(rec, "kind"));
    const char *msg = json_string_value(json_object_get(rec, "message"));
    e->what = clean_dup(what ? what : "warning");
    e->task_id = int_or(rec, "task", 0);
    e->time_ms = num_or(rec, "time_ms", t);
    snprintf(buf, sizeof buf, "%s", msg ? msg : "");
  }
  e->summary = clean_dup(buf);
}

static void events_add(tm_model *m, tm_event_kind kind, json_t *arr, double t) {
  size_t i;
  json_t *rec;
  json_array_foreach(arr, i, rec) {
    if (json_is_object(rec)) event_push(m, kind, t, rec);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* runtimes, stats, sparkline                                                                  */
/* ------------------------------------------------------------------------------------------ */

static void runtimes_set(tm_model *m, json_t *arr) {
  for (size_t i = 0; i < m->nruntimes; i++) json_decref(m->runtimes[i].stalled_stack);
  size_t n = json_array_size(arr);
  m->runtimes = xrealloc(m->runtimes, (n ? n : 1) * sizeof *m->runtimes);
  m->nruntimes = 0;
  for (size_t i = 0; i < n; i++) {
    json_t *r = json_array_get(arr, i);
    if (!json_is_object(r)) continue;
    json_t *loop = json_object_get(r, "loop");
    tm_runtime *rt = &m->runtimes[m->nruntimes++];
    rt->id = int_or(r, "id", 0);
    rt->lag_ms = num_or(loop, "lag_ms", NAN);
    rt->stalled_ms = num_or(loop, "stalled_ms", NAN);
    rt->dropped_events = int_or(r, "dropped_events", 0);
    json_t *st = json_object_get(loop, "stalled_stack");
    rt->stalled_stack = json_is_array(st) ? json_incref(st) : NULL;
  }
}

static void stats_set(tm_model *m, json_t *stats) {
  if (!json_is_object(stats)) return;
  m->spawned = int_or(stats, "spawned", m->spawned);
  m->finished_total = int_or(stats, "finished", m->finished_total);
  m->dropped_events = int_or(stats, "dropped_events", m->dropped_events);
  json_t *l = json_object_get(stats, "leaks");
  m->leaks_pending = int_or(l, "pending", m->leaks_pending);
  m->leaks_destroyed = int_or(l, "destroyed_pending", m->leaks_destroyed);
  m->leaks_unretrieved = int_or(l, "unretrieved_error", m->leaks_unretrieved);
}

/* One sample per second of the server's clock; within a second the last sample is updated. */
static void spark_sample(tm_model *m) {
  int v = (int)(m->nlive > (size_t)INT32_MAX ? INT32_MAX : m->nlive);
  if (m->spark_n > 0 && !isnan(m->time_ms) && m->time_ms - m->spark_t < 1000 &&
      m->time_ms >= m->spark_t) {
    m->spark[(m->spark_n - 1) % TM_SPARK_SAMPLES] = v;
    return;
  }
  m->spark[m->spark_n % TM_SPARK_SAMPLES] = v;
  m->spark_n++;
  m->spark_t = m->time_ms;
}

size_t tm_spark(const tm_model *m, int *out, size_t max) {
  size_t n = m->spark_n < TM_SPARK_SAMPLES ? m->spark_n : TM_SPARK_SAMPLES;
  if (n > max) n = max;
  for (size_t i = 0; i < n; i++) out[i] = m->spark[(m->spark_n - n + i) % TM_SPARK_SAMPLES];
  return n;
}

double tm_lag_ms(const tm_model *m) {
  double v = NAN;
  for (size_t i = 0; i < m->nruntimes; i++)
    if (!isnan(m->runtimes[i].lag_ms) && (isnan(v) || m->runtimes[i].lag_ms > v))
      v = m->runtimes[i].lag_ms;
  return v;
}

double tm_stalled_ms(const tm_model *m) {
  double v = NAN;
  for (size_t i = 0; i < m->nruntimes; i++)
    if (!isnan(m->runtimes[i].stalled_ms) && (isnan(v) || m->runtimes[i].stalled_ms > v))
      v = m->runtimes[i].stalled_ms;
  return v;
}

/* ------------------------------------------------------------------------------------------ */
/* life cycle                                                                                  */
/* ------------------------------------------------------------------------------------------ */

void tm_init(tm_model *m) {
  memset(m, 0, sizeof *m);
  m->tree = 1;
  m->sort_col = TM_COL_ID;
  m->time_ms = NAN;
  m->spawned = m->finished_total = m->dropped_events = -1;
  m->leaks_pending = m->leaks_destroyed = m->leaks_unretrieved = -1;
  m->delta_seq = -1;
  m->dirty = TM_DIRTY_LINKS;
}

/* Drops every live task. The display list is empty until the next rebuild. */
static void clear_live(tm_model *m) {
  for (size_t i = 0; i < m->nlive; i++) task_free(m->live[i]);
  m->nlive = 0;
  memset(m->nstate, 0, sizeof m->nstate);
  if (m->hash) memset(m->hash, 0, m->hash_cap * sizeof *m->hash);
  m->nrows = 0;
  m->dirty |= TM_DIRTY_LINKS;
}

void tm_clear(tm_model *m) {
  clear_live(m);
  for (size_t i = 0; i < TM_HISTORY_MAX; i++) task_free(m->hist[i]), m->hist[i] = NULL;
  m->hist_head = m->nhist = 0;
  for (size_t i = 0; i < TM_EVENTS_MAX; i++) event_free(&m->events[i]);
  m->ev_head = m->nevents = 0;
  runtimes_set(m, NULL);
  free(m->program);
  m->program = NULL;
  m->pid = 0;
  m->time_ms = NAN;
  m->spawned = m->finished_total = m->dropped_events = -1;
  m->leaks_pending = m->leaks_destroyed = m->leaks_unretrieved = -1;
  m->delta_seq = -1;
  m->seq_gaps = 0;
  m->spark_n = 0;
  m->have_busy = 0;
  m->have_data = 0;
}

void tm_free(tm_model *m) {
  tm_clear(m);
  free(m->hash);
  free(m->live);
  free(m->runtimes);
  free(m->rows);
  memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------------------------------ */
/* messages                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static int bad(char *err, size_t errlen, const char *what) {
  if (err && errlen) snprintf(err, errlen, "malformed message: %s", what);
  return -1;
}

static int apply_snapshot(tm_model *m, json_t *msg, char *err, size_t errlen) {
  json_t *tasks = json_object_get(msg, "tasks");
  if (!json_is_array(tasks)) return bad(err, errlen, "snapshot without a \"tasks\" array");
  /* Collapse flags survive a resync: remember the collapsed ids. */
  size_t ncoll = 0;
  int64_t *coll = NULL;
  for (size_t i = 0; i < m->nlive; i++)
    if (m->live[i]->collapsed) {
      coll = xrealloc(coll, (ncoll + 1) * sizeof *coll);
      coll[ncoll++] = m->live[i]->id;
    }
  clear_live(m);
  for (size_t i = 0; i < TM_EVENTS_MAX; i++) event_free(&m->events[i]);
  m->ev_head = m->nevents = 0;
  for (size_t i = 0; i < TM_HISTORY_MAX; i++) task_free(m->hist[i]), m->hist[i] = NULL;
  m->hist_head = m->nhist = 0;

  m->time_ms = num_or(msg, "time_ms", m->time_ms);
  m->pid = int_or(msg, "pid", m->pid);
  const char *prog = json_string_value(json_object_get(msg, "program"));
  if (prog) {
    free(m->program);
    m->program = clean_dup(prog);
  }
  size_t i;
  json_t *o;
  json_array_foreach(tasks, i, o) {
    if (json_is_object(o)) upsert(m, o);
  }
  for (size_t k = 0; k < ncoll; k++) {
    tm_task *t = tm_find(m, coll[k]);
    if (t) t->collapsed = 1;
  }
  free(coll);
  json_t *fin = json_object_get(msg, "finished");
  json_array_foreach(fin, i, o) {
    if (json_is_object(o)) finish(m, o);
  }
  events_add(m, TM_EV_LEAK, json_object_get(msg, "leaks"), NAN);
  events_add(m, TM_EV_WARNING, json_object_get(msg, "warnings"), NAN);
  runtimes_set(m, json_object_get(msg, "runtimes"));
  stats_set(m, json_object_get(msg, "stats"));
  m->delta_seq = -1;
  m->have_data = 1;
  m->dirty |= TM_DIRTY_LINKS | TM_DIRTY_SORT | TM_DIRTY_ROWS;
  spark_sample(m);
  return 1;
}

static int apply_delta(tm_model *m, json_t *msg) {
  int64_t seq = int_or(msg, "seq", -1);
  if (seq >= 0 && m->delta_seq >= 0 && seq != m->delta_seq + 1) m->seq_gaps++;
  if (seq >= 0) m->delta_seq = seq;
  double t = num_or(msg, "time_ms", m->time_ms);
  if (!isnan(t)) m->time_ms = t;
  size_t i;
  json_t *o;
  json_array_foreach(json_object_get(msg, "spawned"), i, o) {
    if (json_is_object(o)) upsert(m, o);
  }
  json_array_foreach(json_object_get(msg, "changed"), i, o) {
    if (json_is_object(o)) upsert(m, o);
  }
  json_array_foreach(json_object_get(msg, "finished"), i, o) {
    if (json_is_object(o)) finish(m, o);
  }
  events_add(m, TM_EV_LEAK, json_object_get(msg, "leaks"), m->time_ms);
  events_add(m, TM_EV_WARNING, json_object_get(msg, "warnings"), m->time_ms);
  json_t *rts = json_object_get(msg, "runtimes");
  if (json_is_array(rts)) runtimes_set(m, rts);
  stats_set(m, json_object_get(msg, "stats"));
  json_t *d = json_object_get(msg, "dropped_events");
  if (json_is_integer(d)) m->dropped_events = (int64_t)json_integer_value(d);
  spark_sample(m);
  return 1;
}

int tm_apply(tm_model *m, json_t *msg, char *err, size_t errlen) {
  const char *type = json_string_value(json_object_get(msg, "type"));
  if (!type) return bad(err, errlen, "no \"type\"");
  if (strcmp(type, "snapshot") == 0) return apply_snapshot(m, msg, err, errlen);
  if (strcmp(type, "delta") == 0) {
    if (!m->have_data) return 0; /* a delta before any snapshot has nothing to apply to */
    return apply_delta(m, msg);
  }
  return 0;
}

void tm_note_functions(tm_model *m, int64_t id, json_t *frames) {
  tm_task *t = tm_lookup(m, id);
  if (!t || !json_is_array(frames)) return;
  size_t i;
  json_t *f;
  json_array_foreach(frames, i, f) {
    const char *fn = json_string_value(json_object_get(f, "function"));
    if (!fn || !*fn) continue;
    size_t fl = strlen(fn);
    /* Already there? */
    const char *p = t->functions;
    int found = 0;
    while (p && *p) {
      const char *e = strchr(p, '\n');
      size_t l = e ? (size_t)(e - p) : strlen(p);
      if (l == fl && memcmp(p, fn, fl) == 0) {
        found = 1;
        break;
      }
      p = e ? e + 1 : p + l;
    }
    if (found) continue;
    size_t old = t->functions ? strlen(t->functions) : 0;
    if (old > 4096) break;
    t->functions = xrealloc(t->functions, old + fl + 2);
    if (old) t->functions[old++] = '\n';
    memcpy(t->functions + old, fn, fl);
    t->functions[old + fl] = '\0';
  }
  if (*m->filter) m->dirty |= TM_DIRTY_ROWS;
}

size_t tm_awaited_by(const tm_model *m, int64_t id, tm_task **out, size_t max) {
  size_t n = 0;
  for (size_t i = 0; i < m->nlive; i++) {
    tm_task *t = m->live[i];
    if (t->await_id == id && strcmp(t->await_kind, "task") == 0) {
      if (n < max) out[n] = t;
      n++;
    }
  }
  return n;
}

/* ------------------------------------------------------------------------------------------ */
/* settings                                                                                    */
/* ------------------------------------------------------------------------------------------ */

void tm_set_tree(tm_model *m, int tree) {
  if (m->tree == !!tree) return;
  m->tree = !!tree;
  m->dirty |= TM_DIRTY_ROWS;
}

void tm_set_sort(tm_model *m, tm_col col, int desc) {
  m->sort_col = col < TM__NCOLS ? col : TM_COL_ID;
  m->sort_desc = !!desc;
  m->dirty |= TM_DIRTY_SORT;
}

void tm_set_filter(tm_model *m, const char *filter) {
  const char *f = filter ? filter : "";
  if (strcmp(f, m->filter) == 0) return;
  snprintf(m->filter, sizeof m->filter, "%s", f);
  m->dirty |= TM_DIRTY_ROWS;
}

int tm_set_collapsed(tm_model *m, tm_task *t, int collapsed) {
  if (!t || !t->live) return 0;
  unsigned v = collapsed < 0 ? !t->collapsed : !!collapsed;
  if (v == t->collapsed) return 0;
  t->collapsed = v;
  m->dirty |= TM_DIRTY_ROWS;
  return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* rebuild                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static int cmp_i64(int64_t a, int64_t b) {
  return a < b ? -1 : a > b;
}

static int cmp_dbl(double a, double b) {
  /* Unknown values sort last. */
  if (isnan(a) || isnan(b)) return isnan(a) - isnan(b);
  return a < b ? -1 : a > b;
}

static tm_col sort_col_g;
static int sort_desc_g;

static int cmp_tasks(const void *pa, const void *pb) {
  const tm_task *a = *(tm_task *const *)pa, *b = *(tm_task *const *)pb;
  int r = 0;
  switch (sort_col_g) {
  case TM_COL_ID: break;
  case TM_COL_NAME: r = strcmp(a->name, b->name); break;
  case TM_COL_STATE: r = cmp_i64(a->state, b->state); break;
  case TM_COL_AGE: r = -cmp_dbl(a->created_ms, b->created_ms); break; /* youngest first */
  case TM_COL_BUSY: r = cmp_dbl(a->busy_ms, b->busy_ms); break;
  case TM_COL_SWITCHES: r = cmp_i64(a->switches, b->switches); break;
  case TM_COL_AWAIT:
    r = strcmp(a->await_kind, b->await_kind);
    if (!r) r = cmp_i64(a->await_id, b->await_id);
    break;
  case TM__NCOLS: break;
  }
  if (sort_desc_g) r = -r;
  if (!r) r = cmp_i64(a->id, b->id); /* stable and total */
  return r;
}

/* Links every live task under its live parent, children in the order of m->live (the sort
 * order). A task whose parent is not live is a root; a parent chain that loops (impossible from a
 * sane server, but a malformed one must not hang us) is cut into a root. */
static void link_tree(tm_model *m) {
  for (size_t i = 0; i < m->nlive; i++) {
    tm_task *t = m->live[i];
    t->tparent = t->first_child = t->last_child = t->next_sib = NULL;
    t->visited = 0;
  }
  for (size_t i = 0; i < m->nlive; i++) {
    tm_task *t = m->live[i];
    tm_task *p = t->parent ? tm_find(m, t->parent) : NULL;
    if (!p || p == t) continue;
    t->tparent = p;
    if (p->last_child)
      p->last_child->next_sib = t;
    else
      p->first_child = t;
    p->last_child = t;
  }
}

/* Is t matched by the filter (case-insensitive substring of its name or fetched functions)? */
static int matches(const char *filter, const tm_task *t) {
  if (!*filter) return 1;
  if (strcasestr(t->name, filter)) return 1;
  if (t->functions && strcasestr(t->functions, filter)) return 1;
  return 0;
}

static void rows_push(tm_model *m, tm_task *t, uint32_t depth, uint64_t lines, int last) {
  if (m->nrows == m->rows_cap) {
    m->rows_cap = m->rows_cap ? m->rows_cap * 2 : 1024;
    m->rows = xrealloc(m->rows, m->rows_cap * sizeof *m->rows);
  }
  t->row = (int32_t)m->nrows;
  m->rows[m->nrows++] = (tm_row){.task = t, .depth = depth, .lines = lines, .last = !!last};
}

/* Post-order over the forest (iterative: chains may be 100,000 deep): descendant counts, and
 * `shown` = matched or has a matched descendant. Marks every reached task visited. */
static void mark_subtrees(tm_task *root) {
  tm_task *t = root;
  t->visited = 1;
  t->ndesc = 0;
  for (;;) {
    if (t->first_child && !t->first_child->visited) {
      t = t->first_child;
      t->visited = 1;
      t->ndesc = 0;
      continue;
    }
    /* t's subtree is done. */
    t->shown = t->match || t->shown;
    tm_task *p = t->tparent;
    if (t == root || !p) break;
    p->ndesc += t->ndesc + 1;
    if (t->shown) p->shown = 1;
    if (t->next_sib) {
      t = t->next_sib;
      t->visited = 1;
      t->ndesc = 0;
      continue;
    }
    t = p;
  }
}

/* The next shown sibling after t, or NULL. */
static tm_task *next_shown(tm_task *t) {
  for (t = t->next_sib; t && !t->shown; t = t->next_sib)
    ;
  return t;
}

/* Pre-order over one root's shown tasks, skipping collapsed subtrees, appending rows. */
static void walk_rows(tm_model *m, tm_task *root, int root_last) {
  if (!root->shown) return;
  tm_task *t = root;
  uint32_t depth = 0;
  uint64_t lines = 0; /* bit d: the ancestor at depth d has a later shown sibling */
  int last = root_last;
  for (;;) {
    rows_push(m, t, depth, lines, last);
    tm_task *c = NULL;
    if (!t->collapsed)
      for (c = t->first_child; c && !c->shown; c = c->next_sib)
        ;
    if (c) {
      if (depth < 64) {
        if (!last)
          lines |= 1ull << depth;
        else
          lines &= ~(1ull << depth);
      }
      depth++;
      t = c;
      last = next_shown(c) == NULL;
      continue;
    }
    /* Climb until an ancestor (or t) has a next shown sibling. */
    for (;;) {
      if (t == root) return;
      tm_task *n = next_shown(t);
      if (n) {
        t = n;
        last = next_shown(n) == NULL;
        break;
      }
      t = t->tparent;
      depth--;
      last = depth < 64 ? !((lines >> depth) & 1) : 1;
      if (t == root) return;
    }
  }
}

int tm_rebuild(tm_model *m) {
  if (!m->dirty) return 0;
  if (m->dirty & (TM_DIRTY_SORT | TM_DIRTY_LINKS)) {
    sort_col_g = m->sort_col;
    sort_desc_g = m->sort_desc;
    if (m->nlive > 1) qsort(m->live, m->nlive, sizeof *m->live, cmp_tasks);
    for (size_t i = 0; i < m->nlive; i++) m->live[i]->slot = (uint32_t)i;
    link_tree(m);
  }
  m->nrows = 0;
  for (size_t i = 0; i < m->nlive; i++) {
    tm_task *t = m->live[i];
    t->row = -1;
    t->match = (unsigned)matches(m->filter, t);
    t->shown = 0;
    t->visited = 0;
  }
  if (m->tree) {
    for (size_t i = 0; i < m->nlive; i++)
      if (!m->live[i]->tparent) mark_subtrees(m->live[i]);
    /* Tasks not reached from a root are on a parent cycle: cut each cycle at one task. */
    for (size_t i = 0; i < m->nlive; i++) {
      tm_task *t = m->live[i];
      if (t->visited) continue;
      tm_task *p = t->tparent;
      if (p) { /* unlink t from p's children */
        tm_task **pp = &p->first_child, *prev = NULL;
        while (*pp && *pp != t) prev = *pp, pp = &(*pp)->next_sib;
        if (*pp) *pp = t->next_sib;
        if (p->last_child == t) p->last_child = prev;
        t->next_sib = NULL;
        t->tparent = NULL;
      }
      mark_subtrees(t);
    }
    /* Roots in sort order; the last shown root closes the tree lines. */
    tm_task *last_root = NULL;
    for (size_t i = 0; i < m->nlive; i++)
      if (!m->live[i]->tparent && m->live[i]->shown) last_root = m->live[i];
    for (size_t i = 0; i < m->nlive; i++) {
      tm_task *t = m->live[i];
      if (!t->tparent) walk_rows(m, t, t == last_root);
    }
  } else {
    for (size_t i = 0; i < m->nlive; i++) {
      tm_task *t = m->live[i];
      t->shown = t->match;
      if (t->shown) rows_push(m, t, 0, 0, 0);
    }
  }
  m->dirty = 0;
  m->generation++;
  return 1;
}
