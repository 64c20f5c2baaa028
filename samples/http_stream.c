/*
 * http_stream — a streaming HTTP/1.1 client with a per-chunk timeout, and what a timeout leaves
 * behind when nobody cleans up.
 *
 * The story: a service consumes a streamed HTTP response (Transfer-Encoding: chunked), reading
 * every chunk with a per-read timeout so that a stalled upstream cannot hang it. When the stream
 * stalls, the read times out and the client... just returns. The connection stays open, so the
 * server-side handler never learns that its client left: it sits waiting for its upstream, and
 * the helper task it started to watch the request body (and the client's disconnect) sits in a
 * read that will never complete. On top of that the client reports the stall with a
 * fire-and-forget "log upload" task: the log collector answers 503, the task fails, and nobody
 * ever looks at its error.
 *
 * The sample starts its own small HTTP server on 127.0.0.1 (port 0; loopback only): GET
 * /stream?chunks=N sends N chunks a few ms apart, GET /stream?chunks=N&stall=K stalls forever
 * after K chunks, POST /logs answers 503. The client parses chunked encoding properly (chunk
 * size lines, extensions, data, CRLF, the last chunk and trailers) and reads each chunk with a
 * tsk_tcp_read timeout (--timeout MS).
 *
 * Default (buggy) mode: fetch_stream() returns on the timeout without closing the stream, the
 * server's http_server accept loop spawns its handlers fire-and-forget (detached), and
 * report_stall() detaches the upload task. The leak report at tsk_runtime_close shows:
 *   - destroyed_pending: "http_handler" (suspended in wait_for_upstream, awaiting an event) and
 *     "request_body_reader" (created by http_handler, awaiting I/O: a read);
 *   - unretrieved_error: "upload_stall_log" (created in report_stall; "log upload rejected:
 *     HTTP 503").
 *
 * --fixed: the client shuts the stream down and closes it (tsk_tcp_shutdown + tsk_tcp_close), so
 * the server's request_body_reader sees end of stream and wakes its handler, which cancels and
 * joins the reader and closes its side; the server keeps its handlers in a task group that it
 * closes at shutdown; the upload task is joined and its error printed. The report is empty.
 *
 *   http_stream [--fixed] [--requests N] [--chunks N] [--timeout MS] [--help]
 */
#include "taskscope.h"
#include "common/sample.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))
#define CHUNK_DELAY_MS 10
#define IO_TIMEOUT_MS 5000 /* everything but the client's per-chunk reads */

typedef struct app app;

/* A server connection. Owner: app.conns (freed after tsk_runtime_close, since in the buggy mode
 * tasks destroyed by the close still refer to it). */
typedef struct conn {
  struct conn *next;
  app *a;
  tsk_tcp_t *tcp;      /* closed by http_handler (or by the runtime close) */
  tsk_event_t *wake;   /* set when the client is gone (or, in theory, when upstream has data) */
  int client_gone;
} conn;

struct app {
  tsk_runtime_t *rt;
  int fixed;
  int requests;        /* GET /stream requests; the second one stalls */
  int chunks;          /* chunks per stream */
  int timeout_ms;      /* client: per-read timeout */
  tsk_tcp_t *listener;
  struct sockaddr_in addr;
  conn *conns;
  int connections;     /* accepted so far */
  int handlers_live;   /* http_handler tasks started and not ended */
  int failures;        /* unexpected outcomes */
  char log_body[256];  /* what upload_stall_log sends */
};

/* ============================================================================================
 * Buffered reading with a per-read timeout (the client's, also used by the server for heads)
 * ========================================================================================== */
#include "common/line_reader.h"

/* ============================================================================================
 * The server
 * ========================================================================================== */

/* Watches the rest of the request (and the client's disconnect): any end of the client's
 * stream, orderly or not, wakes the handler. */
static int request_body_reader(void *arg) {
  conn *c = arg;
  char buf[512];
  for (;;) {
    ssize_t n = tsk_tcp_read(c->tcp, buf, sizeof buf, TSK_FOREVER);
    if (n > 0) continue; /* a GET has no body: ignore what a client may pipeline */
    if (n == TSK_ECANCELED) return TSK_ECANCELED;
    c->client_gone = 1;
    tsk_event_set(c->wake);
    return 0;
  }
}

/* The stall: the upstream that should produce the next chunk never does (nothing ever sets
 * c->wake for it), so the handler waits here until its client is gone — forever, if the client
 * leaves the connection open. */
static NOINLINE int wait_for_upstream(conn *c) {
  while (!c->client_gone) {
    int rc = tsk_event_wait(c->wake, TSK_FOREVER);
    if (rc) return rc;
  }
  return TSK_ECLOSED;
}

static int send_text(tsk_tcp_t *t, const char *s) {
  return tsk_tcp_write(t, s, strlen(s), IO_TIMEOUT_MS);
}

/* Query parameter name=value of a request target, or def. */
static int query_int(const char *target, const char *name, int def) {
  const char *q = strchr(target, '?');
  size_t len = strlen(name);
  while (q) {
    q++;
    if (strncmp(q, name, len) == 0 && q[len] == '=') return atoi(q + len + 1);
    q = strchr(q, '&');
  }
  return def;
}

/* GET /stream: headers, then chunks; stalls after `stall` chunks when asked to. */
static NOINLINE int serve_stream(conn *c, const char *target) {
  int chunks = query_int(target, "chunks", 8), stall = query_int(target, "stall", -1);
  int rc = send_text(c->tcp, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
  if (rc) return rc;
  tsk_task_t reader_task;
  if ((rc = tsk_spawn(c->a->rt, &reader_task, "request_body_reader", request_body_reader, c)))
    return rc;
  for (int i = 0; i < chunks && rc == 0; i++) {
    if (i == stall && (rc = wait_for_upstream(c)) != 0) break;
    char data[600];
    int len = snprintf(data, sizeof data, "chunk %d of %d: ", i + 1, chunks);
    int fill = 60 + (i * 37) % 300;
    for (int k = 0; k < fill && len < (int)sizeof data - 1; k++) data[len++] = (char)('a' + k % 26);
    data[len++] = '\n';
    char head[32];
    int hl = snprintf(head, sizeof head, "%x%s\r\n", (unsigned)len, i == 0 ? ";first" : "");
    if ((rc = tsk_tcp_write(c->tcp, head, (size_t)hl, IO_TIMEOUT_MS)) == 0 &&
        (rc = tsk_tcp_write(c->tcp, data, (size_t)len, IO_TIMEOUT_MS)) == 0 &&
        (rc = send_text(c->tcp, "\r\n")) == 0)
      rc = tsk_sleep(CHUNK_DELAY_MS);
  }
  if (rc == 0) rc = send_text(c->tcp, "0\r\nX-Chunks-Sent: done\r\n\r\n");
  /* The helper is ours: stop it and wait for it, whatever happened. */
  tsk_cancel(reader_task);
  tsk_join(reader_task, TSK_FOREVER, NULL);
  return rc == TSK_ECLOSED ? 0 : rc; /* the client leaving is not the server's failure */
}

/* POST /logs: the log collector is down. */
static int serve_logs(conn *c, reader *r, const char *head) {
  size_t clen = 0;
  for (const char *h = strchr(head, '\n'); h; h = strchr(h, '\n')) {
    h++;
    if (strncasecmp(h, "Content-Length:", 15) == 0) clen = strtoul(h + 15, NULL, 10);
  }
  int rc = rd_skip(r, clen);
  if (rc) return rc;
  return send_text(c->tcp, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 22\r\n"
                           "Connection: close\r\n\r\ncollector unavailable\n");
}

/* One connection: reads the request head, dispatches, closes. */
static int http_handler(void *arg) {
  conn *c = arg;
  app *a = c->a;
  a->handlers_live++;
  reader r = {.tcp = c->tcp, .timeout_ms = IO_TIMEOUT_MS};
  char head[2048] = "", line[1024];
  size_t hlen = 0;
  int rc;
  while ((rc = rd_line(&r, line, sizeof line)) == 0 && line[0]) {
    hlen += (size_t)snprintf(head + hlen, sizeof head - hlen, "%s\n", line);
    if (hlen >= sizeof head - 1) {
      rc = TSK_EFULL;
      break;
    }
  }
  char method[16], target[512];
  if (rc == 0 && sscanf(head, "%15s %511s", method, target) == 2) {
    if (strcmp(method, "GET") == 0 && strncmp(target, "/stream", 7) == 0)
      rc = serve_stream(c, target);
    else if (strcmp(method, "POST") == 0 && strcmp(target, "/logs") == 0)
      rc = serve_logs(c, &r, head);
    else
      rc = send_text(c->tcp, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                             "Connection: close\r\n\r\n");
  }
  if (rc != TSK_ECLOSED) tsk_tcp_shutdown(c->tcp);
  tsk_tcp_close(c->tcp);
  c->tcp = NULL;
  a->handlers_live--;
  return rc == TSK_ECLOSED ? 0 : rc;
}

/* Accepts connections until cancelled. Buggy mode: each handler is spawned and detached (fire
 * and forget), so nobody can stop it at shutdown. --fixed: handlers live in a task group that
 * is closed (cancelling what is left) when the server stops. */
static int http_server(void *arg) {
  app *a = arg;
  tsk_group_t *handlers = NULL;
  tsk_group_opts_t opts = {.name = "http_handlers"};
  int rc = a->fixed ? tsk_group_new(a->rt, &opts, &handlers) : 0;
  while (rc == 0) {
    tsk_tcp_t *tcp;
    if ((rc = tsk_tcp_accept(a->listener, TSK_FOREVER, &tcp)) != 0) break;
    conn *c = calloc(1, sizeof *c);
    if (!c || tsk_event_new(a->rt, &c->wake) != 0) {
      free(c);
      tsk_tcp_close(tcp);
      continue;
    }
    c->a = a;
    c->tcp = tcp;
    c->next = a->conns;
    a->conns = c;
    a->connections++;
    if (handlers) {
      tsk_group_spawn(handlers, "http_handler", http_handler, c);
    } else {
      tsk_task_t h;
      if (tsk_spawn(a->rt, &h, "http_handler", http_handler, c) == 0) tsk_detach(h);
    }
  }
  if (handlers) tsk_group_close(handlers, 1000);
  return rc == TSK_ECANCELED ? TSK_ECANCELED : rc;
}

/* ============================================================================================
 * The client
 * ========================================================================================== */
typedef struct stream_result {
  int status;
  int chunks;
  size_t bytes;
  int complete;   /* the last chunk arrived */
} stream_result;

static int connect_server(app *a, tsk_tcp_t **out) {
  return tsk_tcp_connect((const struct sockaddr *)&a->addr, IO_TIMEOUT_MS, out);
}

/* Status line and headers; *chunked tells the body's framing, *clen its length otherwise. */
static int read_response_head(reader *r, int *status, int *chunked, long *clen) {
  char line[1024];
  int rc = rd_line(r, line, sizeof line);
  if (rc) return rc;
  if (sscanf(line, "HTTP/1.%*d %d", status) != 1)
    return tsk_error(TSK_EFAILED, "bad status line \"%.60s\"", line);
  *chunked = 0;
  *clen = -1;
  while ((rc = rd_line(r, line, sizeof line)) == 0 && line[0]) {
    if (strncasecmp(line, "Transfer-Encoding:", 18) == 0) {
      const char *v = line + 18;
      while (*v == ' ') v++;
      *chunked = strncasecmp(v, "chunked", 7) == 0;
    } else if (strncasecmp(line, "Content-Length:", 15) == 0) {
      *clen = strtol(line + 15, NULL, 10);
    }
  }
  return rc;
}

/* The chunked body: size line (hex, optional ";extension"), data, CRLF; a zero-size chunk ends
 * it, followed by trailer lines up to an empty one. Every read waits at most r->timeout_ms. */
static int read_chunked_body(reader *r, stream_result *res) {
  char line[256];
  for (;;) {
    int rc = rd_line(r, line, sizeof line);
    if (rc) return rc;
    char *end;
    unsigned long size = strtoul(line, &end, 16);
    if (end == line || (*end && *end != ';' && *end != ' '))
      return tsk_error(TSK_EFAILED, "bad chunk size line \"%.40s\"", line);
    if (size == 0) break;
    if ((rc = rd_skip(r, size)) != 0) return rc;
    if ((rc = rd_line(r, line, sizeof line)) != 0) return rc;
    if (line[0]) return tsk_error(TSK_EFAILED, "chunk not followed by CRLF");
    res->chunks++;
    res->bytes += size;
  }
  int rc;
  while ((rc = rd_line(r, line, sizeof line)) == 0 && line[0]) {
    /* trailers: ignored */
  }
  if (rc == 0) res->complete = 1;
  return rc;
}

/* THE BUG: on a per-chunk timeout the buggy client returns at once — the stream stays open, so
 * the server's handler and its request_body_reader wait forever. --fixed closes it properly. */
static NOINLINE int fetch_stream(app *a, const char *target, stream_result *res) {
  tsk_tcp_t *tcp;
  int rc = connect_server(a, &tcp);
  if (rc) return rc;
  char req[512];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/plain\r\n"
                   "Connection: close\r\n\r\n",
                   target, ntohs(a->addr.sin_port));
  rc = tsk_tcp_write(tcp, req, (size_t)n, IO_TIMEOUT_MS);
  reader *r = calloc(1, sizeof *r);
  if (!r) rc = TSK_ENOMEM;
  if (rc == 0) {
    r->tcp = tcp;
    r->timeout_ms = a->timeout_ms;
    int chunked;
    long clen;
    rc = read_response_head(r, &res->status, &chunked, &clen);
    if (rc == 0 && chunked) {
      rc = read_chunked_body(r, res);
    } else if (rc == 0 && clen >= 0) {
      rc = rd_skip(r, (size_t)clen);
      res->bytes = (size_t)clen;
      res->complete = rc == 0;
    }
  }
  free(r);
  if (rc == TSK_ETIMEDOUT && !a->fixed) return rc; /* leaves tcp open */
  tsk_tcp_shutdown(tcp);
  tsk_tcp_close(tcp);
  return rc;
}

/* Uploads the stall report to the log collector; fails when it does not accept it. */
static int upload_stall_log(void *arg) {
  app *a = arg;
  tsk_tcp_t *tcp;
  int rc = connect_server(a, &tcp);
  if (rc) return tsk_error(rc, "log upload: connect: %s", tsk_strerror(rc));
  char head[256];
  size_t blen = strlen(a->log_body);
  int n = snprintf(head, sizeof head,
                   "POST /logs HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: text/plain\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                   ntohs(a->addr.sin_port), blen);
  reader r = {.tcp = tcp, .timeout_ms = IO_TIMEOUT_MS};
  int status = 0, chunked;
  long clen;
  if ((rc = tsk_tcp_write(tcp, head, (size_t)n, IO_TIMEOUT_MS)) == 0 &&
      (rc = tsk_tcp_write(tcp, a->log_body, blen, IO_TIMEOUT_MS)) == 0)
    rc = read_response_head(&r, &status, &chunked, &clen);
  tsk_tcp_close(tcp);
  if (rc) return tsk_error(rc, "log upload: %s", tsk_strerror(rc));
  if (status / 100 != 2) return tsk_error(TSK_EFAILED, "log upload rejected: HTTP %d", status);
  return 0;
}

/* Reports a stall. Buggy mode: fire and forget — the upload task is detached, so its failure
 * is never seen by anyone. --fixed: it is joined and its outcome printed. */
static NOINLINE void report_stall(app *a, const char *target, int timeout_ms) {
  snprintf(a->log_body, sizeof a->log_body, "stream %s stalled: no chunk for %d ms\n", target,
           timeout_ms);
  tsk_task_t up;
  if (tsk_spawn(a->rt, &up, "upload_stall_log", upload_stall_log, a) != 0) return;
  if (!a->fixed) {
    tsk_detach(up);
    printf("    stall report: upload started in the background\n");
    return;
  }
  tsk_result_t res;
  int rc = tsk_join(up, TSK_FOREVER, &res);
  printf("    stall report: %s\n", rc == 0 ? "uploaded" : res.message);
}

static int stream_client(void *arg) {
  app *a = arg;
  int stall_at = a->requests >= 2 ? 1 : 0; /* the second request stalls (the first if only one) */
  for (int i = 0; i < a->requests; i++) {
    char target[128];
    int stalls = i == stall_at;
    if (stalls)
      snprintf(target, sizeof target, "/stream?chunks=%d&stall=%d", a->chunks, a->chunks / 2);
    else
      snprintf(target, sizeof target, "/stream?chunks=%d", a->chunks);
    stream_result res = {0};
    double t0 = now_ms();
    int rc = fetch_stream(a, target, &res);
    double ms = now_ms() - t0;
    if (rc == TSK_ETIMEDOUT) {
      printf("  GET %-28s -> %d, %d chunks, %zu bytes, then no chunk for %d ms: timed out (%.0f "
             "ms)\n",
             target, res.status, res.chunks, res.bytes, a->timeout_ms, ms);
      printf("    stream %s\n", a->fixed ? "shut down and closed" : "left open (returned at once)");
      report_stall(a, target, a->timeout_ms);
    } else if (rc == 0) {
      printf("  GET %-28s -> %d, %d chunks, %zu bytes, complete in %.0f ms\n", target,
             res.status, res.chunks, res.bytes, ms);
    } else {
      printf("  GET %-28s -> error: %s\n", target, tsk_strerror(rc));
    }
    int expected = stalls ? TSK_ETIMEDOUT : 0;
    if (rc != expected || (!stalls && res.chunks != a->chunks)) a->failures++;
  }
  return 0;
}

static int main_task(void *arg) {
  app *a = arg;
  int rc;
  uv_ip4_addr("127.0.0.1", 0, &a->addr);
  if ((rc = tsk_tcp_listen((const struct sockaddr *)&a->addr, 64, &a->listener)) != 0)
    return tsk_error(rc, "listen: %s", tsk_strerror(rc));
  struct sockaddr_storage bound;
  tsk_tcp_sockname(a->listener, &bound);
  a->addr = *(struct sockaddr_in *)&bound;
  printf("  server on 127.0.0.1:%d; client per-chunk timeout %d ms\n", ntohs(a->addr.sin_port),
         a->timeout_ms);

  tsk_task_t server, client;
  if ((rc = tsk_spawn(a->rt, &server, "http_server", http_server, a)) != 0) return rc;
  if ((rc = tsk_spawn(a->rt, &client, "stream_client", stream_client, a)) != 0) return rc;
  tsk_join(client, TSK_FOREVER, NULL);
  if (a->fixed) {
    /* Give the handlers a moment to see their clients leave before the server stops. */
    for (int i = 0; i < 100 && a->handlers_live > 0; i++) tsk_sleep(5);
  }
  tsk_cancel(server);
  tsk_join(server, TSK_FOREVER, NULL);
  tsk_tcp_close(a->listener);
  printf("  server: %d connections, %d handler%s still running\n", a->connections,
         a->handlers_live, a->handlers_live == 1 ? "" : "s");
  return a->failures ? tsk_error(TSK_EFAILED, "%d unexpected outcomes", a->failures) : 0;
}

static void usage(FILE *f, const char *prog) {
  fprintf(f,
          "usage: %s [--fixed] [--requests N] [--chunks N] [--timeout MS] [--help]\n"
          "  A chunked-streaming HTTP/1.1 client against its own server on 127.0.0.1; the\n"
          "  second stream stalls and the client's per-chunk read times out.\n"
          "  default   the client returns without closing the stream; the server handler and\n"
          "            its request_body_reader stay pending (destroyed at close) and a\n"
          "            fire-and-forget log upload fails unseen (unretrieved error)\n"
          "  --fixed   shutdown + close of the stream, helpers cancelled and joined, the\n"
          "            upload joined and its error read; no leak\n"
          "  --requests N streams (default 4)   --chunks N per stream (default 8)\n"
          "  --timeout MS per-chunk read timeout (default 250)\n",
          prog);
}

int main(int argc, char **argv) {
  app a = {.requests = 4, .chunks = 8, .timeout_ms = 250};
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
      usage(stdout, argv[0]);
      return 0;
    } else if (strcmp(o, "--fixed") == 0) {
      a.fixed = 1;
    } else if (strcmp(o, "--requests") == 0 && i + 1 < argc) {
      if (parse_int(argv[++i], 1, 100000, &a.requests)) goto bad;
    } else if (strcmp(o, "--chunks") == 0 && i + 1 < argc) {
      if (parse_int(argv[++i], 2, 100000, &a.chunks)) goto bad;
    } else if (strcmp(o, "--timeout") == 0 && i + 1 < argc) {
      if (parse_int(argv[++i], 1, 100000, &a.timeout_ms)) goto bad;
    } else {
      goto bad;
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines show up as they happen */
  int rc = tsk_runtime_new(&a.rt);
  if (rc) {
    fprintf(stderr, "http_stream: cannot create runtime: %s\n", tsk_strerror(rc));
    return 1;
  }
  printf("http_stream: streaming client with a per-chunk timeout (%s)\n",
         a.fixed ? "--fixed: streams closed, helpers joined, errors read"
                 : "buggy: timed-out streams left open, fire-and-forget upload");
  tsk_result_t res;
  rc = tsk_run_main(a.rt, "main", main_task, &a, &res);
  tsk_runtime_close(a.rt); /* the leak report, if any, is printed here */
  while (a.conns) {
    conn *c = a.conns;
    a.conns = c->next;
    tsk_event_free(c->wake);
    free(c);
  }
  if (rc) {
    printf("http_stream: failed: %s\n", res.message[0] ? res.message : tsk_strerror(rc));
    return 1;
  }
  printf("http_stream: done\n");
  return 0;
bad:
  usage(stderr, argv[0]);
  return 2;
}
