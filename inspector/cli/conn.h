/*
 * conn.h — a client connection to an inspector server (inspector/PROTOCOL.md, version 1):
 * connect, the hello exchange, requests matched to their answers by id.
 *
 * Every wait is bounded: the timeout is an inactivity timeout (the connection fails when no byte
 * arrives or can be sent for that long), so a long snapshot that keeps arriving is read to the
 * end, and a silent server never hangs the client. Messages may be of any length up to
 * TS_CONN_MAX_LINE bytes.
 */
#ifndef TASKSCOPE_CLI_CONN_H
#define TASKSCOPE_CLI_CONN_H

#include <jansson.h>
#include <stddef.h>

#define TS_CONN_MAX_LINE ((size_t)1 << 30)

/* Why a connection or request failed (ts_conn.err holds the message). */
typedef enum ts_conn_status {
  TS_CONN_OK = 0,
  TS_CONN_NOENT,      /* no socket at that path */
  TS_CONN_STALE,      /* the socket file exists but nothing listens on it */
  TS_CONN_PERM,       /* permission denied */
  TS_CONN_TIMEOUT,    /* no answer within the timeout */
  TS_CONN_CLOSED,     /* the server closed the connection */
  TS_CONN_VERSION,    /* the server speaks another protocol version */
  TS_CONN_BUSY,       /* the server has too many clients */
  TS_CONN_MALFORMED,  /* the server sent something that is not the protocol */
  TS_CONN_NO_TASK,    /* the server answered error no_such_task */
  TS_CONN_ERROR,      /* another error answer, or an I/O error */
} ts_conn_status;

typedef struct ts_conn {
  int fd;
  int timeout_ms;
  char *buf; /* received bytes not yet consumed: buf[start .. len); owned */
  size_t start, len, cap, scanned;
  long long next_id;
  /* from the server's hello */
  long long pid;
  char *program; /* owned */
  long long version;
  char path[128];
  char err[512]; /* the last failure, a full sentence without the "taskscope: " prefix */
} ts_conn;

/* Connects to the socket at `path`, reads the server's hello, checks the protocol and version,
 * and sends the client's hello. On failure the connection is closed and the status says why. */
ts_conn_status ts_conn_open(ts_conn *c, const char *path, int timeout_ms);

/* Sends `req` (consumed; an "id" is added) and waits for the answer with the same id, skipping
 * other messages. The answer must have type `want`; an "error" answer gives TS_CONN_NO_TASK
 * (code no_such_task) or TS_CONN_ERROR with the server's message in err. On success *answer is
 * the answer (the caller owns it). */
ts_conn_status ts_conn_request(ts_conn *c, json_t *req, const char *want, json_t **answer);

/* The same, for an answer that may be large (a snapshot): when the answer's line is long (at
 * least TSJ_SPLIT_MIN bytes), valid JSON, and has a top-level `key` whose value is an array,
 * that array's text is split off into *raw (the caller owns it: ts_conn_raw_free, or
 * ts_snapshot_parse_split) and *answer has an empty array in its place; otherwise *raw is
 * empty (owner NULL) and *answer is the whole answer. Behaviour and errors are those of
 * ts_conn_request: what is split off is read by the caller with the same checks (fastjson.h). */
typedef struct ts_conn_raw {
  char *owner; /* the buffer holding text (owned; NULL: nothing split off) */
  size_t owner_size;
  char *text;  /* the array's JSON text, not NUL-terminated */
  size_t len;
} ts_conn_raw;
ts_conn_status ts_conn_request_split(ts_conn *c, json_t *req, const char *want, const char *key,
                                     json_t **answer, ts_conn_raw *raw);
void ts_conn_raw_free(ts_conn_raw *raw);

void ts_conn_close(ts_conn *c);

/* The exit code for a failure: TS_EXIT_USAGE for TS_CONN_NO_TASK, TS_EXIT_ATTACH otherwise. */
int ts_conn_exit_code(ts_conn_status st);

#endif
