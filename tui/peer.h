/*
 * peer.h — a non-blocking newline-delimited JSON connection to an inspector socket.
 *
 * Nothing here waits: tp_read reads what the socket has (up to a budget, so one huge snapshot
 * cannot keep the caller from its terminal for long), tp_next reads complete lines out of the
 * buffer, tp_send queues a message and tp_flush writes what the socket accepts. The caller polls
 * tp.fd for POLLIN, and for POLLOUT while tp_want_write.
 */
#ifndef TASKSCOPE_TUI_PEER_H
#define TASKSCOPE_TUI_PEER_H

#include <jansson.h>
#include <stddef.h>

/* The largest message accepted from a server (a snapshot of a million tasks is ~250 MiB). */
#define TP_MAX_LINE ((size_t)1 << 30)

typedef enum tp_status {
  TP_OK = 0,
  TP_NOENT,   /* no socket at the path */
  TP_REFUSED, /* a socket file, but nothing listens (the process is gone) */
  TP_PERM,    /* permission denied */
  TP_ERROR,   /* anything else (err says what) */
} tp_status;

typedef struct tp_peer {
  int fd; /* -1 when closed; owned */
  char *rbuf; /* received bytes: rbuf[rstart .. rlen); owned */
  size_t rstart, rlen, rcap, scanned;
  char *wbuf; /* bytes to send: wbuf[woff .. wlen); owned */
  size_t woff, wlen, wcap;
  int eof; /* the server closed its side */
  char err[256];
} tp_peer;

void tp_init(tp_peer *p);
/* Connects (non-blocking socket; a Unix socket connects at once or fails). */
tp_status tp_connect(tp_peer *p, const char *path);
void tp_close(tp_peer *p);

/* Reads at most `budget` bytes. Returns the bytes read (0 when none were waiting), or -1 when
 * the connection failed or was closed (p->eof set; err says why). Complete lines already read
 * stay available to tp_next. */
long tp_read(tp_peer *p, size_t budget);
/* The next complete message, parsed: 1 and *msg (caller owns), 0 when no complete line is
 * buffered, -1 when a line is not a JSON object (err says why; the line is skipped). Blank lines
 * are skipped. */
int tp_next(tp_peer *p, json_t **msg);

/* Queues msg (not consumed) as one line. 0, or -1 when it cannot be encoded. */
int tp_send(tp_peer *p, json_t *msg);
/* Writes queued bytes. 0 (all or some written), -1 on a failed connection. */
int tp_flush(tp_peer *p);
int tp_want_write(const tp_peer *p);

#endif
