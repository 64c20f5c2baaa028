/*
 * replay.c — playing back a recording.
 */
#include "replay.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, n, fmt, ap);
  va_end(ap);
  return -1;
}

static int read_file(const char *path, char **out, size_t *size, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) return fail(err, errlen, "cannot open %s: %s", path, strerror(errno));
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (!buf) {
      fclose(f);
      return fail(err, errlen, "out of memory reading %s", path);
    }
    size_t got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
    if (got == 0) break;
    if (cap - n - 1 == 0) {
      cap *= 2;
      char *nb = realloc(buf, cap);
      if (!nb) free(buf);
      buf = nb;
    }
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return fail(err, errlen, "cannot read %s", path);
  }
  buf[n] = '\0';
  *out = buf;
  *size = n;
  return 0;
}

/* The header line: format, version and protocol checked. */
static int check_header(rp_replay *r, const char *path, const char *line, size_t len, char *err,
                        size_t errlen) {
  json_error_t je;
  json_t *h = json_loadb(line, len, 0, &je);
  const char *fmt = json_string_value(json_object_get(h, "format"));
  if (!h || !fmt) {
    json_decref(h);
    return fail(err, errlen,
                "%s is not a taskscope recording (its first line is not a \"%s\" header)", path,
                RP_FORMAT);
  }
  if (strcmp(fmt, RP_FORMAT) != 0) {
    int rc = fail(err, errlen, "%s is a \"%.60s\" file, not a \"%s\" (made by taskscope record)",
                  path, fmt, RP_FORMAT);
    json_decref(h);
    return rc;
  }
  json_t *v = json_object_get(h, "version"), *p = json_object_get(h, "protocol");
  if (!json_is_integer(v) || json_integer_value(v) != RP_VERSION) {
    char got[32] = "unknown";
    if (json_is_integer(v)) snprintf(got, sizeof got, "%lld", (long long)json_integer_value(v));
    json_decref(h);
    return fail(err, errlen,
                "%s is a taskscope recording of version %s; this taskscope-top reads version %d "
                "only (use the taskscope-top of the version that recorded it)",
                path, got, RP_VERSION);
  }
  if (!json_is_integer(p) || json_integer_value(p) != 1) {
    char got[32] = "unknown";
    if (json_is_integer(p)) snprintf(got, sizeof got, "%lld", (long long)json_integer_value(p));
    json_decref(h);
    return fail(err, errlen,
                "%s was recorded with inspector protocol %s; this taskscope-top speaks protocol "
                "1 only",
                path, got);
  }
  json_t *pid = json_object_get(h, "pid");
  r->pid = json_is_integer(pid) ? (int64_t)json_integer_value(pid) : 0;
  const char *prog = json_string_value(json_object_get(h, "program"));
  snprintf(r->program, sizeof r->program, "%s", prog ? prog : "?");
  for (char *q = r->program; *q; q++)
    if ((unsigned char)*q < 0x20 || *q == 0x7f) *q = '?';
  const char *st = json_string_value(json_object_get(h, "started"));
  snprintf(r->started, sizeof r->started, "%s", st ? st : "");
  json_decref(h);
  return 0;
}

/* The receive time of a line, read from its {"t_ms":X, prefix (as written by the recorder),
 * or by parsing the line when it is written otherwise. */
static int line_time(const char *line, size_t len, double *t, int *is_snapshot) {
  static const char pfx[] = "{\"t_ms\":";
  *is_snapshot = 0;
  if (len > sizeof pfx && memcmp(line, pfx, sizeof pfx - 1) == 0) {
    char *end;
    *t = strtod(line + sizeof pfx - 1, &end);
    if (end != line + sizeof pfx - 1 && isfinite(*t)) {
      const char *m = memmem(end, len - (size_t)(end - line) < 80 ? len - (size_t)(end - line) : 80,
                             "\"type\":\"snapshot\"", 17);
      *is_snapshot = m != NULL;
      return 0;
    }
  }
  json_t *j = json_loadb(line, len, 0, NULL);
  json_t *tj = json_object_get(j, "t_ms");
  int ok = json_is_number(tj) && json_is_object(json_object_get(j, "msg"));
  if (ok) {
    *t = json_number_value(tj);
    const char *type = json_string_value(json_object_get(json_object_get(j, "msg"), "type"));
    *is_snapshot = type && strcmp(type, "snapshot") == 0;
  }
  json_decref(j);
  return ok ? 0 : -1;
}

int rp_open(rp_replay *r, const char *path, char *err, size_t errlen) {
  memset(r, 0, sizeof *r);
  r->speed = 1.0;
  if (read_file(path, &r->text, &r->size, err, errlen) != 0) return -1;
  char *p = r->text, *end = r->text + r->size;
  char *nl = memchr(p, '\n', r->size);
  size_t hl = nl ? (size_t)(nl - p) : r->size;
  if (check_header(r, path, p, hl, err, errlen) != 0) {
    rp_close(r);
    return -1;
  }
  p = nl ? nl + 1 : end;
  size_t cap = 0, lineno = 1;
  while (p < end) {
    lineno++;
    nl = memchr(p, '\n', (size_t)(end - p));
    size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
    if (len > 0) {
      double t;
      int snap;
      if (line_time(p, len, &t, &snap) != 0) {
        int rc = fail(err, errlen, "%s:%zu: not a recording line ({\"t_ms\":T,\"msg\":{...}})",
                      path, lineno);
        rp_close(r);
        return rc;
      }
      if (r->n == cap) {
        cap = cap ? cap * 2 : 256;
        rp_entry *ne = realloc(r->entries, cap * sizeof *ne);
        if (!ne) {
          rp_close(r);
          return fail(err, errlen, "out of memory reading %s", path);
        }
        r->entries = ne;
      }
      if (r->n > 0 && t < r->entries[r->n - 1].t_ms) t = r->entries[r->n - 1].t_ms;
      r->entries[r->n++] =
          (rp_entry){.t_ms = t, .off = (size_t)(p - r->text), .len = len, .is_snapshot = snap};
    }
    p = nl ? nl + 1 : end;
  }
  if (r->n == 0) {
    rp_close(r);
    return fail(err, errlen, "%s holds no messages (the recording is empty)", path);
  }
  r->duration_ms = r->entries[r->n - 1].t_ms;
  r->pos_ms = 0;
  return 0;
}

void rp_close(rp_replay *r) {
  free(r->text);
  free(r->entries);
  memset(r, 0, sizeof *r);
}

static void apply_entry(rp_replay *r, tm_model *m, size_t i) {
  rp_entry *e = &r->entries[i];
  json_t *j = json_loadb(r->text + e->off, e->len, 0, NULL);
  json_t *msg = json_object_get(j, "msg");
  if (json_is_object(msg)) tm_apply(m, msg, NULL, 0);
  json_decref(j);
}

/* Applies entries with t_ms <= t. */
static int apply_until(rp_replay *r, tm_model *m, double t) {
  int any = 0;
  while (r->cursor < r->n && r->entries[r->cursor].t_ms <= t) {
    apply_entry(r, m, r->cursor++);
    any = 1;
  }
  return any;
}

int rp_advance(rp_replay *r, tm_model *m, double now) {
  double before = r->pos_ms;
  if (!r->paused) {
    r->pos_ms += (now - r->wall_ms) * r->speed;
    if (r->pos_ms >= r->duration_ms) {
      r->pos_ms = r->duration_ms;
      r->paused = 1;
    }
  }
  r->wall_ms = now;
  int any = apply_until(r, m, r->pos_ms);
  return any || (int)(before / 1000) != (int)(r->pos_ms / 1000);
}

void rp_seek(rp_replay *r, tm_model *m, double t) {
  if (t < 0) t = 0;
  if (t > r->duration_ms) t = r->duration_ms;
  if (t < r->pos_ms || r->cursor == 0) {
    /* From the last snapshot at or before t (it replaces the whole view). */
    size_t start = 0;
    for (size_t i = 0; i < r->n && r->entries[i].t_ms <= t; i++)
      if (r->entries[i].is_snapshot) start = i;
    tm_clear(m);
    r->cursor = start;
  }
  r->pos_ms = t;
  apply_until(r, m, t);
  if (r->cursor == 0 && r->n > 0) apply_entry(r, m, r->cursor++); /* show the first snapshot */
}

int rp_step(rp_replay *r, tm_model *m) {
  r->paused = 1;
  if (r->cursor >= r->n) return -1;
  r->pos_ms = r->entries[r->cursor].t_ms;
  apply_entry(r, m, r->cursor++);
  return 0;
}

double rp_next_due(const rp_replay *r) {
  if (r->paused || r->cursor >= r->n) return -1;
  double d = (r->entries[r->cursor].t_ms - r->pos_ms) / r->speed;
  return d < 0 ? 0 : d;
}

void rp_set_paused(rp_replay *r, int paused, double now) {
  if (!paused && r->pos_ms >= r->duration_ms) return;
  r->paused = paused;
  r->wall_ms = now;
}

void rp_faster(rp_replay *r) {
  if (r->speed < 64) r->speed *= 2;
}

void rp_slower(rp_replay *r) {
  if (r->speed > 0.125) r->speed /= 2;
}
