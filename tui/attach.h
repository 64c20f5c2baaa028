/*
 * attach.h — finding the inspector socket of a process: the socket directories, the processes
 * listed there, and a PID or path argument turned into a socket path with a precise reason when
 * that is impossible.
 */
#ifndef TASKSCOPE_TUI_ATTACH_H
#define TASKSCOPE_TUI_ATTACH_H

#include <stddef.h>

#define TA_PATH_MAX 108 /* sizeof(sockaddr_un.sun_path) */

typedef struct ta_proc {
  int pid;
  char path[TA_PATH_MAX];
  char program[64]; /* /proc/PID/comm, "?" when unknown */
  int alive;        /* the process exists */
} ta_proc;

/* The socket directories, in search order: $XDG_RUNTIME_DIR/taskscope (when set), then
 * /tmp/taskscope-<uid>. Returns how many. */
size_t ta_socket_dirs(char dirs[][256], size_t max);

/* The sockets "<pid>.sock" in the socket directories whose process exists, sorted by pid; stale
 * sockets (no such process) are left out. Returns how many were found (may exceed max). */
size_t ta_scan(ta_proc *out, size_t max);

/* The short name of a process (/proc/PID/comm) into out; "?" when unknown. */
void ta_program(int pid, char *out, size_t n);

/* Turns a command-line target into a socket path: a path (contains '/') is taken as is; a PID
 * is looked up in the socket directories. Returns 0, or -1 with a full sentence in err (no such
 * process; not instrumented; permission denied; not a PID). */
int ta_resolve(const char *target, char *path, size_t pathlen, int *pid, char *err, size_t errlen);

#endif
