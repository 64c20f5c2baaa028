/*
 * sockdir.c — socket directories, "<pid>.sock" names, process names (see sockdir.h).
 */
#include "sockdir.h"

#include "pid_arg.h"

#include <errno.h>
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
