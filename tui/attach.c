/*
 * attach.c — the processes in the socket directories, PID -> socket path: "<pid>.sock" in the
 * socket directories of the caller and of the process's owner (root attaching to another user),
 * else the socket the process listens on that answers with a taskscope hello (socket=PATH).
 */
#include "attach.h"
#include "hello.h"
#include "pid_arg.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int cmp_proc(const void *a, const void *b) {
  const ta_proc *x = a, *y = b;
  return x->pid < y->pid ? -1 : x->pid > y->pid;
}

size_t ta_scan(ta_proc *out, size_t max) {
  char dirs[TSC_MAX_SOCKET_DIRS][TSC_DIR_MAX];
  size_t nd = tsc_socket_dirs((unsigned)getuid(), dirs, TSC_MAX_SOCKET_DIRS), n = 0;
  for (size_t i = 0; i < nd; i++) {
    DIR *d = opendir(dirs[i]);
    if (!d) continue;
    struct dirent *e;
    while ((e = readdir(d))) {
      int pid;
      if (!tsc_socket_file_pid(e->d_name, &pid) || !tsc_process_exists(pid)) continue;
      int dup = 0;
      for (size_t k = 0; k < n && k < max; k++) dup |= out[k].pid == pid;
      if (dup) continue;
      if (n < max) {
        ta_proc *p = &out[n];
        int len = snprintf(p->path, sizeof p->path, "%s/%s", dirs[i], e->d_name);
        if (len < 0 || (size_t)len >= sizeof p->path) continue; /* too long to be connected to */
        p->pid = pid;
        tsc_process_name(pid, p->program, sizeof p->program);
      }
      n++;
    }
    closedir(d);
  }
  qsort(out, n < max ? n : max, sizeof *out, cmp_proc);
  return n;
}

int ta_resolve(const char *target, char *path, size_t pathlen, int *pid, char *err,
               size_t errlen) {
  *pid = 0;
  if (strchr(target, '/')) {
    if (tsc_check_socket_path(target, err, errlen) != 0) return TA_CANNOT_ATTACH;
    snprintf(path, pathlen, "%s", target);
    return 0;
  }
  if (ts_parse_pid(target, pid) != 0) {
    snprintf(err, errlen,
             "'%s' is neither a process id nor a socket path (a path contains '/')", target);
    return TA_NOT_TARGET;
  }
  char dirs[2 * TSC_MAX_SOCKET_DIRS][TSC_DIR_MAX];
  size_t nd = tsc_pid_socket_dirs(*pid, dirs, 2 * TSC_MAX_SOCKET_DIRS);
  int denied = 0;
  for (size_t i = 0; i < nd; i++) {
    char p[300];
    int len = snprintf(p, sizeof p, "%s/%d.sock", dirs[i], *pid);
    if (len < 0 || (size_t)len >= sizeof p) continue; /* too long to be a socket path */
    struct stat st;
    if (stat(p, &st) != 0) {
      denied |= errno == EACCES;
      continue;
    }
    if (!S_ISSOCK(st.st_mode) || strlen(p) >= pathlen) continue;
    if (!tsc_process_exists(*pid)) {
      snprintf(err, errlen, "no such process: %d (its socket %s is stale)", *pid, p);
      return TA_CANNOT_ATTACH;
    }
    snprintf(path, pathlen, "%s", p);
    return 0;
  }
  if (!tsc_process_exists(*pid)) {
    snprintf(err, errlen, "no such process: %d", *pid);
    return TA_CANNOT_ATTACH;
  }
  /* A socket elsewhere (TASKSCOPE_OPTIONS=socket=PATH): the one it listens on that answers
   * with a taskscope hello. */
  char socks[16][TSC_SOCK_PATH_MAX];
  size_t ns = tsc_listening_sockets(*pid, socks, 16);
  for (size_t i = 0; i < ns; i++) {
    if (strlen(socks[i]) >= pathlen || !tsc_probe_hello(socks[i], 500)) continue;
    snprintf(path, pathlen, "%s", socks[i]);
    return 0;
  }
  char comm[64];
  tsc_process_name(*pid, comm, sizeof comm);
  if (denied) {
    snprintf(err, errlen,
             "permission denied: cannot look into the socket directory of process %d (%s); "
             "attach as its user or root",
             *pid, comm);
    return TA_CANNOT_ATTACH;
  }
  char looked[600];
  tsc_dirs_text(dirs, nd, looked, sizeof looked);
  snprintf(err, errlen,
           "process %d (%s) is not instrumented: it has no taskscope inspector socket (looked in "
           "%s); it does not use libtaskscope, or its inspector is off "
           "(TASKSCOPE_OPTIONS=socket=off) or elsewhere (pass the socket path instead)",
           *pid, comm, looked);
  return TA_CANNOT_ATTACH;
}
