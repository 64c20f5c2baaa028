/*
 * test_inspector_bulk — large snapshots: the inspector server's bulk thread (inspector/server/
 * bulk.c) renders their task arrays at SCHED_IDLE from a copy of the tasks. Its answers must be
 * byte for byte those the server renders at once, in request order, consistent under churn,
 * and still come when the bulk thread is late (the server renders them itself) or its client
 * is gone.
 *
 * The answers are read with the CLI's own fast reader (inspector/cli/fastjson.c, compiled in:
 * it validates each line as jansson would, and checks the tasks as the CLI does), and the
 * thresholds are the server's test knobs (srv.h: tsk__srv_bulk_min, tsk__srv_bulk_late_ms).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/insp_fixture.h"

#include "../../inspector/server/srv.h"
#include "taskscope.h"

#include "../../inspector/cli/fastjson.c"
#include "../../inspector/cli/jv.c"

#define NTASKS 6000


/* ------------------------------------------------------------------------------------------ */
/* the app: NTASKS tasks waiting on an event (and, with churn, tasks coming and going)          */
/* ------------------------------------------------------------------------------------------ */

typedef struct app {
  pthread_t thread;
  tsk_runtime_t *rt;
  tsk_event_t *stop, *go;
  tsk_task_t *waiters;
  _Atomic int ready, churn, churned, late_spawned;
  int rc, close_rc;
} app;

static int waiter(void *arg) { return tsk_event_wait(((app *)arg)->go, TSK_FOREVER); }

static int churn_child(void *arg) {
  (void)arg;
  return tsk_yield();
}

static int churner(void *arg) {
  app *a = arg;
  while (atomic_load(&a->churn)) {
    tsk_task_t t[8];
    for (int i = 0; i < 8; i++) tsk_spawn(tsk_runtime_current(), &t[i], "churn", churn_child, a);
    for (int i = 0; i < 8; i++) tsk_join(t[i], TSK_FOREVER, NULL);
    atomic_fetch_add(&a->churned, 8);
    tsk_sleep(1);
  }
  return 0;
}

static int app_main(void *arg) {
  app *a = arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  tsk_event_new(rt, &a->stop);
  tsk_event_new(rt, &a->go);
  a->waiters = calloc(NTASKS, sizeof *a->waiters);
  /* Names that need escapes, the longest one, and unnamed tasks (their entry function). */
  static const char *const names[] = {"w", "quote\"back\\slash", "ctl\x01\x1f\x7f", "caf\xc3\xa9",
                                      "bad\xff utf-8", "0123456789012345678901234567890", NULL};
  for (int i = 0; i < NTASKS; i++) {
    const char *name = names[i % 7];
    if (tsk_spawn(rt, &a->waiters[i], name, waiter, a) != 0) return -1;
  }
  tsk_task_t ch;
  if (atomic_load(&a->churn) && tsk_spawn(rt, &ch, "churner", churner, a) != 0) return -1;
  atomic_store(&a->ready, 1);
  tsk_event_wait(a->stop, TSK_FOREVER);
  if (atomic_exchange(&a->churn, 0)) tsk_join(ch, TSK_FOREVER, NULL);
  tsk_event_set(a->go);
  for (int i = 0; i < NTASKS; i++) tsk_join(a->waiters[i], TSK_FOREVER, NULL);
  free(a->waiters);
  return 0;
}

static void *app_thread(void *arg) {
  app *a = arg;
  if (tsk_runtime_new(&a->rt) != 0) {
    a->rc = -1;
    atomic_store(&a->ready, 1);
    return NULL;
  }
  a->rc = tsk_run_main(a->rt, "app_main", app_main, a, NULL);
  tsk_event_free(a->stop);
  tsk_event_free(a->go);
  a->close_rc = tsk_runtime_close(a->rt);
  atomic_store(&a->ready, 1);
  return NULL;
}

static void app_start(app *a, int churn) {
  memset(a, 0, sizeof *a);
  atomic_store(&a->churn, churn);
  assert_int_equal(pthread_create(&a->thread, NULL, app_thread, a), 0);
  uint64_t t0 = now_ms();
  while (!atomic_load(&a->ready)) {
    assert_true(now_ms() - t0 < 30000);
    sleep_ms(1);
  }
  assert_int_equal(a->rc, 0);
}

static int set_stop(void *arg) {
  tsk_event_set(((app *)arg)->stop);
  return 0;
}

static void app_stop(app *a) {
  assert_int_equal(tsk_post(a->rt, "stopper", set_stop, a), 0);
  pthread_join(a->thread, NULL);
  assert_int_equal(a->rc, 0);
  assert_int_equal(a->close_rc, 0);
}

static int late_task(void *arg) {
  (void)arg;
  return tsk_yield();
}

static int spawn_late(void *arg) {
  app *a = arg;
  tsk_task_t t;
  if (tsk_spawn(tsk_runtime_current(), &t, "late_one", late_task, NULL) == 0) tsk_detach(t);
  atomic_store(&a->late_spawned, 1);
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* the client: lines, and snapshots read with the CLI's fast reader                           */
/* ------------------------------------------------------------------------------------------ */

typedef struct client {
  int fd;
  char *buf;
  size_t len, cap;
} client;

static void cl_send(client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cl_send(client *c, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  line[n++] = '\n';
  assert_int_equal(write(c->fd, line, (size_t)n), n);
}

/* The next line (malloc'd, without its '\n'), or NULL at the end or after timeout_ms. */
static char *cl_line(client *c, int timeout_ms, size_t *len) {
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
    if (nl) {
      size_t n = (size_t)(nl - c->buf);
      char *line = malloc(n + 1);
      memcpy(line, c->buf, n);
      line[n] = '\0';
      memmove(c->buf, nl + 1, c->len - n - 1);
      c->len -= n + 1;
      if (len) *len = n;
      return line;
    }
    uint64_t now = now_ms();
    if (now >= deadline) return NULL;
    struct pollfd p = {c->fd, POLLIN, 0};
    if (poll(&p, 1, (int)(deadline - now)) <= 0) continue;
    if (c->cap - c->len < 65536) {
      c->cap = c->cap ? c->cap * 2 : 1 << 20;
      c->buf = realloc(c->buf, c->cap);
      assert_non_null(c->buf);
    }
    ssize_t k = read(c->fd, c->buf + c->len, c->cap - c->len);
    if (k <= 0) return NULL;
    c->len += (size_t)k;
  }
}

static void cl_open(client *c) {
  memset(c, 0, sizeof *c);
  c->fd = raw_connect();
  assert_true(c->fd >= 0);
  char *hello = cl_line(c, 5000, NULL);
  assert_non_null(hello);
  assert_non_null(strstr(hello, "\"type\":\"hello\""));
  free(hello);
  cl_send(c, "{\"type\":\"hello\",\"version\":1,\"client\":\"test_inspector_bulk\"}");
}

static void cl_close(client *c) {
  close(c->fd);
  free(c->buf);
  memset(c, 0, sizeof *c);
  c->fd = -1;
}

/* The text of a member of a JSON object (its value), checking the whole line is valid JSON. */
static char *member(const char *obj, size_t len, const char *key) {
  size_t a, b;
  if (tsj_scan(obj, len, key, &a, &b) != 1) fail_msg("not valid JSON: %.300s", obj);
  char *v = malloc(b - a + 1);
  memcpy(v, obj + a, b - a);
  v[b - a] = '\0';
  return v;
}

static long long member_int(const char *obj, const char *key) {
  char *v = member(obj, strlen(obj), key);
  long long n = *v ? atoll(v) : -1;
  free(v);
  return n;
}

static int is_type(const char *line, const char *type) {
  char *t = member(line, strlen(line), "type");
  char want[64];
  snprintf(want, sizeof want, "\"%s\"", type);
  int r = strcmp(t, want) == 0;
  free(t);
  return r;
}

typedef struct snap {
  char *line;
  char *tasks;      /* the task array's text */
  ts_task *t;       /* read from a copy of it */
  size_t n;
  char *copy;
} snap;

/* Reads a line that must be a snapshot; checks its tasks as the CLI does (no duplicate ids). */
static void snap_read(client *c, snap *s, long long id) {
  memset(s, 0, sizeof *s);
  size_t len;
  uint64_t t0 = now_ms();
  for (;;) {
    s->line = cl_line(c, 20000, &len);
    if (!s->line) fail_msg("no snapshot %lld within 20 s", id);
    if (is_type(s->line, "snapshot")) break;
    assert_true(is_type(s->line, "delta")); /* a subscriber's */
    free(s->line);
    assert_true(now_ms() - t0 < 20000);
  }
  if (id >= 0) assert_int_equal(member_int(s->line, "id"), id);
  s->tasks = member(s->line, len, "tasks");
  s->copy = strdup(s->tasks);
  char err[400];
  if (tsj_tasks(s->copy, strlen(s->copy), "tasks", &s->t, &s->n, err, sizeof err) != 0)
    fail_msg("snapshot tasks: %s", err);
  int dup = 0;
  for (size_t i = 0; i < s->n && !dup; i++)
    for (size_t k = i + 1; k < s->n && k < i + 64; k++) dup |= s->t[i].id == s->t[k].id;
  assert_false(dup);
}

static void snap_free(snap *s) {
  free(s->line);
  free(s->tasks);
  free(s->copy);
  free(s->t);
  memset(s, 0, sizeof *s);
}

/* The snapshot's stats.tasks counts: ready + running + waiting. */
static long long stats_live(const snap *s) {
  char *stats = member(s->line, strlen(s->line), "stats");
  char *counts = member(stats, strlen(stats), "tasks");
  long long n = member_int(counts, "ready") + member_int(counts, "running") +
                member_int(counts, "waiting");
  free(stats);
  free(counts);
  return n;
}

/* Waits until the server's view holds every waiter waiting and stays put (spawning NTASKS
 * tasks at once overflows its event ring: it then resyncs), rendering at once. */
static void settle(client *c) {
  atomic_store(&tsk__srv_bulk_min, SIZE_MAX);
  char *prev = NULL;
  uint64_t t0 = now_ms();
  for (int id = 1000;; id++) {
    assert_true(now_ms() - t0 < 30000);
    snap s;
    cl_send(c, "{\"type\":\"snapshot\",\"id\":%d}", id);
    snap_read(c, &s, id);
    size_t waiting = 0;
    for (size_t i = 0; i < s.n; i++) waiting += strcmp(s.t[i].state, "waiting") == 0;
    int done = waiting == NTASKS + 1 && prev && strcmp(prev, s.tasks) == 0;
    free(prev);
    prev = strdup(s.tasks);
    snap_free(&s);
    if (done) break;
    sleep_ms(20);
  }
  free(prev);
}

static void thresholds(size_t bulk_min, uint64_t late_ms) {
  atomic_store(&tsk__srv_bulk_min, bulk_min);
  atomic_store(&tsk__srv_bulk_late_ms, late_ms);
}

/* ------------------------------------------------------------------------------------------ */
/* tests                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/* The bulk thread's answer is the one rendered at once, byte for byte. */
static void test_same_as_inline(void **state) {
  (void)state;
  app a;
  app_start(&a, 0);
  client c;
  cl_open(&c);
  settle(&c);
  tsk__server_stats st0, st1;
  snap s1, s2, s3;
  thresholds(SIZE_MAX, TSK__SRV_BULK_LATE_MS);
  tsk__server_stats_get(&st0);
  cl_send(&c, "{\"type\":\"snapshot\",\"id\":1}");
  snap_read(&c, &s1, 1);
  thresholds(0, 60000);
  cl_send(&c, "{\"type\":\"snapshot\",\"id\":2}");
  snap_read(&c, &s2, 2);
  thresholds(SIZE_MAX, TSK__SRV_BULK_LATE_MS);
  cl_send(&c, "{\"type\":\"snapshot\",\"id\":3}");
  snap_read(&c, &s3, 3);
  tsk__server_stats_get(&st1);
  assert_int_equal(st1.bulk_snapshots - st0.bulk_snapshots, 1);
  print_message("bulk thread: %s\n", st1.bulk_policy == TSK__BULK_IDLE   ? "SCHED_IDLE"
                                     : st1.bulk_policy == TSK__BULK_NICE ? "nice 19"
                                                                         : "normal priority");
  assert_true(st1.bulk_policy == TSK__BULK_IDLE || st1.bulk_policy == TSK__BULK_NICE);
  assert_true(s2.n >= NTASKS + 1); /* and the main task */
  /* (nothing changes in between: the same tasks, in the same order, as the same text) */
  if (strcmp(s1.tasks, s2.tasks) != 0 || strcmp(s2.tasks, s3.tasks) != 0)
    fail_msg("the bulk thread's task array differs from the server's");
  for (size_t i = 0; i < s2.n; i++)
    if (strcmp(s2.t[i].name, "quote\"back\\slash") == 0) goto found;
  fail_msg("no task named with escapes");
found:;
  static const char *const same[] = {"finished", "leaks", "warnings", "stats", "pid", "program"};
  for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
    char *x = member(s1.line, strlen(s1.line), same[i]);
    char *y = member(s2.line, strlen(s2.line), same[i]);
    if (strcmp(x, y) != 0) fail_msg("%s differs: %.200s / %.200s", same[i], x, y);
    free(x);
    free(y);
  }
  assert_int_equal(stats_live(&s2), (long long)s2.n);
  snap_free(&s1);
  snap_free(&s2);
  snap_free(&s3);
  cl_close(&c);
  app_stop(&a);
}

/* Answers stay in request order; a subscribe answered by the bulk thread goes on with deltas
 * that carry what changed after its snapshot. */
static void test_order_and_subscribe(void **state) {
  (void)state;
  app a;
  app_start(&a, 0);
  thresholds(0, 60000);
  client c;
  cl_open(&c);
  cl_send(&c, "{\"type\":\"snapshot\",\"id\":1}\n{\"type\":\"ping\",\"id\":2}\n"
              "{\"type\":\"subscribe\",\"id\":3,\"interval_ms\":50}\n{\"type\":\"ping\",\"id\":4}");
  snap s;
  snap_read(&c, &s, 1);
  snap_free(&s);
  char *l = cl_line(&c, 10000, NULL);
  assert_non_null(l);
  assert_true(is_type(l, "pong") && member_int(l, "id") == 2);
  free(l);
  snap_read(&c, &s, 3);
  snap_free(&s);
  l = cl_line(&c, 10000, NULL);
  assert_non_null(l);
  if (!is_type(l, "pong") || member_int(l, "id") != 4) fail_msg("expected pong 4: %.200s", l);
  free(l);
  assert_int_equal(tsk_post(a.rt, "spawn_late", spawn_late, &a), 0);
  int seen = 0;
  uint64_t t0 = now_ms();
  while (!seen && now_ms() - t0 < 10000) {
    l = cl_line(&c, 1000, NULL);
    if (!l) continue;
    if (!is_type(l, "delta")) fail_msg("expected deltas: %.200s", l);
    seen = strstr(l, "\"late_one\"") != NULL;
    free(l);
  }
  assert_true(seen);
  thresholds(TSK__SRV_BULK_MIN, TSK__SRV_BULK_LATE_MS);
  cl_close(&c);
  app_stop(&a);
}

/* The bulk thread late (here: always, the deadline being 0): the server answers itself, with
 * the same text; the jobs are freed once the bulk thread lets go of them. */
static void test_late(void **state) {
  (void)state;
  app a;
  app_start(&a, 0);
  thresholds(SIZE_MAX, TSK__SRV_BULK_LATE_MS);
  client c[4];
  for (int i = 0; i < 4; i++) cl_open(&c[i]);
  settle(&c[0]);
  snap ref;
  cl_send(&c[0], "{\"type\":\"snapshot\",\"id\":99}");
  snap_read(&c[0], &ref, 99);
  tsk__server_stats st0, st1;
  tsk__server_stats_get(&st0);
  thresholds(0, 0);
  for (int round = 0; round < 5; round++) {
    for (int i = 0; i < 4; i++) cl_send(&c[i], "{\"type\":\"snapshot\",\"id\":%d}", round);
    for (int i = 0; i < 4; i++) {
      snap s;
      snap_read(&c[i], &s, round);
      if (strcmp(s.tasks, ref.tasks) != 0) fail_msg("a late answer differs");
      snap_free(&s);
    }
  }
  tsk__server_stats_get(&st1);
  uint64_t by_bulk = st1.bulk_snapshots - st0.bulk_snapshots, late = st1.bulk_late - st0.bulk_late;
  /* (the others were rendered at once: the bulk thread had BULK_INFLIGHT jobs already) */
  print_message("20 snapshots: %llu by the bulk thread, %llu by the server (late), %llu at once\n",
                (unsigned long long)by_bulk, (unsigned long long)late,
                (unsigned long long)(20 - by_bulk - late));
  assert_true(by_bulk + late <= 20);
  assert_true(late > 0);
  thresholds(TSK__SRV_BULK_MIN, TSK__SRV_BULK_LATE_MS);
  snap_free(&ref);
  for (int i = 0; i < 4; i++) cl_close(&c[i]);
  app_stop(&a);
}

/* Clients gone while their snapshot is being rendered, or that never read. */
static void test_clients_gone(void **state) {
  (void)state;
  app a;
  app_start(&a, 0);
  thresholds(0, 60000);
  for (int i = 0; i < 30; i++) {
    client c;
    cl_open(&c);
    cl_send(&c, "{\"type\":\"snapshot\",\"id\":1}");
    if (i % 3 == 1) sleep_ms(1);
    cl_close(&c);
  }
  client greedy;
  cl_open(&greedy);
  for (int i = 0; i < 50; i++) cl_send(&greedy, "{\"type\":\"snapshot\",\"id\":%d}", i);
  sleep_ms(50);
  cl_close(&greedy);
  client c;
  cl_open(&c);
  cl_send(&c, "{\"type\":\"snapshot\",\"id\":7}");
  snap s;
  snap_read(&c, &s, 7);
  assert_true(s.n >= NTASKS + 1);
  snap_free(&s);
  thresholds(TSK__SRV_BULK_MIN, TSK__SRV_BULK_LATE_MS);
  cl_close(&c);
  app_stop(&a);
}

/* Tasks come and go while snapshots are taken: each is one moment (its counts match its task
 * array), with a subscriber resynchronised along the way. */
static void test_churn(void **state) {
  (void)state;
  app a;
  app_start(&a, 1);
  thresholds(0, 60000);
  client c, sub;
  cl_open(&c);
  cl_open(&sub);
  cl_send(&sub, "{\"type\":\"subscribe\",\"id\":1,\"interval_ms\":50}");
  snap s;
  snap_read(&sub, &s, 1);
  snap_free(&s);
  for (int i = 0; i < 30; i++) {
    cl_send(&c, "{\"type\":\"snapshot\",\"id\":%d}", i);
    snap_read(&c, &s, i);
    assert_int_equal(stats_live(&s), (long long)s.n);
    snap_free(&s);
    char *l;
    while ((l = cl_line(&sub, 0, NULL)) != NULL) {
      assert_true(is_type(l, "delta") || is_type(l, "snapshot"));
      free(l);
    }
  }
  assert_true(atomic_load(&a.churned) > 0);
  thresholds(TSK__SRV_BULK_MIN, TSK__SRV_BULK_LATE_MS);
  cl_close(&c);
  cl_close(&sub);
  app_stop(&a);
}

int main(void) {
  if (insp_fixture_init("bulk") != 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_as_inline), cmocka_unit_test(test_order_and_subscribe),
      cmocka_unit_test(test_late),           cmocka_unit_test(test_clients_gone),
      cmocka_unit_test(test_churn),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  if (insp_fixture_done() != 0) rc = rc ? rc : 1;
  return rc;
}
