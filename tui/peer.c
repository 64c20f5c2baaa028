/*
 * peer.c — a non-blocking NDJSON connection to an inspector socket.
 */
#include "peer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n);
  if (!q) {
    fputs("taskscope-top: out of memory\n", stderr);
    abort();
  }
  return q;
}

void tp_init(tp_peer *p) {
  memset(p, 0, sizeof *p);
  p->fd = -1;
}

void tp_close(tp_peer *p) {
  if (p->fd >= 0) close(p->fd);
  free(p->rbuf);
  free(p->wbuf);
  char err[sizeof p->err];
  memcpy(err, p->err, sizeof err);
  tp_init(p);
  memcpy(p->err, err, sizeof err);
}

tp_status tp_connect(tp_peer *p, const char *path) {
  tp_close(p);
  p->err[0] = '\0';
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) {
    snprintf(p->err, sizeof p->err, "socket path too long: %s", path);
    return TP_ERROR;
  }
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(p->err, sizeof p->err, "socket: %s", strerror(errno));
    return TP_ERROR;
  }
  int r;
  do r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  while (r != 0 && errno == EINTR);
  if (r != 0 && errno != EINPROGRESS && errno != EAGAIN) {
    int e = errno;
    close(fd);
    if (e == ENOENT || e == ENOTDIR) {
      snprintf(p->err, sizeof p->err, "no socket at %s", path);
      return TP_NOENT;
    }
    if (e == ECONNREFUSED) {
      snprintf(p->err, sizeof p->err, "nothing listens on %s (stale socket)", path);
      return TP_REFUSED;
    }
    if (e == EACCES || e == EPERM) {
      snprintf(p->err, sizeof p->err,
               "permission denied connecting to %s (the inspector accepts only its own user or "
               "root)",
               path);
      return TP_PERM;
    }
    snprintf(p->err, sizeof p->err, "connecting to %s: %s", path, strerror(e));
    return TP_ERROR;
  }
  /* EAGAIN: the listen backlog is full; the connection completes (or fails) later, and a later
   * read or write tells. */
  p->fd = fd;
  return TP_OK;
}

long tp_read(tp_peer *p, size_t budget) {
  if (p->fd < 0) return -1;
  size_t got = 0;
  while (got < budget) {
    if (p->rstart > 0 && p->rstart == p->rlen) p->rstart = p->rlen = p->scanned = 0;
    if (p->rcap - p->rlen < 65536) {
      if (p->rstart > 0) { /* drop consumed bytes first */
        memmove(p->rbuf, p->rbuf + p->rstart, p->rlen - p->rstart);
        p->rlen -= p->rstart;
        p->scanned -= p->rstart;
        p->rstart = 0;
      }
      if (p->rcap - p->rlen < 65536) {
        p->rcap = p->rcap ? p->rcap * 2 : 262144;
        p->rbuf = xrealloc(p->rbuf, p->rcap);
      }
    }
    if (p->rlen - p->rstart > TP_MAX_LINE) {
      snprintf(p->err, sizeof p->err, "the server sent a message longer than %zu bytes",
               TP_MAX_LINE);
      p->eof = 1;
      return -1;
    }
    ssize_t n = recv(p->fd, p->rbuf + p->rlen, p->rcap - p->rlen, 0);
    if (n > 0) {
      p->rlen += (size_t)n;
      got += (size_t)n;
      continue;
    }
    if (n == 0) {
      snprintf(p->err, sizeof p->err, "the process closed the connection");
      p->eof = 1;
      return got ? (long)got : -1;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    snprintf(p->err, sizeof p->err, "%s",
             errno == ECONNRESET ? "the process reset the connection" : strerror(errno));
    p->eof = 1;
    return got ? (long)got : -1;
  }
  return (long)got;
}

int tp_next(tp_peer *p, json_t **msg) {
  *msg = NULL;
  for (;;) {
    if (p->scanned < p->rstart) p->scanned = p->rstart;
    char *nl = p->rlen > p->scanned ? memchr(p->rbuf + p->scanned, '\n', p->rlen - p->scanned)
                                    : NULL;
    if (!nl) {
      p->scanned = p->rlen;
      return 0;
    }
    char *line = p->rbuf + p->rstart;
    size_t len = (size_t)(nl - line);
    p->rstart = p->scanned = (size_t)(nl - p->rbuf) + 1;
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ')) len--;
    if (len == 0) continue;
    json_error_t je;
    json_t *m = json_loadb(line, len, 0, &je);
    if (!m || !json_is_object(m)) {
      json_decref(m);
      snprintf(p->err, sizeof p->err, "the server sent a line that is not a JSON object%s%s",
               m ? "" : ": ", m ? "" : je.text);
      return -1;
    }
    *msg = m;
    return 1;
  }
}

int tp_send(tp_peer *p, json_t *msg) {
  char *s = json_dumps(msg, JSON_COMPACT);
  if (!s) return -1;
  size_t n = strlen(s);
  if (p->woff > 0 && p->woff == p->wlen) p->woff = p->wlen = 0;
  if (p->wcap - p->wlen < n + 1) {
    p->wcap = (p->wlen + n + 1) * 2;
    p->wbuf = xrealloc(p->wbuf, p->wcap);
  }
  memcpy(p->wbuf + p->wlen, s, n);
  p->wbuf[p->wlen + n] = '\n';
  p->wlen += n + 1;
  free(s);
  return 0;
}

int tp_flush(tp_peer *p) {
  if (p->fd < 0) return -1;
  while (p->woff < p->wlen) {
    ssize_t n = send(p->fd, p->wbuf + p->woff, p->wlen - p->woff, MSG_NOSIGNAL);
    if (n > 0) {
      p->woff += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN)) return 0;
    snprintf(p->err, sizeof p->err, "%s",
             n < 0 && (errno == EPIPE || errno == ECONNRESET) ? "the process closed the connection"
                                                             : strerror(errno));
    p->eof = 1;
    return -1;
  }
  return 0;
}

int tp_want_write(const tp_peer *p) {
  return p->fd >= 0 && p->woff < p->wlen;
}
