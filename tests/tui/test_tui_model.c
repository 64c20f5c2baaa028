/*
 * test_tui_model.c — taskscope-top's model: the tree and display list (tree lines, collapse,
 * orphans, parent cycles, deep chains), sorting, filtering, snapshot + deltas, events, the id
 * hash, and the replay reader. Also prints (does not assert) the rebuild time for 100,000 tasks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "model.h"
#include "replay.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers -------------------------------------------------------------------------------- */

static tm_model *new_model(void) {
  tm_model *m = malloc(sizeof *m);
  assert_non_null(m);
  tm_init(m);
  return m;
}

static void free_model(tm_model *m) {
  tm_free(m);
  free(m);
}

static json_t *task(long long id, long long parent, const char *name, const char *state,
                    long long switches) {
  json_t *t = json_pack("{s:I, s:o, s:i, s:s, s:s, s:o, s:f, s:I}", "id", (json_int_t)id,
                        "parent", parent ? json_integer(parent) : json_null(), "runtime", 1,
                        "name", name, "state", state, "awaiting", json_null(), "created_ms",
                        (double)(1000 + id), "switches", (json_int_t)switches);
  assert_non_null(t);
  return t;
}

static json_t *snapshot(json_t *tasks) {
  json_t *s = json_pack("{s:s, s:i, s:f, s:i, s:s, s:o, s:[], s:[], s:[], s:[]}", "type",
                        "snapshot", "id", 1, "time_ms", 5000.0, "pid", 42, "program", "demo",
                        "tasks", tasks, "runtimes", "finished", "leaks", "warnings");
  assert_non_null(s);
  return s;
}

static void apply(tm_model *m, json_t *msg) {
  char err[200] = "";
  assert_int_equal(tm_apply(m, msg, err, sizeof err), 1);
  json_decref(msg);
  tm_rebuild(m);
}

/* The demo-like tree used by several tests:
 *   1 main
 *   └─ 2 supervisor
 *      ├─ 3 http_server
 *      │  └─ 5 http_connection
 *      │     └─ 7 render_page
 *      └─ 4 worker_pool
 *         └─ 6 pool_worker
 *   8 lease_keeper (parent 99: finished)
 */
static tm_model *demo_model(void) {
  tm_model *m = new_model();
  json_t *ts = json_array();
  json_array_append_new(ts, task(1, 0, "main", "waiting", 1));
  json_array_append_new(ts, task(2, 1, "supervisor", "waiting", 9));
  json_array_append_new(ts, task(3, 2, "http_server", "waiting", 4));
  json_array_append_new(ts, task(4, 2, "worker_pool", "running", 20));
  json_array_append_new(ts, task(5, 3, "http_connection", "ready", 2));
  json_array_append_new(ts, task(6, 4, "pool_worker", "waiting", 7));
  json_array_append_new(ts, task(7, 5, "render_page", "waiting", 3));
  json_array_append_new(ts, task(8, 99, "lease_keeper", "waiting", 1));
  apply(m, snapshot(ts));
  return m;
}

static const char *row_name(tm_model *m, size_t i) {
  assert_true(i < m->nrows);
  return m->rows[i].task->name;
}

/* ---- tree ----------------------------------------------------------------------------------- */

static void test_tree_building(void **state) {
  (void)state;
  tm_model *m = demo_model();
  assert_int_equal(m->nlive, 8);
  assert_int_equal(m->nrows, 8);
  static const char *const order[] = {"main",        "supervisor",      "http_server",
                                      "http_connection", "render_page", "worker_pool",
                                      "pool_worker", "lease_keeper"};
  static const uint32_t depth[] = {0, 1, 2, 3, 4, 2, 3, 0};
  for (size_t i = 0; i < 8; i++) {
    assert_string_equal(row_name(m, i), order[i]);
    assert_int_equal(m->rows[i].depth, depth[i]);
  }
  /* http_server (row 2) has a later sibling (worker_pool): not last, and its descendants see a
   * vertical line at depth 2; worker_pool is the last child of supervisor. */
  assert_false(m->rows[2].last);
  assert_true((m->rows[3].lines >> 2) & 1);
  assert_true((m->rows[4].lines >> 2) & 1);
  assert_true(m->rows[5].last);
  assert_false((m->rows[6].lines >> 2) & 1);
  /* The orphan (parent 99 is not live) is a root. */
  assert_null(tm_find(m, 8)->tparent);
  assert_int_equal(tm_find(m, 2)->ndesc, 5);
  assert_int_equal(m->nstate[TM_WAITING], 6);
  assert_int_equal(m->nstate[TM_RUNNING], 1);
  assert_int_equal(m->nstate[TM_READY], 1);
  free_model(m);
}

static void test_collapse(void **state) {
  (void)state;
  tm_model *m = demo_model();
  tm_task *http = tm_find(m, 3);
  assert_true(tm_set_collapsed(m, http, 1));
  tm_rebuild(m);
  assert_int_equal(m->nrows, 6); /* http_connection and render_page hidden */
  assert_string_equal(row_name(m, 2), "http_server");
  assert_string_equal(row_name(m, 3), "worker_pool");
  assert_int_equal(http->ndesc, 2);
  assert_int_equal(tm_find(m, 7)->row, -1);
  /* toggling expands again; collapsing a collapsed node changes nothing */
  assert_true(tm_set_collapsed(m, http, -1));
  assert_false(tm_set_collapsed(m, http, 0));
  tm_rebuild(m);
  assert_int_equal(m->nrows, 8);
  /* collapse survives a resync snapshot (same ids) */
  tm_set_collapsed(m, tm_find(m, 2), 1);
  tm_rebuild(m);
  assert_int_equal(m->nrows, 3); /* main, supervisor, lease_keeper */
  json_t *ts = json_array();
  json_array_append_new(ts, task(1, 0, "main", "waiting", 1));
  json_array_append_new(ts, task(2, 1, "supervisor", "waiting", 9));
  json_array_append_new(ts, task(3, 2, "http_server", "waiting", 4));
  apply(m, snapshot(ts));
  assert_true(tm_find(m, 2)->collapsed);
  assert_int_equal(m->nrows, 2);
  free_model(m);
}

static void test_sort(void **state) {
  (void)state;
  tm_model *m = demo_model();
  tm_set_tree(m, 0);
  tm_set_sort(m, TM_COL_NAME, 0);
  tm_rebuild(m);
  assert_int_equal(m->nrows, 8);
  assert_string_equal(row_name(m, 0), "http_connection");
  assert_string_equal(row_name(m, 7), "worker_pool");
  tm_set_sort(m, TM_COL_SWITCHES, 1);
  tm_rebuild(m);
  assert_string_equal(row_name(m, 0), "worker_pool"); /* 20 switches */
  assert_string_equal(row_name(m, 1), "supervisor");  /* 9 */
  tm_set_sort(m, TM_COL_STATE, 0);
  tm_rebuild(m);
  assert_string_equal(row_name(m, 0), "http_connection"); /* ready first */
  assert_string_equal(row_name(m, 1), "worker_pool");     /* then running */
  /* ties are broken by id: a total order */
  assert_true(m->rows[2].task->id < m->rows[3].task->id);
  /* in the tree view the sort orders siblings */
  tm_set_tree(m, 1);
  tm_set_sort(m, TM_COL_NAME, 1);
  tm_rebuild(m);
  assert_string_equal(row_name(m, 0), "main");
  assert_string_equal(row_name(m, 2), "worker_pool"); /* before http_server, descending */
  free_model(m);
}

static void test_filter(void **state) {
  (void)state;
  tm_model *m = demo_model();
  tm_set_tree(m, 0);
  tm_set_filter(m, "POOL");
  tm_rebuild(m);
  assert_int_equal(m->nrows, 2); /* worker_pool, pool_worker (case-insensitive) */
  assert_string_equal(row_name(m, 0), "worker_pool");
  assert_string_equal(row_name(m, 1), "pool_worker");
  /* the tree keeps the ancestors of matches, unmatched */
  tm_set_tree(m, 1);
  tm_set_filter(m, "render");
  tm_rebuild(m);
  assert_int_equal(m->nrows, 5); /* main, supervisor, http_server, http_connection, render_page */
  assert_false(m->rows[0].task->match);
  assert_true(m->rows[4].task->match);
  assert_true(m->rows[4].last);
  /* functions of a fetched stack match too */
  json_t *frames = json_pack("[{s:s, s:s}]", "ip", "0x1", "function", "lease_keeper_wait");
  tm_note_functions(m, 8, frames);
  json_decref(frames);
  tm_set_filter(m, "keeper_wait");
  tm_rebuild(m);
  assert_int_equal(m->nrows, 1);
  assert_string_equal(row_name(m, 0), "lease_keeper");
  tm_set_filter(m, "nothing-matches-this");
  tm_rebuild(m);
  assert_int_equal(m->nrows, 0);
  tm_set_filter(m, "");
  tm_rebuild(m);
  assert_int_equal(m->nrows, 8);
  free_model(m);
}

/* ---- snapshot + deltas ---------------------------------------------------------------------- */

static void test_deltas(void **state) {
  (void)state;
  tm_model *m = demo_model();
  /* a spawn under worker_pool, a change, a finish (with its child orphaned), a leak, a warning */
  json_t *d = json_pack(
      "{s:s, s:i, s:f, s:[o], s:[o], s:[{s:i, s:i, s:s, s:s, s:i, s:s, s:f}],"
      " s:[{s:s, s:s, s:{s:i, s:s}, s:{s:s, s:s}}], s:[{s:f, s:s, s:s}],"
      " s:{s:I, s:I, s:{s:i, s:i, s:i}}, s:i}",
      "type", "delta", "seq", 1, "time_ms", 6000.0, "spawned", task(9, 4, "pool_worker", "ready", 0),
      "changed", task(6, 4, "pool_worker", "running", 30), "finished", "id", 5, "parent", 3,
      "name", "http_connection", "state", "failed", "error", -30013, "error_name",
      "TSK_EFAILED", "finished_ms", 5990.0, "leaks", "kind", "unretrieved_error", "reason",
      "nobody joined it", "task", "id", 5, "name", "http_connection", "error", "name",
      "TSK_EFAILED", "message", "boom", "warnings", "time_ms", 5995.0, "kind", "loop_stalled",
      "message", "loop stalled for 250 ms", "stats", "spawned", (json_int_t)9, "finished",
      (json_int_t)1, "leaks", "pending", 0, "destroyed_pending", 0, "unretrieved_error", 1,
      "dropped_events", 0);
  assert_non_null(d);
  apply(m, d);
  assert_int_equal(m->nlive, 8);
  assert_int_equal(tm_find(m, 9)->tparent->id, 4);
  assert_int_equal(tm_find(m, 6)->state, TM_RUNNING);
  assert_int_equal(tm_find(m, 6)->switches, 30);
  assert_null(tm_find(m, 5));
  tm_task *f = tm_lookup(m, 5);
  assert_non_null(f);
  assert_false(f->live);
  assert_int_equal(f->state, TM_FAILED);
  assert_string_equal(f->error_name, "TSK_EFAILED");
  assert_null(tm_find(m, 7)->tparent); /* render_page's parent finished: a root now */
  assert_int_equal(m->nevents, 2);
  assert_string_equal(tm_event_at(m, 0)->what, "loop_stalled"); /* newest first */
  assert_string_equal(tm_event_at(m, 1)->what, "unretrieved_error");
  assert_int_equal(tm_event_at(m, 1)->task_id, 5);
  assert_int_equal(m->leaks_unretrieved, 1);
  assert_int_equal(m->spawned, 9);
  assert_true(m->time_ms == 6000.0);
  assert_int_equal(m->nstate[TM_RUNNING], 2);
  assert_int_equal(m->nstate[TM_READY], 1);
  /* a gap in seq is counted */
  json_t *d3 = json_pack("{s:s, s:i, s:f}", "type", "delta", "seq", 3, "time_ms", 7000.0);
  apply(m, d3);
  assert_int_equal(m->seq_gaps, 1);
  /* awaited-by */
  json_t *w = json_pack("{s:s, s:i, s:[{s:i, s:{s:s, s:i}}]}", "type", "delta", "seq", 4,
                        "changed", "id", 2, "awaiting", "kind", "task", "id", 4);
  apply(m, w);
  tm_task *by[4];
  assert_int_equal(tm_awaited_by(m, 4, by, 4), 1);
  assert_int_equal(by[0]->id, 2);
  /* a resync snapshot replaces the whole view */
  json_t *ts = json_array();
  json_array_append_new(ts, task(100, 0, "main", "waiting", 1));
  apply(m, snapshot(ts));
  assert_int_equal(m->nlive, 1);
  assert_int_equal(m->nrows, 1);
  assert_null(tm_find(m, 2));
  /* a delta before any snapshot is ignored; a malformed snapshot is an error */
  tm_model *m2 = new_model();
  json_t *early = json_pack("{s:s, s:i}", "type", "delta", "seq", 1);
  assert_int_equal(tm_apply(m2, early, NULL, 0), 0);
  json_decref(early);
  json_t *bad = json_pack("{s:s, s:i}", "type", "snapshot", "tasks", 3);
  char err[100];
  assert_int_equal(tm_apply(m2, bad, err, sizeof err), -1);
  assert_non_null(strstr(err, "tasks"));
  json_decref(bad);
  free_model(m2);
  free_model(m);
}

static void test_cycle_and_names(void **state) {
  (void)state;
  tm_model *m = new_model();
  json_t *ts = json_array();
  json_array_append_new(ts, task(1, 2, "a", "waiting", 0));
  json_array_append_new(ts, task(2, 3, "b", "waiting", 0));
  json_array_append_new(ts, task(3, 1, "c\x1b[2J", "waiting", 0)); /* escape in a name */
  json_array_append_new(ts, task(4, 4, "self", "waiting", 0));
  apply(m, snapshot(ts));
  assert_int_equal(m->nrows, 4); /* every task shown once, no hang */
  assert_null(strchr(tm_find(m, 3)->name, '\x1b'));
  free_model(m);
}

static void test_hash_churn(void **state) {
  (void)state;
  tm_model *m = new_model();
  json_t *ts = json_array();
  for (int i = 1; i <= 5000; i++) json_array_append_new(ts, task(i * 7, 0, "t", "waiting", 0));
  apply(m, snapshot(ts));
  /* finish every other task, in an order unrelated to the hash */
  json_t *fin = json_array();
  for (int i = 2; i <= 5000; i += 2)
    json_array_append_new(fin, json_pack("{s:i, s:s, s:s}", "id", i * 7, "name", "t", "state",
                                         "done"));
  json_t *d = json_pack("{s:s, s:i, s:o}", "type", "delta", "seq", 1, "finished", fin);
  apply(m, d);
  assert_int_equal(m->nlive, 2500);
  for (int i = 1; i <= 5000; i++) {
    tm_task *t = tm_find(m, i * 7);
    if (i % 2)
      assert_true(t && t->id == i * 7);
    else
      assert_null(t);
  }
  assert_int_equal(m->nrows, 2500);
  free_model(m);
}

/* ---- scale ---------------------------------------------------------------------------------- */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_100k(void **state) {
  (void)state;
  enum { N = 100000 };
  tm_model *m = new_model();
  json_t *ts = json_array();
  /* a wide tree: 100 pools of ~1000 workers, plus a 2,000-deep chain */
  for (int i = 1; i <= N; i++) {
    long long parent = i <= 100 ? 0 : i <= N - 2000 ? 1 + i % 100 : i - 1;
    json_array_append_new(ts, task(i, parent, i % 3 ? "pool_worker" : "render_page", "waiting",
                                   i % 97));
  }
  json_t *snap = snapshot(ts);
  double t0 = now_ms();
  assert_int_equal(tm_apply(m, snap, NULL, 0), 1);
  double t1 = now_ms();
  tm_rebuild(m);
  double t2 = now_ms();
  assert_int_equal(m->nrows, N);
  /* the end of the chain: under root 1 > worker N-2000 > 2,000 links */
  assert_int_equal(m->rows[tm_find(m, N)->row].depth, 2001);
  /* a delta touching 100 tasks, then a rebuild (what one update costs) */
  json_t *changed = json_array();
  for (int i = 0; i < 100; i++) json_array_append_new(changed, task(i * 997 + 1, 0, "x", "ready", 5));
  json_t *d = json_pack("{s:s, s:i, s:o}", "type", "delta", "seq", 1, "changed", changed);
  double t3 = now_ms();
  tm_apply(m, d, NULL, 0);
  tm_rebuild(m);
  double t4 = now_ms();
  tm_set_filter(m, "render");
  double t5 = now_ms();
  tm_rebuild(m);
  double t6 = now_ms();
  tm_set_tree(m, 0);
  tm_set_sort(m, TM_COL_SWITCHES, 1);
  double t7 = now_ms();
  tm_rebuild(m);
  double t8 = now_ms();
  print_message("100k tasks: apply snapshot %.1f ms, tree rebuild %.1f ms, delta(100)+rebuild "
                "%.1f ms, filter rebuild %.1f ms, list sort rebuild %.1f ms\n",
                t1 - t0, t2 - t1, t4 - t3, t6 - t5, t8 - t7);
  json_decref(snap);
  json_decref(d);
  free_model(m);
}

/* ---- replay files --------------------------------------------------------------------------- */

static char *write_tmp(const char *text) {
  char *path = strdup("/tmp/test_tui_rec.XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  return path;
}

static void test_replay(void **state) {
  (void)state;
  const char *rec =
      "{\"format\":\"taskscope-recording\",\"version\":1,\"protocol\":1,\"pid\":7,"
      "\"program\":\"demo\",\"started\":\"2025-01-01T00:00:00Z\"}\n"
      "{\"t_ms\":5,\"msg\":{\"type\":\"snapshot\",\"id\":1,\"time_ms\":100,\"tasks\":["
      "{\"id\":1,\"parent\":null,\"name\":\"main\",\"state\":\"waiting\"}]}}\n"
      "{\"t_ms\":1000,\"msg\":{\"type\":\"delta\",\"seq\":1,\"time_ms\":1100,\"spawned\":["
      "{\"id\":2,\"parent\":1,\"name\":\"supervisor\",\"state\":\"ready\"}]}}\n"
      "{\"t_ms\":2000,\"msg\":{\"type\":\"delta\",\"seq\":2,\"time_ms\":2100,\"finished\":["
      "{\"id\":2,\"name\":\"supervisor\",\"state\":\"done\"}]}}\n";
  char *path = write_tmp(rec);
  rp_replay r;
  char err[300];
  assert_int_equal(rp_open(&r, path, err, sizeof err), 0);
  assert_int_equal(r.n, 3);
  assert_true(r.duration_ms == 2000);
  assert_string_equal(r.program, "demo");
  tm_model *m = new_model();
  rp_seek(&r, m, 0);
  tm_rebuild(m);
  assert_int_equal(m->nlive, 1); /* the first snapshot is shown at 0 */
  rp_seek(&r, m, 1500);
  tm_rebuild(m);
  assert_int_equal(m->nlive, 2);
  rp_seek(&r, m, 2000);
  assert_int_equal(m->nlive, 1);
  rp_seek(&r, m, 1000); /* back: from the snapshot again */
  assert_int_equal(m->nlive, 2);
  assert_non_null(tm_find(m, 2));
  assert_int_equal(rp_step(&r, m), 0);
  assert_true(r.paused);
  assert_int_equal(m->nlive, 1);
  assert_int_equal(rp_step(&r, m), -1); /* at the end */
  /* playing: advancing the wall clock moves the position by speed */
  rp_seek(&r, m, 0);
  rp_set_paused(&r, 0, 10000);
  rp_faster(&r); /* x2 */
  rp_advance(&r, m, 10600);
  assert_true(fabs(r.pos_ms - 1200) < 1e-6);
  assert_int_equal(m->nlive, 2);
  rp_advance(&r, m, 20000);
  assert_true(r.paused && r.pos_ms == r.duration_ms);
  free_model(m);
  rp_close(&r);
  unlink(path);
  free(path);
}

static void test_replay_refused(void **state) {
  (void)state;
  static const struct {
    const char *text, *want1, *want2;
  } cases[] = {
      {"{\"format\":\"taskscope-recording\",\"version\":2,\"protocol\":1}\n", "version 2",
       "version 1"},
      {"{\"format\":\"taskscope-recording\",\"version\":1,\"protocol\":3}\n", "protocol 3",
       "protocol 1"},
      {"{\"format\":\"taskscope-report\",\"version\":1}\n", "taskscope-report",
       "taskscope-recording"},
      {"hello\n", "not a taskscope recording", ""},
      {"{\"format\":\"taskscope-recording\",\"version\":1,\"protocol\":1}\n", "no messages", ""},
      {"{\"format\":\"taskscope-recording\",\"version\":1,\"protocol\":1}\nxx\n", ":2:", ""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *path = write_tmp(cases[i].text);
    rp_replay r;
    char err[400];
    assert_int_equal(rp_open(&r, path, err, sizeof err), -1);
    if (!strstr(err, cases[i].want1) || !strstr(err, cases[i].want2))
      fail_msg("case %zu: \"%s\" lacks \"%s\" / \"%s\"", i, err, cases[i].want1, cases[i].want2);
    unlink(path);
    free(path);
  }
  rp_replay r;
  char err[400];
  assert_int_equal(rp_open(&r, "/nonexistent/rec", err, sizeof err), -1);
  assert_non_null(strstr(err, "cannot open"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tree_building), cmocka_unit_test(test_collapse),
      cmocka_unit_test(test_sort),          cmocka_unit_test(test_filter),
      cmocka_unit_test(test_deltas),        cmocka_unit_test(test_cycle_and_names),
      cmocka_unit_test(test_hash_churn),    cmocka_unit_test(test_100k),
      cmocka_unit_test(test_replay),        cmocka_unit_test(test_replay_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
