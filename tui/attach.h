/*
 * attach.h — finding the inspector socket of a process: the processes listed in the socket
 * directories (inspector/common/sockdir.h, shared with the CLI), and a PID or path argument
 * turned into a socket path with a precise reason when that is impossible.
 */
#ifndef TASKSCOPE_TUI_ATTACH_H
#define TASKSCOPE_TUI_ATTACH_H

#include "sockdir.h"

#include <stddef.h>

#define TA_PATH_MAX 108 /* sizeof(sockaddr_un.sun_path) */

typedef struct ta_proc {
  int pid;
  char path[TA_PATH_MAX];
  char program[64]; /* /proc/PID/comm, "?" when unknown */
} ta_proc;

/* The sockets "<pid>.sock" in the socket directories whose process exists, sorted by pid; stale
 * sockets (no such process) are left out. Returns how many were found (may exceed max). */
size_t ta_scan(ta_proc *out, size_t max);

/* ta_resolve's failures. */
enum { TA_NOT_TARGET = -2, TA_CANNOT_ATTACH = -1 };

/* Turns a command-line target into a socket path: a path (contains '/') is taken as is; a PID
 * is looked up in the socket directories (the caller's and the process owner's), then among
 * the sockets the process listens on (socket=PATH). Returns 0, or TA_NOT_TARGET (neither a
 * PID nor a path: a usage error) or TA_CANNOT_ATTACH (no such process; not instrumented;
 * permission denied; not a socket), with a full sentence in err. */
int ta_resolve(const char *target, char *path, size_t pathlen, int *pid, char *err, size_t errlen);

#endif
