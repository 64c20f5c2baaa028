/*
 * target.h — from a command line's PID (or socket path) to a connected inspector session, with
 * a precise reason when that is impossible.
 */
#ifndef TASKSCOPE_CLI_TARGET_H
#define TASKSCOPE_CLI_TARGET_H

#include "pid_arg.h"
#include "cli.h"
#include "conn.h"

#include <stddef.h>

#define TS_MAX_SOCKET_DIRS 4

/* The directories where processes of user `uid` put their sockets, in search order:
 * $XDG_RUNTIME_DIR/taskscope (when set and uid is ours), /tmp/taskscope-<uid>, and for another
 * user (root attaching to it) /run/user/<uid>/taskscope. Returns how many were written. */
size_t ts_socket_dirs(unsigned uid, char dirs[][256], size_t max);

/* Connects to the process named by `target`: a PID (its socket is looked for in the socket
 * directories, then among the Unix sockets the process listens on) or a socket path (anything
 * containing '/'). On failure prints why and returns the exit code (TS_EXIT_USAGE for a target
 * that is neither, TS_EXIT_ATTACH otherwise); 0 on success. */
int ts_attach(const ts_ctx *ctx, const char *target, ts_conn *c);


/* Whether process pid exists (kill(pid, 0) succeeds or fails with EPERM). */
int ts_process_exists(int pid);

#endif
