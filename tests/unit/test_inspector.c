/*
 * test_inspector — the inspector server inside libtaskscope, through its socket.
 *
 * The process points XDG_RUNTIME_DIR at a temporary directory, so the server (started with the
 * first runtime, socket=auto) listens at <tmp>/taskscope/<pid>.sock. Each test runs an "app":
 * a runtime on its own thread (tsk_run_main), whose main task sets up a scenario and waits to be
 * told to stop; the test thread is the client, a plain blocking socket speaking NDJSON, parsed
 * with jansson. Actions inside the app are started with tsk_post from the test thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
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
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/insp_fixture.h"

#include "srv.h"
#include "taskscope.h"

#define NOINLINE __attribute__((noinline))


/* ------------------------------------------------------------------------------------------ */
/* the app                                                                                     */
/* ------------------------------------------------------------------------------------------ */

typedef struct app {
  pthread_t thread;
  tsk_runtime_t *rt;
  int (*setup)(struct app *); /* runs in the main task before it waits */
  tsk_event_t *stop;
  tsk_event_t *ev;            /* for the scenario's use */
  _Atomic int ready;
  _Atomic int done;
  _Atomic uint64_t ids[8];    /* task ids the scenario publishes */
  _Atomic int counter;
  int rc, close_rc;
} app;

static int app_main(void *arg) {
  app *a = arg;
  tsk_event_new(tsk_runtime_current(), &a->stop);
  tsk_event_new(tsk_runtime_current(), &a->ev);
  int rc = a->setup ? a->setup(a) : 0;
  atomic_store(&a->ready, 1);
  tsk_event_wait(a->stop, TSK_FOREVER);
  return rc;
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
  tsk_event_free(a->ev);
  a->close_rc = tsk_runtime_close(a->rt); /* tasks still waiting are destroyed */
  atomic_store(&a->done, 1);
  return NULL;
}

static void app_start(app *a, int (*setup)(app *)) {
  memset(a, 0, sizeof *a);
  a->setup = setup;
  assert_int_equal(pthread_create(&a->thread, NULL, app_thread, a), 0);
  uint64_t t0 = now_ms();
  while (!atomic_load(&a->ready)) {
    assert_true(now_ms() - t0 < 10000);
    sleep_ms(1);
  }
  assert_int_equal(a->rc, 0);
}

static int set_stop(void *arg) {
  app *a = arg;
  tsk_event_set(a->stop);
  return 0;
}

/* Ends the app and closes its runtime (tasks still waiting are destroyed). */
static void app_stop(app *a) {
  assert_int_equal(tsk_post(a->rt, "stopper", set_stop, a), 0);
  pthread_join(a->thread, NULL);
  assert_int_equal(a->close_rc, 0);
}

/* Waits (from the test thread) until the app's counter reaches n. */
static void wait_counter(app *a, int n) {
  uint64_t t0 = now_ms();
  while (atomic_load(&a->counter) < n) {
    assert_true(now_ms() - t0 < 20000);
    sleep_ms(1);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* the client                                                                                  */
/* ------------------------------------------------------------------------------------------ */

typedef struct client {
  int fd;
  char *buf;
  size_t len, cap;
  int eof;
} client;

static void cl_close(client *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  free(c->buf);
  c->buf = NULL;
  c->len = c->cap = 0;
}

/* The next line as a JSON object (NULL at end of stream or after timeout_ms). */
static json_t *cl_recv(client *c, int timeout_ms) {
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
    if (nl) {
      size_t n = (size_t)(nl - c->buf);
      json_error_t err;
      json_t *j = json_loadb(c->buf, n, 0, &err);
      if (!j) fail_msg("server sent invalid JSON: %s: %.200s", err.text, c->buf);
      memmove(c->buf, nl + 1, c->len - n - 1);
      c->len -= n + 1;
      return j;
    }
    if (c->eof) return NULL;
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
    if (k <= 0) {
      c->eof = 1;
      continue;
    }
    c->len += (size_t)k;
  }
}

static const char *jstr(json_t *o, const char *key) {
  return json_string_value(json_object_get(o, key));
}

static json_int_t jint(json_t *o, const char *key) {
  return json_integer_value(json_object_get(o, key));
}

/* The next message of the given type (others are skipped). */
static json_t *cl_expect(client *c, const char *type, int timeout_ms) {
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    uint64_t now = now_ms();
    if (now >= deadline) fail_msg("no '%s' message within %d ms", type, timeout_ms);
    json_t *j = cl_recv(c, (int)(deadline - now));
    if (!j) fail_msg("connection ended (or timed out) while waiting for '%s'", type);
    const char *t = jstr(j, "type");
    if (t && strcmp(t, type) == 0) return j;
    json_decref(j);
  }
}

static void cl_send_raw(client *c, const char *data, size_t n) {
  while (n) {
    ssize_t k = write(c->fd, data, n);
    if (k < 0 && errno == EINTR) continue;
    assert_true(k > 0);
    data += k;
    n -= (size_t)k;
  }
}

static void cl_send(client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cl_send(client *c, const char *fmt, ...) {
  char line[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  line[n++] = '\n';
  cl_send_raw(c, line, (size_t)n);
}

/* Connects, checks the server's hello, and says hello (unless raw). */
static void cl_open(client *c, int say_hello) {
  memset(c, 0, sizeof *c);
  c->fd = raw_connect();
  assert_true(c->fd >= 0);
  json_t *h = cl_recv(c, 5000);
  assert_non_null(h);
  assert_string_equal(jstr(h, "type"), "hello");
  assert_string_equal(jstr(h, "protocol"), "taskscope");
  assert_int_equal(jint(h, "version"), 1);
  assert_int_equal(jint(h, "pid"), getpid());
  json_decref(h);
  if (say_hello) cl_send(c, "{\"type\":\"hello\",\"version\":1,\"client\":\"test_inspector\"}");
}

/* An error answer with this code (and the connection closed after it when closes). */
static void expect_error(client *c, const char *code, int closes, const char *mention) {
  json_t *e = cl_recv(c, 5000);
  assert_non_null(e);
  if (strcmp(jstr(e, "type"), "error") != 0 || strcmp(jstr(e, "code"), code) != 0)
    fail_msg("expected error %s, got %s", code, json_dumps(e, 0));
  if (mention && !strstr(jstr(e, "message"), mention))
    fail_msg("error message '%s' does not mention '%s'", jstr(e, "message"), mention);
  json_decref(e);
  if (closes) {
    json_t *more = cl_recv(c, 5000);
    if (more) fail_msg("connection not closed after %s: %s", code, json_dumps(more, 0));
    assert_true(c->eof);
  }
}

static json_t *find_by(json_t *arr, const char *key, const char *name) {
  size_t i;
  json_t *v;
  json_array_foreach(arr, i, v) {
    const char *n = jstr(v, key);
    if (n && strcmp(n, name) == 0) return v;
  }
  return NULL;
}

static json_t *find_id(json_t *arr, json_int_t id) {
  size_t i;
  json_t *v;
  json_array_foreach(arr, i, v) if (jint(v, "id") == id) return v;
  return NULL;
}

static int frames_mention(json_t *frames, const char *fn) {
  size_t i;
  json_t *f;
  json_array_foreach(frames, i, f) {
    const char *name = jstr(f, "function");
    if (name && strcmp(name, fn) == 0) return 1;
  }
  return 0;
}

static json_t *snapshot(client *c, int id) {
  cl_send(c, "{\"type\":\"snapshot\",\"id\":%d}", id);
  json_t *s = cl_expect(c, "snapshot", 10000);
  assert_int_equal(jint(s, "id"), id);
  return s;
}

/* ------------------------------------------------------------------------------------------ */
/* scenario helpers (inside the app)                                                           */
/* ------------------------------------------------------------------------------------------ */

static int wait_ev_forever(void *arg) {
  app *a = arg;
  return tsk_event_wait(a->ev, TSK_FOREVER);
}

static int set_app_ev(void *arg) {
  app *a = arg;
  tsk_event_set(a->ev);
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* tests                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void test_hello_and_version(void **state) {
  (void)state;
  app a;
  app_start(&a, NULL);
  client c;
  cl_open(&c, 0);
  cl_send(&c, "{\"type\":\"ping\",\"id\":1}");
  expect_error(&c, "no_hello", 0, "hello");
  cl_send(&c, "{\"type\":\"hello\",\"version\":2,\"client\":\"future\"}");
  expect_error(&c, "version_mismatch", 1, "protocol 1, client 2");
  cl_close(&c);

  cl_open(&c, 1);
  cl_send(&c, "{\"type\":\"ping\",\"id\":77}");
  json_t *p = cl_expect(&c, "pong", 5000);
  assert_int_equal(jint(p, "id"), 77);
  assert_true(jint(p, "time_ms") > 0);
  json_decref(p);
  cl_close(&c);
  app_stop(&a);
}

/* parent_task spawns two children and joins the first: an awaiting edge task -> task. */
static int child_a(void *arg) { return wait_ev_forever(arg); }
static int child_b(void *arg) {
  (void)arg;
  return tsk_sleep(600000);
}

static int parent_task(void *arg) {
  app *a = arg;
  tsk_task_t ta, tb;
  tsk_spawn(tsk_runtime_current(), &ta, "child_a", child_a, a);
  tsk_spawn(tsk_runtime_current(), &tb, "child_b", child_b, a);
  atomic_store(&a->ids[0], tsk_self_id());
  atomic_store(&a->ids[1], ta.id);
  atomic_store(&a->ids[2], tb.id);
  atomic_fetch_add(&a->counter, 1);
  tsk_join(ta, TSK_FOREVER, NULL);
  tsk_cancel(tb);
  tsk_join(tb, TSK_FOREVER, NULL);
  return 0;
}

static int setup_tree(app *a) {
  tsk_task_t t;
  tsk_spawn(tsk_runtime_current(), &t, "parent_task", parent_task, a);
  tsk_detach(t);
  tsk_yield();
  tsk_yield();
  return 0;
}

static void test_snapshot_tree(void **state) {
  (void)state;
  app a;
  app_start(&a, setup_tree);
  wait_counter(&a, 1);
  client c;
  cl_open(&c, 1);
  json_t *s = NULL;
  json_t *tasks = NULL, *p = NULL, *ca = NULL, *cb = NULL;
  /* The children may not have reached their waits yet: look again until they did. */
  for (int tries = 0; tries < 200; tries++) {
    if (s) json_decref(s);
    s = snapshot(&c, 10 + tries);
    tasks = json_object_get(s, "tasks");
    p = find_by(tasks, "name", "parent_task");
    ca = find_by(tasks, "name", "child_a");
    cb = find_by(tasks, "name", "child_b");
    if (p && ca && cb && !strcmp(jstr(p, "state"), "waiting") &&
        !strcmp(jstr(ca, "state"), "waiting") && !strcmp(jstr(cb, "state"), "waiting"))
      break;
    sleep_ms(5);
  }
  assert_non_null(p);
  assert_non_null(ca);
  assert_non_null(cb);
  assert_int_equal(jint(s, "pid"), getpid());
  assert_true(json_array_size(json_object_get(s, "runtimes")) >= 1);
  json_t *main_task = find_by(tasks, "name", "app_main");
  assert_non_null(main_task);
  assert_int_equal(jint(p, "id"), (json_int_t)atomic_load(&a.ids[0]));
  assert_int_equal(jint(p, "parent"), jint(main_task, "id"));
  assert_int_equal(jint(ca, "parent"), jint(p, "id"));
  assert_int_equal(jint(cb, "parent"), jint(p, "id"));
  assert_true(json_is_null(json_object_get(main_task, "parent")));
  /* parent_task waits in tsk_join for child_a: the edge names the task */
  json_t *aw = json_object_get(p, "awaiting");
  assert_string_equal(jstr(aw, "kind"), "task");
  assert_int_equal(jint(aw, "id"), jint(ca, "id"));
  assert_string_equal(jstr(json_object_get(ca, "awaiting"), "kind"), "event");
  assert_string_equal(jstr(json_object_get(cb, "awaiting"), "kind"), "sleep");
  /* busy time is not measured unless busy_time=on: the field says so with null */
  assert_non_null(json_object_get(ca, "busy_ms"));
  assert_true(json_is_null(json_object_get(ca, "busy_ms")));
  assert_true(jint(ca, "runtime") >= 1);
  assert_true(jint(ca, "first_run_ms") > 0);
  json_t *st = json_object_get(s, "stats");
  assert_true(jint(json_object_get(st, "tasks"), "waiting") >= 3);
  assert_true(json_is_array(json_object_get(s, "finished")));
  assert_true(json_is_array(json_object_get(s, "leaks")));
  assert_true(json_is_array(json_object_get(s, "warnings")));
  json_decref(s);
  cl_close(&c);
  tsk_post(a.rt, "setter", set_app_ev, &a);
  app_stop(&a);
}

static int delta_child(void *arg) { return wait_ev_forever(arg); }

static void test_subscribe_deltas(void **state) {
  (void)state;
  app a;
  app_start(&a, NULL);
  client c;
  cl_open(&c, 1);
  cl_send(&c, "{\"type\":\"subscribe\",\"id\":5,\"interval_ms\":50}");
  json_t *s = cl_expect(&c, "snapshot", 5000);
  assert_int_equal(jint(s, "id"), 5);
  json_decref(s);
  assert_int_equal(tsk_post(a.rt, "delta_child", delta_child, &a), 0);
  json_int_t id = 0, last_seq = 0;
  uint64_t t0 = now_ms();
  while (!id) {
    assert_true(now_ms() - t0 < 10000);
    json_t *d = cl_expect(&c, "delta", 5000);
    json_int_t seq = jint(d, "seq");
    if (last_seq) assert_int_equal(seq, last_seq + 1);
    last_seq = seq;
    json_t *t = find_by(json_object_get(d, "spawned"), "name", "delta_child");
    if (t) id = jint(t, "id");
    assert_true(json_is_object(json_object_get(d, "stats")));
    assert_true(json_is_array(json_object_get(d, "runtimes")));
    json_decref(d);
  }
  assert_int_equal(tsk_post(a.rt, "setter", set_app_ev, &a), 0);
  int finished = 0;
  t0 = now_ms();
  while (!finished) {
    assert_true(now_ms() - t0 < 10000);
    json_t *d = cl_expect(&c, "delta", 5000);
    assert_int_equal(jint(d, "seq"), last_seq + 1);
    last_seq = jint(d, "seq");
    json_t *f = find_id(json_object_get(d, "finished"), id);
    if (f) {
      finished = 1;
      assert_string_equal(jstr(f, "state"), "done");
      assert_string_equal(jstr(f, "name"), "delta_child");
      assert_null(find_id(json_object_get(d, "changed"), id));
      assert_null(find_id(json_object_get(d, "spawned"), id));
    }
    json_decref(d);
  }
  cl_send(&c, "{\"type\":\"unsubscribe\",\"id\":6}");
  json_t *ok = cl_expect(&c, "ok", 5000);
  assert_int_equal(jint(ok, "id"), 6);
  json_decref(ok);
  cl_close(&c);
  app_stop(&a);
}

NOINLINE static int where_helper_blocked(app *a) {
  int rc = tsk_event_wait(a->ev, TSK_FOREVER);
  __asm__ volatile("" ::: "memory"); /* keep the frame: no tail call */
  return rc;
}

NOINLINE static int stuck_task(void *arg) {
  app *a = arg;
  atomic_store(&a->ids[3], tsk_self_id());
  atomic_fetch_add(&a->counter, 1);
  int rc = where_helper_blocked(a);
  __asm__ volatile("" ::: "memory");
  return rc;
}

static int setup_stuck(app *a) {
  tsk_task_t t;
  tsk_spawn(tsk_runtime_current(), &t, "stuck", stuck_task, a);
  tsk_detach(t);
  return 0;
}

static void test_where(void **state) {
  (void)state;
  app a;
  app_start(&a, setup_stuck);
  wait_counter(&a, 1);
  sleep_ms(20);
  client c;
  cl_open(&c, 1);
  json_int_t id = (json_int_t)atomic_load(&a.ids[3]);
  cl_send(&c, "{\"type\":\"where\",\"id\":3,\"task\":%lld,\"timeout_ms\":2000}", (long long)id);
  json_t *w = cl_expect(&c, "where", 5000);
  assert_int_equal(jint(w, "id"), 3);
  assert_string_equal(jstr(w, "method"), "loop");
  json_t *t = json_object_get(w, "task");
  assert_int_equal(jint(t, "id"), id);
  assert_string_equal(jstr(t, "name"), "stuck");
  json_t *susp = json_object_get(w, "suspended_at");
  if (!frames_mention(susp, "where_helper_blocked") || !frames_mention(susp, "stuck_task"))
    fail_msg("suspended_at lacks the helper: %s", json_dumps(susp, 0));
  assert_true(json_array_size(json_object_get(w, "created_at")) > 0);
  json_decref(w);
  /* an unknown task */
  cl_send(&c, "{\"type\":\"where\",\"id\":4,\"task\":999999999}");
  expect_error(&c, "no_such_task", 0, "999999999");
  cl_close(&c);
  tsk_post(a.rt, "setter", set_app_ev, &a);
  app_stop(&a);
}

static int cancel_me(void *arg) {
  app *a = arg;
  atomic_store(&a->ids[4], tsk_self_id());
  atomic_fetch_add(&a->counter, 1);
  int rc = tsk_event_wait(a->ev, TSK_FOREVER);
  atomic_fetch_add(&a->counter, 1);
  return rc;
}

static int setup_cancel(app *a) {
  tsk_task_t t;
  tsk_spawn(tsk_runtime_current(), &t, "cancel_me", cancel_me, a);
  tsk_detach(t);
  return 0;
}

static void test_cancel(void **state) {
  (void)state;
  app a;
  app_start(&a, setup_cancel);
  wait_counter(&a, 1);
  client c;
  cl_open(&c, 1);
  json_int_t id = (json_int_t)atomic_load(&a.ids[4]);
  cl_send(&c, "{\"type\":\"cancel\",\"id\":9,\"task\":%lld}", (long long)id);
  json_t *ok = cl_expect(&c, "ok", 5000);
  assert_int_equal(jint(ok, "id"), 9);
  json_decref(ok);
  wait_counter(&a, 2); /* the wait ended */
  json_t *f = NULL, *s = NULL;
  for (int tries = 0; tries < 200 && !f; tries++) {
    if (s) json_decref(s);
    s = snapshot(&c, 100 + tries);
    f = find_id(json_object_get(s, "finished"), id);
    if (!f) sleep_ms(5);
  }
  assert_non_null(f);
  assert_string_equal(jstr(f, "state"), "cancelled");
  assert_null(find_id(json_object_get(s, "tasks"), id));
  json_decref(s);
  /* cancelling it again: it is gone */
  cl_send(&c, "{\"type\":\"cancel\",\"id\":10,\"task\":%lld}", (long long)id);
  expect_error(&c, "no_such_task", 0, NULL);
  cl_close(&c);
  app_stop(&a);
}

NOINLINE static int fail_loudly(void *arg) {
  app *a = arg;
  atomic_store(&a->ids[5], tsk_self_id());
  atomic_fetch_add(&a->counter, 1);
  return tsk_error(TSK_EFAILED, "inspector test failure %d", 7);
}

static void test_leaks(void **state) {
  (void)state;
  app a;
  app_start(&a, setup_stuck);
  assert_int_equal(tsk_post(a.rt, "fail_loudly", fail_loudly, &a), 0);
  wait_counter(&a, 2);
  client c;
  cl_open(&c, 1);
  json_int_t id = (json_int_t)atomic_load(&a.ids[5]);
  json_t *rec = NULL, *l = NULL;
  for (int tries = 0; tries < 200 && !rec; tries++) {
    if (l) json_decref(l);
    cl_send(&c, "{\"type\":\"leaks\",\"id\":%d}", 20 + tries);
    l = cl_expect(&c, "leaks", 5000);
    json_t *report = json_object_get(l, "report");
    assert_string_equal(jstr(report, "format"), "taskscope-report");
    assert_int_equal(jint(report, "version"), 1);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(report, "leaks"), i, v) {
      if (jint(json_object_get(v, "task"), "id") == id) rec = v;
    }
    if (!rec) sleep_ms(5);
  }
  assert_non_null(rec);
  assert_string_equal(jstr(rec, "kind"), "unretrieved_error");
  assert_string_equal(jstr(json_object_get(rec, "task"), "name"), "fail_loudly");
  assert_string_equal(jstr(json_object_get(rec, "error"), "name"), "TSK_EFAILED");
  assert_true(strstr(jstr(json_object_get(rec, "error"), "message"), "inspector test failure 7"));
  assert_true(json_array_size(json_object_get(rec, "raised_at")) > 0);
  json_decref(l);
  /* with the live tasks as pending records, stacks included */
  cl_send(&c, "{\"type\":\"leaks\",\"id\":2,\"pending\":true}");
  l = cl_expect(&c, "leaks", 5000);
  json_t *leaks = json_object_get(json_object_get(l, "report"), "leaks");
  json_t *pend = NULL;
  size_t i;
  json_t *v;
  json_array_foreach(leaks, i, v) {
    if (!strcmp(jstr(v, "kind"), "pending") &&
        !strcmp(jstr(json_object_get(v, "task"), "name"), "stuck"))
      pend = v;
  }
  assert_non_null(pend);
  assert_true(frames_mention(json_object_get(pend, "suspended_at"), "where_helper_blocked"));
  json_decref(l);
  /* the snapshot counts it */
  json_t *s = snapshot(&c, 3);
  assert_true(jint(json_object_get(json_object_get(s, "stats"), "leaks"), "unretrieved_error") >=
              1);
  json_decref(s);
  cl_close(&c);
  tsk_post(a.rt, "setter", set_app_ev, &a);
  app_stop(&a);
}

static void test_malformed(void **state) {
  (void)state;
  app a;
  app_start(&a, setup_stuck);
  wait_counter(&a, 1);
  client c;
  /* errors that keep the connection */
  cl_open(&c, 1);
  cl_send(&c, "{\"id\":1}");
  expect_error(&c, "missing_field", 0, "type");
  cl_send(&c, "{\"type\":5,\"id\":2}");
  expect_error(&c, "bad_field", 0, "type");
  cl_send(&c, "{\"type\":\"ping\",\"id\":\"x\"}");
  expect_error(&c, "bad_field", 0, "id");
  cl_send(&c, "{\"type\":\"where\",\"id\":3}");
  expect_error(&c, "missing_field", 0, "task");
  cl_send(&c, "{\"type\":\"where\",\"id\":4,\"task\":\"12\"}");
  expect_error(&c, "bad_field", 0, "task");
  cl_send(&c, "{\"type\":\"where\",\"id\":5,\"task\":-3}");
  expect_error(&c, "bad_field", 0, "task");
  cl_send(&c, "{\"type\":\"subscribe\",\"id\":6,\"interval_ms\":10}");
  expect_error(&c, "bad_field", 0, "interval_ms");
  cl_send(&c, "{\"type\":\"leaks\",\"id\":7,\"pending\":1}");
  expect_error(&c, "bad_field", 0, "pending");
  cl_send(&c, "{\"type\":\"hello\"}");
  expect_error(&c, "missing_field", 0, "version");
  cl_send(&c, "{\"type\":\"frobnicate\",\"id\":8}");
  json_t *e = cl_expect(&c, "error", 5000);
  assert_string_equal(jstr(e, "code"), "unknown_type");
  assert_int_equal(jint(e, "id"), 8);
  json_decref(e);
  cl_send(&c, "{\"type\":\"ping\",\"id\":9,\"extra\":[1,2,{\"x\":null}]}"); /* unknown fields */
  json_t *p = cl_expect(&c, "pong", 5000);
  json_decref(p);
  cl_close(&c);
  /* errors that close it */
  const char *closing[] = {"not json at all", "[1,2,3]", "\"a string\"", "{\"type\":\"ping\"",
                           "{\"type\":\"ping\"} trailing"};
  for (size_t i = 0; i < sizeof closing / sizeof closing[0]; i++) {
    cl_open(&c, 1);
    cl_send(&c, "%s", closing[i]);
    expect_error(&c, "bad_json", 1, NULL);
    cl_close(&c);
  }
  /* a 70 KiB line */
  cl_open(&c, 1);
  size_t n = 70 * 1024;
  char *big = malloc(n + 1);
  memset(big, 'x', n);
  big[0] = '"';
  big[n] = '\n';
  cl_send_raw(&c, big, n + 1);
  free(big);
  expect_error(&c, "too_long", 1, "65536");
  cl_close(&c);
  /* the app never noticed */
  cl_open(&c, 1);
  json_t *s = snapshot(&c, 1);
  assert_non_null(find_by(json_object_get(s, "tasks"), "name", "stuck"));
  json_decref(s);
  cl_close(&c);
  tsk_post(a.rt, "setter", set_app_ev, &a);
  app_stop(&a);
}

/* Waves of tasks: each wave spawns `wave` tasks that wait on the event, lets a delta see them,
 * then releases and joins them all. */
typedef struct waves {
  app *a;
  int waves, wave;
  unsigned hold_ms;      /* how long each wave waits */
  tsk_event_t *go;
  _Atomic int spawned;   /* waves spawned so far */
} waves;

static int wave_task(void *arg) { return tsk_event_wait(((waves *)arg)->go, TSK_FOREVER); }

static int run_waves(void *arg) {
  waves *w = arg;
  tsk_task_t *h = malloc(sizeof *h * (size_t)w->wave);
  for (int i = 0; i < w->waves; i++) {
    tsk_event_new(tsk_runtime_current(), &w->go);
    for (int j = 0; j < w->wave; j++)
      tsk_spawn(tsk_runtime_current(), &h[j], "wave_task", wave_task, w);
    atomic_fetch_add(&w->spawned, 1);
    tsk_sleep(w->hold_ms);
    tsk_event_set(w->go);
    for (int j = 0; j < w->wave; j++) tsk_join(h[j], TSK_FOREVER, NULL);
    tsk_event_free(w->go);
  }
  free(h);
  atomic_fetch_add(&w->a->counter, 1);
  return 0;
}

static void test_slow_clients(void **state) {
  (void)state;
  app a;
  app_start(&a, NULL);
  tsk__server_stats st0, st1;
  tsk__server_stats_get(&st0);
  /* a subscriber that never reads, and a client that asks for snapshots and never reads */
  client sub, greedy;
  cl_open(&sub, 1);
  cl_send(&sub, "{\"type\":\"subscribe\",\"interval_ms\":50}");
  cl_open(&greedy, 1);
  waves w = {&a, 10, 20000, 150, NULL, 0};
  uint64_t t0 = now_ms();
  assert_int_equal(tsk_post(a.rt, "waves", run_waves, &w), 0); /* 200 000 tasks */
  while (atomic_load(&w.spawned) < 1) sleep_ms(1);
  /* (the server may cut it off before all are written: no check on these writes) */
  for (int i = 0; i < 400; i++) {
    char req[64];
    int n = snprintf(req, sizeof req, "{\"type\":\"snapshot\",\"id\":%d}\n", i);
    if (write(greedy.fd, req, (size_t)n) != n) break;
  }
  wait_counter(&a, 1);
  uint64_t took = now_ms() - t0;
  sleep_ms(200);
  tsk__server_stats_get(&st1);
  print_message("200000 tasks in %llu ms; max unsent bytes of a client %llu; deltas dropped %llu;"
                " slow clients disconnected %llu; events %llu; resync requests %llu\n",
                (unsigned long long)took, (unsigned long long)st1.max_queued,
                (unsigned long long)(st1.deltas_dropped - st0.deltas_dropped),
                (unsigned long long)(st1.disconnected_slow - st0.disconnected_slow),
                (unsigned long long)(st1.events - st0.events),
                (unsigned long long)(st1.resync_requests - st0.resync_requests));
  /* bounded: 8 MiB plus at most one message (a snapshot or delta of a 20 000-task wave) */
  assert_true(st1.max_queued <= TSK__SRV_OUT_MAX + (16u << 20));
  assert_true(st1.deltas_dropped > st0.deltas_dropped);
  assert_true(st1.disconnected_slow > st0.disconnected_slow);
  /* the subscriber, reading at last, is resynchronised with a fresh snapshot */
  int resynced = 0;
  uint64_t t1 = now_ms();
  while (!resynced && now_ms() - t1 < 20000) {
    json_t *m = cl_recv(&sub, 5000);
    assert_non_null(m);
    if (!strcmp(jstr(m, "type"), "snapshot") && json_is_true(json_object_get(m, "resync")))
      resynced = 1;
    json_decref(m);
  }
  assert_true(resynced);
  cl_close(&sub);
  cl_close(&greedy);
  app_stop(&a);
}

static void test_resync_after_drops(void **state) {
  (void)state;
  app a;
  app_start(&a, NULL);
  tsk__server_stats st0, st1;
  tsk__server_stats_get(&st0);
  /* 40 000 tasks spawned at once overflow the ring (TSK__EV_RING, 8192 events): the server resyncs. (The
   * second wave, on stacks the first one left in the pool, is the fast one.) */
  waves w = {&a, 2, 40000, 1500, NULL, 0};
  client c;
  cl_open(&c, 1);
  assert_int_equal(tsk_post(a.rt, "waves", run_waves, &w), 0);
  while (atomic_load(&w.spawned) < 2) sleep_ms(1);
  int seen = 0;
  json_int_t drops = 0;
  /* exactly: tasks of the first wave whose ends were lost must be gone too */
  for (int tries = 0; tries < 2000 && seen != 40000; tries++) {
    json_t *s = snapshot(&c, tries);
    size_t i;
    json_t *v;
    seen = 0;
    json_array_foreach(json_object_get(s, "tasks"), i, v) seen += !strcmp(jstr(v, "name"), "wave_task");
    drops = jint(json_object_get(s, "stats"), "dropped_events");
    json_decref(s);
    if (seen != 40000) sleep_ms(2);
  }
  tsk__server_stats_get(&st1);
  print_message("tasks seen %d, dropped events %lld, resync requests %llu\n", seen,
                (long long)drops, (unsigned long long)(st1.resync_requests - st0.resync_requests));
  assert_int_equal(seen, 40000);
  assert_true(drops > 0);
  assert_true(st1.resync_requests > st0.resync_requests);
  wait_counter(&a, 1);
  cl_close(&c);
  app_stop(&a);
}

static void test_disconnects(void **state) {
  (void)state;
  app a;
  app_start(&a, setup_stuck);
  wait_counter(&a, 1);
  client c;
  /* half a message, then gone */
  cl_open(&c, 1);
  cl_send_raw(&c, "{\"type\":\"snap", 13);
  cl_close(&c);
  /* a request the loop thread serves, then gone before the answer */
  cl_open(&c, 1);
  cl_send(&c, "{\"type\":\"where\",\"task\":%llu}", (unsigned long long)atomic_load(&a.ids[3]));
  cl_close(&c);
  /* a big answer nobody reads */
  cl_open(&c, 1);
  for (int i = 0; i < 50; i++) cl_send(&c, "{\"type\":\"snapshot\"}");
  cl_close(&c);
  /* before saying anything */
  c.fd = raw_connect();
  assert_true(c.fd >= 0);
  close(c.fd);
  sleep_ms(50);
  cl_open(&c, 1);
  json_t *s = snapshot(&c, 1);
  assert_non_null(find_by(json_object_get(s, "tasks"), "name", "stuck"));
  json_decref(s);
  cl_close(&c);
  tsk_post(a.rt, "setter", set_app_ev, &a);
  app_stop(&a);
}

static void test_connect_cycles(void **state) {
  (void)state;
  app a;
  app_start(&a, NULL);
  for (int i = 0; i < 1000; i++) {
    int fd = raw_connect();
    assert_true(fd >= 0);
    if (i % 3 == 1) {
      /* (a client over the limit of 16 may already be refused and cut off: no check) */
      const char *hello = "{\"type\":\"hello\",\"version\":1}\n{\"type\":\"ping\"}\n";
      if (write(fd, hello, strlen(hello)) < 0) assert_true(errno == EPIPE || errno == ECONNRESET);
    }
    close(fd);
  }
  /* (more than 16 at once were answered busy; all are gone now) */
  uint64_t t0 = now_ms();
  tsk__server_stats st;
  do {
    sleep_ms(10);
    tsk__server_stats_get(&st);
  } while (st.clients != 0 && now_ms() - t0 < 5000);
  assert_int_equal(st.clients, 0);
  client c;
  cl_open(&c, 1);
  cl_send(&c, "{\"type\":\"ping\",\"id\":1}");
  json_decref(cl_expect(&c, "pong", 5000));
  cl_close(&c);
  app_stop(&a);
}

static void test_permissions(void **state) {
  (void)state;
  app a;
  app_start(&a, NULL);
  char dir[512];
  snprintf(dir, sizeof dir, "%s/taskscope", g_tmp);
  struct stat st;
  assert_int_equal(lstat(dir, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(st.st_mode & 0777, 0700);
  assert_int_equal(st.st_uid, geteuid());
  assert_int_equal(lstat(g_sock, &st), 0);
  assert_true(S_ISSOCK(st.st_mode));
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal(st.st_uid, geteuid());
  char path[512];
  tsk__server_socket_path(path, sizeof path);
  assert_string_equal(path, g_sock);
  app_stop(&a);
}

static void test_other_uid_refused(void **state) {
  (void)state;
  if (geteuid() != 0) {
    print_message("not root: cannot connect as another user; skipped\n");
    skip();
  }
  app a;
  app_start(&a, NULL);
  tsk__server_stats st0, st1;
  tsk__server_stats_get(&st0);
  /* Let uid 65534 reach the socket at all (directory and socket modes), so that what refuses it
   * is the server's SO_PEERCRED check. */
  char dir[512];
  snprintf(dir, sizeof dir, "%s/taskscope", g_tmp);
  assert_int_equal(chmod(g_tmp, 0755), 0);
  assert_int_equal(chmod(dir, 0755), 0);
  assert_int_equal(chmod(g_sock, 0666), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    int fd = raw_connect();
    if (fd < 0) _exit(11);
    client c = {fd, NULL, 0, 0, 0};
    json_t *e = cl_recv(&c, 5000);
    if (!e) _exit(12);
    if (strcmp(jstr(e, "type"), "error") != 0 || strcmp(jstr(e, "code"), "forbidden") != 0)
      _exit(13);
    if (cl_recv(&c, 5000) != NULL || !c.eof) _exit(14);
    _exit(0);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  chmod(g_sock, 0600);
  chmod(dir, 0700);
  chmod(g_tmp, 0700);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  tsk__server_stats_get(&st1);
  assert_int_equal(st1.refused_uid, st0.refused_uid + 1);
  app_stop(&a);
}

/* A loop blocked by a task that computes for 700 ms without yielding. */
NOINLINE static uint64_t read_clock_ms(void) {
  uint64_t t = now_ms();
  __asm__ volatile("" ::: "memory");
  return t;
}

NOINLINE static void spin_busy_ms(unsigned ms) {
  uint64_t end = read_clock_ms() + ms;
  while (read_clock_ms() < end) __asm__ volatile("" ::: "memory");
}

static int quick(void *arg) {
  (void)arg;
  return tsk_sleep(20);
}

NOINLINE static int spinner(void *arg) {
  app *a = arg;
  /* a join that ends with the joined task's end (its FINISH wakes the joiner in the view) */
  tsk_task_t q;
  tsk_spawn(tsk_runtime_current(), &q, "quick", quick, NULL);
  tsk_join(q, TSK_FOREVER, NULL);
  atomic_fetch_add(&a->counter, 1);
  spin_busy_ms(700);
  __asm__ volatile("" ::: "memory");
  return 0;
}

static void test_blocked_loop(void **state) {
  (void)state;
  app a;
  app_start(&a, setup_stuck);
  wait_counter(&a, 1);
  sleep_ms(20);
  client c;
  cl_open(&c, 1);
  assert_int_equal(tsk_post(a.rt, "spinner", spinner, &a), 0);
  wait_counter(&a, 2);
  /* the snapshot answers while the loop is blocked, and says so, with the stack */
  json_t *rt = NULL, *s = NULL;
  uint64_t t0 = now_ms();
  for (;;) {
    if (s) json_decref(s);
    s = snapshot(&c, 1);
    rt = json_array_get(json_object_get(s, "runtimes"), json_array_size(json_object_get(s, "runtimes")) - 1);
    json_t *loop = json_object_get(rt, "loop");
    if (jint(loop, "stalled_ms") > 0 && json_is_array(json_object_get(loop, "stalled_stack")))
      break;
    if (now_ms() - t0 > 600) fail_msg("no stall reported: %s", json_dumps(rt, 0));
    sleep_ms(10);
  }
  json_t *loop = json_object_get(rt, "loop");
  assert_true(jint(loop, "stalled_ms") >= 100);
  if (!frames_mention(json_object_get(loop, "stalled_stack"), "spin_busy_ms"))
    fail_msg("stalled_stack: %s", json_dumps(json_object_get(loop, "stalled_stack"), 0));
  json_t *warn = find_by(json_object_get(s, "warnings"), "kind", "loop_stalled");
  assert_non_null(warn);
  assert_true(strstr(jstr(warn, "message"), "loop stalled for"));
  assert_true(frames_mention(json_object_get(warn, "stack"), "spinner"));
  json_t *spin = find_by(json_object_get(s, "tasks"), "name", "spinner");
  assert_non_null(spin);
  assert_string_equal(jstr(spin, "state"), "running");
  assert_true(json_is_null(json_object_get(spin, "awaiting"))); /* the join is over */
  assert_non_null(find_by(json_object_get(s, "finished"), "name", "quick"));
  json_decref(s);
  /* where still answers: the loop does not, so the server reads the stack itself */
  uint64_t tw = now_ms();
  cl_send(&c, "{\"type\":\"where\",\"id\":2,\"task\":%llu,\"timeout_ms\":50}",
          (unsigned long long)atomic_load(&a.ids[3]));
  json_t *w = cl_expect(&c, "where", 5000);
  assert_true(now_ms() - tw < 400); /* before the spinner is done */
  assert_string_equal(jstr(w, "method"), "direct");
  assert_true(frames_mention(json_object_get(w, "suspended_at"), "where_helper_blocked"));
  json_decref(w);
  wait_counter(&a, 2);
  cl_close(&c);
  tsk_post(a.rt, "setter", set_app_ev, &a);
  app_stop(&a);
}

/* A loop blocked in an I/O callback (a uv_async's, run in the poll phase) is stalled too; an
 * idle loop (sleeping in poll) is not. */
static uv_async_t blocking_async;

NOINLINE static void on_blocking_async(uv_async_t *h) {
  app *a = h->data;
  atomic_fetch_add(&a->counter, 1);
  spin_busy_ms(400);
  __asm__ volatile("" ::: "memory");
  atomic_fetch_add(&a->counter, 1);
}

static int setup_async(app *a) {
  uv_async_init(tsk_runtime_loop(tsk_runtime_current()), &blocking_async, on_blocking_async);
  blocking_async.data = a;
  uv_unref((uv_handle_t *)&blocking_async);
  return 0;
}

static size_t count_stall_warnings(json_t *s) {
  size_t n = 0, i;
  json_t *w;
  json_array_foreach(json_object_get(s, "warnings"), i, w) n += !strcmp(jstr(w, "kind"), "loop_stalled");
  return n;
}

static void test_blocked_in_io_callback(void **state) {
  (void)state;
  app a;
  app_start(&a, setup_async);
  client c;
  cl_open(&c, 1);
  /* idle for 300 ms: not stalled */
  json_t *s = snapshot(&c, 1);
  size_t before = count_stall_warnings(s);
  json_decref(s);
  sleep_ms(300);
  s = snapshot(&c, 2);
  json_t *rt = json_array_get(json_object_get(s, "runtimes"), 0);
  assert_int_equal(jint(json_object_get(rt, "loop"), "stalled_ms"), 0);
  assert_int_equal(count_stall_warnings(s), before);
  json_decref(s);
  /* blocked in the async callback */
  uv_async_send(&blocking_async);
  wait_counter(&a, 1);
  uint64_t t0 = now_ms();
  json_t *loop = NULL;
  for (;;) {
    s = snapshot(&c, 3);
    rt = json_array_get(json_object_get(s, "runtimes"), 0);
    loop = json_object_get(rt, "loop");
    if (jint(loop, "stalled_ms") > 0 && json_is_array(json_object_get(loop, "stalled_stack")))
      break;
    json_decref(s);
    if (now_ms() - t0 > 350) fail_msg("no stall reported for a blocked I/O callback");
    sleep_ms(10);
  }
  if (!frames_mention(json_object_get(loop, "stalled_stack"), "on_blocking_async"))
    fail_msg("stalled_stack: %s", json_dumps(json_object_get(loop, "stalled_stack"), 0));
  assert_int_equal(count_stall_warnings(s), before + 1);
  json_decref(s);
  wait_counter(&a, 2);
  /* it turns again: no longer stalled */
  t0 = now_ms();
  for (;;) {
    s = snapshot(&c, 4);
    rt = json_array_get(json_object_get(s, "runtimes"), 0);
    json_int_t st = jint(json_object_get(rt, "loop"), "stalled_ms");
    json_decref(s);
    if (st == 0) break;
    if (now_ms() - t0 > 2000) fail_msg("still stalled after the callback returned");
    sleep_ms(10);
  }
  cl_close(&c);
  app_stop(&a);
}

static void test_insecure_directory(void **state) {
  (void)state;
  char dir[512], sub[600];
  snprintf(dir, sizeof dir, "%s/insecure", g_tmp);
  snprintf(sub, sizeof sub, "%s/taskscope", dir);
  assert_int_equal(mkdir(dir, 0700), 0);
  assert_int_equal(mkdir(sub, 0700), 0);
  assert_int_equal(chmod(sub, 0755), 0);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    setenv("XDG_RUNTIME_DIR", dir, 1);
    tsk_runtime_t *rt;
    if (tsk_runtime_new(&rt) != 0) _exit(10);
    if (tsk__server_running()) _exit(11);
    tsk_runtime_close(rt);
    _exit(0);
  }
  close(fds[1]);
  char err[2048] = "";
  size_t got = 0;
  ssize_t k;
  while ((k = read(fds[0], err + got, sizeof err - 1 - got)) > 0) got += (size_t)k;
  err[got] = 0;
  close(fds[0]);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  if (!strstr(err, "inspector disabled") || !strstr(err, "has mode 0755, expected 0700"))
    fail_msg("stderr: %s", err);
  rmdir(sub);
  rmdir(dir);
}

/* Runtimes created and closed on several threads while a subscriber and a snapshot client
 * watch: attach, detach, draining and freeing race with the server's thread. */
static int churn_child(void *arg) {
  (void)arg;
  return tsk_sleep(1);
}

static int churn_main(void *arg) {
  (void)arg;
  tsk_task_t t[20];
  for (int i = 0; i < 20; i++) tsk_spawn(tsk_runtime_current(), &t[i], "churn_child", churn_child, NULL);
  for (int i = 0; i < 10; i++) tsk_join(t[i], TSK_FOREVER, NULL);
  return 0; /* the other ten are destroyed by the close */
}

static void *churn_thread(void *arg) {
  _Atomic int *failures = arg;
  for (int i = 0; i < 40; i++) {
    tsk_runtime_t *rt;
    if (tsk_runtime_new(&rt) != 0) {
      atomic_fetch_add(failures, 1);
      continue;
    }
    if (tsk_run_main(rt, "churn_main", churn_main, NULL, NULL) != 0) atomic_fetch_add(failures, 1);
    if (tsk_runtime_close(rt) != 0) atomic_fetch_add(failures, 1);
  }
  return NULL;
}

static void test_runtimes_come_and_go(void **state) {
  (void)state;
  app a;
  app_start(&a, NULL); /* keeps the server's view non-empty throughout */
  client sub, snap;
  cl_open(&sub, 1);
  cl_send(&sub, "{\"type\":\"subscribe\",\"interval_ms\":50}");
  cl_open(&snap, 1);
  _Atomic int failures = 0;
  pthread_t th[4];
  for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, churn_thread, &failures), 0);
  for (int i = 0; i < 30; i++) {
    json_decref(snapshot(&snap, i));
    json_t *m;
    while ((m = cl_recv(&sub, 0)) != NULL) json_decref(m);
    sleep_ms(5);
  }
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  assert_int_equal(atomic_load(&failures), 0);
  /* all those runtimes are gone from the view; ours is still there */
  uint64_t t0 = now_ms();
  size_t nrt;
  do {
    json_t *s = snapshot(&snap, 99);
    nrt = json_array_size(json_object_get(s, "runtimes"));
    json_decref(s);
    if (nrt != 1) sleep_ms(10);
  } while (nrt != 1 && now_ms() - t0 < 5000);
  assert_int_equal(nrt, 1);
  cl_close(&sub);
  cl_close(&snap);
  app_stop(&a);
}

int main(void) {
  if (insp_fixture_init("insp") != 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_permissions),
      cmocka_unit_test(test_hello_and_version),
      cmocka_unit_test(test_snapshot_tree),
      cmocka_unit_test(test_subscribe_deltas),
      cmocka_unit_test(test_where),
      cmocka_unit_test(test_cancel),
      cmocka_unit_test(test_leaks),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_disconnects),
      cmocka_unit_test(test_connect_cycles),
      cmocka_unit_test(test_other_uid_refused),
      cmocka_unit_test(test_blocked_loop),
      cmocka_unit_test(test_blocked_in_io_callback),
      cmocka_unit_test(test_resync_after_drops),
      cmocka_unit_test(test_slow_clients),
      cmocka_unit_test(test_runtimes_come_and_go),
      cmocka_unit_test(test_insecure_directory),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  insp_fixture_done();
  return rc;
}
