/* options.c — TASKSCOPE_OPTIONS: one table of options drives defaults, parsing, validation,
 * formatting and comparison. The contract (syntax, errors, policy) is in options.h. */
#include "options.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KIB ((uint64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

/* How a value is read, checked and stored. */
typedef enum {
  OPT_ENUM,   /* one of names[]; stored as unsigned (the enum's index) */
  OPT_UINT,   /* decimal number in [min, max]; stored as unsigned */
  OPT_SIZE,   /* decimal number with an optional k/m/g suffix, in [min, max]; stored as size_t */
  OPT_BOOL,   /* on|off|1|0; stored as bool */
  OPT_PATH,   /* a path, "" for none; stored as char[size] */
  OPT_SOCKET  /* auto|off|PATH; stored in o->socket and o->socket_path */
} opt_kind;

typedef struct opt_desc {
  const char *name;
  opt_kind kind;
  size_t offset;             /* of the field in tsk__options */
  size_t size;               /* of the field */
  uint64_t min, max, def;    /* numbers, enums and bools (def only) */
  const char *const *names;  /* OPT_ENUM: value names, indexed by value */
  bool percent;              /* OPT_PATH: %p / %% escapes allowed (a pattern) */
  const char *syntax;        /* what follows "name=" in messages and docs */
} opt_desc;

static const char *const backtrace_names[] = {"off", "spawn", NULL};

_Static_assert(sizeof(tsk__backtrace_mode) == sizeof(unsigned), "enum stored as unsigned");

#define FIELD(f) offsetof(tsk__options, f), sizeof(((tsk__options *)0)->f)

/* The options, in the order tsk__options_format writes them. Keep docs/OPTIONS.md in step. */
static const opt_desc options_table[] = {
  {"backtrace", OPT_ENUM, FIELD(backtrace), 0, 1, TSK__BACKTRACE_SPAWN, backtrace_names, false,
   "off|spawn"},
  {"frames", OPT_UINT, FIELD(frames), 1, 64, 16, NULL, false, "1..64"},
  {"report", OPT_PATH, FIELD(report), 0, 0, 0, NULL, true, "PATH"},
  {"exitcode", OPT_UINT, FIELD(exitcode), 0, 255, 0, NULL, false, "0..255"},
  {"suppressions", OPT_PATH, FIELD(suppressions), 0, 0, 0, NULL, false, "PATH"},
  {"socket", OPT_SOCKET, FIELD(socket), 0, 0, 0, NULL, false, "auto|off|PATH"},
  {"stack_size", OPT_SIZE, FIELD(stack_size), 16 * KIB, GIB, 256 * KIB, NULL, false, "16k..1g"},
  {"history", OPT_UINT, FIELD(history), 0, 1000000, 1024, NULL, false, "0..1000000"},
  {"verbosity", OPT_UINT, FIELD(verbosity), 0, 2, 0, NULL, false, "0..2"},
  {"settle_ms", OPT_UINT, FIELD(settle_ms), 0, 60000, 100, NULL, false, "0..60000"},
  {"report_text", OPT_BOOL, FIELD(report_text), 0, 1, 1, NULL, false, "on|off"},
  {"busy_time", OPT_BOOL, FIELD(busy_time), 0, 1, 0, NULL, false, "on|off"},
  {"strict", OPT_BOOL, FIELD(strict), 0, 1, 0, NULL, false, "on|off"},
};
#define N_OPTIONS (sizeof options_table / sizeof options_table[0])

#define SPEC_PREFIX "TASKSCOPE_OPTIONS: "
#define SET_PREFIX "tsk_options_set: "
#define QUOTE_MAX 64 /* bytes of a value or key shown in a message */

/* ---- error messages ---------------------------------------------------------------------- */

typedef struct errbuf {
  const char *prefix;
  char *buf;
  size_t len;
} errbuf;

static int fail(const errbuf *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(const errbuf *e, const char *fmt, ...) {
  if (e->buf && e->len > 0) {
    int n = snprintf(e->buf, e->len, "%s", e->prefix);
    if (n >= 0 && (size_t)n < e->len) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(e->buf + n, e->len - (size_t)n, fmt, ap);
      va_end(ap);
    }
  }
  return TSK_EOPTION;
}

/* s[0..len) for a message: at most QUOTE_MAX bytes, non-printable bytes and quotes escaped as
 * \xNN so the message stays one line, "..." when cut. out must hold QUOTE_MAX * 4 + 4 bytes. */
#define QUOTED_SIZE (QUOTE_MAX * 4 + 4)
static const char *quote(char *out, const char *s, size_t len) {
  size_t o = 0;
  size_t shown = len < QUOTE_MAX ? len : QUOTE_MAX;
  for (size_t i = 0; i < shown; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c >= 0x7f || c == '\'' || c == '\\')
      o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
    else
      out[o++] = (char)c;
  }
  if (shown < len) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o] = '\0';
  return out;
}

/* ---- small helpers ----------------------------------------------------------------------- */

static bool is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static bool eq(const char *s, size_t len, const char *lit) {
  return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

static const opt_desc *find_option(const char *key, size_t len) {
  for (size_t i = 0; i < N_OPTIONS; i++)
    if (eq(key, len, options_table[i].name)) return &options_table[i];
  return NULL;
}

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

/* Optimal string alignment distance (Levenshtein plus adjacent transpositions), ignoring case.
 * Strings longer than 32 bytes are "far" (returns 99). */
static unsigned edit_distance(const char *a, size_t la, const char *b, size_t lb) {
  enum { M = 32 };
  unsigned d[M + 1][M + 1];
  if (la > M || lb > M) return 99;
  for (size_t i = 0; i <= la; i++) d[i][0] = (unsigned)i;
  for (size_t j = 0; j <= lb; j++) d[0][j] = (unsigned)j;
  for (size_t i = 1; i <= la; i++) {
    for (size_t j = 1; j <= lb; j++) {
      unsigned cost = lower(a[i - 1]) != lower(b[j - 1]);
      unsigned best = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
      if (d[i - 1][j - 1] + cost < best) best = d[i - 1][j - 1] + cost;
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
          lower(a[i - 2]) == lower(b[j - 1]) && d[i - 2][j - 2] + 1 < best)
        best = d[i - 2][j - 2] + 1;
      d[i][j] = best;
    }
  }
  return d[la][lb];
}

/* The known option nearest to key (surrounding whitespace ignored), if within distance 2. */
static const char *suggest(const char *key, size_t len) {
  while (len > 0 && is_space(*key)) key++, len--;
  while (len > 0 && is_space(key[len - 1])) len--;
  const char *best = NULL;
  unsigned best_d = 3;
  for (size_t i = 0; i < N_OPTIONS; i++) {
    const char *n = options_table[i].name;
    unsigned d = edit_distance(key, len, n, strlen(n));
    if (d < best_d) best_d = d, best = n;
  }
  return best;
}

static int unknown_option(const errbuf *e, const char *key, size_t len) {
  char q[QUOTED_SIZE];
  quote(q, key, len);
  bool spaced = len > 0 && (is_space(key[0]) || is_space(key[len - 1]));
  const char *s = suggest(key, len);
  if (s)
    return fail(e, "unknown option '%s' (did you mean '%s'?%s)", q, s,
                spaced ? " whitespace is not trimmed" : "");
  char known[256];
  size_t k = 0;
  for (size_t i = 0; i < N_OPTIONS; i++)
    k += (size_t)snprintf(known + k, sizeof known - k, "%s%s", i ? ", " : "",
                          options_table[i].name);
  return fail(e, "unknown option '%s' (known options: %s)", q, known);
}

/* Strict unsigned decimal: at least one digit, digits only, no overflow. */
static bool parse_u64(const char *s, size_t len, uint64_t *out) {
  uint64_t v = 0;
  if (len == 0) return false;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    unsigned digit = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - digit) / 10) return false;
    v = v * 10 + digit;
  }
  *out = v;
  return true;
}

/* Decimal with an optional k/K, m/M or g/G suffix (powers of 1024). */
static bool parse_size(const char *s, size_t len, uint64_t *out) {
  uint64_t mult = 1;
  if (len > 0) {
    switch (s[len - 1]) {
    case 'k': case 'K': mult = KIB; break;
    case 'm': case 'M': mult = MIB; break;
    case 'g': case 'G': mult = GIB; break;
    default: break;
    }
    if (mult != 1) len--;
  }
  uint64_t v;
  if (!parse_u64(s, len, &v) || v > UINT64_MAX / mult) return false;
  *out = v * mult;
  return true;
}

/* Why a report pattern is malformed, or NULL if it is fine. */
static const char *check_pattern(const char *s, size_t len, char *why, size_t whylen) {
  for (size_t i = 0; i < len; i++) {
    if (s[i] != '%') continue;
    if (i + 1 == len) return "a lone '%' at the end (use %% for a literal '%')";
    char c = s[i + 1];
    if (c != 'p' && c != '%') {
      char q[QUOTED_SIZE];
      snprintf(why, whylen, "unknown escape '%%%s' (use %%p for the pid, %%%% for a literal '%%')",
               quote(q, &c, 1));
      return why;
    }
    i++;
  }
  return NULL;
}

/* Why a path value is unusable, or NULL. cap is the field size (NUL included). */
static const char *check_path(const char *s, size_t len, size_t cap, char *why, size_t whylen) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f) return "control characters are not allowed in a path";
    if (c == ':') return "a path cannot contain ':' (it separates options)";
  }
  if (len >= cap) {
    snprintf(why, whylen, "path too long (%zu bytes; at most %zu)", len, cap - 1);
    return why;
  }
  return NULL;
}

static void *field(tsk__options *o, const opt_desc *d) { return (char *)o + d->offset; }
static const void *cfield(const tsk__options *o, const opt_desc *d) {
  return (const char *)o + d->offset;
}

/* Validates value v[0..len) for d and, only if it is good, stores it in *o. */
static int set_value(tsk__options *o, const opt_desc *d, const char *v, size_t len,
                     const errbuf *e) {
  char q[QUOTED_SIZE], why[160];
  const char *reason = NULL;
  uint64_t n = 0;

  if (len == 0) {
    if (d->kind == OPT_PATH) {
      ((char *)field(o, d))[0] = '\0';
      return 0;
    }
    return fail(e, "'%s' needs a value (%s=%s)", d->name, d->name, d->syntax);
  }
  if (is_space(v[0]) || is_space(v[len - 1])) {
    snprintf(why, sizeof why, "whitespace around a value is not trimmed (expected %s)", d->syntax);
    return fail(e, "bad value '%s' for '%s': %s", quote(q, v, len), d->name, why);
  }

  switch (d->kind) {
  case OPT_ENUM:
    for (n = 0; d->names[n]; n++)
      if (eq(v, len, d->names[n])) break;
    if (!d->names[n]) {
      snprintf(why, sizeof why, "expected %s", d->syntax);
      reason = why;
      break;
    }
    *(unsigned *)field(o, d) = (unsigned)n;
    return 0;

  case OPT_UINT:
    if (!parse_u64(v, len, &n) || n < d->min || n > d->max) {
      snprintf(why, sizeof why, "expected a number from %llu to %llu", (unsigned long long)d->min,
               (unsigned long long)d->max);
      reason = why;
      break;
    }
    *(unsigned *)field(o, d) = (unsigned)n;
    return 0;

  case OPT_SIZE:
    if (!parse_size(v, len, &n) || n < d->min || n > d->max) {
      reason = "expected a size from 16k to 1g (bytes, or a number with a k, m or g suffix)";
      break;
    }
    *(size_t *)field(o, d) = (size_t)n;
    return 0;

  case OPT_BOOL:
    if (eq(v, len, "on") || eq(v, len, "1"))
      *(bool *)field(o, d) = true;
    else if (eq(v, len, "off") || eq(v, len, "0"))
      *(bool *)field(o, d) = false;
    else
      reason = "expected on|off (or 1|0)";
    if (!reason) return 0;
    break;

  case OPT_PATH:
    reason = check_path(v, len, d->size, why, sizeof why);
    if (!reason && d->percent) reason = check_pattern(v, len, why, sizeof why);
    if (reason) break;
    memcpy(field(o, d), v, len);
    ((char *)field(o, d))[len] = '\0';
    return 0;

  case OPT_SOCKET:
    if (eq(v, len, "auto") || eq(v, len, "off")) {
      o->socket = eq(v, len, "auto") ? TSK__SOCKET_AUTO : TSK__SOCKET_OFF;
      o->socket_path[0] = '\0';
      return 0;
    }
    if (!memchr(v, '/', len)) {
      reason = "expected auto, off or a path containing '/' (e.g. ./app.sock)";
      break;
    }
    if (len >= sizeof o->socket_path) {
      snprintf(why, sizeof why, "socket path too long (%zu bytes; a Unix socket path holds at most %zu)",
               len, sizeof o->socket_path - 1);
      reason = why;
      break;
    }
    reason = check_path(v, len, sizeof o->socket_path, why, sizeof why);
    if (reason) break;
    o->socket = TSK__SOCKET_PATH;
    memcpy(o->socket_path, v, len);
    o->socket_path[len] = '\0';
    return 0;
  }
  return fail(e, "bad value '%s' for '%s': %s", quote(q, v, len), d->name, reason);
}

/* One "key=value" segment (not empty). */
static int parse_segment(tsk__options *o, const char *s, size_t len, const errbuf *e) {
  const char *eqs = memchr(s, '=', len);
  size_t klen = eqs ? (size_t)(eqs - s) : len;
  char q[QUOTED_SIZE];

  if (klen == 0) return fail(e, "missing option name in '%s'", quote(q, s, len));
  const opt_desc *d = find_option(s, klen);
  if (!d) return unknown_option(e, s, klen);
  if (!eqs) return fail(e, "'%s' needs a value (%s=%s)", d->name, d->name, d->syntax);
  return set_value(o, d, eqs + 1, len - klen - 1, e);
}

/* Calls fn on each non-empty ':'-separated segment until one fails. */
typedef int (*segment_fn)(tsk__options *o, const char *s, size_t len, const errbuf *e);
static int for_each_segment(const char *spec, tsk__options *o, segment_fn fn, const errbuf *e) {
  const char *p = spec;
  for (;;) {
    const char *end = strchr(p, ':');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len > 0) {
      int rc = fn(o, p, len, e);
      if (rc != 0) return rc;
    }
    if (!end) return 0;
    p = end + 1;
  }
}

/* For the policy after a failed parse: applies only the valid strict= segments. */
static int strict_segment(tsk__options *o, const char *s, size_t len, const errbuf *e) {
  static const char key[] = "strict=";
  (void)e;
  if (len > sizeof key - 1 && memcmp(s, key, sizeof key - 1) == 0) {
    const char *v = s + sizeof key - 1;
    size_t vlen = len - (sizeof key - 1);
    if (eq(v, vlen, "on") || eq(v, vlen, "1")) o->strict = true;
    if (eq(v, vlen, "off") || eq(v, vlen, "0")) o->strict = false;
  }
  return 0;
}

/* ---- API --------------------------------------------------------------------------------- */

void tsk__options_defaults(tsk__options *o) {
  memset(o, 0, sizeof *o);
  for (size_t i = 0; i < N_OPTIONS; i++) {
    const opt_desc *d = &options_table[i];
    switch (d->kind) {
    case OPT_ENUM:
    case OPT_UINT: *(unsigned *)field(o, d) = (unsigned)d->def; break;
    case OPT_SIZE: *(size_t *)field(o, d) = (size_t)d->def; break;
    case OPT_BOOL: *(bool *)field(o, d) = d->def != 0; break;
    case OPT_PATH: ((char *)field(o, d))[0] = '\0'; break;
    case OPT_SOCKET:
      o->socket = TSK__SOCKET_AUTO;
      o->socket_path[0] = '\0';
      break;
    }
  }
}

int tsk__options_parse(const char *spec, tsk__options *out, char *err, size_t errlen) {
  const errbuf e = {SPEC_PREFIX, err, errlen};
  if (!out) return TSK_EINVAL;
  if (err && errlen > 0) err[0] = '\0';
  tsk__options_defaults(out);
  if (!spec) return 0;
  int rc = for_each_segment(spec, out, parse_segment, &e);
  if (rc != 0) {
    tsk__options_defaults(out);
    for_each_segment(spec, out, strict_segment, &e);
  }
  return rc;
}

int tsk__options_from_env(tsk__options *out, char *err, size_t errlen) {
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  const char *spec = secure_getenv("TASKSCOPE_OPTIONS");
#else
  const char *spec = getenv("TASKSCOPE_OPTIONS");
#endif
  return tsk__options_parse(spec, out, err, errlen);
}

int tsk__options_set(tsk__options *o, const char *key, const char *value, char *err,
                     size_t errlen) {
  const errbuf e = {SET_PREFIX, err, errlen};
  if (err && errlen > 0) err[0] = '\0';
  if (!o || !key || !value) {
    if (err && errlen > 0) snprintf(err, errlen, "%skey and value must not be NULL", SET_PREFIX);
    return TSK_EINVAL;
  }
  size_t klen = strlen(key);
  char q[QUOTED_SIZE];
  if (klen == 0) return fail(&e, "missing option name (value '%s')", quote(q, value, strlen(value)));
  const opt_desc *d = find_option(key, klen);
  if (!d) return unknown_option(&e, key, klen);
  return set_value(o, d, value, strlen(value), &e);
}

/* Appends to buf[0..n) at *pos; false once it no longer fits. */
static bool append(char *buf, size_t n, size_t *pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool append(char *buf, size_t n, size_t *pos, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int w = vsnprintf(buf + *pos, n - *pos, fmt, ap);
  va_end(ap);
  if (w < 0 || (size_t)w >= n - *pos) return false;
  *pos += (size_t)w;
  return true;
}

int tsk__options_format(const tsk__options *o, char *buf, size_t n) {
  size_t pos = 0;
  bool ok = true;
  if (!o || !buf || n == 0) return TSK_EINVAL;
  buf[0] = '\0';
  for (size_t i = 0; ok && i < N_OPTIONS; i++) {
    const opt_desc *d = &options_table[i];
    const void *f = cfield(o, d);
    const char *sep = i ? ":" : "";
    switch (d->kind) {
    case OPT_ENUM: {
      unsigned v = *(const unsigned *)f;
      ok = v <= d->max && append(buf, n, &pos, "%s%s=%s", sep, d->name, d->names[v]);
      break;
    }
    case OPT_UINT:
      ok = append(buf, n, &pos, "%s%s=%u", sep, d->name, *(const unsigned *)f);
      break;
    case OPT_SIZE: {
      uint64_t v = *(const size_t *)f;
      const char *suffix = "";
      if (v != 0 && v % GIB == 0) v /= GIB, suffix = "g";
      else if (v != 0 && v % MIB == 0) v /= MIB, suffix = "m";
      else if (v != 0 && v % KIB == 0) v /= KIB, suffix = "k";
      ok = append(buf, n, &pos, "%s%s=%llu%s", sep, d->name, (unsigned long long)v, suffix);
      break;
    }
    case OPT_BOOL:
      ok = append(buf, n, &pos, "%s%s=%s", sep, d->name, *(const bool *)f ? "on" : "off");
      break;
    case OPT_PATH:
      ok = append(buf, n, &pos, "%s%s=%s", sep, d->name, (const char *)f);
      break;
    case OPT_SOCKET:
      ok = append(buf, n, &pos, "%s%s=%s", sep, d->name,
                  o->socket == TSK__SOCKET_PATH ? o->socket_path
                  : o->socket == TSK__SOCKET_OFF ? "off"
                                                 : "auto");
      break;
    }
  }
  if (!ok) {
    buf[0] = '\0';
    return TSK_EINVAL;
  }
  return (int)pos;
}

bool tsk__options_equal(const tsk__options *a, const tsk__options *b) {
  for (size_t i = 0; i < N_OPTIONS; i++) {
    const opt_desc *d = &options_table[i];
    const void *fa = cfield(a, d), *fb = cfield(b, d);
    switch (d->kind) {
    case OPT_ENUM:
    case OPT_UINT:
      if (*(const unsigned *)fa != *(const unsigned *)fb) return false;
      break;
    case OPT_SIZE:
      if (*(const size_t *)fa != *(const size_t *)fb) return false;
      break;
    case OPT_BOOL:
      if (*(const bool *)fa != *(const bool *)fb) return false;
      break;
    case OPT_PATH:
      if (strncmp(fa, fb, d->size) != 0) return false;
      break;
    case OPT_SOCKET:
      if (a->socket != b->socket ||
          strncmp(a->socket_path, b->socket_path, sizeof a->socket_path) != 0)
        return false;
      break;
    }
  }
  return true;
}

int tsk__options_expand_path(const char *pattern, long pid, char *buf, size_t size) {
  size_t pos = 0;
  if (!pattern || !buf || size == 0) return TSK_EINVAL;
  for (const char *p = pattern; *p; p++) {
    char num[24];
    const char *piece = p;
    size_t plen = 1;
    if (*p == '%') {
      p++;
      if (*p == 'p') {
        plen = (size_t)snprintf(num, sizeof num, "%ld", pid);
        piece = num;
      } else if (*p != '%') {
        buf[0] = '\0';
        return TSK_EINVAL;
      }
    }
    if (plen >= size - pos) {
      buf[0] = '\0';
      return TSK_EINVAL;
    }
    memcpy(buf + pos, piece, plen);
    pos += plen;
  }
  buf[pos] = '\0';
  return pos > (size_t)INT32_MAX ? TSK_EINVAL : (int)pos;
}

int tsk__options_report_path(const tsk__options *o, char *buf, size_t size) {
  if (!o) return TSK_EINVAL;
  return tsk__options_expand_path(o->report, (long)getpid(), buf, size);
}
