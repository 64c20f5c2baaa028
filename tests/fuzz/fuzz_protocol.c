/*
 * fuzz_protocol — libFuzzer target for the inspector server's input side, without sockets:
 * the bytes are a client's stream, fed to the line framer in chunks (sized by the first byte),
 * every complete line is parsed and validated (tsk__proto_parse, the hello rule), and every
 * error reply is rendered. Checked beyond "no crash, no sanitizer report":
 *   - every reply the server would send is one line of valid JSON (parsed back with jansson);
 *   - the JSON string writer (tsk__jbuf_strn, shared with the leak report) turns any bytes,
 *     the line itself here, into a valid JSON string;
 *   - a line the framer hands out is never longer than TSK__PROTO_LINE_MAX;
 *   - a message the parser accepts holds only values PROTOCOL.md allows (a known type, an
 *     interval and timeout in range, a task id >= 1 for where/cancel); one it refuses names a
 *     known error code.
 * Build and run: tests/fuzz/run_fuzz.sh (clang -fsanitize=fuzzer,address,undefined).
 */
#include "json.h"
#include "proto.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_json_line(const tsk__jbuf *b) {
  if (b->oom) return;
  if (b->len == 0 || b->p[b->len - 1] != '\n' || memchr(b->p, '\n', b->len - 1)) {
    fprintf(stderr, "reply is not exactly one line: %.*s\n", (int)b->len, b->p);
    abort();
  }
  json_error_t err;
  json_t *j = json_loadb(b->p, b->len - 1, 0, &err);
  if (!j || !json_is_object(j)) {
    fprintf(stderr, "reply is not a JSON object (%s): %.*s\n", err.text, (int)b->len, b->p);
    abort();
  }
  json_decref(j);
}

static void check_accepted(const tsk__msg *m) {
  int ok = m->type >= TSK__MSG_HELLO && m->type <= TSK__MSG_PING &&
           m->interval_ms >= TSK__PROTO_INTERVAL_MIN && m->interval_ms <= TSK__PROTO_INTERVAL_MAX &&
           m->timeout_ms >= 0 && m->timeout_ms <= TSK__PROTO_TIMEOUT_MAX &&
           (m->pending == 0 || m->pending == 1);
  if ((m->type == TSK__MSG_WHERE || m->type == TSK__MSG_CANCEL) && m->task < 1) ok = 0;
  if (!ok) {
    fprintf(stderr, "accepted a message with a value out of range (type %d)\n", (int)m->type);
    abort();
  }
}

static void check_json_string(const char *s, size_t n) {
  tsk__jbuf b;
  tsk__jbuf_init(&b);
  tsk__jbuf_strn(&b, s, n);
  if (!b.oom) {
    json_error_t err;
    json_t *j = json_loadb(b.p, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!j || !json_is_string(j)) {
      fprintf(stderr, "escaped string is not valid JSON (%s)\n", err.text);
      abort();
    }
    json_decref(j);
  }
  tsk__jbuf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tsk__framer f;
  if (tsk__framer_init(&f) != 0) return 0;
  tsk__proto_session session = {0};
  tsk__jbuf out;
  tsk__jbuf_init(&out);
  size_t chunk = size ? (size_t)(data[0] % 97) * 31 + 1 : 1;
  size_t off = 0;
  int closed = 0;
  while (off < size && !closed) {
    size_t want = size - off < chunk ? size - off : chunk;
    size_t took = tsk__framer_feed(&f, (const char *)data + off, want);
    off += took;
    const char *line;
    size_t len;
    int r;
    while (!closed && (r = tsk__framer_next(&f, &line, &len)) == 1) {
      if (len > TSK__PROTO_LINE_MAX) abort();
      check_json_string(line, len);
      tsk__msg m;
      char err[256];
      tsk__perr e = tsk__proto_parse(line, len, &m, err, sizeof err);
      if (e == TSK__PE_OK) check_accepted(&m);
      if (e == TSK__PE_OK) e = tsk__proto_session_check(&session, &m, err, sizeof err);
      if (e != TSK__PE_OK) {
        if (strcmp(tsk__perr_code(e), "internal") == 0 || !err[0]) {
          fprintf(stderr, "error %d without a code or a reason\n", (int)e);
          abort();
        }
        out.len = 0;
        tsk__proto_error(&out, &m, e, err);
        check_json_line(&out);
        closed = tsk__perr_closes(e);
      }
    }
    if (!closed && r < 0) {
      out.len = 0;
      tsk__proto_error(&out, NULL, TSK__PE_TOO_LONG, "message longer than 65536 bytes");
      check_json_line(&out);
      closed = 1;
    }
    if (!took) break; /* cannot happen: a full buffer holds a too-long line */
  }
  tsk__jbuf_free(&out);
  tsk__framer_free(&f);
  return 0;
}
