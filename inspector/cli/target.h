/*
 * target.h — from a command line's PID (or socket path) to a connected inspector session, with
 * a precise reason when that is impossible.
 */
#ifndef TASKSCOPE_CLI_TARGET_H
#define TASKSCOPE_CLI_TARGET_H

#include "cli.h"
#include "conn.h"
#include "pid_arg.h"
#include "sockdir.h" /* the socket directories, shared with taskscope-top */

/* Connects to the process named by `target`: a PID (its socket is looked for in the socket
 * directories, then among the Unix sockets the process listens on) or a socket path (anything
 * containing '/'). On failure prints why and returns the exit code (TS_EXIT_USAGE for a target
 * that is neither, TS_EXIT_ATTACH otherwise); 0 on success. */
int ts_attach(const ts_ctx *ctx, const char *target, ts_conn *c);

#endif
