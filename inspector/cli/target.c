/*
 * target.c — from a PID or a socket path to a connected inspector session.
 */
#include "target.h"

#include "text.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROBE_TIMEOUT_MS 500
#define MAX_PROBES 16

/* ------------------------------------------------------------------------------------------ */
/* sockets the process listens on (/proc/PID/fd and /proc/net/unix)                           */
/* ------------------------------------------------------------------------------------------ */

static int cmp_ul(const void *a, const void *b) {
  unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
  return x < y ? -1 : x > y;
}

/* Collects the paths of the Unix stream sockets process pid listens on, for a process that uses
 * TASKSCOPE_OPTIONS=socket=PATH. Only works for processes whose /proc/PID/fd we may read. */
static size_t listening_paths(int pid, char paths[][128], size_t max) {
  char dir[64];
  snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
  DIR *d = opendir(dir);
  if (!d) return 0;
  unsigned long *inodes = NULL;
  size_t ni = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    char link[PATH_MAX], target[64];
    snprintf(link, sizeof link, "%s/%s", dir, e->d_name);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    unsigned long ino;
    if (sscanf(target, "socket:[%lu]", &ino) != 1) continue;
    if (ni == cap) {
      cap = cap ? cap * 2 : 32;
      inodes = ts_xrealloc(inodes, cap * sizeof *inodes);
    }
    inodes[ni++] = ino;
  }
  closedir(d);
  size_t np = 0;
  if (ni == 0) return 0;
  qsort(inodes, ni, sizeof *inodes, cmp_ul);
  FILE *f = fopen("/proc/net/unix", "r");
  if (!f) {
    free(inodes);
    return 0;
  }
  char line[4096 + 128];
  while (np < max && fgets(line, sizeof line, f)) {
    /* Num RefCount Protocol Flags Type St Inode Path */
    unsigned long flags, type, ino;
    char path[4096];
    path[0] = '\0';
    if (sscanf(line, "%*s %*x %*x %lx %lx %*x %lu %4095s", &flags, &type, &ino, path) < 3)
      continue;
    if (!(flags & 0x10000) || type != 1 || path[0] != '/') continue; /* listening, stream */
    if (!bsearch(&ino, inodes, ni, sizeof *inodes, cmp_ul)) continue;
    if (strlen(path) >= 128) continue;
    snprintf(paths[np++], 128, "%s", path);
  }
  fclose(f);
  free(inodes);
  return np;
}

/* ------------------------------------------------------------------------------------------ */
/* attach                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static int attach_path(const ts_ctx *ctx, const char *path, ts_conn *c) {
  if (tsc_check_socket_path(path, c->err, sizeof c->err) != 0)
    return ts_fail(TS_EXIT_ATTACH, "%s", c->err);
  ts_conn_status s = ts_conn_open(c, path, ctx->timeout_ms);
  if (s) return ts_fail(TS_EXIT_ATTACH, "%s", c->err);
  return 0;
}

static int attach_pid(const ts_ctx *ctx, int pid, ts_conn *c) {
  int alive = tsc_process_exists(pid);
  struct stat pst;
  unsigned uid = (unsigned)getuid();
  char procdir[64];
  snprintf(procdir, sizeof procdir, "/proc/%d", pid);
  if (alive && stat(procdir, &pst) == 0) uid = pst.st_uid;

  char dirs[2 * TSC_MAX_SOCKET_DIRS][TSC_DIR_MAX];
  size_t nd = tsc_socket_dirs((unsigned)getuid(), dirs, TSC_MAX_SOCKET_DIRS);
  if (uid != (unsigned)getuid())
    nd += tsc_socket_dirs(uid, dirs + nd, TSC_MAX_SOCKET_DIRS);

  /* The sockets in the usual places. */
  int tried = 0;
  ts_conn_status last = TS_CONN_NOENT;
  char last_err[sizeof c->err] = "";
  char last_path[300] = "";
  for (size_t i = 0; i < nd; i++) {
    char path[300];
    snprintf(path, sizeof path, "%s/%d.sock", dirs[i], pid);
    struct stat st;
    if (stat(path, &st) != 0) {
      if (errno == EACCES && last == TS_CONN_NOENT) {
        last = TS_CONN_PERM;
        snprintf(last_err, sizeof last_err,
                 "permission denied: cannot reach %s (the socket directory belongs to another "
                 "user)",
                 path);
      }
      continue;
    }
    if (!S_ISSOCK(st.st_mode)) continue;
    tried++;
    ts_conn_status s = ts_conn_open(c, path, ctx->timeout_ms);
    if (s == TS_CONN_OK) return 0;
    if (last == TS_CONN_NOENT || last == TS_CONN_STALE) {
      last = s;
      memcpy(last_err, c->err, sizeof last_err);
      snprintf(last_path, sizeof last_path, "%s", path);
    }
  }

  if (!alive) {
    if (tried && last == TS_CONN_STALE)
      return ts_fail(TS_EXIT_ATTACH, "no such process: %d (its socket %s is stale)", pid,
                     last_path);
    return ts_fail(TS_EXIT_ATTACH, "no such process: %d", pid);
  }

  char comm[64];
  tsc_process_name(pid, comm, sizeof comm);
  if (last != TS_CONN_NOENT && last != TS_CONN_STALE)
    return ts_fail(TS_EXIT_ATTACH, "%s", last_err); /* permission, version, timeout, ... */

  /* A socket elsewhere (TASKSCOPE_OPTIONS=socket=PATH): among those the process listens on. */
  char paths[MAX_PROBES][128];
  size_t np = listening_paths(pid, paths, MAX_PROBES);
  int timeout = ctx->timeout_ms < PROBE_TIMEOUT_MS ? ctx->timeout_ms : PROBE_TIMEOUT_MS;
  for (size_t i = 0; i < np; i++) {
    ts_conn_status s = ts_conn_open(c, paths[i], timeout);
    if (s == TS_CONN_OK) {
      c->timeout_ms = ctx->timeout_ms;
      return 0;
    }
    if (s == TS_CONN_VERSION || s == TS_CONN_BUSY) return ts_fail(TS_EXIT_ATTACH, "%s", c->err);
  }

  if (last == TS_CONN_STALE)
    return ts_fail(TS_EXIT_ATTACH,
                   "%s; process %d (%s) is not serving it (its inspector stopped, or the pid was "
                   "reused)",
                   last_err, pid, comm);
  char looked[600];
  tsc_dirs_text(dirs, nd, looked, sizeof looked);
  return ts_fail(TS_EXIT_ATTACH,
                 "process %d (%s) has no taskscope inspector socket (looked in %s): it is not "
                 "instrumented with libtaskscope, or its inspector is off or elsewhere.\n"
                 "hint: start it with TASKSCOPE_OPTIONS=socket=auto (the default), or pass the "
                 "socket path given with TASKSCOPE_OPTIONS=socket=PATH instead of the PID",
                 pid, comm, looked);
}

int ts_attach(const ts_ctx *ctx, const char *target, ts_conn *c) {
  memset(c, 0, sizeof *c);
  c->fd = -1;
  if (strchr(target, '/')) return attach_path(ctx, target, c);
  int pid;
  if (ts_parse_pid(target, &pid) != 0)
    return ts_usage_error(ctx, "'%s' is neither a process id nor a socket path (a path contains "
                               "'/')", target);
  return attach_pid(ctx, pid, c);
}
