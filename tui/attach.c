/*
 * attach.c — socket directories, the processes listed there, PID -> socket path.
 */
#include "attach.h"
#include "pid_arg.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

size_t ta_socket_dirs(char dirs[][256], size_t max) {
  size_t n = 0;
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  if (xdg && *xdg && n < max) snprintf(dirs[n++], 256, "%s/taskscope", xdg);
  if (n < max) snprintf(dirs[n++], 256, "/tmp/taskscope-%u", (unsigned)getuid());
  return n;
}

static int process_exists(int pid) {
  return kill(pid, 0) == 0 || errno == EPERM;
}

void ta_program(int pid, char *out, size_t n) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/comm", pid);
  snprintf(out, n, "?");
  FILE *f = fopen(path, "r");
  if (!f) return;
  if (fgets(out, (int)n, f)) out[strcspn(out, "\n")] = '\0';
  fclose(f);
  for (char *p = out; *p; p++)
    if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f) *p = '?';
}

static int cmp_proc(const void *a, const void *b) {
  const ta_proc *x = a, *y = b;
  return x->pid < y->pid ? -1 : x->pid > y->pid;
}

size_t ta_scan(ta_proc *out, size_t max) {
  char dirs[4][256];
  size_t nd = ta_socket_dirs(dirs, 4), n = 0;
  for (size_t i = 0; i < nd; i++) {
    DIR *d = opendir(dirs[i]);
    if (!d) continue;
    struct dirent *e;
    while ((e = readdir(d))) {
      char num[32];
      size_t l = strlen(e->d_name);
      if (l < 6 || l - 5 >= sizeof num || strcmp(e->d_name + l - 5, ".sock") != 0) continue;
      memcpy(num, e->d_name, l - 5);
      num[l - 5] = '\0';
      int pid;
      if (ts_parse_pid(num, &pid) != 0 || !process_exists(pid)) continue;
      int dup = 0;
      for (size_t k = 0; k < n && k < max; k++) dup |= out[k].pid == pid;
      if (dup) continue;
      if (n < max) {
        ta_proc *p = &out[n];
        p->pid = pid;
        p->alive = 1;
        char full[600];
        int len = snprintf(full, sizeof full, "%s/%s", dirs[i], e->d_name);
        if (len < 0 || (size_t)len >= sizeof full || (size_t)len >= sizeof p->path)
          continue; /* too long to be connected to */
        memcpy(p->path, full, strlen(full) + 1);
        ta_program(pid, p->program, sizeof p->program);
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
    struct stat st;
    if (stat(target, &st) != 0) {
      if (errno == EACCES)
        snprintf(err, errlen, "permission denied: cannot reach %s", target);
      else
        snprintf(err, errlen, "no socket at %s: %s", target, strerror(errno));
      return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
      snprintf(err, errlen, "%s is not a socket", target);
      return -1;
    }
    snprintf(path, pathlen, "%s", target);
    return 0;
  }
  if (ts_parse_pid(target, pid) != 0) {
    snprintf(err, errlen,
             "'%s' is neither a process id nor a socket path (a path contains '/')", target);
    return -1;
  }
  char dirs[4][256];
  size_t nd = ta_socket_dirs(dirs, 4);
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
    if (!process_exists(*pid)) {
      snprintf(err, errlen, "no such process: %d (its socket %s is stale)", *pid, p);
      return -1;
    }
    snprintf(path, pathlen, "%s", p);
    return 0;
  }
  if (!process_exists(*pid)) {
    snprintf(err, errlen, "no such process: %d", *pid);
    return -1;
  }
  char comm[64];
  ta_program(*pid, comm, sizeof comm);
  if (denied) {
    snprintf(err, errlen,
             "permission denied: cannot look into the socket directory of process %d (%s); "
             "attach as its user or root",
             *pid, comm);
    return -1;
  }
  char looked[600] = "";
  size_t off = 0;
  for (size_t i = 0; i < nd && off < sizeof looked; i++)
    off += (size_t)snprintf(looked + off, sizeof looked - off, "%s%s/", i ? ", " : "", dirs[i]);
  snprintf(err, errlen,
           "process %d (%s) is not instrumented: it has no taskscope inspector socket (looked in "
           "%s); it does not use libtaskscope, or its inspector is off "
           "(TASKSCOPE_OPTIONS=socket=off) or elsewhere (pass the socket path instead)",
           *pid, comm, looked);
  return -1;
}
