/*
 * cmd_list.c — `taskscope list`: the processes one can attach to.
 */
#include "cli.h"
#include "common.h"
#include "target.h"
#include "text.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LIST_TIMEOUT_MS 1000

typedef struct entry {
  int pid;  /* from the file name */
  char *path;
  /* results */
  const char *status; /* "ok", "stale", "error" */
  char *note;         /* short reason for the table, e.g. "stale: process gone"; owned */
  char *error;        /* full message; owned */
  char *program;      /* owned */
  long long hello_pid;
  long long tasks, waiting, leaks; /* -1: unknown */
} entry;

static int cmp_entry(const void *a, const void *b) {
  const entry *x = a, *y = b;
  if (x->pid != y->pid) return x->pid < y->pid ? -1 : 1;
  return strcmp(x->path, y->path);
}

static void scan_dir(const char *dir, entry **es, size_t *n, size_t *cap) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    int pid;
    if (!tsc_socket_file_pid(e->d_name, &pid)) continue;
    char *path = ts_xasprintf("%s/%s", dir, e->d_name);
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode)) {
      free(path);
      continue;
    }
    if (*n == *cap) {
      *cap = *cap ? *cap * 2 : 16;
      *es = ts_xrealloc(*es, *cap * sizeof **es);
    }
    (*es)[(*n)++] = (entry){.pid = pid, .path = path, .tasks = -1, .waiting = -1, .leaks = -1,
                            .hello_pid = pid};
  }
  closedir(d);
}

static const char *short_reason(ts_conn_status st, const ts_conn *c) {
  switch (st) {
  case TS_CONN_STALE:
  case TS_CONN_NOENT: return "stale: nothing listening";
  case TS_CONN_PERM: return "permission denied";
  case TS_CONN_TIMEOUT: return "no answer";
  case TS_CONN_CLOSED: return "closed the connection";
  case TS_CONN_BUSY: return "busy";
  case TS_CONN_MALFORMED: return "malformed answer";
  case TS_CONN_VERSION:
    return c->version && c->version != TS_PROTOCOL_VERSION ? NULL : "protocol version mismatch";
  default: return "error";
  }
}

static void probe(const ts_ctx *ctx, entry *e) {
  if (!tsc_process_exists(e->pid)) {
    e->status = "stale";
    e->note = ts_xstrdup("stale: process gone");
    e->error = ts_xasprintf("stale socket %s: process %d is gone", e->path, e->pid);
    return;
  }
  ts_conn c;
  int timeout = ctx->timeout_ms < LIST_TIMEOUT_MS ? ctx->timeout_ms : LIST_TIMEOUT_MS;
  ts_conn_status st = ts_conn_open(&c, e->path, timeout);
  json_t *ans = NULL;
  ts_conn_raw raw = {0};
  if (!st)
    st = ts_conn_request_split(&c, json_pack("{s:s}", "type", "snapshot"), "snapshot", "tasks",
                               &ans, &raw);
  if (st) {
    e->status = st == TS_CONN_STALE || st == TS_CONN_NOENT ? "stale" : "error";
    const char *r = short_reason(st, &c);
    e->note = r ? ts_xstrdup(r) : ts_xasprintf("speaks protocol %lld", c.version);
    e->error = ts_xstrdup(c.err);
    ts_conn_close(&c);
    return;
  }
  ts_snapshot s;
  char err[400];
  if (ts_snapshot_parse_split(ans, &raw, &s, err, sizeof err) != 0) {
    e->status = "error";
    e->note = ts_xstrdup("malformed answer");
    e->error = ts_xasprintf("malformed answer from %s: %s", e->path, err);
    ts_conn_close(&c);
    return;
  }
  e->status = "ok";
  e->hello_pid = c.pid;
  e->program = ts_xstrdup(strcmp(s.program, "?") != 0 ? s.program : c.program);
  e->tasks = (long long)s.ntasks;
  e->waiting = 0;
  for (size_t i = 0; i < s.ntasks; i++) e->waiting += strcmp(s.tasks[i].state, "waiting") == 0;
  if (s.leaks_pending >= 0 || s.leaks_destroyed_pending >= 0 || s.leaks_unretrieved_error >= 0)
    e->leaks = (s.leaks_pending > 0 ? s.leaks_pending : 0) +
               (s.leaks_destroyed_pending > 0 ? s.leaks_destroyed_pending : 0) +
               (s.leaks_unretrieved_error > 0 ? s.leaks_unretrieved_error : 0);
  else
    e->leaks = (long long)json_array_size(s.leaks);
  ts_snapshot_free(&s);
  ts_conn_close(&c);
}

static json_t *num_or_null(long long v) {
  return v >= 0 ? json_integer(v) : json_null();
}

static int print_json(char dirs[][TSC_DIR_MAX], size_t nd, entry *es, size_t n) {
  json_t *jd = json_array();
  for (size_t i = 0; i < nd; i++) json_array_append_new(jd, json_string(dirs[i]));
  json_t *jp = json_array();
  for (size_t i = 0; i < n; i++) {
    const entry *e = &es[i];
    json_array_append_new(
        jp, json_pack("{s:I, s:o, s:o, s:s, s:o, s:o, s:o, s:o}", "pid", (json_int_t)e->hello_pid,
                      "program", ts_json_string(e->program), "socket",
                      ts_json_string(e->path), "status", e->status, "error",
                      ts_json_string(e->error), "tasks", num_or_null(e->tasks),
                      "waiting", num_or_null(e->waiting), "leaks", num_or_null(e->leaks)));
  }
  json_t *root = json_pack("{s:o, s:o}", "socket_dirs", jd, "processes", jp);
  int rc = ts_print_json(root);
  json_decref(root);
  return rc;
}

static void print_table(const ts_ctx *ctx, char dirs[][TSC_DIR_MAX], size_t nd, entry *es, size_t n) {
  const ts_term *t = &ctx->term;
  if (n == 0) {
    char looked[600];
    tsc_dirs_text(dirs, nd, looked, sizeof looked);
    printf("no taskscope processes found (looked in %s)\n", looked);
    return;
  }
  static const char *const heads[] = {"PID", "PROGRAM", "TASKS", "WAITING", "LEAKS", "SOCKET",
                                      NULL};
  ts_table *tb = ts_table_new(t, heads, "rlrrrl");
  for (size_t i = 0; i < n; i++) {
    const entry *e = &es[i];
    int ok = strcmp(e->status, "ok") == 0;
    ts_table_cellf(tb, NULL, "%lld", e->hello_pid);
    if (ok)
      ts_table_cell(tb, TS_SGR_BOLD, e->program);
    else
      ts_table_cellf(tb, TS_SGR_DIM, "(%s)", e->note);
    if (ok) {
      ts_table_cellf(tb, NULL, "%lld", e->tasks);
      ts_table_cellf(tb, NULL, "%lld", e->waiting);
      ts_table_cellf(tb, e->leaks > 0 ? TS_SGR_BOLD_RED : NULL, "%lld", e->leaks);
    } else {
      ts_table_cell(tb, TS_SGR_DIM, "-");
      ts_table_cell(tb, TS_SGR_DIM, "-");
      ts_table_cell(tb, TS_SGR_DIM, "-");
    }
    ts_table_cell(tb, ok ? NULL : TS_SGR_DIM, e->path);
    ts_table_end_row(tb);
  }
  ts_table_print(tb, stdout);
  ts_table_free(tb);
}

int ts_cmd_list(ts_ctx *ctx) {
  char dirs[TSC_MAX_SOCKET_DIRS][TSC_DIR_MAX];
  size_t nd = tsc_socket_dirs((unsigned)getuid(), dirs, TSC_MAX_SOCKET_DIRS);
  entry *es = NULL;
  size_t n = 0, cap = 0;
  for (size_t i = 0; i < nd; i++) scan_dir(dirs[i], &es, &n, &cap);
  if (n) qsort(es, n, sizeof *es, cmp_entry);
  for (size_t i = 0; i < n; i++) probe(ctx, &es[i]);

  int rc = 0;
  if (ctx->json)
    rc = print_json(dirs, nd, es, n);
  else
    print_table(ctx, dirs, nd, es, n);
  for (size_t i = 0; i < n; i++) {
    free(es[i].path);
    free(es[i].note);
    free(es[i].error);
    free(es[i].program);
  }
  free(es);
  return rc;
}
