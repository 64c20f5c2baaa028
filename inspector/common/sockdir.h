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

/* The directories where process pid's socket may be, in search order: the caller's user's,
 * then (root looking at another user's process) its owner's. Returns how many were written;
 * max should allow 2 * TSC_MAX_SOCKET_DIRS. */
size_t tsc_pid_socket_dirs(int pid, char dirs[][TSC_DIR_MAX], size_t max);

/* The paths of the Unix stream sockets process pid listens on (/proc/PID/fd and /proc/net/unix),
 * for a process whose socket is elsewhere (TASKSCOPE_OPTIONS=socket=PATH). Only for processes
 * whose /proc/PID/fd the caller may read (its own, or any as root). Returns how many. */
#define TSC_SOCK_PATH_MAX 128
size_t tsc_listening_sockets(int pid, char paths[][TSC_SOCK_PATH_MAX], size_t max);

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
