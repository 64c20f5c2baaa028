/*
 * json.h — a small, fast JSON writer into a growable buffer (internal).
 *
 * Shared by the JSON leak report (report.c) and the inspector server, so that both escape
 * strings the same way: quotes, backslash and control characters escaped, DEL as \u007f,
 * invalid UTF-8 bytes replaced by U+FFFD (one per byte), so any C string gives valid JSON.
 *
 * Ownership: a tsk__jbuf owns its bytes (p, heap); tsk__jbuf_free releases them.
 * Errors: when memory runs out the buffer sets oom and ignores every later append; the caller
 * checks oom once at the end instead of after each call.
 */
#ifndef TSK_JSON_H
#define TSK_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct tsk__jbuf {
  char *p;    /* heap; not NUL-terminated */
  size_t len; /* bytes written */
  size_t cap; /* bytes allocated */
  int oom;    /* an allocation failed: the content is incomplete */
} tsk__jbuf;

static inline void tsk__jbuf_init(tsk__jbuf *b) {
  b->p = NULL;
  b->len = b->cap = 0;
  b->oom = 0;
}
void tsk__jbuf_free(tsk__jbuf *b);
/* Makes room for n more bytes; 0 or -1 (oom set). */
int tsk__jbuf_grow(tsk__jbuf *b, size_t n);
/* Hands the bytes over to the caller (who frees them) and leaves b empty. */
char *tsk__jbuf_take(tsk__jbuf *b, size_t *len);

static inline int tsk__jbuf_reserve(tsk__jbuf *b, size_t n) {
  return b->cap - b->len >= n ? 0 : tsk__jbuf_grow(b, n);
}
static inline void tsk__jbuf_put(tsk__jbuf *b, const char *s, size_t n) {
  if (tsk__jbuf_reserve(b, n)) return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
}
static inline void tsk__jbuf_puts(tsk__jbuf *b, const char *s) { tsk__jbuf_put(b, s, strlen(s)); }
static inline void tsk__jbuf_putc(tsk__jbuf *b, char c) {
  if (tsk__jbuf_reserve(b, 1)) return;
  b->p[b->len++] = c;
}
/* Numbers: decimal, without sprintf. */
void tsk__jbuf_u64(tsk__jbuf *b, uint64_t v);
void tsk__jbuf_i64(tsk__jbuf *b, int64_t v);
/* v, or null when v is 0 (an id that may be absent). */
static inline void tsk__jbuf_opt_u64(tsk__jbuf *b, uint64_t v) {
  if (v)
    tsk__jbuf_u64(b, v);
  else
    tsk__jbuf_put(b, "null", 4);
}
/* A non-negative fixed-point value v / 10^decimals, e.g. (1234, 3) -> 1.234. */
void tsk__jbuf_fixed(tsk__jbuf *b, uint64_t v, int decimals);
/* "0x..." in lower-case hex, quoted (the report's FRAME ip). */
void tsk__jbuf_hex_str(tsk__jbuf *b, uint64_t v);
/* A JSON string for s (escaped as described above), or null when s is NULL. */
void tsk__jbuf_str(tsk__jbuf *b, const char *s);
/* The same for the first n bytes of s (which may hold NUL bytes, escaped as \u0000). */
void tsk__jbuf_strn(tsk__jbuf *b, const char *s, size_t n);
/* `"key":` */
static inline void tsk__jbuf_key(tsk__jbuf *b, const char *key) {
  tsk__jbuf_putc(b, '"');
  tsk__jbuf_puts(b, key);
  tsk__jbuf_put(b, "\":", 2);
}

/* The length of the valid UTF-8 sequence at p (1..4) among the n bytes available, or 0 when it
 * is not one (overlong forms, surrogates, code points past U+10FFFF, truncated sequences). */
int tsk__utf8_len(const unsigned char *p, size_t n);

#endif
