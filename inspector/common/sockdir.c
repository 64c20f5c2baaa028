/*
 * sockdir.c — socket directories, "<pid>.sock" names, process names (see sockdir.h).
 */
#include "sockdir.h"

#include "pid_arg.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

size_t tsc_socket_dirs(unsigned uid, char dirs[][TSC_DIR_MAX], size_t max) {
  size_t n = 0;
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  int ours = uid == (unsigned)getuid();
  if (ours && xdg && *xdg && n < max) snprintf(dirs[n++], TSC_DIR_MAX, "%s/taskscope", xdg);
  if (n < max) snprintf(dirs[n++], TSC_DIR_MAX, "/tmp/taskscope-%u", uid);
  if (!ours && n < max) snprintf(dirs[n++], TSC_DIR_MAX, "/run/user/%u/taskscope", uid);
  return n;
}

size_t tsc_pid_socket_dirs(int pid, char dirs[][TSC_DIR_MAX], size_t max) {
  unsigned me = (unsigned)getuid(), owner = me;
  char procdir[64];
  struct stat st;
  snprintf(procdir, sizeof procdir, "/proc/%d", pid);
  if (stat(procdir, &st) == 0) owner = (unsigned)st.st_uid;
  size_t n = tsc_socket_dirs(me, dirs, max);
  if (owner != me && n < max) n += tsc_socket_dirs(owner, dirs + n, max - n);
  return n;
}

static int cmp_ul(const void *a, const void *b) {
  unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
  return x < y ? -1 : x > y;
}

size_t tsc_listening_sockets(int pid, char paths[][TSC_SOCK_PATH_MAX], size_t max) {
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
      size_t ncap = cap ? cap * 2 : 32;
      unsigned long *grown = realloc(inodes, ncap * sizeof *inodes);
      if (!grown) break;
      inodes = grown;
      cap = ncap;
    }
    inodes[ni++] = ino;
  }
  closedir(d);
  size_t np = 0;
  if (ni == 0) {
    free(inodes);
    return 0;
  }
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
    size_t len = strlen(path);
    if (len >= TSC_SOCK_PATH_MAX) continue;
    memcpy(paths[np++], path, len + 1);
  }
  fclose(f);
  free(inodes);
  return np;
}

void tsc_dirs_text(char dirs[][TSC_DIR_MAX], size_t nd, char *out, size_t n) {
  size_t off = 0;
  if (n) out[0] = '\0';
  for (size_t i = 0; i < nd && off < n; i++)
    off += (size_t)snprintf(out + off, n - off, "%s%s/", i ? ", " : "", dirs[i]);
}

int tsc_socket_file_pid(const char *name, int *pid) {
  const char *dot = strrchr(name, '.');
  if (!dot || strcmp(dot, ".sock") != 0 || dot == name) return 0;
  char digits[16];
  size_t n = (size_t)(dot - name);
  if (n >= sizeof digits) return 0;
  memcpy(digits, name, n);
  digits[n] = '\0';
  return ts_parse_pid(digits, pid) == 0;
}

int tsc_process_exists(int pid) {
  return kill(pid, 0) == 0 || errno == EPERM;
}

void tsc_process_name(int pid, char *out, size_t n) {
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

int tsc_check_socket_path(const char *path, char *err, size_t errlen) {
  struct stat st;
  if (stat(path, &st) != 0) {
    if (errno == EACCES)
      snprintf(err, errlen, "permission denied: cannot reach %s", path);
    else
      snprintf(err, errlen, "no socket at %s: %s", path, strerror(errno));
    return -1;
  }
  if (!S_ISSOCK(st.st_mode)) {
    snprintf(err, errlen, "%s is not a socket", path);
    return -1;
  }
  return 0;
}
