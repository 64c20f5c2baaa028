/*
 * fuzz_cli_json — differential libFuzzer target for the CLI's fast JSON path
 * (inspector/cli/fastjson.c) against jansson, which it must agree with exactly:
 *   - tsj_scan may say "valid" only for a line json_loadb(JSON_ALLOW_NUL) accepts as an object,
 *     and the member it finds must be the one jansson keeps (the last of duplicates), equal to
 *     what jansson parses from the text it delimits;
 *   - tsj_tasks on a member that is an array must not crash or misread memory (sanitizers), on
 *     anything that valid JSON can hold;
 *   - tsj_out_str must write, for any string jansson decoded, the JSON jansson decodes back to
 *     the same bytes.
 * Build and run: tests/fuzz/run_fuzz.sh (clang -fsanitize=fuzzer,address,undefined).
 */
#include "../../inspector/cli/fastjson.c"
#include "../../inspector/cli/jv.c"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *what, const uint8_t *data, size_t size) {
  fprintf(stderr, "fuzz_cli_json: %s: %.*s\n", what, (int)(size < 400 ? size : 400), data);
  abort();
}

/* tsj_out_str(s) must read back, through jansson, as s. */
static void check_string_roundtrip(const char *s, size_t len) {
  if (memchr(s, '\0', len)) return; /* tsj_out_str takes C strings */
  char *mem = NULL;
  size_t memlen = 0;
  FILE *f = open_memstream(&mem, &memlen);
  if (!f) return;
  tsj_out *o = calloc(1, sizeof *o);
  if (!o) {
    fclose(f);
    free(mem);
    return;
  }
  o->f = f;
  tsj_out_str(o, s);
  tsj_out_flush(o);
  fclose(f);
  free(o);
  json_t *back = json_loadb(mem, memlen, JSON_DECODE_ANY, NULL);
  if (!back || !json_is_string(back) || json_string_length(back) != len ||
      memcmp(json_string_value(back), s, len) != 0)
    fail("tsj_out_str does not read back as the same string", (const uint8_t *)mem, memlen);
  json_decref(back);
  free(mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *line = (const char *)data;
  size_t a = 0, b = 0;
  int fast = tsj_scan(line, size, "tasks", &a, &b);
  json_t *doc = json_loadb(line, size, JSON_ALLOW_NUL, NULL);
  if (fast) {
    if (!doc || !json_is_object(doc)) fail("tsj_scan accepted what jansson refuses", data, size);
    json_t *member = json_object_get(doc, "tasks");
    if ((b == 0) != (member == NULL)) fail("tsj_scan and jansson disagree on \"tasks\"", data, size);
    if (member) {
      if (a >= b || b > size) fail("tsj_scan delimits nothing", data, size);
      json_t *value = json_loadb(line + a, b - a, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
      if (!value || !json_equal(value, member))
        fail("the member tsj_scan found is not the one jansson keeps", data, size);
      json_decref(value);
      if (line[a] == '[') {
        char *text = malloc(b - a + 1);
        if (text) {
          memcpy(text, line + a, b - a);
          text[b - a] = '\0';
          ts_task *tasks = NULL;
          size_t n = 0;
          char err[256];
          if (tsj_tasks(text, b - a, "tasks", &tasks, &n, err, sizeof err) == 0) free(tasks);
          free(text);
        }
      }
    }
  }
  if (doc && json_is_object(doc)) { /* every string value jansson decoded at the top level */
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v) {
      if (json_is_string(v)) check_string_roundtrip(json_string_value(v), json_string_length(v));
    }
  }
  json_decref(doc);
  return 0;
}
