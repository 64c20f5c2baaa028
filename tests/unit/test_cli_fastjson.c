/*
 * test_cli_fastjson — the CLI's fast path for large answers (inspector/cli/fastjson.c): the
 * validating scanner must accept only what jansson accepts (and find the right member), the task
 * reader must give the same records and the same messages as the jansson path (model.c), and
 * the writer must write what jansson's dump writes.
 *
 * The equivalence with the jansson path as a whole (the CLI's output on the same answer, small
 * and large) is checked by tests/cli (test_large_answers); this file tests the pieces, compiled
 * in directly (the CLI is not a library).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../inspector/cli/fastjson.c"
#include "../../inspector/cli/jv.c"

/* tsj_scan on a C string: 1 and the member's text, or 0. */
static int scan_doc(const char *doc, const char *key, char *member, size_t size) {
  size_t a, b;
  int ok = tsj_scan(doc, strlen(doc), key, &a, &b);
  if (member) snprintf(member, size, "%.*s", (int)(b - a), doc + a);
  return ok;
}

static void test_scan_accepts(void **state) {
  (void)state;
  char m[256];
  assert_int_equal(scan_doc("{\"a\":1,\"tasks\":[1,2],\"b\":{}}", "tasks", m, sizeof m), 1);
  assert_string_equal(m, "[1,2]");
  /* the last of duplicate keys counts (jansson: json_object_set) */
  assert_int_equal(
      scan_doc("{\"tasks\":[1],\"x\":null,\"tasks\":[ {\"y\":[]} ]}", "tasks", m, sizeof m), 1);
  assert_string_equal(m, "[ {\"y\":[]} ]");
  /* absent: valid, empty span */
  assert_int_equal(scan_doc("{\"tusks\":[]}", "tasks", m, sizeof m), 1);
  assert_string_equal(m, "");
  assert_int_equal(scan_doc(" \t\r\n{ } \r\n", "tasks", m, sizeof m), 1);
  static const char *const valid[] = {
      "{\"s\":\"plain \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\ud83d\\ude00 \\u0000\"}",
      "{\"s\":\"raw \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xed\x9f\xbf \xee\x80\x80 \x7f\"}",
      "{\"n\":[0,-0,1,-1,9223372036854775807,-9223372036854775808,1.5,-2.25e-3,1E+2,1e-400]}",
      "{\"n\":[true,false,null,[],{},[[[]]],{\"a\":{\"b\":{}}}]}",
      "{\"o\":{\"weird keys\":1,\"\\u0061\":2,\"\":3,\"\xc3\xa9\":4}}", /* (nested) */
  };
  for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
    if (scan_doc(valid[i], "tasks", NULL, 0) != 1) fail_msg("refused: %s", valid[i]);
  /* a real number of 300 digits does not overflow; nesting to the limit */
  char big[1024];
  char nines[301];
  memset(nines, '9', 300);
  nines[300] = '\0';
  snprintf(big, sizeof big, "{\"x\":%s.5}", nines);
  assert_int_equal(scan_doc(big, "tasks", NULL, 0), 1);
  snprintf(big, sizeof big, "{\"x\":%s9.5}", nines); /* 301 digits: strtod says it fits */
  assert_int_equal(scan_doc(big, "tasks", NULL, 0), 1);
  char deep[2 * TSJ_MAX_DEPTH + 16];
  size_t n = 0;
  n += (size_t)sprintf(deep, "{\"d\":");
  for (int i = 1; i < TSJ_MAX_DEPTH; i++) deep[n++] = '[';
  for (int i = 1; i < TSJ_MAX_DEPTH; i++) deep[n++] = ']';
  strcpy(deep + n, "}");
  assert_int_equal(scan_doc(deep, "tasks", NULL, 0), 1);
}

static void test_scan_refuses(void **state) {
  (void)state;
  /* Invalid for jansson, or not worth the trouble: the caller then lets jansson read it all. */
  static const char *const bad[] = {
      "", "[]", "[{\"tasks\":[]}]", "{", "{}x", "{} {}", "{\"a\":1,}", "{\"a\" 1}", "{\"a\":}",
      "{a:1}", "{'a':1}", "{\"a\":[1,]}", "{\"a\":[1 2]}", "{\"a\":01}", "{\"a\":-}",
      "{\"a\":1.}", "{\"a\":.5}", "{\"a\":1e}", "{\"a\":+1}", "{\"a\":0x10}", "{\"a\":NaN}",
      "{\"a\":tru}", "{\"a\":trueish}", "{\"a\":nulll}", "{\"a\":True}",
      "{\"a\":9223372036854775808}", "{\"a\":-9223372036854775809}",
      "{\"a\":12345678901234567890}", "{\"a\":1e400}", "{\"a\":-1e309}",
      "{\"a\":\"\\x\"}", "{\"a\":\"\\u12g4\"}", "{\"a\":\"\\u123\"}", "{\"a\":\"\\ud800\"}",
      "{\"a\":\"\\ud800x\"}", "{\"a\":\"\\ud800\\u0041\"}", "{\"a\":\"\\udc00\"}",
      "{\"a\":\"tab\there\"}", "{\"a\":\"nl\nhere\"}", "{\"a\":\"\x01\"}",
      "{\"a\":\"\xc3\x28\"}", "{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xe0\x80\xaf\"}",
      "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":\"\xf5\x80\x80\x80\"}",
      "{\"a\":\"\x80\"}", "{\"a\":\"\xe2\x82\"}", "{\"a\":\"unterminated}",
      "{\"a\\u0000b\":1}", "{\"t\\u0061sks\":[]}", "{\"a\":1}\xc3\xa9", "\xef\xbb\xbf{}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (scan_doc(bad[i], "tasks", NULL, 0) != 0) fail_msg("accepted: %s", bad[i]);
  /* a NUL byte in the text (json_loadb reads it as a character: invalid) */
  static const char nul[] = "{\"a\":\"x\0y\"}";
  size_t a, b;
  assert_int_equal(tsj_scan(nul, sizeof nul - 1, "tasks", &a, &b), 0);
  /* too deep for the fast path (jansson's limit is 2048) */
  char deep[2 * TSJ_MAX_DEPTH + 16];
  size_t n = 0;
  n += (size_t)sprintf(deep, "{\"d\":");
  for (int i = 0; i < TSJ_MAX_DEPTH; i++) deep[n++] = '[';
  for (int i = 0; i < TSJ_MAX_DEPTH; i++) deep[n++] = ']';
  strcpy(deep + n, "}");
  assert_int_equal(scan_doc(deep, "tasks", NULL, 0), 0);
}

/* tsj_tasks on the "tasks" member of doc (a copy: strings are decoded in place). */
static int tasks(const char *doc, ts_task **out, size_t *n, char *err, size_t errlen,
                 char **text) {
  size_t a, b;
  assert_int_equal(tsj_scan(doc, strlen(doc), "tasks", &a, &b), 1);
  *text = strdup(doc);
  return tsj_tasks(*text + a, b - a, "tasks", out, n, err, errlen);
}

static void test_tasks(void **state) {
  (void)state;
  const char *doc =
      "{\"tasks\":[{\"id\":7,\"parent\":null,\"runtime\":2,"
      "\"name\":\"a\\\"b\\u00e9\\ud83d\\ude00\","
      "\"state\":\"waiting\",\"awaiting\":{\"kind\":\"future\",\"id\":12},\"created_ms\":1500,"
      "\"first_run_ms\":1501,\"switches\":3,\"busy_ms\":1.25,\"group\":null,\"x\":{\"y\":[\"]\"]}},"
      " { \"id\" : -9223372036854775808 , \"state\" : \"re\\u0061dy\" , \"created_ms\" : 2.5e3 , "
      "\"awaiting\" : null , \"parent\" : 5 , \"n\\u0061me\" : \"cut\\u0000here\" } ,"
      "{\"id\":9,\"state\":\"waiting\",\"awaiting\":{\"kind\":\"sleep\",\"id\":null},"
      "\"runtime\":null,\"switches\":null,\"id\":10}]}";
  ts_task *t;
  size_t n;
  char err[400], *text;
  assert_int_equal(tasks(doc, &t, &n, err, sizeof err, &text), 0);
  assert_int_equal(n, 3);
  assert_int_equal(t[0].id, 7);
  assert_false(t[0].has_parent);
  assert_true(t[0].has_runtime);
  assert_int_equal(t[0].runtime, 2);
  assert_string_equal(t[0].name, "a\"b\xc3\xa9\xf0\x9f\x98\x80");
  assert_string_equal(t[0].state, "waiting");
  assert_string_equal(t[0].await_kind, "future");
  assert_true(t[0].await_has_id);
  assert_int_equal(t[0].await_id, 12);
  assert_true(t[0].created_ms == 1500.0);
  assert_int_equal(t[0].switches, 3);
  assert_true(t[1].id == INT64_MIN);
  assert_true(t[1].has_parent);
  assert_int_equal(t[1].parent, 5);
  assert_false(t[1].has_runtime);
  assert_string_equal(t[1].name, "cut"); /* a C string ends at the \u0000, as jansson's does */
  assert_string_equal(t[1].state, "ready");
  assert_null(t[1].await_kind);
  assert_true(t[1].created_ms == 2500.0);
  assert_int_equal(t[2].id, 10); /* the last "id" */
  assert_string_equal(t[2].name, "");
  assert_true(isnan(t[2].created_ms));
  assert_string_equal(t[2].await_kind, "sleep");
  assert_false(t[2].await_has_id);
  assert_false(t[2].has_runtime);
  free(t);
  free(text);
}

/* The first failure's message, as model.c words it. */
static void expect_error(const char *tasks_json, const char *msg) {
  char doc[1024], err[400], *text;
  snprintf(doc, sizeof doc, "{\"tasks\":%s}", tasks_json);
  ts_task *t = NULL;
  size_t n = 0;
  if (tasks(doc, &t, &n, err, sizeof err, &text) == 0) fail_msg("no error for %s", tasks_json);
  if (strcmp(err, msg) != 0) fail_msg("for %s:\n got %s\nwant %s", tasks_json, err, msg);
  free(text);
}

static void test_task_errors(void **state) {
  (void)state;
  expect_error("[{\"id\":1,\"state\":\"ready\"},\"two\"]",
               "tasks[1]: expected a task object, got a string");
  expect_error("[[1]]", "tasks[0]: expected a task object, got an array");
  expect_error("[null]", "tasks[0]: expected a task object, got null");
  expect_error("[1.5]", "tasks[0]: expected a task object, got a number");
  expect_error("[true]", "tasks[0]: expected a task object, got a boolean");
  expect_error("[{\"state\":\"ready\"}]", "tasks[0].id: missing (expected an integer)");
  expect_error("[{\"id\":1.0,\"state\":\"ready\"}]",
               "tasks[0].id: expected an integer, got a number");
  expect_error("[{\"id\":null,\"state\":\"ready\"}]", "tasks[0].id: expected an integer, got null");
  expect_error("[{\"id\":1,\"state\":\"ready\",\"parent\":\"one\"}]",
               "tasks[0].parent: expected an integer or null, got a string");
  expect_error("[{\"id\":1,\"state\":\"ready\",\"runtime\":true}]",
               "tasks[0].runtime: expected an integer or null, got a boolean");
  expect_error("[{\"id\":1,\"state\":\"ready\",\"name\":{}}]",
               "tasks[0].name: expected a string or null, got an object");
  expect_error("[{\"id\":1}]", "tasks[0].state: missing (expected a string)");
  expect_error("[{\"id\":1,\"state\":null}]", "tasks[0].state: expected a string, got null");
  expect_error("[{\"id\":1,\"state\":\"ready\",\"created_ms\":[1]}]",
               "tasks[0].created_ms: expected a number or null, got an array");
  expect_error("[{\"id\":1,\"state\":\"ready\",\"switches\":\"7\"}]",
               "tasks[0].switches: expected an integer or null, got a string");
  expect_error("[{\"id\":1,\"state\":\"ready\",\"awaiting\":\"future\"}]",
               "tasks[0].awaiting: expected an object or null, got a string");
  expect_error("[{\"id\":1,\"state\":\"ready\",\"awaiting\":{\"id\":1}}]",
               "tasks[0].awaiting.kind: missing (expected a string)");
  expect_error("[{\"id\":1,\"state\":\"ready\",\"awaiting\":{\"kind\":\"task\",\"id\":1.5}}]",
               "tasks[0].awaiting.id: expected an integer or null, got a number");
  /* the first failing field in ts_jv_task's order, whatever the text's order */
  expect_error("[{\"switches\":\"x\",\"state\":1,\"id\":\"1\"}]",
               "tasks[0].id: expected an integer, got a string");
}

static void test_output(void **state) {
  (void)state;
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  tsj_out *o = malloc(sizeof *o);
  o->f = f;
  o->len = 0;
  o->failed = 0;
  tsj_out_str(o, "a\"b\\c/\b\f\n\r\t\x01\x1f\x7f \xc3\xa9");
  tsj_out_puts(o, " ");
  tsj_out_int(o, INT64_MIN);
  tsj_out_puts(o, " ");
  tsj_out_int(o, 0);
  tsj_out_puts(o, " ");
  tsj_out_int(o, 1234567890123);
  /* larger than the buffer, in pieces */
  char *big = malloc(200000);
  memset(big, 'x', 199999);
  big[199999] = '\0';
  tsj_out_puts(o, " ");
  tsj_out_str(o, big);
  assert_int_equal(tsj_out_flush(o), 0);
  fclose(f);
  const char *want = "\"a\\\"b\\\\c/\\b\\f\\n\\r\\t\\u0001\\u001F\x7f \xc3\xa9\" "
                     "-9223372036854775808 0 1234567890123 \"";
  assert_true(len == strlen(want) + 199999 + 1);
  assert_memory_equal(buf, want, strlen(want));
  assert_true(buf[len - 1] == '"' && buf[len - 2] == 'x');
  free(big);
  free(o);
  free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scan_accepts), cmocka_unit_test(test_scan_refuses),
      cmocka_unit_test(test_tasks),        cmocka_unit_test(test_task_errors),
      cmocka_unit_test(test_output),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
