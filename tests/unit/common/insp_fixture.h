/*
 * insp_fixture.h — what the inspector server's unit tests share (test_inspector.c,
 * test_inspector_bulk.c): a private socket directory for the process, clocks, and a raw
 * connection to the process's own inspector socket.
 *
 * insp_fixture_init makes a fresh directory under /tmp and points XDG_RUNTIME_DIR at it before
 * the first runtime exists, so the server's socket is g_sock; insp_fixture_done removes it.
 */
#ifndef INSP_FIXTURE_H
#define INSP_FIXTURE_H

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static char g_tmp[256];  /* the private XDG_RUNTIME_DIR */
static char g_sock[512]; /* this process's inspector socket in it */

static inline uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* name: a short tag for the directory (/tmp/tsk-NAME-XXXXXX). 0, or -1 when it cannot be made. */
static inline int insp_fixture_init(const char *name) {
  snprintf(g_tmp, sizeof g_tmp, "/tmp/tsk-%s-XXXXXX", name);
  if (!mkdtemp(g_tmp)) return -1;
  setenv("XDG_RUNTIME_DIR", g_tmp, 1);
  setenv("TASKSCOPE_OPTIONS", "report_text=off", 1);
  snprintf(g_sock, sizeof g_sock, "%s/taskscope/%d.sock", g_tmp, (int)getpid());
  signal(SIGPIPE, SIG_IGN);
  return 0;
}

/* Removes the directory; 0, or non-zero when that failed. */
static inline int insp_fixture_done(void) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
  return system(cmd);
}

/* A connected socket to g_sock, or -1. */
static inline int raw_connect(void) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  size_t n = strlen(g_sock);
  if (n >= sizeof addr.sun_path) {
    close(fd);
    return -1;
  }
  memcpy(addr.sun_path, g_sock, n + 1);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

#endif
