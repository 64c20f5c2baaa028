/*
 * suppressions.c — the suppressions file (suppressions=PATH): parsing, glob matching, and
 * matching leak records against the entries.
 *
 * Format, one entry a line:
 *   leak:<glob>   any frame of the record's backtraces: function, symbol, file, module
 *   task:<glob>   the task's name
 *   kind:<kind>   pending | destroyed_pending | unretrieved_error (a glob matching at least one)
 * Blank lines are ignored; '#' at the start of a line, or after whitespace, starts a comment.
 * Leading and trailing whitespace around the type and the pattern is ignored.
 */
#include "leak.h"

#include "backtrace.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
  tsk__suppression pub;
  char *pattern;
  char *text;
} entry;

/* ip -> index of the first leak: entry matching the frame, or -1 (open addressing). */
typedef struct ip_memo {
  uintptr_t *keys;
  long *vals;
  unsigned char *used;
  size_t cap, n;
} ip_memo;

struct tsk__suppressions {
  char *name;
  entry *e;
  size_t n, cap;
  int has_leak; /* any leak: entry */
  ip_memo memo;
};

/* ---- glob ---- */

int tsk__glob_match(const char *p, const char *s) {
  if (!p || !s) return 0;
  const char *star_p = NULL, *star_s = NULL;
  while (*s) {
    if (*p == '*') {
      while (*p == '*') p++;
      if (!*p) return 1;
      star_p = p;
      star_s = s;
    } else if (*p == '?' || *p == *s) {
      p++;
      s++;
    } else if (star_p) {
      p = star_p;
      s = ++star_s;
    } else {
      return 0;
    }
  }
  while (*p == '*') p++;
  return *p == '\0';
}

/* ---- parsing ---- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static char *dup_range(const char *a, const char *b) {
  size_t len = (size_t)(b - a);
  char *s = malloc(len + 1);
  if (!s) return NULL;
  memcpy(s, a, len);
  s[len] = '\0';
  return s;
}

static int add_entry(tsk__suppressions *s, tsk__supp_type type, const char *text_a,
                     const char *text_b, const char *pat_a, const char *pat_b, int line) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 8;
    entry *e = realloc(s->e, cap * sizeof *e);
    if (!e) return TSK_ENOMEM;
    s->e = e;
    s->cap = cap;
  }
  entry *e = &s->e[s->n];
  memset(e, 0, sizeof *e);
  e->text = dup_range(text_a, text_b);
  e->pattern = dup_range(pat_a, pat_b);
  if (!e->text || !e->pattern) {
    free(e->text);
    free(e->pattern);
    return TSK_ENOMEM;
  }
  e->pub.type = type;
  e->pub.pattern = e->pattern;
  e->pub.text = e->text;
  e->pub.file = s->name;
  e->pub.line = line;
  s->n++;
  if (type == TSK__SUPP_LEAK) s->has_leak = 1;
  return 0;
}

/* Parses one line [a, b) (no newline). Returns 0, TSK_EINVAL (err set) or TSK_ENOMEM. */
static int parse_line(tsk__suppressions *s, const char *a, const char *b, int line, char *err,
                      size_t errlen) {
  /* NUL bytes end the content. */
  const char *nul = memchr(a, '\0', (size_t)(b - a));
  if (nul) b = nul;
  /* Comments: '#' at the start or after whitespace. */
  for (const char *c = a; c < b; c++) {
    if (*c == '#' && (c == a || is_space(c[-1]))) {
      b = c;
      break;
    }
  }
  while (a < b && is_space(*a)) a++;
  while (b > a && is_space(b[-1])) b--;
  if (a == b) return 0;

  const char *colon = memchr(a, ':', (size_t)(b - a));
  if (!colon) {
    set_err(err, errlen, "%s:%d: '%.*s' is not TYPE:PATTERN (expected leak:, task:, kind:)",
            s->name, line, (int)(b - a > 80 ? 80 : b - a), a);
    return TSK_EINVAL;
  }
  const char *ta = a, *tb = colon;
  while (tb > ta && is_space(tb[-1])) tb--;
  const char *pa = colon + 1, *pb = b;
  while (pa < pb && is_space(*pa)) pa++;

  tsk__supp_type type;
  size_t tlen = (size_t)(tb - ta);
  if (tlen == 4 && memcmp(ta, "leak", 4) == 0)
    type = TSK__SUPP_LEAK;
  else if (tlen == 4 && memcmp(ta, "task", 4) == 0)
    type = TSK__SUPP_TASK;
  else if (tlen == 4 && memcmp(ta, "kind", 4) == 0)
    type = TSK__SUPP_KIND;
  else {
    set_err(err, errlen, "%s:%d: unknown type '%.*s' (expected leak:, task:, kind:)", s->name,
            line, (int)(tlen > 80 ? 80 : tlen), ta);
    return TSK_EINVAL;
  }
  if (pa == pb) {
    set_err(err, errlen, "%s:%d: empty pattern after '%.*s:'", s->name, line, (int)tlen, ta);
    return TSK_EINVAL;
  }
  if (type == TSK__SUPP_KIND) {
    char pat[80];
    size_t plen = (size_t)(pb - pa);
    int ok = 0;
    if (plen < sizeof pat) {
      memcpy(pat, pa, plen);
      pat[plen] = '\0';
      for (int k = 0; k < TSK__LEAK_KINDS; k++)
        if (tsk__glob_match(pat, tsk__leak_kind_name((tsk__leak_kind)k))) ok = 1;
    }
    if (!ok) {
      set_err(err, errlen,
              "%s:%d: unknown kind '%.*s' (expected pending, destroyed_pending, "
              "unretrieved_error)",
              s->name, line, (int)(plen > 80 ? 80 : plen), pa);
      return TSK_EINVAL;
    }
  }
  return add_entry(s, type, ta, pb, pa, pb, line);
}

int tsk__suppressions_parse(const char *text, size_t len, const char *name,
                            tsk__suppressions **out, char *err, size_t errlen) {
  if (!out || (!text && len)) return TSK_EINVAL;
  *out = NULL;
  if (err && errlen) err[0] = '\0';
  tsk__suppressions *s = calloc(1, sizeof *s);
  if (!s) return TSK_ENOMEM;
  s->name = strdup(name ? name : "suppressions");
  if (!s->name) {
    free(s);
    return TSK_ENOMEM;
  }
  const char *p = text, *end = text + len;
  int line = 0;
  while (p && p < end) {
    line++;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *b = nl ? nl : end;
    int rc = parse_line(s, p, b, line, err, errlen);
    if (rc) {
      if (rc == TSK_ENOMEM) set_err(err, errlen, "%s:%d: out of memory", s->name, line);
      tsk__suppressions_free(s);
      return rc;
    }
    p = nl ? nl + 1 : end;
  }
  *out = s;
  return 0;
}

int tsk__suppressions_load(const char *path, tsk__suppressions **out, char *err,
                           size_t errlen) {
  if (!out || !path) return TSK_EINVAL;
  *out = NULL;
  FILE *f = fopen(path, "rbe");
  if (!f) {
    int e = errno;
    set_err(err, errlen, "%s: cannot open suppressions file: %s", path, strerror(e));
    return -e;
  }
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (cap - len < 4096) {
      size_t ncap = cap ? cap * 2 : 8192;
      char *nb = realloc(buf, ncap);
      if (!nb) {
        free(buf);
        fclose(f);
        set_err(err, errlen, "%s: out of memory", path);
        return TSK_ENOMEM;
      }
      buf = nb;
      cap = ncap;
    }
    size_t got = fread(buf + len, 1, cap - len, f);
    len += got;
    if (got == 0) break;
  }
  if (ferror(f)) {
    int e = errno ? errno : EIO;
    free(buf);
    fclose(f);
    set_err(err, errlen, "%s: cannot read suppressions file: %s", path, strerror(e));
    return -e;
  }
  fclose(f);
  int rc = tsk__suppressions_parse(buf, len, path, out, err, errlen);
  free(buf);
  return rc;
}

static void memo_free(ip_memo *m) {
  free(m->keys);
  free(m->vals);
  free(m->used);
  memset(m, 0, sizeof *m);
}

void tsk__suppressions_free(tsk__suppressions *s) {
  if (!s) return;
  for (size_t i = 0; i < s->n; i++) {
    free(s->e[i].text);
    free(s->e[i].pattern);
  }
  free(s->e);
  free(s->name);
  memo_free(&s->memo);
  free(s);
}

size_t tsk__suppressions_count(const tsk__suppressions *s) { return s ? s->n : 0; }

const tsk__suppression *tsk__suppressions_entry(const tsk__suppressions *s, size_t i) {
  if (!s || i >= s->n) return NULL;
  return &s->e[i].pub;
}

/* ---- matching ---- */

void tsk__suppressions_reset_hits(tsk__suppressions *s) {
  if (!s) return;
  for (size_t i = 0; i < s->n; i++) s->e[i].pub.hits = 0;
  /* Symbolization may change between reports (dlopen/dlclose): forget cached frames. */
  memo_free(&s->memo);
}

static size_t hash_ip(uintptr_t ip) {
  uint64_t x = (uint64_t)ip;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return (size_t)x;
}

static int memo_grow(ip_memo *m) {
  size_t cap = m->cap ? m->cap * 2 : 256;
  ip_memo n = {.cap = cap};
  n.keys = malloc(cap * sizeof *n.keys);
  n.vals = malloc(cap * sizeof *n.vals);
  n.used = calloc(cap, 1);
  if (!n.keys || !n.vals || !n.used) {
    free(n.keys);
    free(n.vals);
    free(n.used);
    return TSK_ENOMEM;
  }
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->used[i]) continue;
    size_t j = hash_ip(m->keys[i]) & (cap - 1);
    while (n.used[j]) j = (j + 1) & (cap - 1);
    n.used[j] = 1;
    n.keys[j] = m->keys[i];
    n.vals[j] = m->vals[i];
    n.n++;
  }
  memo_free(m);
  *m = n;
  return 0;
}

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

static int glob_path(const char *pat, const char *path) {
  if (!path) return 0;
  if (tsk__glob_match(pat, path)) return 1;
  const char *b = base_name(path);
  return b != path && tsk__glob_match(pat, b);
}

/* The first leak: entry that matches the frame ip, or -1 (no cache). */
static long frame_match(const tsk__suppressions *s, uintptr_t ip) {
  tsk__frame_info fi;
  tsk__bt_symbolize(ip, &fi);
  const char *fn = fi.function && strcmp(fi.function, "??") != 0 ? fi.function : NULL;
  for (size_t i = 0; i < s->n; i++) {
    const entry *e = &s->e[i];
    if (e->pub.type != TSK__SUPP_LEAK) continue;
    if ((fn && tsk__glob_match(e->pattern, fn)) ||
        (fi.symbol && tsk__glob_match(e->pattern, fi.symbol)) || glob_path(e->pattern, fi.file) ||
        glob_path(e->pattern, fi.module))
      return (long)i;
  }
  return -1;
}

static long frame_match_cached(tsk__suppressions *s, uintptr_t ip) {
  ip_memo *m = &s->memo;
  if (m->cap) {
    size_t j = hash_ip(ip) & (m->cap - 1);
    while (m->used[j]) {
      if (m->keys[j] == ip) return m->vals[j];
      j = (j + 1) & (m->cap - 1);
    }
  }
  long v = frame_match(s, ip);
  if ((m->n + 1) * 2 > m->cap && memo_grow(m) != 0) return v; /* no room: just don't cache */
  size_t j = hash_ip(ip) & (m->cap - 1);
  while (m->used[j]) j = (j + 1) & (m->cap - 1);
  m->used[j] = 1;
  m->keys[j] = ip;
  m->vals[j] = v;
  m->n++;
  return v;
}

static long bt_match(tsk__suppressions *s, const tsk__bt *bt, long best) {
  for (int i = 0; i < bt->n; i++) {
    long v = frame_match_cached(s, bt->ips[i]);
    if (v >= 0 && (best < 0 || v < best)) best = v;
    if (best == 0) break;
  }
  return best;
}

long tsk__suppressions_match(tsk__suppressions *s, const tsk__leak *l) {
  if (!s || !l || s->n == 0) return -1;
  long best = -1;
  /* The first task:/kind: entry in file order. */
  for (size_t i = 0; i < s->n; i++) {
    const entry *e = &s->e[i];
    if ((e->pub.type == TSK__SUPP_TASK && tsk__glob_match(e->pattern, l->task.name)) ||
        (e->pub.type == TSK__SUPP_KIND &&
         tsk__glob_match(e->pattern, tsk__leak_kind_name(l->kind)))) {
      best = (long)i;
      break;
    }
  }
  /* A leak: entry can only win if it comes earlier. */
  if (s->has_leak && best != 0) {
    long lb = -1;
    const tsk__bt *bts[] = {&l->created_at, &l->suspended_at, &l->raised_at, &l->dropped_at};
    for (size_t k = 0; k < sizeof bts / sizeof bts[0] && lb != 0; k++) lb = bt_match(s, bts[k], lb);
    if (lb >= 0 && (best < 0 || lb < best)) best = lb;
  }
  if (best >= 0) s->e[best].pub.hits++;
  return best;
}
