/*
 * fastjson.c — the fast path for large answers (see fastjson.h).
 */
#include "fastjson.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

typedef const unsigned char uc;

/* Bytes a string's fast loop stops at: 1 for the validator (", \, control characters, non-ASCII:
 * UTF-8 is checked), 2 for the reader of validated text (", \). */
static unsigned char k_stop[256];

static void init_stop(void) {
  if (k_stop['"']) return;
  for (int c = 0; c < 256; c++) k_stop[c] = (c < 0x20 || c >= 0x80) ? 1 : 0;
  k_stop['"'] = k_stop['\\'] = 3;
}

/* ------------------------------------------------------------------------------------------ */
/* shared pieces                                                                               */
/* ------------------------------------------------------------------------------------------ */

static int is_ws(unsigned c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static int is_digit(unsigned c) { return c - '0' < 10u; }

static long hex4(uc *p) {
  long v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned c = p[i];
    v <<= 4;
    if (c - '0' < 10u)
      v += c - '0';
    else if (c - 'a' < 6u)
      v += c - 'a' + 10;
    else if (c - 'A' < 6u)
      v += c - 'A' + 10;
    else
      return -1;
  }
  return v;
}

/* The C locale, for strtod (the CLI runs under the user's locale, whose decimal point may not be
 * '.'; jansson converts for it, which gives the same value). NULL when it cannot be made. */
static locale_t c_locale(void) {
  static locale_t loc;
  if (!loc) loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
  return loc;
}

/* The length of the UTF-8 sequence at p (2..4) when jansson's utf8_check_first/_full accept it,
 * else 0. */
static int utf8_len(uc *p, uc *end) {
  unsigned c = p[0];
  int n;
  uint32_t v;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    v = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    v = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    v = c & 0x07;
  } else {
    return 0; /* a continuation byte, C0/C1 (overlong ASCII), F5.. (past U+10FFFF) */
  }
  if (end - p < n) return 0;
  for (int i = 1; i < n; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    v = (v << 6) | (p[i] & 0x3F);
  }
  if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000)) return 0; /* overlong */
  return n;
}

void tsj_release(void *p, size_t len) {
  const uintptr_t mib = (uintptr_t)1 << 20;
  if (p && len >= 4 * mib) {
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t mask = pg > 0 ? (uintptr_t)pg - 1 : 4095;
    uintptr_t a = ((uintptr_t)p + mask) & ~mask, e = ((uintptr_t)p + len) & ~mask;
    for (; a + mib <= e; a += mib) {
      madvise((void *)a, mib, MADV_DONTNEED);
      tsc_cooperate();
    }
  }
  free(p);
}

/* ------------------------------------------------------------------------------------------ */
/* the scanner (validation)                                                                    */
/* ------------------------------------------------------------------------------------------ */

typedef struct scan {
  uc *p, *end;
  int depth;
  unsigned members; /* object members since the last tsc_cooperate */
} scan;

/* (Called between every two tokens: inlined, and the usual case, no space, first.) */
static inline __attribute__((always_inline)) void scan_ws(scan *s) {
  if (s->p < s->end && *s->p > ' ') return;
  while (s->p < s->end && is_ws(*s->p)) s->p++;
}

/* A string, s->p after its opening quote; leaves s->p past the closing quote. *flags: 1 when it
 * has escapes, 2 when one of them is \u0000. 0 when invalid. */
static int scan_str(scan *s, int *flags) {
  uc *p = s->p, *end = s->end;
  int f = 0;
  for (;;) {
    while (p < end && !(k_stop[*p] & 1)) p++;
    if (p >= end) return 0;
    unsigned c = *p;
    if (c == '"') {
      s->p = p + 1;
      *flags = f;
      return 1;
    }
    if (c == '\\') {
      if (end - p < 2) return 0;
      unsigned d = p[1];
      f |= 1;
      if (d == 'u') {
        if (end - p < 6) return 0;
        long u = hex4(p + 2);
        if (u < 0) return 0;
        p += 6;
        if (u >= 0xD800 && u <= 0xDBFF) { /* a high surrogate: its low one must follow */
          if (end - p < 6 || p[0] != '\\' || p[1] != 'u') return 0;
          long u2 = hex4(p + 2);
          if (u2 < 0xDC00 || u2 > 0xDFFF) return 0;
          p += 6;
        } else if (u >= 0xDC00 && u <= 0xDFFF) {
          return 0;
        } else if (u == 0) {
          f |= 2;
        }
        continue;
      }
      if (d == '"' || d == '\\' || d == '/' || d == 'b' || d == 'f' || d == 'n' || d == 'r' ||
          d == 't') {
        p += 2;
        continue;
      }
      return 0;
    }
    if (c < 0x20) return 0; /* a control character */
    int n = utf8_len(p, end);
    if (!n) return 0;
    p += n;
  }
}

/* A number, at s->p. Integers must fit a long long (jansson: strtoll), reals must not overflow
 * (jansson: strtod, HUGE_VAL with ERANGE). */
static int scan_num(scan *s) {
  uc *start = s->p, *p = s->p, *end = s->end;
  int neg = 0, real = 0, exp = 0;
  if (p < end && *p == '-') {
    neg = 1;
    p++;
  }
  uc *digits = p;
  if (p >= end) return 0;
  if (*p == '0') {
    p++;
    if (p < end && is_digit(*p)) return 0;
  } else if (is_digit(*p)) {
    while (p < end && is_digit(*p)) p++;
  } else {
    return 0;
  }
  size_t nint = (size_t)(p - digits);
  if (p < end && *p == '.') {
    p++;
    if (p >= end || !is_digit(*p)) return 0;
    while (p < end && is_digit(*p)) p++;
    real = 1;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    if (p >= end || !is_digit(*p)) return 0;
    while (p < end && is_digit(*p)) p++;
    real = exp = 1;
  }
  s->p = p;
  if (!real) {
    if (nint < 19) return 1;
    if (nint > 19) return 0;
    return memcmp(digits, neg ? "9223372036854775808" : "9223372036854775807", 19) <= 0;
  }
  if (!exp && nint <= 300) return 1; /* below 1e300: no overflow */
  char tmp[512];
  size_t n = (size_t)(p - start);
  locale_t loc = c_locale();
  if (n >= sizeof tmp || !loc) return 0;
  memcpy(tmp, start, n);
  tmp[n] = '\0';
  errno = 0;
  double v = strtod_l(tmp, NULL, loc);
  return !((v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE);
}

static int scan_lit(scan *s, const char *lit, size_t n) {
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0) return 0;
  s->p += n;
  return 1;
}

static int scan_value(scan *s);

static int scan_object(scan *s) {
  s->p++; /* { */
  scan_ws(s);
  if (s->p < s->end && *s->p == '}') {
    s->p++;
    return 1;
  }
  for (;;) {
    if (s->p >= s->end || *s->p != '"') return 0;
    s->p++;
    int f;
    if (!scan_str(s, &f) || (f & 2)) return 0; /* jansson refuses \u0000 in a key */
    scan_ws(s);
    if (s->p >= s->end || *s->p != ':') return 0;
    s->p++;
    scan_ws(s);
    if (!scan_value(s)) return 0;
    if (++s->members == 4096) { /* ~0.1 ms */
      s->members = 0;
      tsc_cooperate();
    }
    scan_ws(s);
    if (s->p >= s->end) return 0;
    if (*s->p == '}') {
      s->p++;
      return 1;
    }
    if (*s->p != ',') return 0;
    s->p++;
    scan_ws(s);
  }
}

static int scan_array(scan *s) {
  s->p++; /* [ */
  scan_ws(s);
  if (s->p < s->end && *s->p == ']') {
    s->p++;
    return 1;
  }
  for (;;) {
    if (!scan_value(s)) return 0;
    scan_ws(s);
    if (s->p >= s->end) return 0;
    if (*s->p == ']') {
      s->p++;
      return 1;
    }
    if (*s->p != ',') return 0;
    s->p++;
    scan_ws(s);
  }
}

static int scan_value(scan *s) {
  if (s->p >= s->end) return 0;
  int ok, f;
  switch (*s->p) {
  case '"':
    s->p++;
    return scan_str(s, &f);
  case '{':
  case '[':
    if (++s->depth > TSJ_MAX_DEPTH) return 0;
    ok = *s->p == '{' ? scan_object(s) : scan_array(s);
    s->depth--;
    return ok;
  case 't': return scan_lit(s, "true", 4);
  case 'f': return scan_lit(s, "false", 5);
  case 'n': return scan_lit(s, "null", 4);
  default: return scan_num(s);
  }
}

int tsj_scan(const char *buf, size_t len, const char *key, size_t *vstart, size_t *vend) {
  init_stop();
  scan s = {(uc *)buf, (uc *)buf + len, 1, 0};
  size_t klen = strlen(key);
  *vstart = *vend = 0;
  scan_ws(&s);
  if (s.p >= s.end || *s.p != '{') return 0;
  s.p++;
  scan_ws(&s);
  if (s.p < s.end && *s.p == '}') {
    s.p++;
  } else {
    for (;;) {
      if (s.p >= s.end || *s.p != '"') return 0;
      uc *k = ++s.p;
      int f;
      /* A key with escapes might spell `key`: not worth decoding here. */
      if (!scan_str(&s, &f) || f) return 0;
      int match = (size_t)(s.p - 1 - k) == klen && memcmp(k, key, klen) == 0;
      scan_ws(&s);
      if (s.p >= s.end || *s.p != ':') return 0;
      s.p++;
      scan_ws(&s);
      uc *v = s.p;
      if (!scan_value(&s)) return 0;
      if (match) {
        *vstart = (size_t)(v - (uc *)buf);
        *vend = (size_t)(s.p - (uc *)buf);
      }
      scan_ws(&s);
      if (s.p >= s.end) return 0;
      if (*s.p == '}') {
        s.p++;
        break;
      }
      if (*s.p != ',') return 0;
      s.p++;
      scan_ws(&s);
    }
  }
  scan_ws(&s);
  return s.p == s.end;
}

/* ------------------------------------------------------------------------------------------ */
/* reading validated text                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* The kinds of a value, and their names in messages (as model.c names jansson's types). */
enum { V_ABSENT = 0, V_NULL, V_BOOL, V_INT, V_REAL, V_STR, V_ARR, V_OBJ };

static const char *kind_name(int k) {
  switch (k) {
  case V_OBJ: return "an object";
  case V_ARR: return "an array";
  case V_STR: return "a string";
  case V_INT: return "an integer";
  case V_REAL: return "a number";
  case V_BOOL: return "a boolean";
  case V_NULL: return "null";
  }
  return "?";
}

typedef struct val {
  int kind;
  char *p; /* its first byte (a string: after the opening quote) */
} val;

static inline __attribute__((always_inline)) char *skip_ws(char *p, char *end) {
  while (p < end && is_ws((unsigned char)*p)) p++;
  return p;
}

/* Past the closing quote of the string whose content starts at p; *esc set when it has escapes
 * (esc may be NULL). */
static char *skip_str_esc(char *p, char *end, int *esc) {
  for (;;) {
    while (p < end && !(k_stop[(unsigned char)*p] & 2)) p++;
    if (p >= end) return end;
    if (*p == '"') return p + 1;
    if (esc) *esc = 1;
    p += 2; /* the escaped character (a \u's hex digits are plain characters) */
  }
}

static char *skip_str(char *p, char *end) { return skip_str_esc(p, end, NULL); }

/* Past the value at p (valid JSON). */
static char *skip_value(char *p, char *end) {
  if (p >= end) return end;
  char c = *p;
  if (c == '"') return skip_str(p + 1, end);
  if (c == '{' || c == '[') {
    int depth = 0;
    while (p < end) {
      c = *p++;
      if (c == '"')
        p = skip_str(p, end);
      else if (c == '{' || c == '[')
        depth++;
      else if ((c == '}' || c == ']') && --depth == 0)
        return p;
    }
    return end;
  }
  if (c == 't' || c == 'n') return p + 4;
  if (c == 'f') return p + 5;
  while (p < end && (is_digit((unsigned char)*p) || *p == '-' || *p == '+' || *p == '.' ||
                     *p == 'e' || *p == 'E'))
    p++;
  return p;
}

/* Describes the value at p and returns the position past it. */
static char *read_value(char *p, char *end, val *v) {
  v->p = p;
  switch (*p) {
  case '"':
    v->kind = V_STR;
    v->p = p + 1;
    return skip_str(p + 1, end);
  case '{': v->kind = V_OBJ; break;
  case '[': v->kind = V_ARR; break;
  case 't':
  case 'f': v->kind = V_BOOL; break;
  case 'n': v->kind = V_NULL; break;
  default:
    v->kind = V_INT;
    p += *p == '-';
    while (p < end && is_digit((unsigned char)*p)) p++;
    if (p < end && (*p == '.' || *p == 'e' || *p == 'E')) {
      v->kind = V_REAL;
      while (p < end && (is_digit((unsigned char)*p) || *p == '-' || *p == '+' || *p == '.' ||
                         *p == 'e' || *p == 'E'))
        p++;
    }
    return p;
  }
  return skip_value(p, end);
}

/* An integer token (known to fit a long long). */
static long long int_value(const char *p) {
  int neg = *p == '-';
  p += neg;
  unsigned long long u = 0;
  while (is_digit((unsigned char)*p)) u = u * 10 + (unsigned)(*p++ - '0');
  return neg ? (long long)(0ULL - u) : (long long)u;
}

static double real_value(const char *p) {
  locale_t loc = c_locale();
  return loc ? strtod_l(p, NULL, loc) : strtod(p, NULL);
}

static int utf8_put(uint32_t cp, char *w) {
  if (cp < 0x80) {
    w[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    w[0] = (char)(0xC0 | (cp >> 6));
    w[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    w[0] = (char)(0xE0 | (cp >> 12));
    w[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    w[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  w[0] = (char)(0xF0 | (cp >> 18));
  w[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  w[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  w[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Decodes the (valid) string whose content starts at p into place, NUL-terminated (a \u0000
 * ends the C string there, as with jansson's json_string_value). Returns p. The closing quote
 * may be overwritten: the text around it must not be read again. */
static char *decode_str(char *p, char *end) {
  char *r = p;
  while (r < end && *r != '"' && *r != '\\') r++;
  char *w = r;
  while (r < end && *r != '"') {
    if (*r != '\\') {
      *w++ = *r++;
      continue;
    }
    char d = r[1];
    r += 2;
    switch (d) {
    case 'b': *w++ = '\b'; break;
    case 'f': *w++ = '\f'; break;
    case 'n': *w++ = '\n'; break;
    case 'r': *w++ = '\r'; break;
    case 't': *w++ = '\t'; break;
    case 'u': {
      uint32_t cp = (uint32_t)hex4((uc *)r);
      r += 4;
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        uint32_t lo = (uint32_t)hex4((uc *)r + 2);
        r += 6;
        cp = ((cp - 0xD800) << 10) + (lo - 0xDC00) + 0x10000;
      }
      w += utf8_put(cp, w);
      break;
    }
    default: *w++ = d; break; /* " \ / */
    }
  }
  *w = '\0';
  return p;
}

/* ------------------------------------------------------------------------------------------ */
/* checks (the same rules and messages as model.c's ts_jv_*)                                   */
/* ------------------------------------------------------------------------------------------ */

/* 1 when there is a value to check; records a missing required field (model.c: field()). */
static int present(ts_jv *v, const val *j, const char *key, unsigned flags, const char *want) {
  if (j->kind == V_ABSENT || (j->kind == V_NULL && (flags & TS_JV_NULLABLE))) {
    if (j->kind == V_ABSENT && (flags & TS_JV_REQUIRED)) ts_jv_missing(v, key, want);
    return 0;
  }
  return 1;
}

static int chk_int(ts_jv *v, const val *j, const char *key, unsigned flags, long long *out) {
  if (!present(v, j, key, flags, "an integer")) return 0;
  if (j->kind != V_INT) return ts_jv_wrong(v, key, "an integer", flags, kind_name(j->kind));
  *out = int_value(j->p);
  return 1;
}

static int chk_num(ts_jv *v, const val *j, const char *key, unsigned flags, double *out) {
  if (!present(v, j, key, flags, "a number")) return 0;
  if (j->kind == V_INT)
    *out = (double)int_value(j->p);
  else if (j->kind == V_REAL)
    *out = real_value(j->p);
  else
    return ts_jv_wrong(v, key, "a number", flags, kind_name(j->kind));
  return 1;
}

static int chk_str(ts_jv *v, const val *j, char *end, const char *key, unsigned flags,
                   const char **out) {
  if (!present(v, j, key, flags, "a string")) return 0;
  if (j->kind != V_STR) return ts_jv_wrong(v, key, "a string", flags, kind_name(j->kind));
  *out = decode_str(j->p, end);
  return 1;
}

/* The fields of a TASK (and of its awaiting object) that ts_task holds. */
enum { F_ID, F_PARENT, F_RUNTIME, F_NAME, F_STATE, F_CREATED, F_SWITCHES, F_AWAITING, F_KIND,
       F_NFIELDS, F_OTHER = F_NFIELDS };

static int field_of(const char *k, size_t n, int awaiting) {
  if (awaiting) {
    if (n == 4 && memcmp(k, "kind", 4) == 0) return F_KIND;
    if (n == 2 && memcmp(k, "id", 2) == 0) return F_ID;
    return F_OTHER;
  }
  switch (n) {
  case 2: return memcmp(k, "id", 2) == 0 ? F_ID : F_OTHER;
  case 4: return memcmp(k, "name", 4) == 0 ? F_NAME : F_OTHER;
  case 5: return memcmp(k, "state", 5) == 0 ? F_STATE : F_OTHER;
  case 6: return memcmp(k, "parent", 6) == 0 ? F_PARENT : F_OTHER;
  case 7: return memcmp(k, "runtime", 7) == 0 ? F_RUNTIME : F_OTHER;
  case 8:
    return memcmp(k, "switches", 8) == 0   ? F_SWITCHES
           : memcmp(k, "awaiting", 8) == 0 ? F_AWAITING
                                           : F_OTHER;
  case 10: return memcmp(k, "created_ms", 10) == 0 ? F_CREATED : F_OTHER;
  }
  return F_OTHER;
}

/* Reads the members of the (valid) object at p into f[] (the last of duplicate keys counts) and
 * returns the position past it. */
static char *read_object(char *p, char *end, val *f, int awaiting) {
  memset(f, 0, F_NFIELDS * sizeof *f);
  p = skip_ws(p + 1, end);
  if (p < end && *p == '}') return p + 1;
  while (p < end && *p == '"') {
    char *k = p + 1;
    int esc = 0;
    p = skip_str_esc(k, end, &esc);
    size_t kn = (size_t)(p - 1 - k);
    int which;
    if (esc) {
      /* An escaped key (jansson compares it decoded). A decoded key is at least a sixth of its
       * text, so one longer than 66 bytes cannot be a field we read. */
      char tmp[72];
      if (kn <= 66) {
        memcpy(tmp, k, kn);
        tmp[kn] = '"';
        decode_str(tmp, tmp + kn + 1);
        which = field_of(tmp, strlen(tmp), awaiting); /* no \u0000: tsj_scan refused those */
      } else {
        which = F_OTHER;
      }
    } else {
      which = field_of(k, kn, awaiting);
    }
    p = skip_ws(p, end);
    p = skip_ws(p + 1, end); /* : */
    val v;
    p = read_value(p, end, &v);
    if (which != F_OTHER) f[which] = v;
    p = skip_ws(p, end);
    if (p < end && *p == ',') p = skip_ws(p + 1, end);
  }
  return p < end ? p + 1 : end; /* } */
}

/* ts_jv_task (model.c) on the TASK object at o, whose end is *next. */
static void check_task(ts_jv *v, char *o, char **next, char *end, ts_task *t) {
  *t = (ts_task){.name = "", .state = "?", .created_ms = NAN};
  if (*o != '{') {
    val e;
    *next = read_value(o, end, &e);
    ts_jv_failf(v, "%s: expected a task object, got %s", v->where, kind_name(e.kind));
    return;
  }
  val f[F_NFIELDS];
  end = *next = read_object(o, end, f, 0);
  chk_int(v, &f[F_ID], "id", TS_JV_REQUIRED, &t->id);
  t->has_parent = chk_int(v, &f[F_PARENT], "parent", TS_JV_NULLABLE, &t->parent);
  t->has_runtime = chk_int(v, &f[F_RUNTIME], "runtime", TS_JV_NULLABLE, &t->runtime);
  chk_str(v, &f[F_NAME], end, "name", TS_JV_NULLABLE, &t->name);
  chk_str(v, &f[F_STATE], end, "state", TS_JV_REQUIRED, &t->state);
  chk_num(v, &f[F_CREATED], "created_ms", TS_JV_NULLABLE, &t->created_ms);
  chk_int(v, &f[F_SWITCHES], "switches", TS_JV_NULLABLE, &t->switches);
  const val *aw = &f[F_AWAITING];
  if (!present(v, aw, "awaiting", TS_JV_NULLABLE, "an object")) return;
  if (aw->kind != V_OBJ) {
    ts_jv_wrong(v, "awaiting", "an object", TS_JV_NULLABLE, kind_name(aw->kind));
    return;
  }
  val a[F_NFIELDS];
  read_object(aw->p, end, a, 1);
  /* where = "<where>.awaiting" (ts_jv_at's truncation included, without printf) */
  size_t wl = strlen(v->where);
  char saved = v->where[wl];
  size_t add = sizeof v->where - 1 - wl < 9 ? sizeof v->where - 1 - wl : 9;
  memcpy(v->where + wl, ".awaiting", add);
  v->where[wl + add] = '\0';
  chk_str(v, &a[F_KIND], end, "kind", TS_JV_REQUIRED, &t->await_kind);
  t->await_has_id = chk_int(v, &a[F_ID], "id", TS_JV_NULLABLE, &t->await_id);
  v->where[wl] = saved;
}

/* "what[i]" (ts_jv_at without printf: it is done for every element). */
static void set_where(ts_jv *v, const char *what, size_t wlen, size_t i) {
  char num[24], *q = num + sizeof num;
  do {
    *--q = (char)('0' + i % 10);
    i /= 10;
  } while (i);
  size_t nl = (size_t)(num + sizeof num - q);
  if (wlen + nl + 3 > sizeof v->where) {
    ts_jv_at(v, "%s[%.*s]", what, (int)nl, q);
    return;
  }
  memcpy(v->where, what, wlen);
  v->where[wlen] = '[';
  memcpy(v->where + wlen + 1, q, nl);
  v->where[wlen + 1 + nl] = ']';
  v->where[wlen + 2 + nl] = '\0';
}

int tsj_tasks(char *text, size_t len, const char *what, ts_task **out, size_t *n, char *err,
              size_t errlen) {
  init_stop();
  char *p = text, *end = text + len;
  size_t cap = 1024, count = 0, wlen = strlen(what);
  ts_task *tasks = malloc(cap * sizeof *tasks);
  ts_jv v = {.err = err, .errlen = errlen};
  if (!tasks) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  p = skip_ws(p + 1, end); /* [ */
  while (p < end && *p != ']') {
    if (count == cap) {
      ts_task *more = realloc(tasks, 2 * cap * sizeof *tasks);
      if (!more) {
        free(tasks);
        snprintf(err, errlen, "out of memory");
        return -1;
      }
      tasks = more;
      cap *= 2;
    }
    char *next;
    if ((count & 255) == 255) tsc_cooperate();
    set_where(&v, what, wlen, count);
    check_task(&v, p, &next, end, &tasks[count++]);
    if (v.failed) {
      free(tasks);
      return -1;
    }
    p = skip_ws(next, end);
    if (p < end && *p == ',') p = skip_ws(p + 1, end);
  }
  *out = tasks;
  *n = count;
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* output                                                                                      */
/* ------------------------------------------------------------------------------------------ */

int tsj_out_flush(tsj_out *o) {
  if (o->len && fwrite(o->buf, 1, o->len, o->f) != o->len) o->failed = 1;
  o->len = 0;
  return o->failed ? -1 : 0;
}

void tsj_out_put_slow(tsj_out *o, const char *s, size_t n) {
  if (n > sizeof o->buf - o->len) {
    tsj_out_flush(o);
    if (n > sizeof o->buf) {
      if (fwrite(s, 1, n, o->f) != n) o->failed = 1;
      return;
    }
  }
  memcpy(o->buf + o->len, s, n);
  o->len += n;
}

void tsj_out_str(tsj_out *o, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  tsj_out_put(o, "\"", 1);
  const char *run = s;
  for (;; s++) {
    unsigned char c = (unsigned char)*s;
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    if (s > run) tsj_out_put(o, run, (size_t)(s - run));
    if (!c) break;
    run = s + 1;
    char e[6] = {'\\', 0, 0, 0, 0, 0};
    size_t n = 2;
    switch (c) {
    case '"': e[1] = '"'; break;
    case '\\': e[1] = '\\'; break;
    case '\b': e[1] = 'b'; break;
    case '\f': e[1] = 'f'; break;
    case '\n': e[1] = 'n'; break;
    case '\r': e[1] = 'r'; break;
    case '\t': e[1] = 't'; break;
    default: /* jansson: \u%04X */
      e[1] = 'u';
      e[2] = '0';
      e[3] = '0';
      e[4] = hex[c >> 4];
      e[5] = hex[c & 15];
      n = 6;
      break;
    }
    tsj_out_put(o, e, n);
  }
  tsj_out_put(o, "\"", 1);
}

void tsj_out_int(tsj_out *o, long long v) {
  char buf[24], *p = buf + sizeof buf;
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  do {
    *--p = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) *--p = '-';
  tsj_out_put(o, p, (size_t)(buf + sizeof buf - p));
}
