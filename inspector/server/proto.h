/*
 * proto.h — the inspector protocol's client side of the wire, as the server reads it: line
 * framing, parsing and validation of one message, the hello rule, and error replies.
 * Independent of sockets and of the runtime (it needs jansson and json.h only), so that the
 * fuzz target (tests/fuzz/fuzz_protocol.c) runs it in isolation. The contract is
 * inspector/PROTOCOL.md.
 */
#ifndef TSK_PROTO_H
#define TSK_PROTO_H

#include "json.h"

#include <stddef.h>
#include <stdint.h>

#define TSK__PROTO_VERSION 1
#define TSK__PROTO_LINE_MAX 65536 /* bytes of a client line, without its '\n' */

/* Error codes (PROTOCOL.md, "Errors"). */
typedef enum {
  TSK__PE_OK = 0,
  TSK__PE_BAD_JSON,
  TSK__PE_TOO_LONG,
  TSK__PE_NO_HELLO,
  TSK__PE_VERSION_MISMATCH,
  TSK__PE_UNKNOWN_TYPE,
  TSK__PE_MISSING_FIELD,
  TSK__PE_BAD_FIELD,
  TSK__PE_NO_SUCH_TASK,
  TSK__PE_TIMEOUT,
  TSK__PE_BUSY,
  TSK__PE_INTERNAL,
  TSK__PE_FORBIDDEN
} tsk__perr;

/* "bad_json", "too_long", ... */
const char *tsk__perr_code(tsk__perr e);
/* Whether the server closes the connection after sending this error. */
int tsk__perr_closes(tsk__perr e);

typedef enum {
  TSK__MSG_HELLO = 1,
  TSK__MSG_SNAPSHOT,
  TSK__MSG_SUBSCRIBE,
  TSK__MSG_UNSUBSCRIBE,
  TSK__MSG_WHERE,
  TSK__MSG_CANCEL,
  TSK__MSG_LEAKS,
  TSK__MSG_PING
} tsk__msg_type;

#define TSK__PROTO_INTERVAL_DEFAULT 1000
#define TSK__PROTO_INTERVAL_MIN 50
#define TSK__PROTO_INTERVAL_MAX 60000
#define TSK__PROTO_TIMEOUT_DEFAULT 1000
#define TSK__PROTO_TIMEOUT_MAX 60000

/* One validated request. Fields that do not apply to the type keep their defaults. */
typedef struct tsk__msg {
  tsk__msg_type type;
  int has_id;          /* the request carried a valid "id" */
  int64_t id;
  int64_t version;     /* hello */
  int64_t interval_ms; /* subscribe */
  uint64_t task;       /* where, cancel */
  int64_t timeout_ms;  /* where, cancel, leaks */
  int pending;         /* leaks */
} tsk__msg;

/* Parses and validates one line (len bytes, without the '\n'; it need not be NUL-terminated).
 * Returns TSK__PE_OK with *m filled, or an error code with a one-line reason in err naming the
 * field. Even on error, m->has_id/m->id are set when the line was an object with a valid
 * "id", so that the error can repeat it. */
tsk__perr tsk__proto_parse(const char *line, size_t len, tsk__msg *m, char *err, size_t errlen);

/* The session rule: a client's first message must be hello, with our version. Returns
 * TSK__PE_OK (and records the hello), TSK__PE_NO_HELLO or TSK__PE_VERSION_MISMATCH (err
 * filled). */
typedef struct tsk__proto_session {
  int hello_done;
} tsk__proto_session;
tsk__perr tsk__proto_session_check(tsk__proto_session *s, const tsk__msg *m, char *err,
                                   size_t errlen);

/* Appends {"type":"error","id":..,"code":..,"message":..} and a newline to b; the id only when
 * m is given and carried one. */
void tsk__proto_error(tsk__jbuf *b, const tsk__msg *m, tsk__perr e, const char *message);

/* Line framing over a byte stream. Ownership: the framer owns buf (tsk__framer_free). */
typedef struct tsk__framer {
  char *buf;
  size_t start, len, cap; /* unread bytes are buf[start .. len) */
} tsk__framer;
/* 0 or -1 (out of memory). The buffer holds a longest line, its '\n' and one more read. */
int tsk__framer_init(tsk__framer *f);
void tsk__framer_free(tsk__framer *f);
/* Where the next read may write: at most *room bytes at the returned pointer (moves unread
 * bytes to the front first). *room is 0 only when a too-long line is pending. */
char *tsk__framer_space(tsk__framer *f, size_t *room);
/* n bytes were written at the space returned. */
void tsk__framer_wrote(tsk__framer *f, size_t n);
/* The next complete line: returns 1 with *line and *len (without the '\n'; a trailing '\r' is
 * kept and ignored by the JSON parser as whitespace), 0 when no line is complete, -1 when the
 * line being read is longer than TSK__PROTO_LINE_MAX. */
int tsk__framer_next(tsk__framer *f, const char **line, size_t *len);
/* Copies data in (for tests and the fuzz target). Returns the bytes taken (less than n when the
 * buffer is full: read lines out with tsk__framer_next, then feed the rest). */
size_t tsk__framer_feed(tsk__framer *f, const char *data, size_t n);

#endif
