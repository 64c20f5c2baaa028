/*
 * session.h — a live inspector session: the hello exchange, the subscription, requests with ids,
 * and reconnection.
 *
 * States: DOWN (not connected; a retry is due at next_retry_ms, once a second) -> HELLO
 * (connected, waiting for the server's hello) -> SUBSCRIBING (hellos exchanged, subscribe sent,
 * waiting for the snapshot) -> LIVE. Any failure goes back to DOWN with the reason in `err`.
 * Nothing blocks: the caller polls the fd (ts_sess_events) and calls ts_sess_io.
 *
 * When the process restarts, its socket path is tried again every second; when the session was
 * attached to a PID and that socket is gone for good, the only socket in the socket directories
 * of a process with the same program name is taken instead (a restarted process has a new pid).
 */
#ifndef TASKSCOPE_TUI_SESSION_H
#define TASKSCOPE_TUI_SESSION_H

#include "attach.h"
#include "hello.h" /* TS_PROTOCOL_VERSION, the hello exchange (shared with the CLI) */
#include "peer.h"

#include <jansson.h>
#include <stdint.h>

typedef enum ts_sess_state {
  TS_SESS_DOWN,
  TS_SESS_HELLO,
  TS_SESS_SUBSCRIBING,
  TS_SESS_LIVE,
} ts_sess_state;

typedef struct ts_sess {
  tp_peer peer;
  ts_sess_state state;
  char path[TA_PATH_MAX];
  int by_pid;          /* attached by PID: may follow a restarted program */
  int interval_ms;     /* subscription interval */
  int64_t pid;         /* from the server's hello */
  char program[64];    /* from the server's hello */
  int64_t next_id;
  int64_t subscribe_id; /* the id of the current subscribe request */
  int64_t connects;     /* successful subscriptions so far */
  double next_retry_ms;
  double since_ms;      /* when the current state began */
  char err[512];
} ts_sess;

void ts_sess_init(ts_sess *s, const char *path, int by_pid, int interval_ms);
void ts_sess_close(ts_sess *s);

/* Starts a connection attempt now. */
void ts_sess_connect(ts_sess *s, double now_ms);
/* What to poll the fd for (0 when there is no fd). */
short ts_sess_events(const ts_sess *s);
/* Does the I/O the poll reported, and retries when due. For each message that is not part of
 * the hello exchange, calls on_msg (the snapshot of the subscription, deltas, answers). At most
 * `budget` bytes are read. Returns 1 when the state changed (redraw the header). */
int ts_sess_io(ts_sess *s, short revents, double now_ms, size_t budget,
               void (*on_msg)(void *ctx, json_t *msg), void *ctx);

/* Sends a request (msg gets an "id"; not consumed). Returns the id, or -1 when not LIVE. */
int64_t ts_sess_request(ts_sess *s, json_t *msg);
/* Drops the subscription and asks for a fresh one (a new snapshot replaces the view; deltas of
 * the old one are ignored). */
void ts_sess_resubscribe(ts_sess *s);

double ts_now_ms(void);

#endif
