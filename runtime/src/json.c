/* json.c — the JSON writer of json.h. */
#include "json.h"

#include <stdlib.h>

void tsk__jbuf_free(tsk__jbuf *b) {
  free(b->p);
  tsk__jbuf_init(b);
}

int tsk__jbuf_grow(tsk__jbuf *b, size_t n) {
  if (b->oom) return -1;
  if (b->cap - b->len >= n) return 0;
  size_t need = b->len + n;
  if (need < b->len) {
    b->oom = 1;
    return -1;
  }
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) {
    if (cap > SIZE_MAX / 2) {
      cap = need;
      break;
    }
    cap *= 2;
  }
  char *p = realloc(b->p, cap);
  if (!p) {
    b->oom = 1;
    return -1;
  }
  b->p = p;
  b->cap = cap;
  return 0;
}

char *tsk__jbuf_take(tsk__jbuf *b, size_t *len) {
  char *p = b->p;
  if (len) *len = b->len;
  tsk__jbuf_init(b);
  return p;
}

void tsk__jbuf_u64(tsk__jbuf *b, uint64_t v) {
  char tmp[20];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  if (tsk__jbuf_reserve(b, (size_t)n)) return;
  while (n) b->p[b->len++] = tmp[--n];
}

void tsk__jbuf_i64(tsk__jbuf *b, int64_t v) {
  if (v < 0) {
    tsk__jbuf_putc(b, '-');
    tsk__jbuf_u64(b, (uint64_t)0 - (uint64_t)v);
  } else {
    tsk__jbuf_u64(b, (uint64_t)v);
  }
}

void tsk__jbuf_fixed(tsk__jbuf *b, uint64_t v, int decimals) {
  uint64_t scale = 1;
  for (int i = 0; i < decimals; i++) scale *= 10;
  tsk__jbuf_u64(b, v / scale);
  if (decimals <= 0) return;
  tsk__jbuf_putc(b, '.');
  uint64_t frac = v % scale;
  for (int i = decimals - 1; i >= 0; i--) {
    uint64_t d = frac;
    for (int j = 0; j < i; j++) d /= 10;
    tsk__jbuf_putc(b, (char)('0' + d % 10));
  }
}

void tsk__jbuf_hex_str(tsk__jbuf *b, uint64_t v) {
  static const char digits[] = "0123456789abcdef";
  char tmp[16];
  int n = 0;
  do {
    tmp[n++] = digits[v & 15];
    v >>= 4;
  } while (v);
  if (tsk__jbuf_reserve(b, (size_t)n + 4)) return;
  b->p[b->len++] = '"';
  b->p[b->len++] = '0';
  b->p[b->len++] = 'x';
  while (n) b->p[b->len++] = tmp[--n];
  b->p[b->len++] = '"';
}

int tsk__utf8_len(const unsigned char *p, size_t n) {
  unsigned char c = p[0];
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return n >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && p[1] < 0xA0) return 0; /* overlong */
    if (c == 0xED && p[1] >= 0xA0) return 0; /* surrogates */
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
      return 0;
    if (c == 0xF0 && p[1] < 0x90) return 0; /* overlong */
    if (c == 0xF4 && p[1] >= 0x90) return 0; /* > U+10FFFF */
    return 4;
  }
  return 0;
}

void tsk__jbuf_strn(tsk__jbuf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  /* Worst case: 6 bytes per input byte, plus the quotes. */
  if (n > (SIZE_MAX - 2) / 6 || tsk__jbuf_reserve(b, n * 6 + 2)) {
    b->oom = 1;
    return;
  }
  char *o = b->p + b->len;
  *o++ = '"';
  const unsigned char *p = (const unsigned char *)s, *end = p + n;
  while (p < end) {
    unsigned char c = *p;
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      *o++ = (char)c;
      p++;
    } else if (c == '"' || c == '\\') {
      *o++ = '\\';
      *o++ = (char)c;
      p++;
    } else if (c < 0x20 || c == 0x7f) {
      *o++ = '\\';
      switch (c) {
      case '\n': *o++ = 'n'; break;
      case '\r': *o++ = 'r'; break;
      case '\t': *o++ = 't'; break;
      case '\b': *o++ = 'b'; break;
      case '\f': *o++ = 'f'; break;
      default:
        *o++ = 'u';
        *o++ = '0';
        *o++ = '0';
        *o++ = hex[c >> 4];
        *o++ = hex[c & 15];
        break;
      }
      p++;
    } else {
      int k = tsk__utf8_len(p, (size_t)(end - p));
      if (k == 0) {
        memcpy(o, "\\ufffd", 6);
        o += 6;
        p++;
      } else {
        memcpy(o, p, (size_t)k);
        o += k;
        p += k;
      }
    }
  }
  *o++ = '"';
  b->len = (size_t)(o - b->p);
}

void tsk__jbuf_str(tsk__jbuf *b, const char *s) {
  if (!s) {
    tsk__jbuf_put(b, "null", 4);
    return;
  }
  tsk__jbuf_strn(b, s, strlen(s));
}
