/*
 * conn.c — a client connection to an inspector server: connect, hello, requests.
 */
#include "conn.h"

#include "cli.h"
#include "fastjson.h"
#include "text.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static ts_conn_status fail(ts_conn *c, ts_conn_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static ts_conn_status fail(ts_conn *c, ts_conn_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, sizeof c->err, fmt, ap);
  va_end(ap);
  return st;
}

/* A short printable excerpt of bytes the server sent, for error messages. */
static void excerpt(char *out, size_t n, const char *s, size_t len) {
  size_t o = 0;
  for (size_t i = 0; i < len && o + 5 < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch >= 0x20 && ch < 0x7f) {
      out[o++] = (char)ch;
    } else {
      o += (size_t)snprintf(out + o, n - o, "\\x%02x", ch);
    }
    if (i == 59 && len > 60) {
      if (o + 4 < n) {
        memcpy(out + o, "...", 3);
        o += 3;
      }
      break;
    }
  }
  out[o < n ? o : n - 1] = '\0';
}

/* Waits until fd is ready for `events`, at most timeout_ms. 1: ready, 0: timed out, -1: error. */
static int wait_fd(int fd, short events, int timeout_ms) {
  long long deadline = now_ms() + timeout_ms;
  for (;;) {
    long long left = deadline - now_ms();
    if (left < 0) left = 0;
    struct pollfd p = {.fd = fd, .events = events};
    int r = poll(&p, 1, (int)left);
    if (r > 0) return 1;
    if (r == 0) return 0;
    if (errno != EINTR) return -1;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* bytes                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static ts_conn_status send_all(ts_conn *c, const char *data, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = send(c->fd, data + off, len - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int r = wait_fd(c->fd, POLLOUT, c->timeout_ms);
      if (r == 0)
        return fail(c, TS_CONN_TIMEOUT, "timed out sending to %s (no progress for %d ms)", c->path,
                    c->timeout_ms);
      if (r < 0) return fail(c, TS_CONN_ERROR, "poll: %s", strerror(errno));
      continue;
    }
    if (errno == EPIPE || errno == ECONNRESET)
      return fail(c, TS_CONN_CLOSED, "the server at %s closed the connection", c->path);
    return fail(c, TS_CONN_ERROR, "sending to %s: %s", c->path, strerror(errno));
  }
  return TS_CONN_OK;
}

/* Reads the next line (without its '\n'; a trailing '\r' is dropped too) into c->buf; *line
 * points into the buffer and stays valid until the next read. */
static ts_conn_status read_line(ts_conn *c, char **line, size_t *len) {
  for (;;) {
    char *nl = c->len > c->scanned ? memchr(c->buf + c->scanned, '\n', c->len - c->scanned) : NULL;
    if (nl) {
      char *l = c->buf + c->start;
      size_t n = (size_t)(nl - l);
      *nl = '\0';
      if (n > 0 && l[n - 1] == '\r') l[--n] = '\0';
      c->start = c->scanned = (size_t)(nl - c->buf) + 1;
      *line = l;
      *len = n;
      return TS_CONN_OK;
    }
    c->scanned = c->len;
    if (c->len - c->start > TS_CONN_MAX_LINE)
      return fail(c, TS_CONN_MALFORMED, "malformed answer from %s: a message longer than %zu bytes",
                  c->path, TS_CONN_MAX_LINE);
    /* Make room: drop consumed bytes, then grow. */
    if (c->start > 0) {
      memmove(c->buf, c->buf + c->start, c->len - c->start);
      c->len -= c->start;
      c->scanned -= c->start;
      c->start = 0;
    }
    if (c->cap - c->len < 65536) {
      c->cap = c->cap ? c->cap * 2 : 131072;
      c->buf = ts_xrealloc(c->buf, c->cap);
    }
    /* At most 256 KiB a call: while the server writes as fast, one recv(2) of a whole snapshot
     * would keep this process in the kernel for milliseconds (see tsc_cooperate). */
    size_t room = c->cap - c->len - 1;
    ssize_t n = recv(c->fd, c->buf + c->len, room < ((size_t)256 << 10) ? room : (256 << 10), 0);
    if (n > 0) {
      c->len += (size_t)n;
      tsc_cooperate();
      continue;
    }
    if (n == 0) {
      if (c->len > c->start)
        return fail(c, TS_CONN_CLOSED,
                    "the server at %s closed the connection in the middle of a message", c->path);
      return fail(c, TS_CONN_CLOSED, "the server at %s closed the connection", c->path);
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      int r = wait_fd(c->fd, POLLIN, c->timeout_ms);
      if (r == 0)
        return fail(c, TS_CONN_TIMEOUT,
                    "timed out waiting for %s (no answer for %d ms; the process may be stopped, "
                    "or try a longer --timeout)",
                    c->path, c->timeout_ms);
      if (r < 0) return fail(c, TS_CONN_ERROR, "poll: %s", strerror(errno));
      continue;
    }
    if (errno == ECONNRESET)
      return fail(c, TS_CONN_CLOSED, "the server at %s reset the connection", c->path);
    return fail(c, TS_CONN_ERROR, "reading from %s: %s", c->path, strerror(errno));
  }
}

/* The fast path for a large line (see ts_conn_request_split): when the line is valid and its
 * top-level `key` is an array, parses the line without that array (an empty one in its place)
 * and hands the array's text to *raw, with the connection's buffer that holds it (the connection
 * gets a new one for the bytes after the line). NULL when it does not apply: jansson then reads
 * the whole line, untouched. */
static json_t *load_split(ts_conn *c, char *line, size_t len, const char *key,
                          ts_conn_raw *raw) {
  size_t a, b;
  if (!tsj_scan(line, len, key, &a, &b) || b == 0 || line[a] != '[') return NULL;
  size_t n = a + 2 + (len - b);
  char *doc = ts_xmalloc(n);
  memcpy(doc, line, a);
  memcpy(doc + a, "[]", 2);
  memcpy(doc + a + 2, line + b, len - b);
  json_error_t jerr;
  json_t *m = json_loadb(doc, n, JSON_ALLOW_NUL, &jerr);
  free(doc);
  if (!m) return NULL; /* cannot happen: the line is valid */
  size_t left = c->len - c->start, cap = left + 65536 > 131072 ? left + 65536 : 131072;
  char *nb = ts_xmalloc(cap);
  memcpy(nb, c->buf + c->start, left);
  raw->owner = c->buf;
  raw->owner_size = c->cap;
  raw->text = line + a;
  raw->len = b - a;
  c->buf = nb;
  c->cap = cap;
  c->len = left;
  c->start = c->scanned = 0;
  return m;
}

void ts_conn_raw_free(ts_conn_raw *raw) {
  tsj_release(raw->owner, raw->owner_size);
  *raw = (ts_conn_raw){0};
}

/* Reads the next message: one JSON object per line (blank lines are skipped). With `key`, a
 * large line may have that member split off into *raw (load_split). */
static ts_conn_status read_message(ts_conn *c, json_t **out, const char *key, ts_conn_raw *raw) {
  char *line;
  size_t len;
  if (raw) *raw = (ts_conn_raw){0};
  for (;;) {
    ts_conn_status st = read_line(c, &line, &len);
    if (st) return st;
    if (len > 0) break;
  }
  json_error_t jerr;
  json_t *m = key && raw && len >= TSJ_SPLIT_MIN ? load_split(c, line, len, key, raw) : NULL;
  if (!m) m = json_loadb(line, len, JSON_ALLOW_NUL, &jerr);
  char ex[256];
  if (!m) {
    excerpt(ex, sizeof ex, line, len);
    return fail(c, TS_CONN_MALFORMED, "malformed answer from %s: not JSON (%s at column %d): %s",
                c->path, jerr.text, jerr.column, ex);
  }
  if (!json_is_object(m)) {
    json_decref(m);
    excerpt(ex, sizeof ex, line, len); /* (line may be in raw's buffer) */
    if (raw) ts_conn_raw_free(raw);
    return fail(c, TS_CONN_MALFORMED, "malformed answer from %s: not a JSON object: %s", c->path,
                ex);
  }
  if (!json_is_string(json_object_get(m, "type"))) {
    json_decref(m);
    excerpt(ex, sizeof ex, line, len); /* (line may be in raw's buffer) */
    if (raw) ts_conn_raw_free(raw);
    return fail(c, TS_CONN_MALFORMED, "malformed answer from %s: a message without a \"type\": %s",
                c->path, ex);
  }
  *out = m;
  return TS_CONN_OK;
}

static const char *str_field(json_t *o, const char *key, const char *def) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : def;
}

/* Turns an "error" message into a status and a message. */
static ts_conn_status error_answer(ts_conn *c, json_t *m) {
  const char *code = str_field(m, "code", "?");
  char *msg = ts_clean(&(ts_term){0, 1}, str_field(m, "message", ""));
  ts_conn_status st;
  if (strcmp(code, "version_mismatch") == 0)
    st = fail(c, TS_CONN_VERSION,
              "version mismatch: the server at %s refused this client: \"%s\" (this taskscope %s "
              "speaks protocol %d)",
              c->path, msg, TASKSCOPE_VERSION, TS_PROTOCOL_VERSION);
  else if (strcmp(code, "busy") == 0)
    st = fail(c, TS_CONN_BUSY, "the server at %s is busy (too many clients attached): %s", c->path,
              msg);
  else if (strcmp(code, "no_such_task") == 0)
    st = fail(c, TS_CONN_NO_TASK, "%s", msg);
  else {
    char *cc = ts_clean(&(ts_term){0, 1}, code);
    st = fail(c, TS_CONN_ERROR, "the server at %s answered error %s: %s", c->path, cc, msg);
    free(cc);
  }
  free(msg);
  return st;
}

/* ------------------------------------------------------------------------------------------ */
/* connection                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static ts_conn_status do_connect(ts_conn *c, const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    return fail(c, TS_CONN_ERROR, "socket path too long (%zu bytes; at most %zu): %s", strlen(path),
                sizeof sa.sun_path - 1, path);
  strcpy(sa.sun_path, path);
  c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) return fail(c, TS_CONN_ERROR, "socket: %s", strerror(errno));
  long long deadline = now_ms() + c->timeout_ms;
  for (;;) {
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) == 0) return TS_CONN_OK;
    int e = errno;
    if (e == EINTR) continue;
    if (e == EAGAIN || e == EINPROGRESS) {
      /* The server's listen backlog is full: it is not accepting. Retry until the deadline. */
      if (now_ms() >= deadline)
        return fail(c, TS_CONN_TIMEOUT,
                    "timed out connecting to %s (the server is not accepting connections)", path);
      usleep(10000);
      continue;
    }
    if (e == ENOENT || e == ENOTDIR) return fail(c, TS_CONN_NOENT, "no socket at %s", path);
    if (e == ECONNREFUSED)
      return fail(c, TS_CONN_STALE, "stale socket %s: nothing is listening on it", path);
    if (e == EACCES || e == EPERM)
      return fail(c, TS_CONN_PERM,
                  "permission denied connecting to %s (the inspector accepts only its own user "
                  "or root)",
                  path);
    return fail(c, TS_CONN_ERROR, "connecting to %s: %s", path, strerror(e));
  }
}

static ts_conn_status read_hello(ts_conn *c) {
  json_t *m = NULL;
  ts_conn_status st = read_message(c, &m, NULL, NULL);
  if (st == TS_CONN_CLOSED)
    return fail(c, TS_CONN_CLOSED,
                "the server at %s closed the connection before its hello (it accepts only its "
                "own user or root)",
                c->path);
  if (st) return st;
  tsc_hello h;
  switch (tsc_hello_parse(m, &h)) {
  case TSC_HELLO_OK:
    c->version = h.version;
    c->pid = h.pid;
    c->program = ts_xstrdup(*h.program ? h.program : "?");
    break;
  case TSC_HELLO_REFUSED: st = error_answer(c, m); break;
  case TSC_HELLO_FOREIGN:
    st = fail(c, TS_CONN_MALFORMED,
              "malformed answer from %s: its first message is not a taskscope hello (is it a "
              "taskscope inspector socket?)",
              c->path);
    break;
  case TSC_HELLO_BAD_VERSION:
    st = fail(c, TS_CONN_MALFORMED, "malformed answer from %s: hello.version is not an integer",
              c->path);
    break;
  case TSC_HELLO_VERSION:
    c->version = h.version;
    st = fail(c, TS_CONN_VERSION,
              "version mismatch: the server at %s speaks inspector protocol %lld, this "
              "taskscope %s speaks protocol %d; use a taskscope that speaks protocol %lld",
              c->path, c->version, TASKSCOPE_VERSION, TS_PROTOCOL_VERSION, c->version);
    break;
  case TSC_HELLO_BAD_PID:
    st = fail(c, TS_CONN_MALFORMED, "malformed answer from %s: hello.pid is not an integer",
              c->path);
    break;
  }
  json_decref(m);
  return st;
}

static ts_conn_status send_json(ts_conn *c, json_t *msg) {
  char *s = json_dumps(msg, JSON_COMPACT);
  if (!s) return fail(c, TS_CONN_ERROR, "cannot encode a request (out of memory?)");
  size_t n = strlen(s);
  s = ts_xrealloc(s, n + 2);
  s[n] = '\n';
  s[n + 1] = '\0';
  ts_conn_status st = send_all(c, s, n + 1);
  free(s);
  return st;
}

ts_conn_status ts_conn_open(ts_conn *c, const char *path, int timeout_ms) {
  memset(c, 0, sizeof *c);
  c->fd = -1;
  c->timeout_ms = timeout_ms > 0 ? timeout_ms : TS_DEFAULT_TIMEOUT_MS;
  c->next_id = 1;
  snprintf(c->path, sizeof c->path, "%s", path);
  ts_conn_status st = do_connect(c, path);
  if (!st) st = read_hello(c);
  if (!st) {
    json_t *hello = tsc_hello_reply("taskscope " TASKSCOPE_VERSION);
    if (!hello) st = fail(c, TS_CONN_ERROR, "out of memory");
    else st = send_json(c, hello);
    json_decref(hello);
  }
  if (st) {
    char err[sizeof c->err];
    memcpy(err, c->err, sizeof err);
    ts_conn_close(c);
    memcpy(c->err, err, sizeof err);
  }
  return st;
}

ts_conn_status ts_conn_request_split(ts_conn *c, json_t *req, const char *want, const char *key,
                                     json_t **answer, ts_conn_raw *raw) {
  *answer = NULL;
  if (raw) *raw = (ts_conn_raw){0};
  long long id = c->next_id++;
  if (!req || json_object_set_new(req, "id", json_integer(id)) != 0) {
    json_decref(req);
    return fail(c, TS_CONN_ERROR, "out of memory");
  }
  const char *rtype = str_field(req, "type", "?");
  char rt[32];
  snprintf(rt, sizeof rt, "%s", rtype);
  ts_conn_status st = send_json(c, req);
  json_decref(req);
  if (st == TS_CONN_CLOSED) {
    /* The server may have refused us (version_mismatch after our hello, busy) and closed: its
     * error is then waiting in our receive buffer. */
    json_t *m = NULL;
    char err[sizeof c->err];
    memcpy(err, c->err, sizeof err);
    int saved = c->timeout_ms;
    c->timeout_ms = saved < 200 ? saved : 200;
    ts_conn_status r = read_message(c, &m, NULL, NULL);
    c->timeout_ms = saved;
    if (r == TS_CONN_OK && strcmp(str_field(m, "type", ""), "error") == 0) {
      st = error_answer(c, m);
      json_decref(m);
      return st;
    }
    json_decref(m);
    memcpy(c->err, err, sizeof err);
    return st;
  }
  if (st) return st;
  for (;;) {
    json_t *m = NULL;
    st = read_message(c, &m, key, raw);
    if (st == TS_CONN_CLOSED)
      return fail(c, TS_CONN_CLOSED, "the server at %s closed the connection instead of answering "
                                     "'%s'", c->path, rt);
    if (st) return st;
    json_t *mid = json_object_get(m, "id");
    const char *type = str_field(m, "type", "");
    int ours = json_is_integer(mid) && json_integer_value(mid) == id;
    /* An error without an id answers nothing in particular (bad_json, version_mismatch): it is
     * about this connection, hence about this request. */
    if (strcmp(type, "error") == 0 && (ours || !mid || json_is_null(mid))) {
      st = error_answer(c, m);
      json_decref(m);
      if (raw) ts_conn_raw_free(raw);
      return st;
    }
    if (!ours) { /* a delta, or an answer to something else */
      json_decref(m);
      if (raw) ts_conn_raw_free(raw);
      continue;
    }
    if (strcmp(type, want) != 0) {
      char *tc = ts_clean(&(ts_term){0, 1}, type);
      st = fail(c, TS_CONN_MALFORMED, "malformed answer from %s: a '%s' message answered '%s'",
                c->path, tc, rt);
      free(tc);
      json_decref(m);
      if (raw) ts_conn_raw_free(raw);
      return st;
    }
    *answer = m;
    return TS_CONN_OK;
  }
}

ts_conn_status ts_conn_request(ts_conn *c, json_t *req, const char *want, json_t **answer) {
  return ts_conn_request_split(c, req, want, NULL, answer, NULL);
}

void ts_conn_close(ts_conn *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  tsj_release(c->buf, c->cap);
  free(c->program);
  c->buf = c->program = NULL;
  c->start = c->len = c->cap = c->scanned = 0;
}

int ts_conn_exit_code(ts_conn_status st) {
  return st == TS_CONN_NO_TASK ? TS_EXIT_USAGE : TS_EXIT_ATTACH;
}
