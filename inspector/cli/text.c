/*
 * text.c — human output: colours, safe text, display width, durations, aligned tables.
 */
#include "text.h"

#include <locale.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

void ts_term_init(ts_term *t, ts_color_mode mode) {
  setlocale(LC_ALL, "");
  t->utf8 = tsc_utf8_locale();
  if (mode == TS_COLOR_ALWAYS) {
    t->color = 1;
  } else if (mode == TS_COLOR_NEVER) {
    t->color = 0;
  } else {
    const char *no = getenv("NO_COLOR");
    const char *term = getenv("TERM");
    t->color = isatty(STDOUT_FILENO) && !(no && *no) && !(term && strcmp(term, "dumb") == 0);
  }
}

const char *ts_sgr(const ts_term *t, const char *code) {
  return t->color && code ? code : "";
}

const char *ts_state_sgr(const char *state) {
  static const struct {
    const char *state, *sgr;
  } map[] = {
      {"running", TS_SGR_BOLD_GREEN}, {"ready", TS_SGR_GREEN},     {"waiting", TS_SGR_YELLOW},
      {"done", TS_SGR_DIM},           {"failed", TS_SGR_BOLD_RED}, {"cancelled", TS_SGR_MAGENTA},
      {"destroyed", TS_SGR_RED},
  };
  if (!state) return NULL;
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (strcmp(map[i].state, state) == 0) return map[i].sgr;
  return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* allocation                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static void out_of_memory(void) {
  fputs("taskscope: out of memory\n", stderr);
  exit(TS_EXIT_ATTACH);
}

void *ts_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) out_of_memory();
  return p;
}

void *ts_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) out_of_memory();
  return q;
}

char *ts_xstrdup(const char *s) {
  char *p = strdup(s ? s : "");
  if (!p) out_of_memory();
  return p;
}

char *ts_xasprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  int n = vasprintf(&s, fmt, ap);
  va_end(ap);
  if (n < 0) out_of_memory();
  return s;
}

/* ------------------------------------------------------------------------------------------ */
/* safe text                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* The length of the valid UTF-8 sequence at p (2..4) and its code point, or 0 when it is not
 * one (overlong forms, surrogates, past U+10FFFF). Never reads past a NUL. */
static int utf8_seq(const unsigned char *p, unsigned *cp) {
  unsigned char c = p[0];
  if (c >= 0xC2 && c <= 0xDF) {
    if ((p[1] & 0xC0) != 0x80) return 0;
    *cp = ((c & 0x1Fu) << 6) | (p[1] & 0x3Fu);
    return 2;
  }
  if (c >= 0xE0 && c <= 0xEF) {
    if ((p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && p[1] < 0xA0) return 0;
    if (c == 0xED && p[1] >= 0xA0) return 0;
    *cp = ((c & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if ((p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
    if (c == 0xF0 && p[1] < 0x90) return 0;
    if (c == 0xF4 && p[1] >= 0x90) return 0;
    *cp = ((c & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
    return 4;
  }
  return 0;
}

char *ts_clean(const ts_term *t, const char *s) {
  if (!s) s = "";
  size_t len = strlen(s);
  char *out = ts_xmalloc(len * 4 + 1); /* the worst case: every byte as \xNN */
  char *o = out;
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    unsigned char c = *p;
    if (c >= 0x20 && c < 0x7f) {
      *o++ = (char)c;
      p++;
    } else if (c == '\n' || c == '\t' || c == '\r') {
      *o++ = '\\';
      *o++ = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
      p++;
    } else if (c < 0x80) {
      o += sprintf(o, "\\x%02x", c);
      p++;
    } else {
      unsigned cp = 0;
      int n = t->utf8 ? utf8_seq(p, &cp) : 0;
      if (n == 0 || (cp >= 0x80 && cp < 0xA0)) { /* invalid, or a C1 control character */
        o += sprintf(o, "\\x%02x", c);
        p++;
      } else {
        memcpy(o, p, (size_t)n);
        o += n;
        p += n;
      }
    }
  }
  *o = '\0';
  return out;
}

void ts_put_clean(FILE *out, const ts_term *t, const char *s) {
  char *c = ts_clean(t, s);
  fputs(c, out);
  free(c);
}

size_t ts_width(const ts_term *t, const char *clean) {
  if (!t->utf8) return strlen(clean);
  size_t w = 0;
  const unsigned char *p = (const unsigned char *)clean;
  while (*p) {
    unsigned cp;
    int n = *p < 0x80 ? 0 : utf8_seq(p, &cp);
    if (n == 0) {
      w++;
      p++;
      continue;
    }
    int cw = wcwidth((wchar_t)cp);
    w += cw < 0 ? 1 : (size_t)cw;
    p += n;
  }
  return w;
}

/* ------------------------------------------------------------------------------------------ */
/* tables                                                                                      */
/* ------------------------------------------------------------------------------------------ */

typedef struct cell {
  char *text; /* cleaned; owned */
  const char *sgr;
  size_t width;
} cell;

struct ts_table {
  const ts_term *term;
  size_t ncols;
  char *align;   /* owned; ncols characters */
  size_t *width; /* per column */
  cell *cells;   /* row-major, the header row first */
  size_t ncells, cap;
};

static void table_push(ts_table *tb, const char *sgr, char *clean) {
  if (tb->ncells == tb->cap) {
    tb->cap = tb->cap ? tb->cap * 2 : 64;
    tb->cells = ts_xrealloc(tb->cells, tb->cap * sizeof *tb->cells);
  }
  size_t w = ts_width(tb->term, clean);
  size_t col = tb->ncells % tb->ncols;
  if (w > tb->width[col]) tb->width[col] = w;
  tb->cells[tb->ncells++] = (cell){clean, sgr, w};
}

ts_table *ts_table_new(const ts_term *t, const char *const *headers, const char *align) {
  ts_table *tb = ts_xmalloc(sizeof *tb);
  size_t n = 0;
  while (headers[n]) n++;
  *tb = (ts_table){.term = t, .ncols = n};
  tb->align = ts_xmalloc(n + 1);
  for (size_t i = 0; i < n; i++) tb->align[i] = align && i < strlen(align) ? align[i] : 'l';
  tb->align[n] = '\0';
  tb->width = ts_xmalloc(n * sizeof *tb->width);
  memset(tb->width, 0, n * sizeof *tb->width);
  for (size_t i = 0; i < n; i++) table_push(tb, TS_SGR_BOLD, ts_xstrdup(headers[i]));
  return tb;
}

void ts_table_cell(ts_table *tb, const char *sgr, const char *text) {
  table_push(tb, sgr, ts_clean(tb->term, text));
}

void ts_table_cellf(ts_table *tb, const char *sgr, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  int n = vasprintf(&s, fmt, ap);
  va_end(ap);
  if (n < 0) out_of_memory();
  ts_table_cell(tb, sgr, s);
  free(s);
}

void ts_table_end_row(ts_table *tb) {
  while (tb->ncells % tb->ncols) table_push(tb, NULL, ts_xstrdup(""));
}

static void pad(FILE *out, size_t n) {
  for (size_t i = 0; i < n; i++) fputc(' ', out);
}

void ts_table_print(ts_table *tb, FILE *out) {
  ts_table_end_row(tb);
  for (size_t i = 0; i < tb->ncells; i++) {
    size_t col = i % tb->ncols;
    const cell *c = &tb->cells[i];
    int last = col == tb->ncols - 1;
    size_t fill = tb->width[col] - c->width;
    if (tb->align[col] == 'r') pad(out, fill);
    const char *on = ts_sgr(tb->term, c->sgr);
    fputs(on, out);
    fputs(c->text, out);
    if (*on) fputs(TS_SGR_RESET, out);
    if (last) {
      fputc('\n', out);
    } else {
      if (tb->align[col] != 'r') pad(out, fill);
      fputs("  ", out);
    }
  }
}

void ts_table_free(ts_table *tb) {
  if (!tb) return;
  for (size_t i = 0; i < tb->ncells; i++) free(tb->cells[i].text);
  free(tb->cells);
  free(tb->width);
  free(tb->align);
  free(tb);
}
