/*
 * line_reader.h — buffered reading over a tsk_tcp_t connection, shared by the samples that speak
 * HTTP/1.1 (demo, http_stream): CRLF-terminated lines and exact byte counts.
 *
 * Every function returns 0, TSK_ECLOSED at end of stream, TSK_EFULL when a line does not fit the
 * buffer, or the error of the underlying tsk_tcp_read (TSK_ETIMEDOUT, TSK_ECANCELED, ...).
 */
#ifndef SAMPLES_LINE_READER_H
#define SAMPLES_LINE_READER_H

#include "taskscope.h"

#include <string.h>

typedef struct reader {
  tsk_tcp_t *tcp;
  int64_t timeout_ms; /* for every single tsk_tcp_read; TSK_FOREVER: no limit */
  char buf[4096];
  size_t pos, len;
} reader;

static inline void rd_init(reader *r, tsk_tcp_t *tcp, int64_t timeout_ms) {
  r->tcp = tcp;
  r->timeout_ms = timeout_ms;
  r->pos = r->len = 0;
}

/* Reads more into the buffer. */
static inline int rd_fill(reader *r) {
  if (r->pos > 0) {
    memmove(r->buf, r->buf + r->pos, r->len - r->pos);
    r->len -= r->pos;
    r->pos = 0;
  }
  if (r->len == sizeof r->buf) return TSK_EFULL;
  ssize_t n = tsk_tcp_read(r->tcp, r->buf + r->len, sizeof r->buf - r->len, r->timeout_ms);
  if (n < 0) return (int)n;
  if (n == 0) return TSK_ECLOSED;
  r->len += (size_t)n;
  return 0;
}

/* One CRLF-terminated line, without the CRLF, NUL-terminated into out. */
static inline int rd_line(reader *r, char *out, size_t cap) {
  for (;;) {
    for (size_t i = r->pos; i + 1 < r->len; i++) {
      if (r->buf[i] != '\r' || r->buf[i + 1] != '\n') continue;
      size_t n = i - r->pos;
      if (n >= cap) return TSK_EFULL;
      memcpy(out, r->buf + r->pos, n);
      out[n] = 0;
      r->pos = i + 2;
      return 0;
    }
    int rc = rd_fill(r);
    if (rc) return rc;
  }
}

/* Consumes exactly n bytes (a body or a chunk's data, only counted). */
static inline int rd_skip(reader *r, size_t n) {
  while (n > 0) {
    if (r->pos == r->len) {
      int rc = rd_fill(r);
      if (rc) return rc;
    }
    size_t take = r->len - r->pos < n ? r->len - r->pos : n;
    r->pos += take;
    n -= take;
  }
  return 0;
}

#endif
