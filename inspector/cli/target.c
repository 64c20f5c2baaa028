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
  char dirs[2 * TSC_MAX_SOCKET_DIRS][TSC_DIR_MAX];
  size_t nd = tsc_pid_socket_dirs(pid, dirs, 2 * TSC_MAX_SOCKET_DIRS);

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
  char paths[MAX_PROBES][TSC_SOCK_PATH_MAX];
  size_t np = tsc_listening_sockets(pid, paths, MAX_PROBES);
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
