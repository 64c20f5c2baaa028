/*
 * check.c — `taskscope check [OPTIONS] -- CMD [ARGS...]`: run CMD under the leak gate.
 *
 * 1. A private directory (mkdtemp, mode 0700) receives one JSON report per instrumented
 *    process: TASKSCOPE_OPTIONS keeps the user's value and gets ":report=DIR/report-%p.json"
 *    and ":exitcode=0" appended (the parser takes the later value of a repeated key), so the
 *    gate, not each process, decides; "report_text=off" too with --quiet-processes.
 * 2. CMD runs in its own process group (signals SIGINT, SIGTERM, SIGHUP, SIGQUIT received by the
 *    gate are forwarded to that group; on a terminal the group is made the foreground one so
 *    Ctrl-C and terminal input reach CMD directly). The gate is a child subreaper
 *    (PR_SET_CHILD_SUBREAPER): descendants orphaned by CMD are reaped here, and after CMD exits
 *    the gate waits up to GRACE_MS for them, so their reports are in the directory.
 * 3. The reports are read (jansson), merged, deduplicated (a fork()ed child that exits through
 *    exit() reports its parent's records again: identical records of the same program with the
 *    same addresses are counted once), filtered through --suppressions (the runtime's own parser
 *    and glob, applied to the frames' function, file and module names of the JSON report), and
 *    grouped: same kind, task name and creation stack (function, file, line) across processes.
 * 4. Output: the human report on stderr (the runtime's format, frames' paths without the strip
 *    prefix), the optional JSON / JUnit / SARIF files and GitHub annotations (stdout), then the
 *    exit status: CMD's signal (128+N) or failing status first, then 1 for leaks of counted
 *    kinds, then 3 when a report was unreadable or when no instrumented process reported at all
 *    (unless --allow-uninstrumented), else 0.
 */
#include "check.h"

#include "cli.h"
#include "fmt.h"  /* tsc_leak_headline */
#include "text.h" /* ts_xrealloc, ts_xstrdup, ts_xasprintf */

/* The runtime's suppression parser and glob (libtaskscope's internal header). */
#include "leak.h"
#include "options.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define GRACE_MS 2000        /* how long orphaned descendants get after CMD exits */
#define IDS_SHOWN 8          /* task ids listed per process in a group's header */
#define PROCS_SHOWN 8        /* processes listed in a group's header */
#define ENV_NAME "TASKSCOPE_OPTIONS"

const char *const ck_stack_key[CK_NSTACKS] = {"created_at", "suspended_at", "raised_at",
                                              "dropped_at"};
const char *const ck_stack_title[CK_NSTACKS] = {"created at", "suspended at", "raised at",
                                                "last completer dropped at"};

static const char *const kind_names[CK_KINDS] = {"pending", "destroyed_pending",
                                                 "unretrieved_error"};

const char *ck_kind_name(int kind) {
  return kind >= 0 && kind < CK_KINDS ? kind_names[kind] : NULL;
}

/* The kind named by the first len bytes of s, or -1. */
static int kind_from_name(const char *s, size_t len) {
  for (int k = 0; k < CK_KINDS && s; k++)
    if (strlen(kind_names[k]) == len && strncmp(s, kind_names[k], len) == 0) return k;
  return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* small helpers                                                                               */
/* ------------------------------------------------------------------------------------------ */

static void oom(void) {
  fputs("taskscope check: out of memory\n", stderr);
  exit(TS_EXIT_ATTACH);
}

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) oom();
  return p;
}

/* For an array of n elements about to get one more: capacities 16, 32, 64... (n is the count;
 * the capacity is implied by it). */
static void *grow(void *p, size_t n, size_t elem) {
  if (n == 0) return ts_xrealloc(p, 16 * elem);
  if (n >= 16 && (n & (n - 1)) == 0) return ts_xrealloc(p, 2 * n * elem);
  return p;
}

/* "taskscope check: <message>" on stderr. */
static void vmsg(const char *fmt, va_list ap) {
  fflush(stdout);
  fputs("taskscope check: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
}

static void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void msg(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vmsg(fmt, ap);
  va_end(ap);
}

static const char *jstr(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

static uint64_t juint(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

static uint64_t monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const struct {
  int sig;
  const char *name;
} signal_names[] = {
    {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},
    {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},
    {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},
    {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"}, {SIGCHLD, "SIGCHLD"},
    {SIGCONT, "SIGCONT"}, {SIGSTOP, "SIGSTOP"}, {SIGTSTP, "SIGTSTP"}, {SIGTTIN, "SIGTTIN"},
    {SIGTTOU, "SIGTTOU"}, {SIGURG, "SIGURG"},   {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"},
    {SIGVTALRM, "SIGVTALRM"}, {SIGPROF, "SIGPROF"}, {SIGSYS, "SIGSYS"},
};

const char *ck_signal_name(int sig) {
  for (size_t i = 0; i < sizeof signal_names / sizeof signal_names[0]; i++)
    if (signal_names[i].sig == sig) return signal_names[i].name;
  return NULL;
}

const char *ck_signal_desc(int sig) {
  const char *d = strsignal(sig);
  return d ? d : "unknown signal";
}

static int needs_quotes(const char *s) {
  if (!*s) return 1;
  for (const char *p = s; *p; p++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=/.,:@%^",
                *p))
      return 1;
  return 0;
}

char *ck_command_string(const ck_run *r) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) oom();
  for (int i = 0; i < r->cmd_argc; i++) {
    const char *a = r->cmd[i];
    if (i) fputc(' ', f);
    if (!needs_quotes(a)) {
      tsk__report_put_text(f, a, 0);
      continue;
    }
    fputc('\'', f);
    for (const char *p = a; *p; p++) {
      if (*p == '\'')
        fputs("'\\''", f);
      else if ((unsigned char)*p < 0x20 || *p == 0x7f)
        fprintf(f, "\\x%02x", (unsigned char)*p);
      else
        fputc(*p, f);
    }
    fputc('\'', f);
  }
  if (fclose(f) != 0 || !buf) oom();
  return buf;
}

/* ------------------------------------------------------------------------------------------ */
/* paths                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static const char *strip_one(const char *prefix, size_t len, const char *file) {
  if (!prefix || !len || !file) return NULL;
  if (len == 1 && prefix[0] == '/') return file[0] == '/' && file[1] ? file + 1 : NULL;
  if (strncmp(file, prefix, len) == 0 && file[len] == '/' && file[len + 1]) return file + len + 1;
  return NULL;
}

const char *ck_path(const ck_run *r, const char *file) {
  if (!file) return NULL;
  for (int i = 0; i < 2; i++) {
    const char *s = strip_one(r->strip[i], r->strip_len[i], file);
    if (s) return s;
  }
  return file;
}

int ck_is_user_file(const ck_run *r, const char *file) {
  if (!file) return 0;
  if (file[0] != '/') return 1; /* compiled with relative paths: the project's own */
  for (int i = 0; i < 2; i++)
    if (strip_one(r->strip[i], r->strip_len[i], file)) return 1;
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* reading the reports                                                                         */
/* ------------------------------------------------------------------------------------------ */

static void read_stack(json_t *rec, const char *key, ck_stack *st) {
  json_t *arr = json_object_get(rec, key);
  st->f = NULL;
  st->n = 0;
  if (!json_is_array(arr) || json_array_size(arr) == 0) return;
  st->f = xcalloc(json_array_size(arr), sizeof *st->f);
  size_t i;
  json_t *fr;
  json_array_foreach(arr, i, fr) {
    if (!json_is_object(fr)) continue;
    ck_frame *f = &st->f[st->n++];
    f->ip = jstr(fr, "ip");
    f->function = jstr(fr, "function");
    f->file = jstr(fr, "file");
    f->module = jstr(fr, "module");
    json_t *line = json_object_get(fr, "line");
    f->line = json_is_integer(line) && json_integer_value(line) > 0 &&
                      json_integer_value(line) < INT_MAX
                  ? (int)json_integer_value(line)
                  : 0;
  }
}

static void add_leak(ck_run *r, size_t proc, json_t *rec) {
  const char *kind = jstr(rec, "kind");
  int k = kind_from_name(kind, kind ? strlen(kind) : 0);
  if (k < 0) {
    msg("%s: skipping a record of unknown kind '%s'", r->procs[proc].path, kind ? kind : "?");
    return;
  }
  r->leaks = grow(r->leaks, r->nleaks, sizeof *r->leaks);
  ck_leak *l = &r->leaks[r->nleaks++];
  memset(l, 0, sizeof *l);
  l->json = rec;
  l->proc = proc;
  l->kind = k;
  l->suppressed = json_is_true(json_object_get(rec, "suppressed")) ? 1 : 0;
  l->reason = jstr(rec, "reason");
  l->age_ms = juint(rec, "age_ms");
  json_t *task = json_object_get(rec, "task");
  l->task_id = juint(task, "id");
  l->task_name = jstr(task, "name");
  if (!l->task_name) l->task_name = "";
  l->parent_id = juint(task, "parent");
  l->state = jstr(task, "state");
  json_t *aw = json_object_get(task, "awaiting");
  if (json_is_object(aw)) {
    l->await_kind = jstr(aw, "kind");
    l->await_id = juint(aw, "id");
  }
  json_t *chain = json_object_get(rec, "chain");
  l->chain = json_is_array(chain) ? chain : NULL;
  json_t *err = json_object_get(rec, "error");
  if (json_is_object(err)) {
    l->has_error = 1;
    json_t *code = json_object_get(err, "code");
    l->err_code = json_is_integer(code) ? (long long)json_integer_value(code) : 0;
    l->err_name = jstr(err, "name");
    l->err_message = jstr(err, "message");
    l->err_description = jstr(err, "description");
  }
  for (int s = 0; s < CK_NSTACKS; s++) read_stack(rec, ck_stack_key[s], &l->st[s]);
  r->procs[proc].nleaks++;
}

/* Reads one report; returns 0, or -1 (counted as unreadable, message printed). */
static int read_report(ck_run *r, const char *path, int pid) {
  json_error_t jerr;
  /* Read whole, then parsed from memory (json_load_file reads byte by byte). */
  FILE *f = fopen(path, "rbe");
  if (!f) {
    msg("cannot read the report %s: %s", path, strerror(errno));
    return -1;
  }
  char *buf = NULL;
  size_t len = 0, cap = 0, got;
  do {
    if (cap - len < 65536) buf = ts_xrealloc(buf, cap = cap ? cap * 2 : 262144);
    got = fread(buf + len, 1, cap - len, f);
    len += got;
  } while (got > 0);
  int read_error = ferror(f);
  fclose(f);
  json_t *doc = read_error ? NULL : json_loadb(buf, len, 0, &jerr);
  free(buf);
  if (read_error) {
    msg("cannot read the report %s: read error", path);
    return -1;
  }
  if (!doc) {
    msg("cannot read the report %s: %s (line %d)", path, jerr.text, jerr.line);
    return -1;
  }
  const char *format = jstr(doc, "format");
  json_t *version = json_object_get(doc, "version");
  if (!format || strcmp(format, "taskscope-report") != 0 || !json_is_integer(version)) {
    msg("%s is not a taskscope report", path);
    json_decref(doc);
    return -1;
  }
  if (json_integer_value(version) != 1) {
    msg("%s: report version %lld is not supported (this taskscope reads version 1)", path,
        (long long)json_integer_value(version));
    json_decref(doc);
    return -1;
  }
  r->procs = grow(r->procs, r->nprocs, sizeof *r->procs);
  size_t pi = r->nprocs++;
  ck_proc *p = &r->procs[pi];
  memset(p, 0, sizeof *p);
  json_t *jpid = json_object_get(doc, "pid");
  p->pid = json_is_integer(jpid) ? (int)json_integer_value(jpid) : pid;
  p->program = jstr(doc, "program");
  if (!p->program) p->program = "?";
  p->when = jstr(doc, "when");
  p->path = ts_xstrdup(path);
  p->doc = doc;
  json_t *leaks = json_object_get(doc, "leaks");
  size_t i;
  json_t *rec;
  json_array_foreach(leaks, i, rec) {
    if (json_is_object(rec)) add_leak(r, pi, rec);
  }
  return 0;
}

static int pid_of_report(const char *name) {
  /* report-<digits>.json */
  if (strncmp(name, "report-", 7) != 0) return -1;
  const char *p = name + 7;
  long v = 0;
  if (*p < '0' || *p > '9') return -1;
  while (*p >= '0' && *p <= '9') {
    v = v * 10 + (*p - '0');
    if (v > INT_MAX) return -1;
    p++;
  }
  return strcmp(p, ".json") == 0 ? (int)v : -1;
}

typedef struct named {
  int pid;
  char *name;
} named;

static int cmp_named(const void *a, const void *b) {
  const named *x = a, *y = b;
  return (x->pid > y->pid) - (x->pid < y->pid);
}

static void read_reports(ck_run *r, const char *dir) {
  DIR *d = opendir(dir);
  if (!d) {
    msg("cannot read %s: %s", dir, strerror(errno));
    r->unreadable++;
    return;
  }
  named *v = NULL;
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    int pid = pid_of_report(e->d_name);
    if (pid < 0) continue;
    v = grow(v, n, sizeof *v);
    v[n].pid = pid;
    v[n].name = ts_xstrdup(e->d_name);
    n++;
  }
  closedir(d);
  if (n) qsort(v, n, sizeof *v, cmp_named);
  for (size_t i = 0; i < n; i++) {
    char *path = ts_xasprintf("%s/%s", dir, v[i].name);
    if (read_report(r, path, v[i].pid) != 0) r->unreadable++;
    free(path);
    free(v[i].name);
  }
  free(v);
}

/* ------------------------------------------------------------------------------------------ */
/* merging: duplicates, suppressions, kinds, groups                                            */
/* ------------------------------------------------------------------------------------------ */

static uint64_t fnv_str(uint64_t h, const char *s) {
  if (!s) s = "\x01";
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    h ^= *p;
    h *= 1099511628211ULL;
  }
  h ^= 0xff; /* terminator, so "ab"+"c" != "a"+"bc" */
  h *= 1099511628211ULL;
  return h;
}

static uint64_t fnv_u64(uint64_t h, uint64_t v) {
  for (int b = 0; b < 8; b++) {
    h ^= (v >> (8 * b)) & 0xff;
    h *= 1099511628211ULL;
  }
  return h;
}

#define FNV_INIT 1469598103934665603ULL

static int str_eq(const char *a, const char *b) {
  if (!a || !b) return a == b;
  return strcmp(a, b) == 0;
}

/* The identity of a record for fork-copy detection: program, kind, task id and name, reason,
 * age and every frame address. */
static uint64_t dup_hash(const ck_run *r, const ck_leak *l) {
  uint64_t h = fnv_str(FNV_INIT, r->procs[l->proc].program);
  h = fnv_u64(h, (uint64_t)l->kind);
  h = fnv_u64(h, l->task_id);
  h = fnv_u64(h, l->age_ms);
  h = fnv_str(h, l->task_name);
  h = fnv_str(h, l->reason);
  for (int s = 0; s < CK_NSTACKS; s++) {
    h = fnv_u64(h, l->st[s].n);
    for (size_t i = 0; i < l->st[s].n; i++) h = fnv_str(h, l->st[s].f[i].ip);
  }
  return h;
}

static int dup_eq(const ck_run *r, const ck_leak *a, const ck_leak *b) {
  if (a->proc == b->proc) return 0; /* within one process every record is its own */
  if (!str_eq(r->procs[a->proc].program, r->procs[b->proc].program)) return 0;
  if (a->kind != b->kind || a->task_id != b->task_id || a->age_ms != b->age_ms) return 0;
  if (!str_eq(a->task_name, b->task_name) || !str_eq(a->reason, b->reason)) return 0;
  for (int s = 0; s < CK_NSTACKS; s++) {
    if (a->st[s].n != b->st[s].n) return 0;
    for (size_t i = 0; i < a->st[s].n; i++)
      if (!a->st[s].f[i].ip || !str_eq(a->st[s].f[i].ip, b->st[s].f[i].ip)) return 0;
  }
  return 1;
}

/* A small open-addressing map from a 64-bit hash to a list of indices (collisions are resolved
 * by the callers' equality checks). */
typedef struct hmap {
  uint64_t *keys;
  size_t *vals; /* index + 1; 0 empty */
  size_t cap, n;
} hmap;

static void hmap_free(hmap *m) {
  free(m->keys);
  free(m->vals);
  memset(m, 0, sizeof *m);
}

static void hmap_put(hmap *m, uint64_t key, size_t val) {
  if ((m->n + 1) * 2 > m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 256;
    uint64_t *k = xcalloc(cap, sizeof *k);
    size_t *v = xcalloc(cap, sizeof *v);
    for (size_t i = 0; i < m->cap; i++) {
      if (!m->vals[i]) continue;
      size_t j = (size_t)m->keys[i] & (cap - 1);
      while (v[j]) j = (j + 1) & (cap - 1);
      k[j] = m->keys[i];
      v[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = k;
    m->vals = v;
    m->cap = cap;
  }
  size_t j = (size_t)key & (m->cap - 1);
  while (m->vals[j]) j = (j + 1) & (m->cap - 1);
  m->keys[j] = key;
  m->vals[j] = val + 1;
  m->n++;
}

/* Iterates the values stored under key: *slot starts at (size_t)-1. Returns 1 and sets *val. */
static int hmap_next(const hmap *m, uint64_t key, size_t *slot, size_t *val) {
  if (!m->cap) return 0;
  size_t j = *slot == (size_t)-1 ? (size_t)key & (m->cap - 1) : (*slot + 1) & (m->cap - 1);
  while (m->vals[j]) {
    if (m->keys[j] == key) {
      *slot = j;
      *val = m->vals[j] - 1;
      return 1;
    }
    j = (j + 1) & (m->cap - 1);
  }
  return 0;
}

static void mark_duplicates(ck_run *r) {
  hmap m = {0};
  for (size_t i = 0; i < r->nleaks; i++) {
    ck_leak *l = &r->leaks[i];
    uint64_t h = dup_hash(r, l);
    size_t slot = (size_t)-1, j;
    int dup = 0;
    while (!dup && hmap_next(&m, h, &slot, &j)) dup = dup_eq(r, &r->leaks[j], l);
    if (dup) {
      l->duplicate = 1;
      r->duplicates++;
    } else {
      hmap_put(&m, h, i);
    }
  }
  hmap_free(&m);
}

static int glob_path(const char *pat, const char *path) {
  if (!path) return 0;
  if (tsk__glob_match(pat, path)) return 1;
  const char *slash = strrchr(path, '/');
  return slash && slash[1] && tsk__glob_match(pat, slash + 1);
}

/* The first entry (file order) that matches the record, or -1: as the runtime matches, over the
 * frames of the JSON report (function, file or its basename, module or its basename). */
static long supp_match(tsk__suppressions *s, const ck_leak *l) {
  size_t n = tsk__suppressions_count(s);
  for (size_t i = 0; i < n; i++) {
    const tsk__suppression *e = tsk__suppressions_entry(s, i);
    switch (e->type) {
    case TSK__SUPP_TASK:
      if (tsk__glob_match(e->pattern, l->task_name)) return (long)i;
      break;
    case TSK__SUPP_KIND:
      if (tsk__glob_match(e->pattern, ck_kind_name(l->kind))) return (long)i;
      break;
    case TSK__SUPP_LEAK:
      for (int st = 0; st < CK_NSTACKS; st++)
        for (size_t f = 0; f < l->st[st].n; f++) {
          const ck_frame *fr = &l->st[st].f[f];
          if ((fr->function && tsk__glob_match(e->pattern, fr->function)) ||
              glob_path(e->pattern, fr->file) || glob_path(e->pattern, fr->module))
            return (long)i;
        }
      break;
    }
  }
  return -1;
}

static size_t *supp_hits; /* per entry of the --suppressions file */

static void apply_suppressions(ck_run *r) {
  tsk__suppressions *s = r->supp;
  size_t n = tsk__suppressions_count(s);
  supp_hits = xcalloc(n, sizeof *supp_hits);
  for (size_t i = 0; i < r->nleaks; i++) {
    ck_leak *l = &r->leaks[i];
    if (l->duplicate) continue;
    if (!l->suppressed && s) {
      long e = supp_match(s, l);
      if (e >= 0) {
        l->suppressed = 2;
        supp_hits[e]++;
      }
    }
    if (l->suppressed) {
      r->suppressed++;
    } else {
      r->unsuppressed[l->kind]++;
      if (r->kinds_mask & (1u << l->kind)) r->counted++;
    }
  }
}

static uint64_t group_hash(const ck_leak *l) {
  uint64_t h = fnv_u64(FNV_INIT, (uint64_t)l->kind);
  h = fnv_str(h, l->task_name);
  const ck_stack *st = &l->st[CK_CREATED];
  h = fnv_u64(h, st->n);
  for (size_t i = 0; i < st->n; i++) {
    h = fnv_str(h, st->f[i].function ? st->f[i].function : st->f[i].module);
    h = fnv_str(h, st->f[i].file);
    h = fnv_u64(h, (uint64_t)st->f[i].line);
  }
  return h;
}

static int group_eq(const ck_leak *a, const ck_leak *b) {
  if (a->kind != b->kind || !str_eq(a->task_name, b->task_name)) return 0;
  const ck_stack *x = &a->st[CK_CREATED], *y = &b->st[CK_CREATED];
  if (x->n != y->n) return 0;
  for (size_t i = 0; i < x->n; i++) {
    if (!str_eq(x->f[i].function, y->f[i].function) || !str_eq(x->f[i].file, y->f[i].file) ||
        x->f[i].line != y->f[i].line)
      return 0;
    if (!x->f[i].function && !str_eq(x->f[i].module, y->f[i].module)) return 0;
  }
  return 1;
}

/* The fingerprint: kind and the function names of every stack (not addresses, not lines), so
 * it survives rebuilds and unrelated edits. */
static void fingerprint(const ck_leak *l, char out[17]) {
  uint64_t h = fnv_str(FNV_INIT, ck_kind_name(l->kind));
  for (int s = 0; s < CK_NSTACKS; s++) {
    h = fnv_str(h, ck_stack_key[s]);
    for (size_t i = 0; i < l->st[s].n; i++)
      h = fnv_str(h, l->st[s].f[i].function ? l->st[s].f[i].function : "??");
  }
  snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static const ck_frame *user_frame(const ck_run *r, const ck_leak *l) {
  static const int order[CK_NSTACKS] = {CK_CREATED, CK_SUSPENDED, CK_RAISED, CK_DROPPED};
  for (int o = 0; o < CK_NSTACKS; o++) {
    const ck_stack *st = &l->st[order[o]];
    for (size_t i = 0; i < st->n; i++)
      if (st->f[i].file && ck_is_user_file(r, st->f[i].file)) return &st->f[i];
  }
  for (int o = 0; o < CK_NSTACKS; o++) {
    const ck_stack *st = &l->st[order[o]];
    for (size_t i = 0; i < st->n; i++)
      if (st->f[i].file) return &st->f[i];
  }
  return NULL;
}

static void make_groups(ck_run *r) {
  hmap m = {0};
  size_t cap = 0;
  for (size_t i = 0; i < r->nleaks; i++) {
    ck_leak *l = &r->leaks[i];
    if (l->duplicate || l->suppressed) continue;
    uint64_t h = group_hash(l);
    size_t slot = (size_t)-1, gi = 0;
    int found = 0;
    while (!found && hmap_next(&m, h, &slot, &gi)) found = group_eq(&r->leaks[r->groups[gi].rep], l);
    if (!found) {
      if (r->ngroups == cap) {
        cap = cap ? cap * 2 : 16;
        r->groups = ts_xrealloc(r->groups, cap * sizeof *r->groups);
      }
      gi = r->ngroups++;
      ck_group *g = &r->groups[gi];
      memset(g, 0, sizeof *g);
      g->rep = i;
      g->counted = (r->kinds_mask >> l->kind) & 1u;
      fingerprint(l, g->fingerprint);
      g->where = user_frame(r, l);
      hmap_put(&m, h, gi);
    }
    ck_group *g = &r->groups[gi];
    g->members = grow(g->members, g->count, sizeof(size_t));
    /* A new process for this group? Members are appended in process order. */
    if (g->count == 0 || r->leaks[g->members[g->count - 1]].proc != l->proc) g->nprocs++;
    g->members[g->count++] = i;
  }
  hmap_free(&m);
  /* Counted groups first, then notes; otherwise in order of first appearance. */
  size_t k = 0;
  ck_group *sorted = xcalloc(r->ngroups, sizeof *sorted);
  for (int pass = 1; pass >= 0; pass--)
    for (size_t i = 0; i < r->ngroups; i++)
      if (r->groups[i].counted == pass) sorted[k++] = r->groups[i];
  free(r->groups);
  r->groups = sorted;
  /* Titles: "kind: task name", made unique with " (2)", " (3)"... */
  for (size_t i = 0; i < r->ngroups; i++) {
    ck_group *g = &r->groups[i];
    const ck_leak *l = &r->leaks[g->rep];
    if (g->counted) r->counted_groups++;
    char *t = ts_xasprintf("%s: %s", ck_kind_name(l->kind), *l->task_name ? l->task_name : "(unnamed)");
    int n = 1;
    for (size_t j = 0; j < i; j++)
      if (strncmp(r->groups[j].title, t, strlen(t)) == 0 &&
          (r->groups[j].title[strlen(t)] == '\0' || r->groups[j].title[strlen(t)] == ' '))
        n++;
    if (n > 1) {
      char *u = ts_xasprintf("%s (%d)", t, n);
      free(t);
      t = u;
    }
    g->title = t;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* the text report                                                                             */
/* ------------------------------------------------------------------------------------------ */

const char *ck_group_headline(const ck_run *r, const ck_group *g) {
  const ck_leak *l = &r->leaks[g->rep];
  const char *h = tsc_leak_headline(ck_kind_name(l->kind), l->reason);
  if (h) return h;
  const char *when = r->procs[l->proc].when;
  if (when && strcmp(when, "check") == 0) return "Task is still pending at check";
  if (when && strcmp(when, "runtime close") == 0) return "Task is still pending at runtime close";
  return "Task is still pending at process exit";
}

static void put_task(FILE *out, uint64_t id, const char *name) {
  fprintf(out, "%llu", (unsigned long long)id);
  if (name && *name) {
    fputs(" \"", out);
    tsk__report_put_text(out, name, 1);
    fputc('"', out);
  }
}

static void put_group_header(FILE *out, const ck_run *r, const ck_group *g) {
  const ck_leak *l = &r->leaks[g->rep];
  put_task(out, l->task_id, l->task_name);
  if (g->count > 1)
    fprintf(out, " (%zu tasks like this%s%zu process%s)", g->count, " in ", g->nprocs,
            g->nprocs == 1 ? "" : "es");
}

char *ck_group_oneline(const ck_run *r, const ck_group *g) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) oom();
  fputs("task ", f);
  put_group_header(f, r, g);
  if (fclose(f) != 0 || !buf) oom();
  return buf;
}

static void put_frame(FILE *out, const ck_run *r, size_t index, const ck_frame *f) {
  fprintf(out, "    #%zu %s in ", index, f->ip ? f->ip : "0x0");
  tsk__report_put_text(out, f->function ? f->function : "??", 0);
  if (f->file) {
    fputs(" at ", out);
    tsk__report_put_text(out, ck_path(r, f->file), 0);
    if (f->line > 0) fprintf(out, ":%d", f->line);
  } else if (f->module) {
    fputs(" (", out);
    tsk__report_put_text(out, f->module, 0);
    fputc(')', out);
  }
  fputc('\n', out);
}

static void put_group(FILE *out, const ck_run *r, const ck_group *g) {
  const ck_leak *l = &r->leaks[g->rep];
  fprintf(out, "taskscope: %s\n", ck_group_headline(r, g));
  fputs("  task ", out);
  put_group_header(out, r, g);
  fputc('\n', out);

  /* Processes (and task ids in each). */
  fputs(g->nprocs > 1 ? "  processes: " : "  process: ", out);
  size_t shown = 0, i = 0;
  while (i < g->count && shown < PROCS_SHOWN) {
    size_t p = r->leaks[g->members[i]].proc;
    size_t j = i;
    while (j < g->count && r->leaks[g->members[j]].proc == p) j++;
    if (shown) fputs(", ", out);
    fprintf(out, "%d ", r->procs[p].pid);
    tsk__report_put_text(out, r->procs[p].program, 0);
    if (g->count > 1) {
      fprintf(out, " (task%s ", j - i > 1 ? "s" : "");
      for (size_t k = i; k < j && k - i < IDS_SHOWN; k++)
        fprintf(out, "%s%llu", k > i ? ", " : "", (unsigned long long)r->leaks[g->members[k]].task_id);
      fputs(j - i > IDS_SHOWN ? ", ...)" : ")", out);
    }
    shown++;
    i = j;
  }
  if (i < g->count) fputs(", ...", out);
  fputc('\n', out);

  size_t nchain = l->chain ? json_array_size((json_t *)l->chain) : 0;
  if (nchain || l->parent_id) {
    fputs("  spawned by ", out);
    if (nchain) {
      for (size_t c = 0; c < nchain; c++) {
        json_t *t = json_array_get((json_t *)l->chain, c);
        if (c) fputs(" <- ", out);
        put_task(out, juint(t, "id"), jstr(t, "name"));
      }
    } else {
      put_task(out, l->parent_id, NULL);
    }
    fputc('\n', out);
  }
  fputs("  state: ", out);
  tsk__report_put_text(out, l->state ? l->state : "?", 0);
  if (l->await_kind) {
    fputs(", waiting on ", out);
    tsk__report_put_text(out, l->await_kind, 0);
    if (l->await_id) fprintf(out, " %llu", (unsigned long long)l->await_id);
  }
  fprintf(out, " (age %llu ms)\n", (unsigned long long)l->age_ms);
  if (l->reason && *l->reason) {
    fputs("  reason: ", out);
    tsk__report_put_text(out, l->reason, 0);
    fputc('\n', out);
  }
  if (l->has_error) {
    fputs("  error: ", out);
    tsk__report_put_text(out, l->err_name ? l->err_name : "?", 0);
    if (l->err_description) {
      fputs(" (", out);
      tsk__report_put_text(out, l->err_description, 0);
      fputc(')', out);
    }
    if (l->err_message && !str_eq(l->err_message, l->err_description)) {
      fputs(": ", out);
      tsk__report_put_text(out, l->err_message, 0);
    }
    fputc('\n', out);
  }
  for (int s = 0; s < CK_NSTACKS; s++) {
    const ck_stack *st = &l->st[s];
    if (st->n == 0) {
      if (s == CK_CREATED) fputs("  created at: (not recorded)\n", out);
      continue;
    }
    fprintf(out, "  %s:\n", ck_stack_title[s]);
    for (size_t f = 0; f < st->n; f++) put_frame(out, r, f, &st->f[f]);
  }
}

char *ck_group_text(const ck_run *r, const ck_group *g) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) oom();
  put_group(f, r, g);
  if (fclose(f) != 0 || !buf) oom();
  return buf;
}

static void put_kinds(FILE *out, unsigned mask) {
  int first = 1;
  for (int k = 0; k < CK_KINDS; k++)
    if (mask & (1u << k)) {
      fprintf(out, "%s%s", first ? "" : ",", kind_names[k]);
      first = 0;
    }
}

static void print_text(FILE *out, const ck_run *r) {
  fflush(stdout);
  size_t with_leaks = 0;
  for (size_t p = 0; p < r->nprocs; p++) with_leaks += r->procs[p].nleaks > 0;
  fprintf(out, "\ntaskscope check: %zu instrumented process%s reported", r->nprocs,
          r->nprocs == 1 ? "" : "es");
  if (r->nprocs) fprintf(out, " (%zu with leak records)", with_leaks);
  fputc('\n', out);
  if (r->ngroups) fputc('\n', out);
  int notes_started = 0;
  for (size_t i = 0; i < r->ngroups; i++) {
    const ck_group *g = &r->groups[i];
    if (!g->counted && !notes_started) {
      notes_started = 1;
      fputs("Not counted (only --kinds ", out);
      put_kinds(out, r->kinds_mask);
      fputs(" fail the check):\n\n", out);
    }
    put_group(out, r, g);
    fputc('\n', out);
  }
  tsk__suppressions *s = r->supp;
  size_t n = tsk__suppressions_count(s), used = 0;
  for (size_t i = 0; i < n; i++) used += supp_hits[i] > 0;
  if (used) {
    fputs("Suppressions used:\n  count  pattern\n", out);
    for (size_t i = 0; i < n; i++) {
      if (!supp_hits[i]) continue;
      fprintf(out, "  %5zu  ", supp_hits[i]);
      tsk__report_put_text(out, tsk__suppressions_entry(s, i)->text, 0);
      fputc('\n', out);
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (supp_hits[i]) continue;
    const tsk__suppression *e = tsk__suppressions_entry(s, i);
    fputs("warning: suppression '", out);
    tsk__report_put_text(out, e->text, 0);
    fputs("' (", out);
    tsk__report_put_text(out, e->file, 0);
    fprintf(out, ":%d) matched nothing\n", e->line);
  }
  if (n) fputc('\n', out);
  if (r->duplicates)
    fprintf(out,
            "note: %zu record%s inherited through fork() by processes that then exited through "
            "exit() were counted once\n",
            r->duplicates, r->duplicates == 1 ? "" : "s");
  fprintf(out, "taskscope check: %s\n", r->verdict);
  fputs("SUMMARY: taskscope check: ", out);
  for (int k = 0; k < CK_KINDS; k++) {
    fprintf(out, "%s%zu %s", k ? ", " : "", r->unsuppressed[k], kind_names[k]);
    if (!(r->kinds_mask & (1u << k))) fputs(" (not counted)", out);
  }
  fprintf(out, " (%zu suppressed) in %zu process%s: %s\n", r->suppressed, r->nprocs,
          r->nprocs == 1 ? "" : "es", r->exit_code == 0 ? "passed" : "FAILED");
  fflush(out);
}

/* ------------------------------------------------------------------------------------------ */
/* JSON (merged report)                                                                        */
/* ------------------------------------------------------------------------------------------ */

static json_t *exit_json(int exited, int code, int sig) {
  if (exited) return json_pack("{s:i}", "code", code);
  const char *name = ck_signal_name(sig);
  return json_pack("{s:i,s:s?,s:s}", "signal", sig, "signal_name", name, "description",
                   ck_signal_desc(sig));
}

static json_t *frames_json(const ck_run *r, const ck_stack *st) {
  json_t *a = json_array();
  for (size_t i = 0; i < st->n; i++) {
    const ck_frame *f = &st->f[i];
    json_t *o = json_pack("{s:s?,s:s?,s:s?}", "ip", f->ip, "function", f->function, "file",
                          f->file ? ck_path(r, f->file) : NULL);
    if (!f->ip) json_object_set_new(o, "ip", json_null());
    if (!f->function) json_object_set_new(o, "function", json_null());
    if (!f->file) json_object_set_new(o, "file", json_null());
    json_object_set_new(o, "line", f->line > 0 ? json_integer(f->line) : json_null());
    json_object_set_new(o, "module", f->module ? json_string(f->module) : json_null());
    json_array_append_new(a, o);
  }
  return a;
}

static int write_json(const ck_run *r, const char *path) {
  json_t *doc = json_object();
  json_object_set_new(doc, "format", json_string("taskscope-report"));
  json_object_set_new(doc, "version", json_integer(1));
  json_object_set_new(doc, "pid", json_integer(r->cmd_pid));
  const char *prog = r->cmd[0];
  const char *slash = strrchr(prog, '/');
  json_object_set_new(doc, "program", json_string(slash ? slash + 1 : prog));
  json_object_set_new(doc, "when", json_string("check"));
  json_object_set_new(doc, "summary",
                      json_pack("{s:I,s:I,s:I,s:I}", "pending", (json_int_t)r->unsuppressed[0],
                                "destroyed_pending", (json_int_t)r->unsuppressed[1],
                                "unretrieved_error", (json_int_t)r->unsuppressed[2], "suppressed",
                                (json_int_t)r->suppressed));
  json_t *supps = json_array();
  size_t ns = tsk__suppressions_count(r->supp);
  for (size_t i = 0; i < ns; i++) {
    const tsk__suppression *e = tsk__suppressions_entry(r->supp, i);
    json_array_append_new(supps, json_pack("{s:s,s:s,s:i,s:I}", "pattern", e->text, "file",
                                           e->file, "line", e->line, "hits",
                                           (json_int_t)supp_hits[i]));
  }
  json_object_set_new(doc, "suppressions", supps);

  /* Group index of every record, for "group". */
  size_t *group_of = xcalloc(r->nleaks, sizeof *group_of);
  for (size_t g = 0; g < r->ngroups; g++)
    for (size_t m = 0; m < r->groups[g].count; m++) group_of[r->groups[g].members[m]] = g + 1;

  json_t *procs = json_array();
  for (size_t p = 0; p < r->nprocs; p++) {
    const ck_proc *pr = &r->procs[p];
    json_t *o = json_pack("{s:i,s:s,s:s?}", "pid", pr->pid, "program", pr->program, "when",
                          pr->when);
    json_t *sum = json_object_get((json_t *)pr->doc, "summary");
    if (json_is_object(sum)) json_object_set(o, "summary", sum);
    if (pr->exit_known)
      json_object_set_new(o, "exit", exit_json(!pr->exit_signal, pr->exit_code, pr->exit_signal));
    json_array_append_new(procs, o);
  }
  json_object_set_new(doc, "processes", procs);

  json_t *argv = json_array();
  for (int i = 0; i < r->cmd_argc; i++) json_array_append_new(argv, json_string(r->cmd[i]));
  json_t *cmd = json_pack("{s:o,s:i}", "argv", argv, "pid", r->cmd_pid);
  if (r->cmd_spawn_errno)
    json_object_set_new(cmd, "error", json_string(strerror(r->cmd_spawn_errno)));
  else
    json_object_set_new(cmd, "exit", exit_json(r->cmd_exited, r->cmd_code, r->cmd_signal));
  json_object_set_new(doc, "command", cmd);

  json_t *kinds = json_array();
  for (int k = 0; k < CK_KINDS; k++)
    if (r->kinds_mask & (1u << k)) json_array_append_new(kinds, json_string(kind_names[k]));
  json_object_set_new(
      doc, "check",
      json_pack("{s:o,s:I,s:I,s:I,s:I,s:I,s:i,s:s}", "kinds", kinds, "groups",
                (json_int_t)r->ngroups, "counted_groups", (json_int_t)r->counted_groups,
                "counted", (json_int_t)r->counted, "duplicates", (json_int_t)r->duplicates,
                "unreadable_reports", (json_int_t)r->unreadable, "exit_code", r->exit_code,
                "verdict", r->verdict));

  /* The document, then the records streamed one per line (a copy of one record at a time:
   * a run may have hundreds of thousands). */
  FILE *f = fopen(path, "we");
  if (!f) {
    msg("cannot write %s: %s", path, strerror(errno));
    json_decref(doc);
    free(group_of);
    return -1;
  }
  char *head = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII);
  json_decref(doc);
  if (!head) oom();
  size_t hlen = strlen(head);
  fwrite(head, 1, hlen - 1, f); /* without its closing brace */
  free(head);
  fputs(",\n\"leaks\":[", f);
  int first = 1;
  for (size_t i = 0; i < r->nleaks; i++) {
    const ck_leak *l = &r->leaks[i];
    if (l->duplicate) continue;
    json_t *o = json_deep_copy((json_t *)l->json);
    if (!o) oom();
    json_object_set_new(o, "suppressed", json_boolean(l->suppressed));
    json_object_set_new(o, "pid", json_integer(r->procs[l->proc].pid));
    json_object_set_new(o, "program", json_string(r->procs[l->proc].program));
    json_object_set_new(o, "counted",
                        json_boolean(!l->suppressed && ((r->kinds_mask >> l->kind) & 1u)));
    if (group_of[i]) {
      const ck_group *g = &r->groups[group_of[i] - 1];
      json_object_set_new(o, "group", json_integer((json_int_t)(group_of[i] - 1)));
      json_object_set_new(o, "fingerprint", json_string(g->fingerprint));
    }
    for (int s = 0; s < CK_NSTACKS; s++)
      json_object_set_new(o, ck_stack_key[s], frames_json(r, &l->st[s]));
    fputs(first ? "\n " : ",\n ", f);
    first = 0;
    json_dumpf(o, f, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
  }
  fputs("]}\n", f);
  free(group_of);
  int rc = 0;
  errno = 0;
  if (ferror(f) | (fclose(f) != 0)) {
    msg("cannot write %s: %s", path, strerror(errno ? errno : EIO));
    rc = -1;
  }
  return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* GitHub Actions annotations                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* Workflow-command escaping: data escapes %, CR, LF; properties also ':' and ','. */
static void gh_escape(FILE *out, const char *s, int property) {
  for (const char *p = s ? s : ""; *p; p++) {
    switch (*p) {
    case '%': fputs("%25", out); break;
    case '\r': fputs("%0D", out); break;
    case '\n': fputs("%0A", out); break;
    case ':':
      if (property)
        fputs("%3A", out);
      else
        fputc(':', out);
      break;
    case ',':
      if (property)
        fputs("%2C", out);
      else
        fputc(',', out);
      break;
    default: fputc(*p, out);
    }
  }
}

static void print_github(FILE *out, const ck_run *r) {
  for (size_t i = 0; i < r->ngroups; i++) {
    const ck_group *g = &r->groups[i];
    fputs(g->counted ? "::error " : "::notice ", out);
    if (g->where) {
      fputs("file=", out);
      gh_escape(out, ck_path(r, g->where->file), 1);
      if (g->where->line > 0) fprintf(out, ",line=%d", g->where->line);
      fputc(',', out);
    }
    fputs("title=", out);
    char *title = ts_xasprintf("taskscope: %s", ck_group_headline(r, g));
    gh_escape(out, title, 1);
    free(title);
    fputs("::", out);
    char *text = ck_group_text(r, g);
    /* The block without its first line (the title) and without the trailing newline. */
    char *body = strchr(text, '\n');
    body = body ? body + 1 : text;
    size_t len = strlen(body);
    while (len && body[len - 1] == '\n') body[--len] = '\0';
    /* Dedented by the block's two spaces: the annotation is already the group. */
    for (char *line = body; line;) {
      char *nl = strchr(line, '\n');
      if (nl) *nl = '\0';
      if (line != body) gh_escape(out, "\n", 0);
      gh_escape(out, strncmp(line, "  ", 2) == 0 ? line + 2 : line, 0);
      line = nl ? nl + 1 : NULL;
    }
    free(text);
    fputc('\n', out);
  }
  if (r->other_failure) {
    fputs("::error title=taskscope check::", out);
    gh_escape(out, r->verdict, 0);
    fputc('\n', out);
  }
  fflush(out);
}

/* ------------------------------------------------------------------------------------------ */
/* running CMD                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static volatile sig_atomic_t g_child_pgid;
static volatile sig_atomic_t g_pending_sig;

static void on_signal(int sig) {
  int saved = errno;
  if (g_child_pgid > 0)
    kill(-(pid_t)g_child_pgid, sig);
  else
    g_pending_sig = sig;
  errno = saved;
}

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define NFORWARDED (sizeof forwarded / sizeof forwarded[0])

typedef struct reaped {
  pid_t pid;
  int status;
} reaped;

static reaped *g_reaped;
static size_t g_nreaped;

static void remember(pid_t pid, int status) {
  g_reaped = grow(g_reaped, g_nreaped, sizeof *g_reaped);
  g_reaped[g_nreaped].pid = pid;
  g_reaped[g_nreaped].status = status;
  g_nreaped++;
}

/* A directory for the reports; its path must be usable in TASKSCOPE_OPTIONS (no ':', no
 * control characters; '%' is escaped). */
static char *make_report_dir(void) {
  const char *bases[2] = {getenv("TMPDIR"), "/tmp"};
  for (int i = 0; i < 2; i++) {
    const char *b = bases[i];
    if (!b || b[0] != '/') continue;
    int ok = 1;
    for (const char *p = b; *p; p++)
      if (*p == ':' || (unsigned char)*p < 0x20 || *p == 0x7f) ok = 0;
    if (!ok) continue;
    size_t len = strlen(b);
    while (len > 1 && b[len - 1] == '/') len--;
    char *t = ts_xasprintf("%.*s/taskscope-check.XXXXXX", (int)len, b);
    if (mkdtemp(t)) return t;
    int e = errno;
    if (i == 1 || !bases[1]) {
      msg("cannot create a directory for the reports (%s): %s", t, strerror(e));
      free(t);
      return NULL;
    }
    free(t);
  }
  msg("cannot create a directory for the reports: no usable TMPDIR or /tmp");
  return NULL;
}

static void remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
  }
  if (rmdir(dir) != 0 && errno != ENOENT)
    msg("note: could not remove %s: %s", dir, strerror(errno));
}

static int copy_file(const char *from, const char *to) {
  int in = open(from, O_RDONLY | O_CLOEXEC);
  if (in < 0) return -1;
  int outfd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (outfd < 0) {
    close(in);
    return -1;
  }
  char buf[65536];
  ssize_t n;
  int rc = 0;
  while ((n = read(in, buf, sizeof buf)) > 0) {
    char *p = buf;
    while (n > 0) {
      ssize_t w = write(outfd, p, (size_t)n);
      if (w < 0) {
        if (errno == EINTR) continue;
        rc = -1;
        break;
      }
      p += w;
      n -= w;
    }
    if (rc) break;
  }
  if (n < 0) rc = -1;
  close(in);
  if (close(outfd) != 0) rc = -1;
  return rc;
}

/* mkdir -p */
static int make_dirs(const char *path) {
  char *p = ts_xstrdup(path);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = '\0';
    if (mkdir(p, 0777) != 0 && errno != EEXIST) {
      free(p);
      return -1;
    }
    *s = '/';
  }
  int rc = mkdir(p, 0777) != 0 && errno != EEXIST ? -1 : 0;
  free(p);
  return rc;
}

static void keep_reports(const char *dir, const char *keep) {
  if (make_dirs(keep) != 0) {
    msg("--keep: cannot create %s: %s", keep, strerror(errno));
    return;
  }
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  size_t n = 0;
  while ((e = readdir(d))) {
    if (pid_of_report(e->d_name) < 0) continue;
    char *from = ts_xasprintf("%s/%s", dir, e->d_name);
    char *to = ts_xasprintf("%s/%s", keep, e->d_name);
    if (rename(from, to) != 0 && copy_file(from, to) != 0)
      msg("--keep: cannot keep %s as %s: %s", from, to, strerror(errno));
    else
      n++;
    free(from);
    free(to);
  }
  closedir(d);
  msg("kept %zu report%s in %s", n, n == 1 ? "" : "s", keep);
}

/* Runs CMD; fills r->cmd_* fields. Returns 0 when CMD ran (whatever its status), -1 when it
 * could not be started (message printed). */
static int run_command(ck_run *r) {
  struct sigaction old_ttou;
  /* The forwarding handlers are in place already (install_forwarding); blocked around the
   * spawn, so a signal arriving meanwhile is forwarded once CMD's group exists. */
  sigset_t block, prev;
  sigemptyset(&block);
  for (size_t i = 0; i < NFORWARDED; i++) sigaddset(&block, forwarded[i]);
  sigprocmask(SIG_BLOCK, &block, &prev);

  /* Descendants orphaned by CMD come to us, so we can wait for their reports. */
  (void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t def;
  posix_spawnattr_setsigmask(&attr, &prev);
  sigemptyset(&def);
  for (size_t i = 0; i < NFORWARDED; i++) sigaddset(&def, forwarded[i]);
  sigaddset(&def, SIGPIPE);
  sigaddset(&def, SIGTTOU);
  posix_spawnattr_setsigdefault(&attr, &def);

  pid_t pid;
  int rc = posix_spawnp(&pid, r->cmd[0], NULL, &attr, r->cmd, environ);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    r->cmd_spawn_errno = rc;
    sigprocmask(SIG_SETMASK, &prev, NULL);
    return -1;
  }
  r->cmd_pid = (int)pid;
  g_child_pgid = (sig_atomic_t)pid;

  /* On a terminal where we are in the foreground, CMD's group becomes the foreground group:
   * Ctrl-C and terminal input then go to CMD, as without the gate. */
  int tty = -1;
  if (isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp()) {
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGTTOU, &ign, &old_ttou);
    if (tcsetpgrp(STDIN_FILENO, pid) == 0)
      tty = STDIN_FILENO;
    else
      sigaction(SIGTTOU, &old_ttou, NULL);
  }

  sigprocmask(SIG_SETMASK, &prev, NULL);
  if (g_pending_sig) kill(-pid, g_pending_sig);

  int status = 0;
  for (;;) {
    pid_t w = waitpid(-1, &status, 0);
    if (w == pid) break;
    if (w > 0) {
      remember(w, status);
      continue;
    }
    if (errno == EINTR) continue;
    /* ECHILD cannot happen while CMD is ours; stop rather than spin. */
    status = 0;
    break;
  }
  if (WIFEXITED(status)) {
    r->cmd_exited = 1;
    r->cmd_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r->cmd_exited = 0;
    r->cmd_signal = WTERMSIG(status);
  }
  remember(pid, status);

  if (tty >= 0) {
    tcsetpgrp(tty, getpgrp());
    sigaction(SIGTTOU, &old_ttou, NULL);
  }

  /* Orphaned descendants: give them GRACE_MS to finish (and write their reports). */
  uint64_t deadline = monotonic_ms() + GRACE_MS;
  int left = 0;
  for (;;) {
    pid_t w = waitpid(-1, &status, WNOHANG);
    if (w > 0) {
      remember(w, status);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) break; /* ECHILD: none left */
    if (monotonic_ms() >= deadline) {
      left = 1;
      break;
    }
    usleep(10000);
  }
  if (left)
    msg("note: processes started by the command are still running after %d ms; reports they "
        "write later are not included",
        GRACE_MS);

  g_child_pgid = 0;
  return 0;
}

static struct sigaction g_old_actions[NFORWARDED];

/* From before the report directory exists until it is removed: SIGINT/SIGTERM/SIGHUP/SIGQUIT
 * never kill the gate itself (which would leave the directory behind); they go to CMD's group,
 * or are kept for it while it does not exist yet. */
static void install_forwarding(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (size_t i = 0; i < NFORWARDED; i++) sigaction(forwarded[i], &sa, &g_old_actions[i]);
}

static void remove_forwarding(void) {
  for (size_t i = 0; i < NFORWARDED; i++) sigaction(forwarded[i], &g_old_actions[i], NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* options                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static const char usage_line[] =
    "usage: taskscope check [--json FILE] [--junit FILE] [--sarif FILE] [--github]\n"
    "                       [--suppressions FILE] [--strip-prefix DIR] [--kinds LIST]\n"
    "                       [--keep DIR] [--allow-uninstrumented] [--quiet-processes]\n"
    "                       -- CMD [ARGS...]\n";

static const char ck_help_text[] =
    "Runs CMD (and every process it starts) with TASKSCOPE_OPTIONS set so that each process\n"
    "linked with libtaskscope writes its JSON leak report into a private directory; merges\n"
    "the reports, applies the suppressions, prints the leaks (identical ones grouped across\n"
    "processes) and a SUMMARY line on stderr, and fails when leaks remain.\n"
    "\n"
    "options:\n"
    "  --json FILE            the merged report (format taskscope-report, version 1, plus\n"
    "                         \"processes\", \"command\" and \"check\")\n"
    "  --junit FILE           JUnit XML: one test case per leak group\n"
    "  --sarif FILE           SARIF 2.1.0: one result per leak group (GitHub code scanning)\n"
    "  --github               GitHub Actions annotations (::error file=...,line=...::) on\n"
    "                         stdout, one per leak group\n"
    "  --suppressions FILE    leak:GLOB / task:GLOB / kind:KIND lines (as the runtime's\n"
    "                         suppressions= file), applied to the merged records\n"
    "  --strip-prefix DIR     remove DIR/ from file names in every output (default: the\n"
    "                         current directory; '' keeps absolute names)\n"
    "  --kinds LIST           comma list of the kinds that fail the check (default: pending,\n"
    "                         destroyed_pending,unretrieved_error); others are notes\n"
    "  --keep DIR             keep the per-process reports in DIR\n"
    "  --allow-uninstrumented do not fail when no process wrote a report\n"
    "  --quiet-processes      processes do not print their own text reports (report_text=off)\n"
    "  -h, --help             this help\n"
    "\n"
    "exit status: 0 no leaks; 1 leaks of counted kinds; 2 usage error; 3 no instrumented\n"
    "process reported (\"is CMD linked with libtaskscope?\") or a report was unreadable;\n"
    "CMD's own status when it failed (never 0); 128+N when CMD was killed by signal N;\n"
    "127 when CMD could not be started.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vmsg(fmt, ap);
  va_end(ap);
  fputs(usage_line, stderr);
  fputs("Run 'taskscope check --help' for more.\n", stderr);
  return TS_EXIT_USAGE;
}

typedef struct opts {
  const char *json, *junit, *sarif, *supp, *strip, *keep;
  int github, allow_uninstrumented, quiet_processes, strip_given;
  unsigned kinds;
} opts;

static int parse_kinds(const char *list, unsigned *mask) {
  *mask = 0;
  const char *p = list;
  while (*p) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    int found = kind_from_name(p, len);
    if (found < 0)
      return usage_error("--kinds: unknown kind '%.*s' (expected pending, destroyed_pending, "
                         "unretrieved_error)",
                         (int)len, p);
    *mask |= 1u << found;
    if (!e) break;
    p = e + 1;
  }
  if (!*mask) return usage_error("--kinds needs at least one kind");
  return 0;
}

/* Parses argv[1..]; sets *cmd_index to the first word of CMD. Returns 0, -1 (help printed), or
 * an exit code. */
static int parse_args(int argc, char **argv, opts *o, int *cmd_index) {
  o->kinds = (1u << CK_KINDS) - 1;
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (a[0] != '-' || a[1] == '\0') break; /* CMD without "--" */
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(usage_line, stdout);
      fputc('\n', stdout);
      fputs(ck_help_text, stdout);
      return -1;
    }
    if (strcmp(a, "--github") == 0) {
      o->github = 1;
      continue;
    }
    if (strcmp(a, "--allow-uninstrumented") == 0) {
      o->allow_uninstrumented = 1;
      continue;
    }
    if (strcmp(a, "--quiet-processes") == 0) {
      o->quiet_processes = 1;
      continue;
    }
    static const char *const with_value[] = {"--json",  "--junit", "--sarif", "--suppressions",
                                             "--strip-prefix", "--kinds", "--keep"};
    const char *val = NULL, *name = NULL;
    for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++) {
      size_t len = strlen(with_value[k]);
      if (strncmp(a, with_value[k], len) == 0 && (a[len] == '\0' || a[len] == '=')) {
        name = with_value[k];
        if (a[len] == '=') {
          val = a + len + 1;
        } else {
          if (i + 1 >= argc) return usage_error("%s needs a value", name);
          val = argv[++i];
        }
        break;
      }
    }
    if (!name) return usage_error("unknown option '%s'", a);
    if (strcmp(name, "--strip-prefix") != 0 && !*val)
      return usage_error("%s needs a non-empty value", name);
    if (strcmp(name, "--json") == 0)
      o->json = val;
    else if (strcmp(name, "--junit") == 0)
      o->junit = val;
    else if (strcmp(name, "--sarif") == 0)
      o->sarif = val;
    else if (strcmp(name, "--suppressions") == 0)
      o->supp = val;
    else if (strcmp(name, "--strip-prefix") == 0) {
      o->strip = val;
      o->strip_given = 1;
    } else if (strcmp(name, "--keep") == 0)
      o->keep = val;
    else if (strcmp(name, "--kinds") == 0) {
      int rc = parse_kinds(val, &o->kinds);
      if (rc) return rc;
    }
  }
  if (i >= argc) return usage_error("no command given (taskscope check [OPTIONS] -- CMD [ARGS...])");
  *cmd_index = i;
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* the command                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static void set_strip(ck_run *r, const char *prefix, char **owned) {
  if (!prefix || !*prefix) return;
  size_t len = strlen(prefix);
  while (len > 1 && prefix[len - 1] == '/') len--;
  r->strip[0] = prefix;
  r->strip_len[0] = len;
  char *real = realpath(prefix, NULL);
  if (real && (strlen(real) != len || strncmp(real, prefix, len) != 0)) {
    r->strip[1] = real;
    r->strip_len[1] = strlen(real);
    *owned = real;
  } else {
    free(real);
  }
}

static void decide(ck_run *r, const opts *o, char **verdict_owned) {
  char *v = NULL;
  int leaks_only = 0;
  if (r->cmd_spawn_errno) {
    r->exit_code = r->cmd_spawn_errno == ENOENT ? 127 : 126;
    v = ts_xasprintf("FAILED: cannot run %s: %s", r->cmd[0], strerror(r->cmd_spawn_errno));
  } else if (!r->cmd_exited) {
    r->exit_code = 128 + r->cmd_signal;
    v = ts_xasprintf("FAILED: %s killed by signal %d (%s)", r->cmd[0], r->cmd_signal,
                  ck_signal_desc(r->cmd_signal));
  } else if (r->cmd_code != 0) {
    r->exit_code = r->cmd_code;
    v = ts_xasprintf("FAILED: %s exited with status %d", r->cmd[0], r->cmd_code);
  } else if (r->counted) {
    leaks_only = 1;
    r->exit_code = TS_EXIT_LEAKS;
    v = ts_xasprintf("FAILED: %zu leaked task%s in %zu group%s", r->counted,
                  r->counted == 1 ? "" : "s", r->counted_groups, r->counted_groups == 1 ? "" : "s");
  } else if (r->unreadable) {
    r->exit_code = TS_EXIT_ATTACH;
    v = ts_xasprintf("FAILED: %zu report%s could not be read", r->unreadable,
                  r->unreadable == 1 ? "" : "s");
  } else if (r->nprocs == 0 && !o->allow_uninstrumented) {
    r->exit_code = TS_EXIT_ATTACH;
    v = ts_xasprintf("FAILED: no instrumented process reported: is %s linked with libtaskscope? "
                  "(--allow-uninstrumented accepts this)",
                  r->cmd[0]);
  } else {
    r->exit_code = TS_EXIT_OK;
    v = ts_xasprintf("passed: no leaked tasks%s",
                  r->nprocs == 0 ? " (no instrumented process reported)" : "");
  }
  r->verdict = v;
  /* Every branch but "leaks" and "passed" is a failure of its own. */
  r->other_failure = r->exit_code != TS_EXIT_OK && !leaks_only;
  *verdict_owned = v;
}

int taskscope_cmd_check(int argc, char **argv) {
  opts o;
  memset(&o, 0, sizeof o);
  int ci = 0;
  int rc = parse_args(argc, argv, &o, &ci);
  if (rc < 0) return TS_EXIT_OK;
  if (rc) return rc;

  ck_run run;
  ck_run *r = &run;
  memset(r, 0, sizeof *r);
  r->cmd = argv + ci;
  r->cmd_argc = argc - ci;
  r->kinds_mask = o.kinds;
  r->supp_path = o.supp;

  /* The suppressions file is checked before CMD runs: a typo must not cost a CI run. */
  tsk__suppressions *supp = NULL;
  if (o.supp) {
    char err[512];
    if (tsk__suppressions_load(o.supp, &supp, err, sizeof err) != 0) {
      fflush(stdout);
      fprintf(stderr, "taskscope check: --suppressions: %s\n", err);
      return TS_EXIT_USAGE;
    }
  }
  r->supp = supp;

  /* The user's TASKSCOPE_OPTIONS must parse: a bad one makes every process ignore all of it,
   * report= included, and the run would look uninstrumented. */
  const char *user = getenv(ENV_NAME);
  if (user && *user) {
    tsk__options tmp;
    char err[512];
    if (tsk__options_parse(user, &tmp, err, sizeof err) != 0) {
      fflush(stdout);
      fprintf(stderr, "taskscope check: the environment's %s is invalid: %s\n", ENV_NAME, err);
      tsk__suppressions_free(supp);
      return TS_EXIT_USAGE;
    }
  }

  char *cwd = NULL, *strip_real = NULL;
  if (o.strip_given) {
    set_strip(r, o.strip, &strip_real);
  } else {
    cwd = getcwd(NULL, 0);
    set_strip(r, cwd, &strip_real);
  }

  install_forwarding();
  char *dir = make_report_dir();
  if (!dir) {
    remove_forwarding();
    tsk__suppressions_free(supp);
    free(cwd);
    free(strip_real);
    return TS_EXIT_ATTACH;
  }
  /* '%' in the directory must be written %% (only %p is an escape). */
  char *escaped = xcalloc(strlen(dir) * 2 + 1, 1);
  for (char *s = dir, *d = escaped; *s; s++) {
    *d++ = *s;
    if (*s == '%') *d++ = '%';
  }
  char *env = ts_xasprintf("%s%sreport=%s/report-%%p.json:exitcode=0%s", user ? user : "",
                        user && *user ? ":" : "", escaped,
                        o.quiet_processes ? ":report_text=off" : "");
  free(escaped);
  setenv(ENV_NAME, env, 1);
  free(env);

  fflush(NULL);
  if (run_command(r) != 0) {
    /* reported in the verdict */
  }
  /* The environment of the gate itself goes back as it was (nothing else runs after). */
  if (user)
    setenv(ENV_NAME, user, 1);
  else
    unsetenv(ENV_NAME);

  read_reports(r, dir);
  /* Exit statuses of the processes that reported, where known. */
  for (size_t p = 0; p < r->nprocs; p++)
    for (size_t k = 0; k < g_nreaped; k++)
      if (g_reaped[k].pid == r->procs[p].pid) {
        int st = g_reaped[k].status;
        r->procs[p].exit_known = WIFEXITED(st) || WIFSIGNALED(st);
        r->procs[p].exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 0;
        r->procs[p].exit_signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
      }
  mark_duplicates(r);
  apply_suppressions(r);
  make_groups(r);

  char *verdict = NULL;
  decide(r, &o, &verdict);

  if (r->cmd_spawn_errno)
    msg("cannot run '%s': %s", r->cmd[0], strerror(r->cmd_spawn_errno));
  else if (!r->cmd_exited)
    msg("%s killed by signal %d (%s)", r->cmd[0], r->cmd_signal, ck_signal_desc(r->cmd_signal));
  else if (r->cmd_code != 0)
    msg("%s exited with status %d", r->cmd[0], r->cmd_code);
  if (r->nprocs == 0 && !r->cmd_spawn_errno)
    msg("no instrumented process reported: is %s linked with libtaskscope?%s", r->cmd[0],
        o.allow_uninstrumented ? " (allowed by --allow-uninstrumented)" : "");

  print_text(stderr, r);
  if (o.github) print_github(stdout, r);

  int out_failed = 0;
  if (o.json && write_json(r, o.json) != 0) out_failed = 1;
  if (o.junit && ck_write_junit(r, o.junit) != 0) out_failed = 1;
  if (o.sarif && ck_write_sarif(r, o.sarif, TASKSCOPE_VERSION) != 0) out_failed = 1;
  if (o.keep) keep_reports(dir, o.keep);
  remove_dir(dir);
  remove_forwarding();

  int exit_code = r->exit_code;
  if (out_failed && exit_code == TS_EXIT_OK) exit_code = TS_EXIT_ATTACH;

  /* Cleanup (the process ends soon, but sanitizer builds check for leaks). */
  for (size_t i = 0; i < r->nleaks; i++)
    for (int s = 0; s < CK_NSTACKS; s++) free(r->leaks[i].st[s].f);
  free(r->leaks);
  for (size_t i = 0; i < r->ngroups; i++) {
    free(r->groups[i].members);
    free((char *)r->groups[i].title);
  }
  free(r->groups);
  for (size_t p = 0; p < r->nprocs; p++) {
    json_decref((json_t *)r->procs[p].doc);
    free(r->procs[p].path);
  }
  free(r->procs);
  free(supp_hits);
  supp_hits = NULL;
  free(g_reaped);
  g_reaped = NULL;
  g_nreaped = 0;
  tsk__suppressions_free(supp);
  free(verdict);
  free(dir);
  free(cwd);
  free(strip_real);
  return exit_code;
}
