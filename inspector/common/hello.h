/*
 * hello.h — the protocol version and the hello exchange (inspector/PROTOCOL.md, "Session"),
 * shared by the `taskscope` CLI and `taskscope-top`: what a valid server hello is, and the
 * client's answer.
 */
#ifndef TASKSCOPE_HELLO_H
#define TASKSCOPE_HELLO_H

#include <jansson.h>

/* The inspector protocol version these clients speak. */
#define TS_PROTOCOL_VERSION 1
#ifndef TASKSCOPE_VERSION
#define TASKSCOPE_VERSION "0.0.0"
#endif

typedef enum tsc_hello_status {
  TSC_HELLO_OK = 0,
  TSC_HELLO_REFUSED,     /* an "error" instead of the hello: code and message are set */
  TSC_HELLO_FOREIGN,     /* not {"type":"hello","protocol":"taskscope",...}: another socket */
  TSC_HELLO_BAD_VERSION, /* hello.version is not an integer */
  TSC_HELLO_VERSION,     /* another protocol version (in version) */
  TSC_HELLO_BAD_PID,     /* hello.pid is not an integer */
} tsc_hello_status;

/* A server's first message, checked. Strings are borrowed from the message ("" when absent). */
typedef struct tsc_hello {
  long long version, pid;
  const char *program, *server;
  const char *code, *message; /* of an error (TSC_HELLO_REFUSED) */
} tsc_hello;

tsc_hello_status tsc_hello_parse(json_t *m, tsc_hello *h);

/* The client's hello: {"type":"hello","version":1,"client":CLIENT}; NULL when out of memory. */
json_t *tsc_hello_reply(const char *client);

/* Whether a taskscope inspector answers at the Unix socket path: connects, reads the server's
 * first line (at most timeout_ms), and checks it is a hello (any version: a mismatch is for the
 * real session to report). Closes without answering. 1 yes, 0 no (refused, silent, foreign). */
int tsc_probe_hello(const char *path, int timeout_ms);

#endif
