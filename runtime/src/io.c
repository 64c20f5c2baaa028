/*
 * io.c — awaitable TCP, getaddrinfo, and the generic way to await any libuv request.
 *
 * The rule every function here follows: libuv may call back after the waiting task stopped
 * waiting (timeout, cancellation, or destruction of the task at runtime close). So nothing libuv
 * calls back into lives in a task's frame, except where the API says so (tsk_uv_waiter_t and the
 * buffer of a read, see below). Requests are heap-allocated and point at the waiter's record
 * only while it waits: whoever ends a wait runs its unlink callback, which clears that pointer.
 *
 * Reads hand the caller's buffer to libuv through alloc_cb. libuv uses such a buffer only
 * synchronously (read(2) into it, then read_cb), and reading is stopped as soon as the wait ends
 * (read_cb, or read_unlink for every other ending), so the buffer is never touched afterwards.
 *
 * Writes are the exception the header documents: libuv cannot take back a started write, so a
 * write whose wait ends early (timeout, cancellation) closes the connection — uv_close stops all
 * further I/O at once, so libuv never reads the caller's buffer after the call returned.
 *
 * Ownership of a tsk_tcp_t: the application, from the call that returned it until
 * tsk_tcp_close; the memory is freed when both the application released it and libuv closed the
 * handle (on_tcp_closed). Every object sits in rt->io_handles until then, so runtime close can
 * close and free whatever the application left open.
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>

struct tsk_tcp {
  uv_tcp_t h;                /* h.data = this object */
  tsk_runtime_t *rt;
  uint64_t id;               /* object id reported by waits on this connection */
  tsk__list rt_link;         /* in rt->io_handles until freed */
  unsigned closed : 1;       /* uv_close called: every operation returns TSK_ECLOSED */
  unsigned handle_closed : 1;/* libuv's close callback ran */
  unsigned released : 1;     /* tsk_tcp_close called (or runtime close): free once closed */
  unsigned listening : 1;
  unsigned eof : 1;          /* a read saw end of stream */
  /* reading: one reader at a time */
  tsk__wait *reader;
  char *rbuf;
  size_t rlen;
  /* listening */
  tsk__list accepters;       /* tsk__wait.link of tasks in tsk_tcp_accept, FIFO */
  unsigned pending;          /* connections reported by libuv, not yet accepted */
  int listen_error;          /* a failed connection_cb, reported by the next accept */
  /* closing */
  tsk__wait *closer;         /* a task waiting in tsk_tcp_close for the close callback */
};

/* ---- common helpers ---- */

/* Validates the common preconditions of an operation on t that waits. */
static int check_op(tsk_tcp_t *t) {
  int rc = tsk__check_thread(t->rt);
  if (rc) return rc;
  if (!tsk__current) return TSK_ENOTASK;
  if (tsk__current->rt != t->rt) return TSK_EINVAL;
  if (t->closed) return TSK_ECLOSED;
  return 0;
}

/* libuv does not ignore SIGPIPE: a write to a connection the peer reset would kill the process.
 * Like most runtimes with networking (Python, Rust's std), ignore it — but only if the
 * application left the default disposition. Done once, when the first connection is made. */
static void ignore_sigpipe_once(void) {
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
      !(sa.sa_flags & SA_SIGINFO)) {
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
  }
}

static pthread_once_t sigpipe_once = PTHREAD_ONCE_INIT;

static void on_tcp_closed(uv_handle_t *h);

static tsk_tcp_t *tcp_new(tsk_runtime_t *rt, int *err) {
  pthread_once(&sigpipe_once, ignore_sigpipe_once);
  tsk_tcp_t *t = calloc(1, sizeof *t);
  if (!t) {
    *err = TSK_ENOMEM;
    return NULL;
  }
  int rc = uv_tcp_init(rt->loop, &t->h);
  if (rc) {
    free(t);
    *err = rc;
    return NULL;
  }
  t->h.data = t;
  t->rt = rt;
  t->id = tsk__next_object_id(rt);
  tsk__list_init(&t->accepters);
  tsk__list_push(&rt->io_handles, &t->rt_link);
  return t;
}

static void tcp_free(tsk_tcp_t *t) {
  tsk__list_remove(&t->rt_link);
  free(t);
}

/* Starts closing the uv handle (once) and ends every wait on t with TSK_ECLOSED. Pending write
 * and shutdown requests are completed by libuv itself (UV_ECANCELED, reported as TSK_ECLOSED). */
static void tcp_close_handle(tsk_tcp_t *t) {
  if (t->closed) return;
  t->closed = 1;
  if (t->reader) {
    tsk__wait *w = t->reader;
    t->reader = NULL;
    tsk__wait_end(w, TSK_ECLOSED);
  }
  tsk__wait_end_all(&t->accepters, TSK_ECLOSED);
  uv_close((uv_handle_t *)&t->h, on_tcp_closed);
}

/* Closes and frees an object the application never saw (a failed listen, accept or connect). */
static void tcp_discard(tsk_tcp_t *t) {
  t->released = 1;
  tcp_close_handle(t);
}

static void on_tcp_closed(uv_handle_t *h) {
  tsk_tcp_t *t = h->data;
  t->handle_closed = 1;
  if (t->closer) {
    tsk__wait *w = t->closer;
    t->closer = NULL;
    tsk__wait_end(w, 0);
  }
  if (t->released) tcp_free(t);
}

static void closer_unlink(tsk__wait *w) {
  tsk_tcp_t *t = w->data;
  if (t->closer == w) t->closer = NULL;
}

void tsk_tcp_close(tsk_tcp_t *t) {
  /* From a thread that does not own the runtime nothing can be done safely (and there is no
   * way to report it): the object is left to runtime close. */
  if (!t || t->released || tsk__check_thread(t->rt)) return;
  t->released = 1;
  tcp_close_handle(t);
  if (t->handle_closed) {
    tcp_free(t);
    return;
  }
  if (!tsk__task_on(t->rt)) return; /* on_tcp_closed frees it */
  tsk__wait w;
  if (tsk__wait_prepare(&w, TSK_WAIT_IO, t->id)) return;
  w.cancellable = 0;
  w.data = t;
  w.unlink = closer_unlink;
  t->closer = &w;
  tsk__wait_suspend(&w, TSK_FOREVER); /* t is freed by now */
}

/* Runtime close: every task is destroyed (their waits unlinked), so nobody waits on any object
 * any more. Close what is open and free everything; objects whose close is still in progress
 * are freed by on_tcp_closed, which then touches neither the runtime nor any task. */
void tsk__io_runtime_close(tsk_runtime_t *rt) {
  while (!tsk__list_empty(&rt->io_handles)) {
    tsk_tcp_t *t = TSK__CONTAINER(rt->io_handles.next, tsk_tcp_t, rt_link);
    tsk__list_remove(&t->rt_link);
    t->released = 1;
    t->closer = NULL;
    t->reader = NULL;
    tsk__list_init(&t->accepters);
    if (t->handle_closed)
      free(t);
    else if (!t->closed)
      tcp_close_handle(t);
  }
}

/* ---- connect ---- */

typedef struct connect_req {
  uv_connect_t req;
  tsk_tcp_t *tcp;
  tsk__wait *waiter; /* NULL once the task stopped waiting */
} connect_req;

static void on_connect(uv_connect_t *req, int status) {
  connect_req *r = TSK__CONTAINER(req, connect_req, req);
  if (r->waiter) {
    tsk__wait *w = r->waiter;
    r->waiter = NULL;
    tsk__wait_end(w, status);
  }
  free(r);
}

/* The connect's wait ended early: close the half-made connection (the header's promise). At
 * runtime close the object is closed by tsk__io_runtime_close instead. */
static void connect_unlink(tsk__wait *w) {
  connect_req *r = w->data;
  if (r->waiter != w) return;
  r->waiter = NULL;
  if (!r->tcp->rt->closing) tcp_discard(r->tcp); /* on_connect gets UV_ECANCELED */
}

int tsk_tcp_connect(const struct sockaddr *addr, int64_t timeout_ms, tsk_tcp_t **out) {
  if (!addr || !out) return TSK_EINVAL;
  tsk__task *self = tsk__current;
  if (!self) return TSK_ENOTASK;
  int rc = tsk__take_cancel(self); /* before a connection attempt goes out */
  if (rc) return rc;
  tsk_tcp_t *t = tcp_new(self->rt, &rc);
  if (!t) return rc;
  connect_req *r = calloc(1, sizeof *r);
  if (!r) {
    tcp_discard(t);
    return TSK_ENOMEM;
  }
  r->tcp = t;
  rc = uv_tcp_connect(&r->req, &t->h, addr, on_connect);
  if (rc) {
    free(r);
    tcp_discard(t);
    return rc;
  }
  tsk__wait w;
  tsk__wait_prepare(&w, TSK_WAIT_IO, t->id);
  w.data = r;
  w.unlink = connect_unlink;
  r->waiter = &w;
  rc = tsk__wait_suspend(&w, timeout_ms);
  if (rc == TSK_ETIMEDOUT || rc == TSK_ECANCELED) return rc; /* connect_unlink discarded t,
                                                               which may be freed already */
  if (rc) {
    tcp_discard(t); /* failed by itself (refused, unreachable...) */
    return rc;
  }
  *out = t;
  return 0;
}

/* ---- listen / accept ---- */

static void on_connection(uv_stream_t *server, int status) {
  tsk_tcp_t *s = server->data;
  if (status < 0)
    s->listen_error = status;
  else
    s->pending++;
  /* Wake the oldest accepter; it accepts when it runs (another task may have taken the
   * connection by then; it then waits again). */
  tsk__wait *w = tsk__wait_first(&s->accepters);
  if (w) tsk__wait_end(w, 0);
}

int tsk_tcp_listen(const struct sockaddr *addr, int backlog, tsk_tcp_t **out) {
  if (!addr || !out || backlog < 0) return TSK_EINVAL;
  tsk__task *self = tsk__current;
  if (!self) return TSK_ENOTASK;
  int rc;
  tsk_tcp_t *t = tcp_new(self->rt, &rc);
  if (!t) return rc;
  if ((rc = uv_tcp_bind(&t->h, addr, 0)) != 0 ||
      (rc = uv_listen((uv_stream_t *)&t->h, backlog, on_connection)) != 0) {
    tcp_discard(t);
    return rc;
  }
  t->listening = 1;
  *out = t;
  return 0;
}

int tsk_tcp_sockname(tsk_tcp_t *t, struct sockaddr_storage *addr) {
  if (!t || !addr) return TSK_EINVAL;
  int rc = tsk__check_thread(t->rt);
  if (rc) return rc;
  if (t->closed) return TSK_ECLOSED;
  int len = sizeof *addr;
  return uv_tcp_getsockname(&t->h, (struct sockaddr *)addr, &len);
}

/* Takes one connection libuv reported. */
static int accept_one(tsk_tcp_t *s, tsk_tcp_t **out) {
  int rc;
  tsk_tcp_t *c = tcp_new(s->rt, &rc);
  if (!c) return rc;
  rc = uv_accept((uv_stream_t *)&s->h, (uv_stream_t *)&c->h);
  if (rc == UV_EAGAIN)
    s->pending = 0; /* libuv has none after all */
  else
    s->pending--; /* on other errors libuv closed the accepted socket */
  if (rc) {
    tcp_discard(c);
    return rc;
  }
  *out = c;
  return 0;
}

int tsk_tcp_accept(tsk_tcp_t *server, int64_t timeout_ms, tsk_tcp_t **out) {
  if (!server || !out) return TSK_EINVAL;
  int rc = check_op(server);
  if (rc) return rc;
  if (!server->listening) return TSK_EINVAL;
  uint64_t due = timeout_ms > 0 ? uv_now(server->rt->loop) + (uint64_t)timeout_ms : 0;
  for (;;) {
    if (server->listen_error) {
      rc = server->listen_error;
      server->listen_error = 0;
      return rc;
    }
    if (server->pending > 0) {
      rc = accept_one(server, out);
      if (rc != UV_EAGAIN) return rc;
      continue;
    }
    tsk__wait w;
    tsk__wait_prepare(&w, TSK_WAIT_IO, server->id);
    rc = tsk__wait_on_list(&w, &server->accepters, timeout_ms);
    if (rc) return rc;
    /* Woken by on_connection. In the rare case another task takes the connection first, wait
     * again for what is left of the limit. */
    if (timeout_ms > 0) {
      uint64_t now = uv_now(server->rt->loop);
      timeout_ms = due > now ? (int64_t)(due - now) : 0;
    }
  }
}

/* ---- read ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  tsk_tcp_t *t = h->data;
  (void)suggested;
  buf->base = t->reader ? t->rbuf : NULL;
  buf->len = t->reader ? t->rlen : 0; /* 0: libuv reports UV_ENOBUFS (never expected) */
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  tsk_tcp_t *t = s->data;
  (void)buf;
  if (nread == 0) return; /* EAGAIN: keep reading */
  tsk__wait *w = t->reader;
  t->reader = NULL;
  uv_read_stop(s);
  if (!w) return;
  int result;
  if (nread > 0) {
    result = (int)nread; /* <= rlen <= INT_MAX */
  } else if (nread == UV_EOF) {
    t->eof = 1;
    result = 0;
  } else {
    result = (int)nread;
  }
  tsk__wait_end(w, result);
}

static void read_unlink(tsk__wait *w) {
  tsk_tcp_t *t = w->data;
  if (t->reader != w) return;
  t->reader = NULL;
  if (!t->closed) uv_read_stop((uv_stream_t *)&t->h);
}

/* A read that does not wait (timeout_ms == 0): straight from the socket, which libuv is not
 * reading at this point. */
static ssize_t read_now(tsk_tcp_t *t, void *buf, size_t len) {
  uv_os_fd_t fd;
  int rc = uv_fileno((uv_handle_t *)&t->h, &fd);
  if (rc) return rc;
  ssize_t n;
  do
    n = recv(fd, buf, len, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n == 0) t->eof = 1;
  if (n >= 0) return n;
  return errno == EAGAIN || errno == EWOULDBLOCK ? TSK_ETIMEDOUT : -errno;
}

ssize_t tsk_tcp_read(tsk_tcp_t *t, void *buf, size_t len, int64_t timeout_ms) {
  if (!t || !buf || len == 0) return TSK_EINVAL;
  int rc = check_op(t);
  if (rc) return rc;
  if (t->listening) return TSK_EINVAL;
  if (t->reader) return TSK_EBUSY;
  if (t->eof) return 0;
  if (len > INT_MAX) len = INT_MAX; /* the count travels in the wait's int result */
  if (timeout_ms == 0) return read_now(t, buf, len);
  tsk__wait w;
  tsk__wait_prepare(&w, TSK_WAIT_IO, t->id);
  w.data = t;
  w.unlink = read_unlink;
  t->reader = &w;
  t->rbuf = buf;
  t->rlen = len;
  rc = uv_read_start((uv_stream_t *)&t->h, on_alloc, on_read);
  if (rc) {
    t->reader = NULL;
    return rc;
  }
  return tsk__wait_suspend(&w, timeout_ms);
}

/* ---- write / shutdown ---- */

/* A write or shutdown request; freed by its callback, which libuv always calls (with
 * UV_ECANCELED when the handle is closed first). */
typedef struct stream_req {
  union {
    uv_write_t write;
    uv_shutdown_t shutdown;
  } u;
  tsk_tcp_t *tcp;    /* valid until the callback: libuv calls it before the close callback */
  tsk__wait *waiter; /* NULL once the task stopped waiting */
} stream_req;

static void stream_req_done(stream_req *r, int status) {
  if (r->waiter) {
    tsk__wait *w = r->waiter;
    r->waiter = NULL;
    tsk__wait_end(w, status == UV_ECANCELED && r->tcp->closed ? TSK_ECLOSED : status);
  }
  free(r);
}

static void on_write(uv_write_t *req, int status) {
  stream_req_done(TSK__CONTAINER(req, stream_req, u.write), status);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  stream_req_done(TSK__CONTAINER(req, stream_req, u.shutdown), status);
}

/* A write's wait ended early: libuv may still be writing from the caller's buffer, so close
 * the connection (see the top of the file). At runtime close tsk__io_runtime_close does it,
 * before the loop runs again. */
static void write_unlink(tsk__wait *w) {
  stream_req *r = w->data;
  if (r->waiter != w) return;
  r->waiter = NULL;
  if (!r->tcp->rt->closing) tcp_close_handle(r->tcp);
}

static void shutdown_unlink(tsk__wait *w) {
  stream_req *r = w->data;
  if (r->waiter == w) r->waiter = NULL; /* the shutdown completes in the background */
}

int tsk_tcp_write(tsk_tcp_t *t, const void *buf, size_t len, int64_t timeout_ms) {
  if (!t || (!buf && len)) return TSK_EINVAL;
  int rc = check_op(t);
  if (rc) return rc;
  if (t->listening) return TSK_EINVAL;
  if (len == 0) return 0;
  /* A pending cancellation is delivered before any byte goes out, not after part of them did. */
  rc = tsk__take_cancel(tsk__current);
  if (rc) return rc;
  /* Most writes fit in the socket buffer: try without a request first. uv_try_write refuses
   * (UV_EAGAIN) while earlier writes are queued, so order is kept. */
  uv_buf_t b;
  b.base = (char *)buf;
  b.len = len;
  int n = uv_try_write((uv_stream_t *)&t->h, &b, 1);
  if (n < 0 && n != UV_EAGAIN) return n;
  if (n > 0) {
    if ((size_t)n == len) return 0;
    b.base += n;
    b.len -= (size_t)n;
  }
  stream_req *r = calloc(1, sizeof *r);
  if (!r) {
    /* Part of the data may be out already: the stream is no longer usable. */
    if (n > 0) tcp_close_handle(t);
    return TSK_ENOMEM;
  }
  r->tcp = t;
  rc = uv_write(&r->u.write, (uv_stream_t *)&t->h, &b, 1, on_write);
  if (rc) {
    free(r);
    if (n > 0) tcp_close_handle(t);
    return rc;
  }
  tsk__wait w;
  tsk__wait_prepare(&w, TSK_WAIT_IO, t->id);
  w.data = r;
  w.unlink = write_unlink;
  r->waiter = &w;
  return tsk__wait_suspend(&w, timeout_ms);
}

int tsk_tcp_shutdown(tsk_tcp_t *t) {
  if (!t) return TSK_EINVAL;
  int rc = tsk__check_thread(t->rt);
  if (rc) return rc;
  if (t->closed) return TSK_ECLOSED;
  if (t->listening) return TSK_EINVAL;
  stream_req *r = calloc(1, sizeof *r);
  if (!r) return TSK_ENOMEM;
  r->tcp = t;
  rc = uv_shutdown(&r->u.shutdown, (uv_stream_t *)&t->h, on_shutdown);
  if (rc) {
    free(r);
    return rc;
  }
  /* Outside a task the shutdown completes in the background. */
  if (!tsk__task_on(t->rt)) return 0;
  tsk__wait w;
  tsk__wait_prepare(&w, TSK_WAIT_IO, t->id);
  w.data = r;
  w.unlink = shutdown_unlink;
  r->waiter = &w;
  return tsk__wait_suspend(&w, TSK_FOREVER);
}

/* ---- getaddrinfo ---- */

typedef struct gai_req {
  uv_getaddrinfo_t req;
  tsk__wait *waiter;       /* NULL once the task stopped waiting */
  struct addrinfo **out;   /* in the waiter's frame; valid while waiter is set */
} gai_req;

static void on_getaddrinfo(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  gai_req *r = TSK__CONTAINER(req, gai_req, req);
  if (r->waiter && status == 0) {
    *r->out = res;
    res = NULL;
  }
  uv_freeaddrinfo(res);
  if (r->waiter) {
    tsk__wait *w = r->waiter;
    r->waiter = NULL;
    tsk__wait_end(w, status);
  }
  free(r);
}

/* Abandoned: withdraw the lookup if it has not started; else it finishes in the pool and
 * on_getaddrinfo frees the result. */
static void gai_unlink(tsk__wait *w) {
  gai_req *r = w->data;
  if (r->waiter != w) return;
  r->waiter = NULL;
  r->out = NULL;
  uv_cancel((uv_req_t *)&r->req);
}

int tsk_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                    int64_t timeout_ms, struct addrinfo **res) {
  if ((!node && !service) || !res) return TSK_EINVAL;
  tsk__task *self = tsk__current;
  if (!self) return TSK_ENOTASK;
  int rc = tsk__take_cancel(self); /* before a lookup is queued on the thread pool */
  if (rc) return rc;
  gai_req *r = calloc(1, sizeof *r);
  if (!r) return TSK_ENOMEM;
  tsk__wait w;
  tsk__wait_prepare(&w, TSK_WAIT_IO, tsk__next_object_id(self->rt));
  struct addrinfo *ai = NULL;
  r->waiter = &w;
  r->out = &ai;
  /* libuv copies node, service and hints. */
  rc = uv_getaddrinfo(self->rt->loop, &r->req, on_getaddrinfo, node, service, hints);
  if (rc) {
    free(r);
    return rc;
  }
  w.data = r;
  w.unlink = gai_unlink;
  rc = tsk__wait_suspend(&w, timeout_ms);
  if (rc == 0) *res = ai;
  return rc;
}

/* ---- the generic waiter ----
 * Here the request lives in the caller's frame (the API's choice), so the task must not leave
 * before libuv is done with it: after a timeout or cancellation it tries uv_cancel and then
 * waits, uncancellably, for the callback. The one case it cannot cover is runtime close
 * destroying the waiting task: waiter_unlink then tries uv_cancel, and a request that was not
 * cancellable completes into the dead task's (pooled, still mapped) stack while close runs the
 * loop. On an application's loop that outlives the runtime this is unsafe: do not close a
 * runtime on a foreign loop while tasks wait on uncancellable requests. */

int tsk_uv_waiter_init(tsk_uv_waiter_t *w, uv_req_t *req) {
  if (!w || !req) return TSK_EINVAL;
  w->req = req;
  w->status = 0;
  w->done = 0;
  w->priv_ = NULL;
  req->data = w;
  return 0;
}

void tsk_uv_waiter_done(tsk_uv_waiter_t *w, int status) {
  if (!w) return;
  w->status = status;
  w->done = 1;
  tsk__wait *wt = w->priv_;
  if (wt) {
    w->priv_ = NULL;
    tsk__wait_end(wt, 0);
  }
}

static void waiter_unlink(tsk__wait *wt) {
  tsk_uv_waiter_t *w = wt->data;
  if (w->priv_ != wt) return;
  w->priv_ = NULL;
  if (wt->task->rt->closing) uv_cancel(w->req); /* the task is being destroyed */
}

static int waiter_suspend(tsk_uv_waiter_t *w, int64_t timeout_ms, int cancellable) {
  tsk__wait wt;
  int rc = tsk__wait_prepare(&wt, TSK_WAIT_IO, tsk__next_object_id(tsk__current->rt));
  if (rc) return rc;
  wt.cancellable = cancellable;
  wt.data = w;
  wt.unlink = waiter_unlink;
  w->priv_ = &wt;
  return tsk__wait_suspend(&wt, timeout_ms);
}

int tsk_uv_waiter_wait(tsk_uv_waiter_t *w, int64_t timeout_ms) {
  if (!w || !w->req) return TSK_EINVAL;
  if (!tsk__current) return TSK_ENOTASK;
  if (w->priv_) return TSK_EBUSY;
  if (w->done) return w->status;
  int rc = waiter_suspend(w, timeout_ms, 1);
  if (rc == 0) return w->status;
  if (!w->done) {
    uv_cancel(w->req); /* if it works, the callback comes with UV_ECANCELED */
    while (!w->done) waiter_suspend(w, TSK_FOREVER, 0);
  }
  return rc;
}
