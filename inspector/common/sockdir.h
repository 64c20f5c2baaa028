/*
 * sockdir.h — where inspector sockets live, shared by the `taskscope` CLI and `taskscope-top`:
 * the per-user socket directories, "<pid>.sock" names, and the checks made before connecting.
 */
#ifndef TASKSCOPE_SOCKDIR_H
#define TASKSCOPE_SOCKDIR_H

#include <stddef.h>

#define TSC_MAX_SOCKET_DIRS 4
#define TSC_DIR_MAX 256

/* The directories where processes of user `uid` put their sockets, in search order:
 * $XDG_RUNTIME_DIR/taskscope (when set and uid is ours), /tmp/taskscope-<uid>, and for another
 * user (root attaching to it) /run/user/<uid>/taskscope. Returns how many were written. */
size_t tsc_socket_dirs(unsigned uid, char dirs[][TSC_DIR_MAX], size_t max);

/* "DIR/, DIR/" (for messages) into out. */
void tsc_dirs_text(char dirs[][TSC_DIR_MAX], size_t nd, char *out, size_t n);

/* Whether name is "<pid>.sock" (pid as ts_parse_pid takes it); stores the pid. */
int tsc_socket_file_pid(const char *name, int *pid);

/* Whether process pid exists (kill(pid, 0) succeeds or fails with EPERM). */
int tsc_process_exists(int pid);

/* The process's short name (/proc/PID/comm, control characters as '?'), or "?". */
void tsc_process_name(int pid, char *out, size_t n);

/* 0 when path names a socket; else -1 and a sentence in err: "no socket at PATH: ...",
 * "permission denied: cannot reach PATH", "PATH is not a socket". */
int tsc_check_socket_path(const char *path, char *err, size_t errlen);

#endif
