/*
 * test_report.c — leak records, the text and JSON leak reports, the atomic JSON write and the
 * suppressions file (runtime/src/leak.c, report.c, suppressions.c).
 *
 * Records are synthetic but their backtraces are real addresses: the entry points of noinline
 * functions of this file (+1, as a return address would be), a real backtrace captured with
 * tsk__bt_capture, and runtime functions (tsk_spawn, ...) that trimming must hide.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef TT_HAVE_JANSSON
#include <jansson.h>
#endif

#include "backtrace.h"
#include "leak.h"
#include "taskscope.h"

#if defined(__clang__)
#define NOINLINE __attribute__((noinline)) /* clang does not clone functions */
#else
#define NOINLINE __attribute__((noinline, noclone))
#endif
#define NO_TAIL_CALL() __asm__ volatile("" ::: "memory")

/* ------------------------------------------------------------------------------------------ */
/* user "code sites": their addresses stand in for return addresses                           */
/* ------------------------------------------------------------------------------------------ */

static volatile int sink;
NOINLINE void user_spawn_site_a(void) { sink++; NO_TAIL_CALL(); }
NOINLINE void user_spawn_site_b(void) { sink += 2; NO_TAIL_CALL(); }
NOINLINE void user_wait_site(void) { sink += 3; NO_TAIL_CALL(); }
NOINLINE void user_raise_site(void) { sink += 4; NO_TAIL_CALL(); }
NOINLINE void user_drop_site(void) { sink += 5; NO_TAIL_CALL(); }

#define IP(fn) ((uintptr_t)&(fn) + 1)

/* A real backtrace of this thread, innermost first: ips[0] is in capture_site itself. */
NOINLINE static int capture_site(uintptr_t *ips, int max) {
  int n = tsk__bt_capture(ips, max, 0);
  NO_TAIL_CALL();
  return n;
}

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                     */
/* ------------------------------------------------------------------------------------------ */

typedef struct list {
  tsk__leak *head, *tail;
} list;

static tsk__leak *add(list *ls, tsk__leak_kind kind, uint64_t id, const char *name,
                      const uintptr_t *created, int ncreated) {
  tsk__leak *l = tsk__leak_new(kind);
  assert_non_null(l);
  tsk__leak_task_set(&l->task, id, name);
  assert_int_equal(0, tsk__bt_set(&l->created_at, created, ncreated));
  tsk__leak_list_append(&ls->head, &ls->tail, l);
  return l;
}

static char *render_text(tsk__leak *leaks, tsk__suppressions *supp, unsigned max_groups) {
  char *buf = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&buf, &size);
  assert_non_null(f);
  tsk__report_info info = {.pid = 4242, .program = "test_report", .when = "runtime close",
                           .max_groups_text = max_groups};
  tsk__report_text(f, leaks, supp, &info);
  assert_int_equal(0, fclose(f));
  return buf;
}

static char *render_json(tsk__leak *leaks, tsk__suppressions *supp) {
  char *buf = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&buf, &size);
  assert_non_null(f);
  tsk__report_info info = {.pid = 4242, .program = "test_report", .when = "check"};
  assert_int_equal(0, tsk__report_json_fprint(f, leaks, supp, &info));
  assert_int_equal(0, fclose(f));
  return buf;
}

static int count_of(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
  return n;
}

#define assert_contains(hay, needle)                                                               \
  do {                                                                                             \
    if (!strstr((hay), (needle))) fail_msg("missing '%s' in:\n%s", (needle), (hay));               \
  } while (0)
#define assert_not_contains(hay, needle)                                                           \
  do {                                                                                             \
    if (strstr((hay), (needle))) fail_msg("unexpected '%s' in:\n%s", (needle), (hay));             \
  } while (0)

/* The last line of s (without its newline). */
static const char *last_line(const char *s, char *buf, size_t size) {
  size_t len = strlen(s);
  if (len && s[len - 1] == '\n') len--;
  size_t start = len;
  while (start > 0 && s[start - 1] != '\n') start--;
  snprintf(buf, size, "%.*s", (int)(len - start), s + start);
  return buf;
}

/* The line after the first line that is exactly `header`, or "" */
static const char *line_after(const char *s, const char *header, char *buf, size_t size) {
  buf[0] = '\0';
  size_t hl = strlen(header);
  for (const char *p = s; p && *p;) {
    const char *nl = strchr(p, '\n');
    if (!nl) break;
    if ((size_t)(nl - p) == hl && memcmp(p, header, hl) == 0) {
      const char *q = nl + 1, *e = strchr(q, '\n');
      if (!e) e = q + strlen(q);
      snprintf(buf, size, "%.*s", (int)(e - q), q);
      return buf;
    }
    p = nl + 1;
  }
  return buf;
}

static tsk__suppressions *supp_from(const char *text) {
  tsk__suppressions *s = NULL;
  char err[256] = "";
  int rc = tsk__suppressions_parse(text, strlen(text), "supp.txt", &s, err, sizeof err);
  if (rc) fail_msg("parse failed (%d): %s", rc, err);
  return s;
}

/* ------------------------------------------------------------------------------------------ */
/* records and names                                                                            */
/* ------------------------------------------------------------------------------------------ */

static void names_and_records(void **state) {
  (void)state;
  assert_string_equal("pending", tsk__leak_kind_name(TSK__LEAK_PENDING));
  assert_string_equal("destroyed_pending", tsk__leak_kind_name(TSK__LEAK_DESTROYED_PENDING));
  assert_string_equal("unretrieved_error", tsk__leak_kind_name(TSK__LEAK_UNRETRIEVED_ERROR));
  for (int k = 0; k < TSK__LEAK_KINDS; k++)
    assert_int_equal(k, tsk__leak_kind_from_name(tsk__leak_kind_name((tsk__leak_kind)k)));
  assert_int_equal(-1, tsk__leak_kind_from_name("pend"));
  assert_int_equal(-1, tsk__leak_kind_from_name(NULL));
  assert_string_equal("waiting", tsk__task_state_name(TSK_TASK_WAITING));
  assert_string_equal("destroyed", tsk__task_state_name(TSK_TASK_DESTROYED));
  assert_string_equal("future", tsk__wait_kind_name(TSK_WAIT_FUTURE));
  assert_string_equal("spawn", tsk__wait_kind_name(TSK_WAIT_SPAWN));
  assert_string_equal("unknown", tsk__wait_kind_name((tsk_wait_kind_t)99));

  tsk__leak *l = tsk__leak_new(TSK__LEAK_PENDING);
  assert_non_null(l);
  uintptr_t ips[3] = {1, 2, 3};
  assert_int_equal(0, tsk__bt_set(&l->created_at, ips, 3));
  assert_int_equal(3, l->created_at.n);
  assert_int_equal(0, tsk__bt_set(&l->created_at, ips, 2)); /* replaces */
  assert_int_equal(2, l->created_at.n);
  assert_int_equal(0, tsk__bt_set(&l->suspended_at, NULL, 0));
  assert_null(l->suspended_at.ips);
  assert_int_equal(0, tsk__leak_set_message(l, "boom"));
  assert_string_equal("boom", l->message);
  assert_int_equal(0, tsk__leak_set_message(l, NULL));
  assert_null(l->message);
  /* Names are truncated at a UTF-8 boundary: 62 ASCII bytes then a 2-byte sequence. */
  char name[80];
  memset(name, 'x', 62);
  strcpy(name + 62, "\xc3\xa9tail");
  tsk__leak_task_set(&l->task, 7, name);
  assert_int_equal(62, strlen(l->task.name));
  tsk__leak_task_set(&l->task, 7, NULL);
  assert_string_equal("", l->task.name);
  tsk__leak_set_reason(l, "runtime closed");
  assert_string_equal("runtime closed", l->reason);
  tsk__leak_free(l);
  tsk__leak_free(NULL);
  tsk__leak_free_list(NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* text                                                                                         */
/* ------------------------------------------------------------------------------------------ */

static void build_three_kinds(list *ls) {
  /* Creation: runtime frames first (as a capture inside tsk_spawn would have), then the user's,
   * then a trailing runtime frame (the task's entry). */
  uintptr_t created[] = {IP(tsk_spawn), IP(tsk_spawn_ex), IP(user_spawn_site_a),
                         IP(user_spawn_site_b), IP(tsk__bt_capture)};
  tsk__leak *p = add(ls, TSK__LEAK_PENDING, 42, "fetch_page", created, 5);
  p->parent_id = 17;
  p->chain_len = 2;
  tsk__leak_task_set(&p->chain[0], 17, "crawler");
  tsk__leak_task_set(&p->chain[1], 3, "main");
  p->state = TSK_TASK_WAITING;
  p->awaiting = TSK_WAIT_FUTURE;
  p->awaiting_id = 12;
  p->age_ms = 1500;
  tsk__leak_set_reason(p, "check");
  uintptr_t susp[] = {IP(tsk_future_wait), IP(user_wait_site)};
  assert_int_equal(0, tsk__bt_set(&p->suspended_at, susp, 2));

  uintptr_t created2[] = {IP(user_spawn_site_b)};
  tsk__leak *d = add(ls, TSK__LEAK_DESTROYED_PENDING, 43, "stranded_one", created2, 1);
  d->parent_id = 3;
  d->chain_len = 1;
  tsk__leak_task_set(&d->chain[0], 3, "main");
  d->state = TSK_TASK_DESTROYED;
  d->awaiting = TSK_WAIT_FUTURE;
  d->awaiting_id = 12;
  tsk__leak_set_reason(d, "stranded: last completer of future 12 released");
  uintptr_t dropped[] = {IP(tsk_promise_release), IP(user_drop_site)};
  assert_int_equal(0, tsk__bt_set(&d->dropped_at, dropped, 2));

  /* A real captured backtrace for the failing task. */
  uintptr_t real[32];
  int n = capture_site(real, 32);
  assert_true(n >= 2);
  tsk__leak *u = add(ls, TSK__LEAK_UNRETRIEVED_ERROR, 44, "parse_header", real, n);
  u->state = TSK_TASK_FAILED;
  u->error = TSK_EFAILED;
  assert_int_equal(0, tsk__leak_set_message(u, "bad header 7"));
  tsk__leak_set_reason(u, "handle detached");
  uintptr_t raised[] = {IP(tsk_error), IP(user_raise_site)};
  assert_int_equal(0, tsk__bt_set(&u->raised_at, raised, 2));
}

static void text_report(void **state) {
  (void)state;
  list ls = {0};
  build_three_kinds(&ls);
  char *t = render_text(ls.head, NULL, 0);
  fprintf(stderr, "---- text report ----\n%s---- end ----\n", t);

  assert_contains(t, "Task is still pending at runtime close");
  /* A stranded record keeps its kind but gets its own, truthful headline. */
  assert_contains(t, "Task is stranded: nothing can ever complete what it awaits");
  assert_contains(t, "Task exception was never retrieved");
  assert_contains(t, "  task 42 \"fetch_page\"\n");
  assert_contains(t, "  spawned by 17 \"crawler\" <- 3 \"main\"\n");
  assert_contains(t, "waiting on future 12");
  assert_contains(t, "reason: stranded: last completer of future 12 released");
  assert_contains(t, "error: TSK_EFAILED (task failed): bad header 7");
  assert_contains(t, "created at:\n");
  assert_contains(t, "suspended at:\n");
  assert_contains(t, "raised at:\n");
  assert_contains(t, "last completer dropped at:\n");
  assert_contains(t, " in user_spawn_site_a at ");
  assert_contains(t, " in user_wait_site at ");
  assert_contains(t, " in user_raise_site at ");
  assert_contains(t, " in user_drop_site at ");
  assert_contains(t, " in capture_site at ");
  assert_contains(t, "test_report.c:");
  /* Runtime frames are trimmed: the first frame shown is the user's. */
  assert_not_contains(t, " in tsk_spawn");
  assert_not_contains(t, " in tsk_future_wait");
  assert_not_contains(t, " in tsk_error");
  assert_not_contains(t, " in tsk_promise_release");
  char line[512];
  line_after(t, "  created at:", line, sizeof line);
  assert_true(strncmp(line, "    #0 0x", 9) == 0);
  assert_contains(line, " in user_spawn_site_a at ");
  line_after(t, "  raised at:", line, sizeof line);
  assert_contains(line, "    #0 0x");
  assert_contains(line, " in user_raise_site at ");
  /* The real backtrace starts at capture_site. */
  const char *blk = strstr(t, "Task exception was never retrieved");
  assert_non_null(blk);
  line_after(blk, "  created at:", line, sizeof line);
  assert_contains(line, "    #0 0x");
  assert_contains(line, " in capture_site at ");

  assert_string_equal(
      "SUMMARY: taskscope: 1 pending, 1 destroyed_pending, 1 unretrieved_error (0 suppressed)",
      last_line(t, line, sizeof line));
  assert_int_equal(1, count_of(t, "SUMMARY:"));
  free(t);
  tsk__leak_free_list(ls.head);
}

static void text_empty(void **state) {
  (void)state;
  char *t = render_text(NULL, NULL, 0);
  assert_string_equal("", t);
  free(t);
  tsk__suppressions *s = supp_from("task:foo\n");
  t = render_text(NULL, s, 0);
  assert_string_equal("", t);
  free(t);
  tsk__suppressions_free(s);
}

static void text_grouping(void **state) {
  (void)state;
  list ls = {0};
  uintptr_t a1[] = {IP(tsk_spawn), IP(user_spawn_site_a)};
  uintptr_t a2[] = {IP(tsk_spawn_ex), IP(tsk_spawn), IP(user_spawn_site_a)}; /* same, trimmed */
  uintptr_t b[] = {IP(user_spawn_site_b)};
  add(&ls, TSK__LEAK_PENDING, 5, "worker", a1, 2);
  add(&ls, TSK__LEAK_PENDING, 7, "worker", b, 1);    /* other creation site */
  add(&ls, TSK__LEAK_PENDING, 9, "worker", a2, 3);
  add(&ls, TSK__LEAK_PENDING, 11, "other", a1, 2);   /* other name */
  add(&ls, TSK__LEAK_DESTROYED_PENDING, 12, "worker", a1, 2); /* other kind */
  add(&ls, TSK__LEAK_PENDING, 13, "worker", a1, 2);
  char *t = render_text(ls.head, NULL, 0);
  assert_contains(t, "  task 5 \"worker\" (3 tasks like this; ids 5, 9, 13)\n");
  assert_contains(t, "  task 7 \"worker\"\n");
  assert_contains(t, "  task 11 \"other\"\n");
  assert_contains(t, "  task 12 \"worker\"\n");
  assert_int_equal(4, count_of(t, "taskscope: Task"));
  char line[256];
  assert_string_equal(
      "SUMMARY: taskscope: 5 pending, 1 destroyed_pending, 0 unretrieved_error (0 suppressed)",
      last_line(t, line, sizeof line));
  free(t);

  /* More than 8 like this: 8 ids, then "...". */
  for (uint64_t id = 100; id < 110; id++) add(&ls, TSK__LEAK_PENDING, id, "many", b, 1);
  t = render_text(ls.head, NULL, 0);
  assert_contains(t, "(10 tasks like this; ids 100, 101, 102, 103, 104, 105, 106, 107, ...)");
  free(t);
  tsk__leak_free_list(ls.head);
}

static void text_cap(void **state) {
  (void)state;
  list ls = {0};
  uintptr_t a[] = {IP(user_spawn_site_a)};
  char name[32];
  for (int i = 0; i < 25; i++) {
    snprintf(name, sizeof name, "task%02d", i);
    add(&ls, TSK__LEAK_PENDING, (uint64_t)i + 1, name, a, 1);
  }
  /* Two more records in the last group. */
  add(&ls, TSK__LEAK_PENDING, 100, "task24", a, 1);
  add(&ls, TSK__LEAK_PENDING, 101, "task24", a, 1);
  char *t = render_text(ls.head, NULL, 0); /* default: 20 */
  assert_int_equal(20, count_of(t, "Task is still pending"));
  assert_contains(t, "... and 5 more groups (7 records) not shown\n");
  assert_not_contains(t, "\"task20\"");
  char line[256];
  assert_string_equal(
      "SUMMARY: taskscope: 27 pending, 0 destroyed_pending, 0 unretrieved_error (0 suppressed)",
      last_line(t, line, sizeof line));
  free(t);
  t = render_text(ls.head, NULL, 3);
  assert_int_equal(3, count_of(t, "Task is still pending"));
  assert_contains(t, "... and 22 more groups (24 records) not shown\n");
  free(t);
  tsk__leak_free_list(ls.head);
}

/* Control characters in names and messages cannot break the text layout. */
static void text_escapes(void **state) {
  (void)state;
  list ls = {0};
  uintptr_t a[] = {IP(user_spawn_site_a)};
  tsk__leak *l = add(&ls, TSK__LEAK_UNRETRIEVED_ERROR, 1, "a\"b\nc", a, 1);
  l->error = UV_ECONNRESET;
  assert_int_equal(0, tsk__leak_set_message(l, "line1\nline2"));
  char *t = render_text(ls.head, NULL, 0);
  assert_contains(t, "  task 1 \"a\\\"b\\nc\"\n");
  assert_contains(t, "error: ECONNRESET (");
  assert_contains(t, "line1\\nline2\n");
  free(t);
  tsk__leak_free_list(ls.head);
}

/* ------------------------------------------------------------------------------------------ */
/* JSON                                                                                         */
/* ------------------------------------------------------------------------------------------ */

#ifdef TT_HAVE_JANSSON
static json_t *get(json_t *obj, const char *key, json_type type) {
  json_t *v = json_object_get(obj, key);
  if (!v) fail_msg("missing key '%s'", key);
  if (json_typeof(v) != type)
    fail_msg("key '%s': type %d, want %d", key, (int)json_typeof(v), (int)type);
  return v;
}

static void check_frames(json_t *arr) {
  assert_true(json_is_array(arr));
  size_t i;
  json_t *fr;
  json_array_foreach(arr, i, fr) {
    json_t *ip = get(fr, "ip", JSON_STRING);
    assert_true(strncmp(json_string_value(ip), "0x", 2) == 0);
    json_t *fn = json_object_get(fr, "function");
    json_t *file = json_object_get(fr, "file");
    json_t *ln = json_object_get(fr, "line");
    assert_true(fn && (json_is_string(fn) || json_is_null(fn)));
    assert_true(file && (json_is_string(file) || json_is_null(file)));
    assert_true(ln && (json_is_integer(ln) || json_is_null(ln)));
  }
}

static json_t *parse(const char *text) {
  json_error_t err;
  json_t *doc = json_loads(text, 0, &err);
  if (!doc) fail_msg("JSON does not parse: %s at line %d col %d\n%s", err.text, err.line,
                     err.column, text);
  return doc;
}

static void check_doc(json_t *doc) {
  assert_string_equal("taskscope-report", json_string_value(get(doc, "format", JSON_STRING)));
  assert_int_equal(1, json_integer_value(get(doc, "version", JSON_INTEGER)));
  get(doc, "pid", JSON_INTEGER);
  assert_true(json_is_string(json_object_get(doc, "program")));
  get(doc, "when", JSON_STRING);
  json_t *sum = get(doc, "summary", JSON_OBJECT);
  get(sum, "pending", JSON_INTEGER);
  get(sum, "destroyed_pending", JSON_INTEGER);
  get(sum, "unretrieved_error", JSON_INTEGER);
  get(sum, "suppressed", JSON_INTEGER);
  json_t *leaks = get(doc, "leaks", JSON_ARRAY);
  size_t i;
  json_t *l;
  json_array_foreach(leaks, i, l) {
    const char *kind = json_string_value(get(l, "kind", JSON_STRING));
    assert_true(tsk__leak_kind_from_name(kind) >= 0);
    json_t *task = get(l, "task", JSON_OBJECT);
    get(task, "id", JSON_INTEGER);
    get(task, "name", JSON_STRING);
    json_t *parent = json_object_get(task, "parent");
    assert_true(parent && (json_is_integer(parent) || json_is_null(parent)));
    get(task, "state", JSON_STRING);
    json_t *aw = json_object_get(task, "awaiting");
    assert_true(aw && (json_is_object(aw) || json_is_null(aw)));
    json_t *error = json_object_get(l, "error");
    assert_non_null(error);
    if (strcmp(kind, "unretrieved_error") == 0) {
      assert_true(json_is_object(error));
      get(error, "code", JSON_INTEGER);
      get(error, "name", JSON_STRING);
      get(error, "message", JSON_STRING);
    } else {
      assert_true(json_is_null(error));
    }
    check_frames(get(l, "created_at", JSON_ARRAY));
    check_frames(get(l, "suspended_at", JSON_ARRAY));
    check_frames(get(l, "raised_at", JSON_ARRAY));
    check_frames(get(l, "dropped_at", JSON_ARRAY));
    get(l, "reason", JSON_STRING);
    get(l, "age_ms", JSON_INTEGER);
    get(l, "chain", JSON_ARRAY);
    assert_true(json_is_boolean(json_object_get(l, "suppressed")));
  }
}
#endif

static void json_report(void **state) {
  (void)state;
#ifndef TT_HAVE_JANSSON
  skip();
#else
  list ls = {0};
  build_three_kinds(&ls);
  /* A name with a quote, a newline, 0x01, an invalid byte 0xff and a valid "é". */
  uintptr_t unknown[] = {0x10};
  tsk__leak *odd = add(&ls, TSK__LEAK_PENDING, 77, "q\"n\nc\x01x\xffz\xc3\xa9\\", unknown, 1);
  char *text = render_json(ls.head, NULL);
  fprintf(stderr, "---- JSON report ----\n%s---- end ----\n", text);
  json_t *doc = parse(text);
  check_doc(doc);
  assert_int_equal(4242, json_integer_value(json_object_get(doc, "pid")));
  assert_string_equal("test_report", json_string_value(json_object_get(doc, "program")));
  assert_string_equal("check", json_string_value(json_object_get(doc, "when")));
  json_t *sum = json_object_get(doc, "summary");
  assert_int_equal(2, json_integer_value(json_object_get(sum, "pending")));
  assert_int_equal(1, json_integer_value(json_object_get(sum, "destroyed_pending")));
  assert_int_equal(1, json_integer_value(json_object_get(sum, "unretrieved_error")));
  assert_int_equal(0, json_integer_value(json_object_get(sum, "suppressed")));

  json_t *leaks = json_object_get(doc, "leaks");
  assert_int_equal(4, json_array_size(leaks));
  /* pending, with parent chain and awaiting */
  json_t *p = json_array_get(leaks, 0);
  assert_string_equal("pending", json_string_value(json_object_get(p, "kind")));
  json_t *task = json_object_get(p, "task");
  assert_int_equal(42, json_integer_value(json_object_get(task, "id")));
  assert_string_equal("fetch_page", json_string_value(json_object_get(task, "name")));
  assert_int_equal(17, json_integer_value(json_object_get(task, "parent")));
  assert_string_equal("waiting", json_string_value(json_object_get(task, "state")));
  json_t *aw = json_object_get(task, "awaiting");
  assert_string_equal("future", json_string_value(json_object_get(aw, "kind")));
  assert_int_equal(12, json_integer_value(json_object_get(aw, "id")));
  json_t *chain = json_object_get(p, "chain");
  assert_int_equal(2, json_array_size(chain));
  assert_string_equal("main",
                      json_string_value(json_object_get(json_array_get(chain, 1), "name")));
  assert_int_equal(1500, json_integer_value(json_object_get(p, "age_ms")));
  /* frames are trimmed like the text: the user's first */
  json_t *f0 = json_array_get(json_object_get(p, "created_at"), 0);
  assert_string_equal("user_spawn_site_a", json_string_value(json_object_get(f0, "function")));
  const char *file = json_string_value(json_object_get(f0, "file"));
  assert_non_null(file);
  assert_non_null(strstr(file, "test_report.c"));
  assert_true(json_integer_value(json_object_get(f0, "line")) > 0);
  char want_ip[32];
  snprintf(want_ip, sizeof want_ip, "0x%llx", (unsigned long long)IP(user_spawn_site_a));
  assert_string_equal(want_ip, json_string_value(json_object_get(f0, "ip")));
  assert_int_equal(2, json_array_size(json_object_get(p, "created_at")));
  assert_int_equal(0, json_array_size(json_object_get(p, "raised_at")));

  /* destroyed_pending: dropped_at, parent, error null */
  json_t *d = json_array_get(leaks, 1);
  assert_true(json_is_null(json_object_get(d, "error")));
  json_t *dr0 = json_array_get(json_object_get(d, "dropped_at"), 0);
  assert_string_equal("user_drop_site", json_string_value(json_object_get(dr0, "function")));
  assert_string_equal("stranded: last completer of future 12 released",
                      json_string_value(json_object_get(d, "reason")));

  /* unretrieved_error */
  json_t *u = json_array_get(leaks, 2);
  json_t *err = json_object_get(u, "error");
  assert_int_equal(TSK_EFAILED, json_integer_value(json_object_get(err, "code")));
  assert_string_equal("TSK_EFAILED", json_string_value(json_object_get(err, "name")));
  assert_string_equal("bad header 7", json_string_value(json_object_get(err, "message")));
  assert_true(json_is_null(json_object_get(json_object_get(u, "task"), "parent")));
  assert_true(json_is_null(json_object_get(json_object_get(u, "task"), "awaiting")));
  json_t *r0 = json_array_get(json_object_get(u, "raised_at"), 0);
  assert_string_equal("user_raise_site", json_string_value(json_object_get(r0, "function")));
  json_t *c0 = json_array_get(json_object_get(u, "created_at"), 0);
  assert_string_equal("capture_site", json_string_value(json_object_get(c0, "function")));

  /* escaping, and an unknown frame */
  json_t *o = json_array_get(leaks, 3);
  assert_string_equal("q\"n\nc\x01x\xef\xbf\xbdz\xc3\xa9\\",
                      json_string_value(json_object_get(json_object_get(o, "task"), "name")));
  assert_non_null(strstr(text, "q\\\"n\\nc\\u0001x\\ufffdz\xc3\xa9\\\\"));
  json_t *uf = json_array_get(json_object_get(o, "created_at"), 0);
  assert_string_equal("0x10", json_string_value(json_object_get(uf, "ip")));
  assert_true(json_is_null(json_object_get(uf, "function")));
  assert_true(json_is_null(json_object_get(uf, "file")));
  assert_true(json_is_null(json_object_get(uf, "line")));
  (void)odd;

  json_decref(doc);
  free(text);

  /* an empty report is still a whole document */
  text = render_json(NULL, NULL);
  doc = parse(text);
  check_doc(doc);
  assert_int_equal(0, json_array_size(json_object_get(doc, "leaks")));
  json_decref(doc);
  free(text);
  tsk__leak_free_list(ls.head);
#endif
}

/* ------------------------------------------------------------------------------------------ */
/* atomic write                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static char tmpdir[256];

static int setup_dir(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/test_report.XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static void rm_rf(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char p[512];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    struct stat st;
    if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
      chmod(p, 0700);
      rm_rf(p);
    } else {
      unlink(p);
    }
  }
  closedir(d);
  rmdir(dir);
}

static int teardown_dir(void **state) {
  (void)state;
  chmod(tmpdir, 0700);
  rm_rf(tmpdir);
  return 0;
}

/* Number of entries in dir (besides . and ..). */
static int dir_entries(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  size_t size = 0;
  FILE *m = open_memstream(&buf, &size);
  char chunk[4096];
  size_t got;
  while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) fwrite(chunk, 1, got, m);
  fclose(f);
  fclose(m);
  return buf;
}

static void json_write_atomic(void **state) {
  (void)state;
  list ls = {0};
  build_three_kinds(&ls);
  tsk__report_info info = {.pid = 1, .program = "p", .when = "process exit"};
  char path[512];
  snprintf(path, sizeof path, "%s/report.json", tmpdir);

  assert_int_equal(0, tsk__report_json_write(path, ls.head, NULL, &info));
  assert_int_equal(1, dir_entries(tmpdir)); /* no temp file left */
  char *text = slurp(path);
  assert_non_null(text);
  assert_true(strlen(text) > 100);
  assert_true(text[strlen(text) - 1] == '\n');
#ifdef TT_HAVE_JANSSON
  json_t *doc = parse(text);
  check_doc(doc);
  json_decref(doc);
#endif
  free(text);

  /* Overwriting replaces the file whole. */
  assert_int_equal(0, tsk__report_json_write(path, NULL, NULL, &info));
  text = slurp(path);
  assert_non_null(strstr(text, "\"leaks\":[]"));
  free(text);
  assert_int_equal(1, dir_entries(tmpdir));

  /* A path in a missing directory: an error, nothing created. */
  char bad[600];
  snprintf(bad, sizeof bad, "%s/missing/report.json", tmpdir);
  assert_int_equal(-ENOENT, tsk__report_json_write(bad, ls.head, NULL, &info));
  assert_int_equal(1, dir_entries(tmpdir));
  /* A "directory" that is a file. */
  snprintf(bad, sizeof bad, "%s/report.json/x.json", tmpdir);
  assert_int_equal(-ENOTDIR, tsk__report_json_write(bad, ls.head, NULL, &info));
  assert_int_equal(TSK_EINVAL, tsk__report_json_write(NULL, ls.head, NULL, &info));

  /* A directory that is not writable (root ignores modes: only checked as another user). */
  if (geteuid() != 0) {
    char ro[512];
    snprintf(ro, sizeof ro, "%s/ro", tmpdir);
    assert_int_equal(0, mkdir(ro, 0500));
    snprintf(bad, sizeof bad, "%s/report.json", ro);
    assert_int_equal(-EACCES, tsk__report_json_write(bad, ls.head, NULL, &info));
    assert_int_equal(0, dir_entries(ro));
    chmod(ro, 0700);
    rmdir(ro);
  }

  /* A write that fails half-way (file size limit: EFBIG): the error is returned, the old file
   * is untouched, and no temp file is left behind. */
  struct rlimit old;
  assert_int_equal(0, getrlimit(RLIMIT_FSIZE, &old));
  struct sigaction ign = {.sa_handler = SIG_IGN}, prev;
  sigaction(SIGXFSZ, &ign, &prev);
  struct rlimit small = {.rlim_cur = 64, .rlim_max = old.rlim_max};
  assert_int_equal(0, setrlimit(RLIMIT_FSIZE, &small));
  int rc = tsk__report_json_write(path, ls.head, NULL, &info);
  setrlimit(RLIMIT_FSIZE, &old);
  sigaction(SIGXFSZ, &prev, NULL);
  assert_int_equal(-EFBIG, rc);
  assert_int_equal(1, dir_entries(tmpdir));
  text = slurp(path);
  assert_non_null(strstr(text, "\"leaks\":[]")); /* still the previous report */
  free(text);

  tsk__leak_free_list(ls.head);
}

/* ------------------------------------------------------------------------------------------ */
/* suppressions                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static void glob(void **state) {
  (void)state;
  assert_true(tsk__glob_match("foo", "foo"));
  assert_false(tsk__glob_match("foo", "foobar"));
  assert_true(tsk__glob_match("foo*", "foobar"));
  assert_true(tsk__glob_match("*bar", "foobar"));
  assert_true(tsk__glob_match("*o*a*", "foobar"));
  assert_true(tsk__glob_match("f?o", "foo"));
  assert_false(tsk__glob_match("f?o", "fo"));
  assert_true(tsk__glob_match("*", ""));
  assert_true(tsk__glob_match("**", "x/y"));
  assert_false(tsk__glob_match("", "x"));
  assert_true(tsk__glob_match("a*b*c", "a_b_b_c"));
  assert_false(tsk__glob_match("a*b*c", "a_b_b_d"));
  assert_false(tsk__glob_match(NULL, "x"));
}

static void expect_parse_error(const char *text, const char *want) {
  tsk__suppressions *s = (tsk__suppressions *)1;
  char err[256] = "";
  assert_int_equal(TSK_EINVAL,
                   tsk__suppressions_parse(text, strlen(text), "suppressions.txt", &s, err,
                                           sizeof err));
  assert_null(s);
  assert_string_equal(want, err);
}

static void suppressions_parse(void **state) {
  (void)state;
  expect_parse_error("# comment\n\nlek:foo\n",
                     "suppressions.txt:3: unknown type 'lek' (expected leak:, task:, kind:)");
  expect_parse_error("leak:foo\nkind:pend\n",
                     "suppressions.txt:2: unknown kind 'pend' (expected pending, "
                     "destroyed_pending, unretrieved_error)");
  expect_parse_error("leak:   \n", "suppressions.txt:1: empty pattern after 'leak:'");
  expect_parse_error("task:a\r\njustaword\n",
                     "suppressions.txt:2: 'justaword' is not TYPE:PATTERN (expected leak:, "
                     "task:, kind:)");

  tsk__suppressions *s = supp_from("# header\n"
                                   "  leak:foo*   # trailing comment\n"
                                   "\n"
                                   "task:worker-?\r\n"
                                   "kind:unretrieved_error\n"
                                   "kind:*pending");
  assert_int_equal(4, tsk__suppressions_count(s));
  const tsk__suppression *e = tsk__suppressions_entry(s, 0);
  assert_int_equal(TSK__SUPP_LEAK, e->type);
  assert_string_equal("foo*", e->pattern);
  assert_string_equal("leak:foo*", e->text);
  assert_string_equal("supp.txt", e->file);
  assert_int_equal(2, e->line);
  e = tsk__suppressions_entry(s, 1);
  assert_int_equal(TSK__SUPP_TASK, e->type);
  assert_string_equal("worker-?", e->pattern);
  assert_int_equal(4, e->line);
  assert_int_equal(TSK__SUPP_KIND, tsk__suppressions_entry(s, 2)->type);
  assert_null(tsk__suppressions_entry(s, 4));
  tsk__suppressions_free(s);

  /* Loading from a file: path:line in errors; a missing file is an errno error. */
  char path[512];
  snprintf(path, sizeof path, "%s/supp.txt", tmpdir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("leak:ok\n\n\ntask:x\nlek:foo\n", f);
  fclose(f);
  char err[600] = "", want[700];
  s = NULL;
  assert_int_equal(TSK_EINVAL, tsk__suppressions_load(path, &s, err, sizeof err));
  snprintf(want, sizeof want, "%s:5: unknown type 'lek' (expected leak:, task:, kind:)", path);
  assert_string_equal(want, err);
  f = fopen(path, "w");
  fputs("leak:ok\ntask:x\n", f);
  fclose(f);
  assert_int_equal(0, tsk__suppressions_load(path, &s, err, sizeof err));
  assert_int_equal(2, tsk__suppressions_count(s));
  assert_string_equal(path, tsk__suppressions_entry(s, 1)->file);
  tsk__suppressions_free(s);
  snprintf(path, sizeof path, "%s/nope.txt", tmpdir);
  assert_int_equal(-ENOENT, tsk__suppressions_load(path, &s, err, sizeof err));
  assert_null(s);
  assert_non_null(strstr(err, "nope.txt"));
  /* empty text is valid */
  s = supp_from("");
  assert_int_equal(0, tsk__suppressions_count(s));
  tsk__suppressions_free(s);
}

static void suppressions_match(void **state) {
  (void)state;
  list ls = {0};
  uintptr_t a[] = {IP(tsk_spawn), IP(user_spawn_site_a)};
  uintptr_t b[] = {IP(user_spawn_site_b)};
  uintptr_t unknown[] = {0x10};
  tsk__leak *l1 = add(&ls, TSK__LEAK_PENDING, 1, "keep_me", a, 2);          /* shown */
  tsk__leak *l2 = add(&ls, TSK__LEAK_PENDING, 2, "worker-7", a, 2);         /* task: */
  tsk__leak *l3 = add(&ls, TSK__LEAK_UNRETRIEVED_ERROR, 3, "x", unknown, 1); /* kind: */
  l3->error = TSK_EFAILED;
  tsk__leak *l4 = add(&ls, TSK__LEAK_PENDING, 4, "y", b, 1); /* leak: function in created */
  tsk__leak *l5 = add(&ls, TSK__LEAK_DESTROYED_PENDING, 5, "z", unknown, 1);
  uintptr_t drop[] = {IP(user_drop_site)};
  assert_int_equal(0, tsk__bt_set(&l5->dropped_at, drop, 1)); /* leak: in dropped_at */
  tsk__leak *l6 = add(&ls, TSK__LEAK_PENDING, 6, "w", unknown, 1);
  uintptr_t susp[] = {IP(user_wait_site)};
  assert_int_equal(0, tsk__bt_set(&l6->suspended_at, susp, 1)); /* leak: in suspended_at */
  tsk__leak *l7 = add(&ls, TSK__LEAK_PENDING, 7, "v", unknown, 1); /* file glob */
  uintptr_t raised[] = {IP(user_raise_site)};
  assert_int_equal(0, tsk__bt_set(&l7->raised_at, raised, 1));

  tsk__suppressions *s = supp_from("task:worker-?\n"
                                   "kind:unretrieved_error\n"
                                   "leak:user_spawn_site_b\n"
                                   "leak:*drop_site\n"
                                   "leak:user_wait_s?te\n"
                                   "leak:nothing_matches*\n"
                                   "task:keep_me_not\n");
  tsk__report_counts c;
  tsk__report_classify(ls.head, s, &c);
  assert_false(l1->suppressed);
  assert_true(l2->suppressed);
  assert_true(l3->suppressed);
  assert_true(l4->suppressed);
  assert_true(l5->suppressed);
  assert_true(l6->suppressed);
  assert_false(l7->suppressed);
  assert_int_equal(2, c.pending);
  assert_int_equal(0, c.destroyed_pending);
  assert_int_equal(0, c.unretrieved_error);
  assert_int_equal(5, c.suppressed);
  for (size_t i = 0; i < 5; i++) assert_int_equal(1, tsk__suppressions_entry(s, i)->hits);
  assert_int_equal(0, tsk__suppressions_entry(s, 5)->hits);

  /* Classification is idempotent (hits are recounted, not added up). */
  tsk__report_classify(ls.head, s, &c);
  assert_int_equal(1, tsk__suppressions_entry(s, 0)->hits);

  char *t = render_text(ls.head, s, 0);
  fprintf(stderr, "---- text report with suppressions ----\n%s---- end ----\n", t);
  assert_contains(t, "  task 1 \"keep_me\"");
  assert_contains(t, "  task 7 \"v\"");
  assert_not_contains(t, "worker-7");
  assert_not_contains(t, "Task exception was never retrieved");
  assert_not_contains(t, "Task was destroyed");
  assert_contains(t, "Suppressions used:\n  count  pattern\n");
  assert_contains(t, "      1  task:worker-?\n");
  assert_contains(t, "      1  leak:*drop_site\n");
  assert_contains(t, "warning: suppression 'leak:nothing_matches*' (supp.txt:6) matched nothing\n");
  assert_contains(t, "warning: suppression 'task:keep_me_not' (supp.txt:7) matched nothing\n");
  char line[256];
  assert_string_equal(
      "SUMMARY: taskscope: 2 pending, 0 destroyed_pending, 0 unretrieved_error (5 suppressed)",
      last_line(t, line, sizeof line));
  free(t);

#ifdef TT_HAVE_JANSSON
  char *text = render_json(ls.head, s);
  json_t *doc = parse(text);
  check_doc(doc);
  json_t *sum = json_object_get(doc, "summary");
  assert_int_equal(5, json_integer_value(json_object_get(sum, "suppressed")));
  assert_int_equal(2, json_integer_value(json_object_get(sum, "pending")));
  json_t *leaks = json_object_get(doc, "leaks");
  assert_int_equal(7, json_array_size(leaks)); /* suppressed records are in the JSON */
  assert_true(json_is_false(json_object_get(json_array_get(leaks, 0), "suppressed")));
  assert_true(json_is_true(json_object_get(json_array_get(leaks, 1), "suppressed")));
  json_t *sp = json_object_get(doc, "suppressions");
  assert_int_equal(7, json_array_size(sp));
  assert_int_equal(0, json_integer_value(json_object_get(json_array_get(sp, 5), "hits")));
  json_decref(doc);
  free(text);
#endif
  tsk__suppressions_free(s);

  /* leak: matches a file by basename or full path, and earlier entries win. */
  s = supp_from("leak:test_report.c\n");
  tsk__report_classify(ls.head, s, &c);
  assert_true(l1->suppressed && l4->suppressed && l7->suppressed);
  assert_false(l3->suppressed); /* only an unknown frame */
  tsk__suppressions_free(s);
  s = supp_from("leak:/*/test_report.c\n");
  tsk__report_classify(ls.head, s, &c);
  assert_true(l7->suppressed);
  tsk__suppressions_free(s);
  s = supp_from("leak:user_raise_site\ntask:v\n");
  tsk__report_classify(ls.head, s, &c);
  assert_true(l7->suppressed);
  assert_int_equal(1, tsk__suppressions_entry(s, 0)->hits);
  assert_int_equal(0, tsk__suppressions_entry(s, 1)->hits);
  tsk__suppressions_free(s);

  /* Everything suppressed: no block, but the table and the SUMMARY. */
  s = supp_from("task:*\n");
  t = render_text(ls.head, s, 0);
  assert_not_contains(t, "taskscope: Task");
  assert_contains(t, "      7  task:*\n");
  assert_string_equal(
      "SUMMARY: taskscope: 0 pending, 0 destroyed_pending, 0 unretrieved_error (7 suppressed)",
      last_line(t, line, sizeof line));
  free(t);
  tsk__suppressions_free(s);

  /* Without suppressions nothing is suppressed (flags from an earlier pass are cleared). */
  tsk__report_classify(ls.head, NULL, &c);
  assert_int_equal(0, c.suppressed);
  assert_int_equal(5, c.pending);
  tsk__leak_free_list(ls.head);
}

/* Many records: grouping stays linear (a hash per distinct backtrace). */
static void many_records(void **state) {
  (void)state;
  list ls = {0};
  uintptr_t a[] = {IP(tsk_spawn), IP(user_spawn_site_a), IP(user_spawn_site_b)};
  for (uint64_t i = 1; i <= 50000; i++)
    add(&ls, i % 2 ? TSK__LEAK_PENDING : TSK__LEAK_DESTROYED_PENDING, i, "bomb", a, 3);
  char *t = render_text(ls.head, NULL, 0);
  assert_contains(t, "(25000 tasks like this; ids 1, 3, 5, 7, 9, 11, 13, 15, ...)");
  assert_contains(t, "(25000 tasks like this; ids 2, 4, 6, 8, 10, 12, 14, 16, ...)");
  assert_int_equal(2, count_of(t, "taskscope: Task"));
  free(t);
  tsk__leak_free_list(ls.head);
}

static int teardown_all(void **state) {
  (void)state;
  tsk__bt_symbolize_cleanup();
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(names_and_records),
      cmocka_unit_test(text_report),
      cmocka_unit_test(text_empty),
      cmocka_unit_test(text_grouping),
      cmocka_unit_test(text_cap),
      cmocka_unit_test(text_escapes),
      cmocka_unit_test(json_report),
      cmocka_unit_test_setup_teardown(json_write_atomic, setup_dir, teardown_dir),
      cmocka_unit_test(glob),
      cmocka_unit_test_setup_teardown(suppressions_parse, setup_dir, teardown_dir),
      cmocka_unit_test(suppressions_match),
      cmocka_unit_test(many_records),
  };
  return cmocka_run_group_tests(tests, NULL, teardown_all);
}
