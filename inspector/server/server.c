/*
 * server.c — the inspector server: its life cycle (one per process, started with the first
 * runtime unless socket=off, stopped at exit), its clients and their requests.
 *
 * Threads: everything here runs on the server thread, except tsk__server_attach/detach/wake
 * (runtime threads), the start (the thread creating the first runtime) and the stop (at exit).
 * Those share the process-wide state below under g_lock, which no one holds for longer than a
 * socket setup or a thread join; a loop thread takes it only when a runtime is created or
 * closed, or when it finished one of the server's requests.
 *
 * Answers go out in request order: a request that needs a runtime's loop thread (where, cancel,
 * leaks with pending) holds back the client's later lines until it is answered (the client's
 * socket is not read meanwhile, so it pushes back). Requests to a loop that does not answer in
 * timeout_ms fall back to what the server can do alone (see PROTOCOL.md).
 */
#include "srv.h"
#include "../common/sched_hint.h"

#include "backtrace.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct tsk__srv_counters tsk__srv_count;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
enum { SRV_NONE = 0, SRV_RUNNING, SRV_STOPPING, SRV_STOPPED, SRV_FAILED };
static int g_state;           /* SRV_*, guarded by g_lock */
static tsk__srv *g_srv;       /* while RUNNING or STOPPING */
static unsigned g_gen = 1;    /* server instance (a fork's child starts its own) */
static uint32_t g_next_rt_id;
static int g_hooks_done;
static tsk__srv *g_abandoned; /* a fork's child: the parent's server, kept reachable */
static tsk__insp_rt *g_late;  /* runtimes detached while the server was stopping */
static tsk__insp_rt *g_all;   /* every runtime's shared state not freed yet (for fork) */

uint64_t tsk__srv_now_ns(void) { return uv_hrtime(); }

static void stat_max(_Atomic uint64_t *a, uint64_t v) {
  uint64_t cur = atomic_load_explicit(a, memory_order_relaxed);
  while (v > cur && !atomic_compare_exchange_weak(a, &cur, v)) {
  }
}

/* ---- writing to clients ---- */

#define SRV_WRITE_PARTS 3 /* a large snapshot goes out as head, task array, tail (bulk.c) */
#define SRV_PIECE ((size_t)64 << 10) /* a large message is written this much a system call */

/* One uv_write. A message over 4 pieces is written as pieces of SRV_PIECE (in order; the last one
 * frees the buffers): a single write(2) of 20 MB to a client that reads as fast keeps the server
 * thread in the kernel for milliseconds, a stretch a loop thread waiting for that CPU would wait
 * through (to the scheduler's next tick). Pieces return to user space every ~20 us, and the
 * server yields the CPU between them at most every 0.2 ms (tsc_cooperate, sched_hint.h). */
typedef struct srv_write {
  uv_write_t req;
  srv_client *c;
  size_t len;                   /* bytes of this request */
  int nfree, piece;
  char *owned[SRV_WRITE_PARTS]; /* freed when this request is done */
} srv_write;

static void client_close(srv_client *c);
static void client_close_flush(srv_client *c);
static void process_lines(srv_client *c);
static void start_reading(srv_client *c);


static void on_written(uv_write_t *req, int status) {
  srv_write *w = (srv_write *)req;
  srv_client *c = w->c;
  c->queued -= w->len;
  for (int i = 0; i < w->nfree; i++) free(w->owned[i]);
  int piece = w->piece;
  free(w);
  if (status < 0 && status != UV_ECANCELED) client_close(c);
  if (piece) tsc_cooperate();
}

/* Sends the content of the n buffers, one message (taken from them: they are left empty). A
 * delta to a client whose unsent output is over TSK__SRV_OUT_MAX is dropped (the client gets a
 * resync later); any other message to such a client disconnects it. */
static void client_send_parts(srv_client *c, tsk__jbuf *b, int n, int is_delta) {
  if (c->closing) {
    for (int i = 0; i < n; i++) b[i].len = 0;
    return;
  }
  int oom = 0;
  for (int i = 0; i < n; i++) oom |= b[i].oom;
  if (oom) {
    for (int i = 0; i < n; i++) tsk__jbuf_free(&b[i]);
    tsk__proto_error(&b[0], NULL, TSK__PE_INTERNAL, "out of memory");
    if (b[0].oom) {
      tsk__jbuf_free(&b[0]);
      client_close(c);
      return;
    }
    n = 1;
  }
  if (c->queued > TSK__SRV_OUT_MAX) {
    for (int i = 0; i < n; i++) b[i].len = 0;
    if (is_delta) {
      c->need_resync = 1;
      atomic_fetch_add(&tsk__srv_count.deltas_dropped, 1);
    } else {
      atomic_fetch_add(&tsk__srv_count.disconnected_slow, 1);
      client_close(c);
    }
    return;
  }
  char *data[SRV_WRITE_PARTS];
  size_t len[SRV_WRITE_PARTS], total = 0;
  int k = 0;
  for (int i = 0; i < n && i < SRV_WRITE_PARTS; i++) {
    data[k] = tsk__jbuf_take(&b[i], &len[k]);
    if (!len[k]) {
      free(data[k]);
      continue;
    }
    total += len[k++];
  }
  int pieces = total > 4 * SRV_PIECE;
  c->queued += total;
  stat_max(&tsk__srv_count.max_queued, c->queued);
  srv_write *last = NULL; /* the last request queued: it owns whatever is left to free */
  size_t sent = 0;
  for (int i = 0; i < k; i++) {
    for (size_t off = 0; off < len[i];) {
      size_t m = pieces && len[i] - off > SRV_PIECE ? SRV_PIECE : len[i] - off;
      uv_buf_t bufs[SRV_WRITE_PARTS];
      int nb = 0;
      if (pieces) {
        bufs[nb++] = uv_buf_init(data[i] + off, (unsigned)m);
      } else { /* small: all parts in one request */
        for (int j = 0; j < k; j++) bufs[nb++] = uv_buf_init(data[j], (unsigned)len[j]);
        m = total;
      }
      srv_write *w = calloc(1, sizeof *w);
      if (w) {
        w->c = c;
        w->len = m;
        w->piece = pieces;
      }
      if (!w || uv_write(&w->req, (uv_stream_t *)&c->pipe, bufs, (unsigned)nb, on_written) != 0) {
        free(w);
        c->queued -= total - sent;
        if (last) { /* (its callback has not run yet: libuv defers them) */
          for (int j = 0; j < k; j++) last->owned[last->nfree++] = data[j];
        } else {
          for (int j = 0; j < k; j++) free(data[j]);
        }
        client_close(c);
        return;
      }
      last = w;
      sent += m;
      off += m;
      if (!pieces) {
        i = k; /* done */
        break;
      }
    }
  }
  if (last) {
    for (int j = 0; j < k; j++) last->owned[last->nfree++] = data[j];
  } else { /* nothing to send */
    for (int j = 0; j < k; j++) free(data[j]);
  }
}

static void client_send(srv_client *c, tsk__jbuf *b, int is_delta) {
  client_send_parts(c, b, 1, is_delta);
}

void tsk__srv_send_parts(srv_client *c, tsk__jbuf *parts, int n) {
  client_send_parts(c, parts, n, 0);
}

void tsk__srv_send(srv_client *c, tsk__jbuf *b, int is_delta) { client_send(c, b, is_delta); }

static void send_error(srv_client *c, const tsk__msg *m, tsk__perr e, const char *message) {
  tsk__jbuf *b = &c->s->out;
  tsk__proto_error(b, m, e, message);
  client_send(c, b, 0);
  if (tsk__perr_closes(e)) client_close_flush(c);
}

static void send_ok(srv_client *c, const tsk__msg *m, const char *type) {
  tsk__jbuf *b = &c->s->out;
  tsk__render_head(b, type, m);
  if (m->type == TSK__MSG_PING) {
    tsk__jbuf_puts(b, ",\"time_ms\":");
    tsk__jbuf_u64(b, tsk__srv_now_ns() / 1000000);
  }
  tsk__jbuf_puts(b, "}\n");
  client_send(c, b, 0);
}

/* ---- client life ---- */

static void on_client_closed(uv_handle_t *h) {
  srv_client *c = (srv_client *)h;
  tsk__framer_free(&c->in);
  free(c);
}

static void client_detach(srv_client *c) {
  c->closing = 1;
  if (c->pending) c->pending->client = NULL;
  c->pending = NULL;
  tsk__bulk_client_gone(c->s, c);
  tsk__list_remove(&c->link);
  c->s->nclients--;
  atomic_store(&tsk__srv_count.clients, c->s->nclients);
  if (c->reading) uv_read_stop((uv_stream_t *)&c->pipe);
  c->reading = 0;
}

static void client_close(srv_client *c) {
  if (c->closing) return;
  client_detach(c);
  uv_close((uv_handle_t *)&c->pipe, on_client_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  uv_close((uv_handle_t *)req->handle, on_client_closed);
}

/* Closes after what was sent so far has gone out (an error that ends the session). */
static void client_close_flush(srv_client *c) {
  if (c->closing) return;
  client_detach(c);
  if (uv_shutdown(&c->shut, (uv_stream_t *)&c->pipe, on_shutdown) != 0)
    uv_close((uv_handle_t *)&c->pipe, on_client_closed);
}

/* ---- requests that need a loop thread ---- */

static tsk__insp_req *req_new(tsk__req_kind kind, uint64_t id, uintptr_t ptr) {
  tsk__insp_req *q = calloc(1, sizeof *q);
  if (!q) return NULL;
  q->kind = kind;
  q->task_id = id;
  q->task_ptr = ptr;
  atomic_init(&q->state, TSK__REQ_PENDING_);
  return q;
}

/* Queues q for the runtime's loop thread and wakes it; -1 when the runtime closed (q is still
 * the caller's). */
static int req_post(tsk__insp_rt *in, tsk__insp_req *q) {
  pthread_mutex_lock(&in->lock);
  if (atomic_load(&in->closed)) {
    pthread_mutex_unlock(&in->lock);
    return -1;
  }
  q->next = NULL;
  if (in->req_tail)
    in->req_tail->next = q;
  else
    in->req_head = q;
  in->req_tail = q;
  uv_async_send(&in->rt->async);
  pthread_mutex_unlock(&in->lock);
  return 0;
}

void tsk__srv_wake_loop(tsk__insp_rt *in) {
  pthread_mutex_lock(&in->lock);
  if (!atomic_load(&in->closed)) uv_async_send(&in->rt->async);
  pthread_mutex_unlock(&in->lock);
}

static void pending_free(srv_pending *p) {
  for (size_t i = 0; i < p->nreq; i++) {
    if (!p->req[i]) continue;
    tsk__leak_free_list(p->req[i]->records);
    free(p->req[i]);
  }
  free(p->req);
  free(p->rt);
  free(p->direct);
  free(p);
}

static srv_pending *pending_new(srv_client *c, const tsk__msg *m, size_t nreq) {
  srv_pending *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->req = calloc(nreq ? nreq : 1, sizeof *p->req);
  p->rt = calloc(nreq ? nreq : 1, sizeof *p->rt);
  p->direct = calloc(nreq ? nreq : 1, sizeof *p->direct);
  if (!p->req || !p->rt || !p->direct) {
    free(p->req);
    free(p->rt);
    free(p->direct);
    free(p);
    return NULL;
  }
  p->client = c;
  p->msg = *m;
  p->nreq = nreq;
  p->deadline_ns = tsk__srv_now_ns() + (uint64_t)m->timeout_ms * 1000000;
  return p;
}

static void start_pending(srv_client *c, srv_pending *p) {
  tsk__list_push(&c->s->pendings, &p->link);
  c->pending = p;
}

static void answer_where(tsk__srv *s, srv_client *c, srv_pending *p) {
  tsk__insp_req *q = p->req[0];
  if (q->rc) {
    char msg[64];
    snprintf(msg, sizeof msg, "no live task %llu", (unsigned long long)p->msg.task);
    send_error(c, &p->msg, TSK__PE_NO_SUCH_TASK, msg);
    return;
  }
  tsk__jbuf *b = &s->out;
  tsk__render_head(b, "where", &p->msg);
  tsk__jbuf_puts(b, ",\"task\":");
  srv_task *t = tsk__mirror_find(s, q->task_id);
  if (t) {
    srv_task copy = *t; /* as the loop thread saw it just now */
    copy.first_run_ms = q->first_run_ms;
    copy.switches = q->switches;
    if (q->running) copy.state = TSK_TASK_RUNNING;
    tsk__render_task(s, b, &copy);
  } else {
    tsk__jbuf_puts(b, "{\"id\":");
    tsk__jbuf_u64(b, q->task_id);
    tsk__jbuf_puts(b, ",\"state\":");
    tsk__jbuf_str(b, tsk__task_state_name(q->state_now));
    tsk__jbuf_putc(b, '}');
  }
  tsk__jbuf_puts(b, ",\"suspended_at\":");
  if (q->running)
    tsk__jbuf_puts(b, "null,\"running\":true");
  else
    tsk__report_json_frames(b, q->susp, q->nsusp);
  tsk__jbuf_puts(b, ",\"created_at\":");
  tsk__report_json_frames(b, q->created, q->ncreated);
  tsk__jbuf_puts(b, p->direct[0] ? ",\"method\":\"direct\"}\n" : ",\"method\":\"loop\"}\n");
  client_send(c, b, 0);
}

static void answer_cancel(tsk__srv *s, srv_client *c, srv_pending *p) {
  (void)s;
  tsk__insp_req *q = p->req[0];
  char msg[96];
  if (p->direct[0]) {
    snprintf(msg, sizeof msg, "the loop did not answer within %lld ms",
             (long long)p->msg.timeout_ms);
    send_error(c, &p->msg, TSK__PE_TIMEOUT, msg);
  } else if (q->rc) {
    snprintf(msg, sizeof msg, "no live task %llu", (unsigned long long)p->msg.task);
    send_error(c, &p->msg, TSK__PE_NO_SUCH_TASK, msg);
  } else {
    send_ok(c, &p->msg, "ok");
  }
}

static void answer_leaks(tsk__srv *s, srv_client *c, srv_pending *p) {
  tsk__leak *pending = NULL, **tail = &pending;
  size_t omitted = 0;
  for (size_t i = 0; i < p->nreq; i++) {
    tsk__insp_req *q = p->req[i];
    if (!q) continue;
    *tail = q->records;
    q->records = NULL;
    while (*tail) tail = &(*tail)->next;
    omitted += q->omitted;
  }
  tsk__jbuf *b = &s->out;
  tsk__render_head(b, "leaks", &p->msg);
  tsk__jbuf_puts(b, ",\"report\":");
  tsk__render_report(s, b, pending);
  tsk__jbuf_puts(b, ",\"pending_omitted\":");
  tsk__jbuf_u64(b, omitted);
  tsk__jbuf_puts(b, "}\n");
  tsk__leak_free_list(pending);
  client_send(c, b, 0);
}

/* Falls back for request i, whose loop did not answer in time (the request was abandoned to
 * the loop thread, which frees it). */
static void fallback(tsk__srv *s, srv_pending *p, size_t i, tsk__insp_req *old) {
  tsk__insp_req *q = req_new(old->kind, old->task_id, old->task_ptr);
  p->req[i] = q;
  p->direct[i] = 1;
  if (!q) return;
  atomic_store(&q->state, TSK__REQ_DONE);
  srv_rt *r = p->rt[i];
  if (!r) {
    q->rc = TSK_ECLOSED;
    return;
  }
  if (q->kind == TSK__REQ_WHERE)
    tsk__stall_direct_where(s, r->in, q);
  else if (q->kind == TSK__REQ_PENDING)
    q->records = tsk__mirror_pending(s, r, TSK__REQ_PENDING_MAX, &q->omitted);
}

/* Answers the requests whose loops answered or timed out, in each client's order. */
static void check_pendings(tsk__srv *s, uint64_t now) {
  for (tsk__list *n = s->pendings.next; n != &s->pendings;) {
    srv_pending *p = TSK__CONTAINER(n, srv_pending, link);
    n = n->next;
    int done = 1;
    for (size_t i = 0; i < p->nreq; i++) {
      tsk__insp_req *q = p->req[i];
      if (!q || p->direct[i]) continue;
      int st = atomic_load_explicit(&q->state, memory_order_acquire);
      if (st == TSK__REQ_DONE) continue;
      int expected = TSK__REQ_PENDING_;
      if (now >= p->deadline_ns &&
          atomic_compare_exchange_strong(&q->state, &expected, TSK__REQ_ABANDONED)) {
        fallback(s, p, i, q);
        continue;
      }
      done = 0;
    }
    if (!done) continue;
    tsk__list_remove(&p->link);
    srv_client *c = p->client;
    if (c && !c->closing) {
      c->pending = NULL;
      int ok = 1;
      for (size_t i = 0; i < p->nreq; i++) ok = ok && p->req[i];
      if (!ok)
        send_error(c, &p->msg, TSK__PE_INTERNAL, "out of memory");
      else if (p->msg.type == TSK__MSG_WHERE)
        answer_where(s, c, p);
      else if (p->msg.type == TSK__MSG_CANCEL)
        answer_cancel(s, c, p);
      else
        answer_leaks(s, c, p);
    }
    pending_free(p);
    if (c && !c->closing) process_lines(c); /* the lines that waited */
  }
}

static void start_task_request(tsk__srv *s, srv_client *c, const tsk__msg *m) {
  tsk__mirror_drain(s);
  srv_task *t = tsk__mirror_find(s, m->task);
  char msg[64];
  snprintf(msg, sizeof msg, "no live task %llu", (unsigned long long)m->task);
  if (!t) {
    send_error(c, m, TSK__PE_NO_SUCH_TASK, msg);
    return;
  }
  srv_pending *p = pending_new(c, m, 1);
  tsk__insp_req *q = p ? req_new(m->type == TSK__MSG_WHERE ? TSK__REQ_WHERE : TSK__REQ_CANCEL,
                                 t->id, t->ptr)
                       : NULL;
  if (!q) {
    if (p) pending_free(p);
    send_error(c, m, TSK__PE_INTERNAL, "out of memory");
    return;
  }
  if (req_post(t->rt->in, q) != 0) {
    free(q);
    pending_free(p);
    send_error(c, m, TSK__PE_NO_SUCH_TASK, msg);
    return;
  }
  p->req[0] = q;
  p->rt[0] = t->rt;
  start_pending(c, p);
}

static void start_leaks(tsk__srv *s, srv_client *c, const tsk__msg *m) {
  tsk__mirror_drain(s);
  srv_pending *p = pending_new(c, m, m->pending ? s->nrts : 0);
  if (!p) {
    send_error(c, m, TSK__PE_INTERNAL, "out of memory");
    return;
  }
  size_t i = 0;
  for (tsk__list *n = s->rts.next; m->pending && n != &s->rts && i < p->nreq; n = n->next) {
    srv_rt *r = TSK__CONTAINER(n, srv_rt, link);
    tsk__insp_req *q = req_new(TSK__REQ_PENDING, 0, 0);
    if (q && req_post(r->in, q) == 0) {
      p->req[i] = q;
      p->rt[i] = r;
      i++;
    } else {
      free(q);
    }
  }
  p->nreq = i;
  start_pending(c, p);
  check_pendings(s, tsk__srv_now_ns()); /* answers at once when nothing was asked */
}

/* ---- one line from a client ---- */

static void handle_line(srv_client *c, const char *line, size_t len) {
  tsk__srv *s = c->s;
  tsk__msg m;
  char err[256];
  tsk__perr e = tsk__proto_parse(line, len, &m, err, sizeof err);
  if (e == TSK__PE_OK) e = tsk__proto_session_check(&c->sess, &m, err, sizeof err);
  if (e != TSK__PE_OK) {
    send_error(c, &m, e, err);
    return;
  }
  switch (m.type) {
  case TSK__MSG_HELLO: break; /* answered by our own hello, sent at connection */
  case TSK__MSG_PING: send_ok(c, &m, "pong"); break;
  /* (Both subscribe and its snapshot take effect as of the snapshot: bulk.c.) */
  case TSK__MSG_SNAPSHOT: tsk__bulk_snapshot(s, c, &m, 0); break;
  case TSK__MSG_SUBSCRIBE: tsk__bulk_snapshot(s, c, &m, 1); break;
  case TSK__MSG_UNSUBSCRIBE:
    c->subscribed = 0;
    send_ok(c, &m, "ok");
    break;
  case TSK__MSG_WHERE:
  case TSK__MSG_CANCEL: start_task_request(s, c, &m); break;
  case TSK__MSG_LEAKS: start_leaks(s, c, &m); break;
  }
}

/* Handles the complete lines read so far, unless a request is waiting for a loop thread or a
 * snapshot for the bulk thread; reads more only when none is. */
static void process_lines(srv_client *c) {
  while (!c->closing && !c->pending && !c->bulk) {
    const char *line;
    size_t len;
    int r = tsk__framer_next(&c->in, &line, &len);
    if (r == 0) break;
    if (r < 0) {
      char msg[64];
      snprintf(msg, sizeof msg, "message longer than %d bytes", TSK__PROTO_LINE_MAX);
      send_error(c, NULL, TSK__PE_TOO_LONG, msg);
      return;
    }
    handle_line(c, line, len);
  }
  if (c->closing) return;
  int waiting = c->pending || c->bulk;
  if (waiting && c->reading) {
    uv_read_stop((uv_stream_t *)&c->pipe);
    c->reading = 0;
  } else if (!waiting && !c->reading) {
    start_reading(c);
  }
}

void tsk__srv_resume(srv_client *c) { process_lines(c); }

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  srv_client *c = (srv_client *)h;
  size_t room;
  char *p = tsk__framer_space(&c->in, &room);
  *buf = uv_buf_init(p, (unsigned)room);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  srv_client *c = (srv_client *)st;
  if (n < 0) { /* end of stream, error, or a full buffer: the client is gone */
    client_close(c);
    return;
  }
  tsk__framer_wrote(&c->in, (size_t)n);
  process_lines(c);
}

static void start_reading(srv_client *c) {
  if (c->closing || c->reading || c->pending || c->bulk) return;
  if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) == 0)
    c->reading = 1;
  else
    client_close(c);
}

static void send_hello(tsk__srv *s, srv_client *c) {
  tsk__jbuf *b = &s->out;
  tsk__jbuf_puts(b, "{\"type\":\"hello\",\"protocol\":\"taskscope\",\"version\":");
  tsk__jbuf_i64(b, TSK__PROTO_VERSION);
  tsk__jbuf_puts(b, ",\"pid\":");
  tsk__jbuf_i64(b, s->pid);
  tsk__jbuf_puts(b, ",\"program\":");
  tsk__jbuf_str(b, program_invocation_short_name);
  tsk__jbuf_puts(b, ",\"server\":\"libtaskscope " TSK_VERSION_STRING "\",\"runtimes\":");
  size_t open = 0;
  for (tsk__list *n = s->rts.next; n != &s->rts; n = n->next)
    open += !atomic_load(&TSK__CONTAINER(n, srv_rt, link)->in->closed);
  tsk__jbuf_u64(b, open);
  tsk__jbuf_puts(b, ",\"time_ms\":");
  tsk__jbuf_u64(b, tsk__srv_now_ns() / 1000000);
  tsk__jbuf_puts(b, "}\n");
  client_send(c, b, 0);
}

static void on_connection(uv_stream_t *listener, int status) {
  tsk__srv *s = listener->data;
  if (status < 0) return;
  srv_client *c = calloc(1, sizeof *c);
  if (!c) return;
  c->s = s;
  tsk__list_init(&c->link);
  if (tsk__framer_init(&c->in) != 0 || uv_pipe_init(&s->loop, &c->pipe, 0) != 0) {
    tsk__framer_free(&c->in);
    free(c);
    return;
  }
  if (uv_accept(listener, (uv_stream_t *)&c->pipe) != 0) {
    c->closing = 1;
    uv_close((uv_handle_t *)&c->pipe, on_client_closed);
    return;
  }
  tsk__list_push(&s->clients, &c->link);
  s->nclients++;
  atomic_store(&tsk__srv_count.clients, s->nclients);
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0 || !tsk__srv_peer_allowed(fd)) {
    atomic_fetch_add(&tsk__srv_count.refused_uid, 1);
    send_error(c, NULL, TSK__PE_FORBIDDEN,
               "only the process's own user and root may connect");
    return;
  }
  if (s->nclients > TSK__SRV_CLIENTS_MAX) {
    char msg[64];
    snprintf(msg, sizeof msg, "too many clients (at most %d)", TSK__SRV_CLIENTS_MAX);
    atomic_fetch_add(&tsk__srv_count.refused_busy, 1);
    send_error(c, NULL, TSK__PE_BUSY, msg);
    return;
  }
  atomic_fetch_add(&tsk__srv_count.accepted, 1);
  send_hello(s, c);
  start_reading(c);
}

/* ---- the server loop ---- */

static void adopt_incoming(tsk__srv *s) {
  pthread_mutex_lock(&g_lock);
  tsk__insp_rt *in = s->incoming;
  s->incoming = NULL;
  pthread_mutex_unlock(&g_lock);
  /* Oldest first, so runtimes are listed in creation order. */
  tsk__insp_rt *rev = NULL;
  while (in) {
    tsk__insp_rt *next = in->next;
    in->next = rev;
    rev = in;
    in = next;
  }
  while (rev) {
    tsk__insp_rt *next = rev->next;
    rev->next = NULL;
    if (!tsk__mirror_add_rt(s, rev)) {
      /* Out of memory: the runtime runs on unobserved; its ring just fills up. It is freed
       * when it detaches (as if the server were gone). */
      pthread_mutex_lock(&g_lock);
      rev->gen = 0;
      pthread_mutex_unlock(&g_lock);
    }
    rev = next;
  }
}

static void send_deltas(tsk__srv *s, uint64_t now) {
  for (tsk__list *n = s->clients.next; n != &s->clients;) {
    srv_client *c = TSK__CONTAINER(n, srv_client, link);
    n = n->next;
    if (!c->subscribed || c->closing || c->pending || c->bulk) continue;
    if (c->need_resync && c->queued < TSK__SRV_OUT_MAX / 2) {
      /* It reads again (or a resync of the mirror lost tasks): a fresh full view. */
      tsk__bulk_snapshot(s, c, NULL, 0);
      continue;
    }
    if (now < c->next_ns) continue;
    c->next_ns = now + c->interval_ms * 1000000;
    if (c->need_resync || c->queued > TSK__SRV_OUT_MAX) { /* it would be dropped: skip it */
      c->need_resync = 1;
      atomic_fetch_add(&tsk__srv_count.deltas_dropped, 1);
      continue;
    }
    tsk__render_delta(s, &s->out, c);
    c->delta_seq++;
    c->last_seq = s->seq;
    client_send(c, &s->out, 1);
  }
}

/* Drains again in 1 ms while a ring was found more than a quarter full, so that bursts fit. */
static void on_fast(uv_timer_t *h);
static void pace(tsk__srv *s, uint64_t most) {
  int want = most > TSK__EV_RING / 4;
  if (want == s->fast_on) return;
  s->fast_on = want;
  if (want)
    uv_timer_start(&s->fast, on_fast, TSK__SRV_FAST_MS, TSK__SRV_FAST_MS);
  else
    uv_timer_stop(&s->fast);
}

static void on_fast(uv_timer_t *h) {
  tsk__srv *s = h->data;
  pace(s, tsk__mirror_drain(s));
}

static void on_tick(uv_timer_t *h) {
  tsk__srv *s = h->data;
  adopt_incoming(s);
  pace(s, tsk__mirror_drain(s));
  uint64_t now = tsk__srv_now_ns();
  for (tsk__list *n = s->rts.next; n != &s->rts; n = n->next) {
    srv_rt *r = TSK__CONTAINER(n, srv_rt, link);
    tsk__insp_rt *in = r->in;
    uint64_t drops = atomic_load_explicit(&in->ring->drops, memory_order_relaxed);
    if (drops != r->drops_seen) {
      r->drops_seen = drops;
      if (!r->resync_requested) {
        r->resync_requested = 1;
        atomic_store_explicit(&in->resync_wanted, 1, memory_order_release);
        atomic_fetch_add(&tsk__srv_count.resync_requests, 1);
      }
    }
    /* A resync proceeds a chunk per wake of the loop. */
    if (r->resync_requested) tsk__srv_wake_loop(in);
    tsk__stall_watch(s, r, now);
  }
  check_pendings(s, now);
  send_deltas(s, now);
}

static void on_handle_closed(uv_handle_t *h) { (void)h; }

static void shutdown_server(tsk__srv *s) {
  /* A stack sample still in flight: its handler may run late, so its runtime's state stays. */
  for (tsk__list *n = s->rts.next; n != &s->rts; n = n->next) {
    srv_rt *r = TSK__CONTAINER(n, srv_rt, link);
    if (r->sampling || r->sample_lost) r->in->keep = 1;
  }
  while (!tsk__list_empty(&s->clients))
    client_close(TSK__CONTAINER(s->clients.next, srv_client, link));
  /* Requests a loop thread may still hold: abandon what it has not taken; what it took it will
   * finish into memory we leave it (kept reachable through g_abandoned's list). */
  while (!tsk__list_empty(&s->pendings)) {
    srv_pending *p = TSK__CONTAINER(s->pendings.next, srv_pending, link);
    tsk__list_remove(&p->link);
    for (size_t i = 0; i < p->nreq; i++) {
      tsk__insp_req *q = p->req[i];
      if (!q || p->direct[i]) continue;
      int expected = TSK__REQ_PENDING_;
      if (atomic_compare_exchange_strong(&q->state, &expected, TSK__REQ_ABANDONED) ||
          expected == TSK__REQ_TAKEN)
        p->req[i] = NULL; /* the loop thread's now (or busy with it: leave it alone) */
    }
    pending_free(p);
  }
  uv_close((uv_handle_t *)&s->listener, on_handle_closed);
  uv_close((uv_handle_t *)&s->tick, on_handle_closed);
  uv_close((uv_handle_t *)&s->fast, on_handle_closed);
  uv_close((uv_handle_t *)&s->bulk_poll, on_handle_closed);
  uv_close((uv_handle_t *)&s->wake, on_handle_closed);
}

static void on_wake(uv_async_t *h) {
  tsk__srv *s = h->data;
  if (atomic_load(&s->stop)) {
    shutdown_server(s);
    return;
  }
  adopt_incoming(s);
  tsk__mirror_drain(s);
  check_pendings(s, tsk__srv_now_ns());
}

static void *server_main(void *arg) {
  tsk__srv *s = arg;
  pthread_setname_np(pthread_self(), "taskscope-srv"); /* (top -H, perf: whose CPU time) */
  tsc_sched_background_slice(); /* the app's threads preempt it on wake-up (sched_hint.h) */
  uv_timer_start(&s->tick, on_tick, TSK__SRV_TICK_MS, TSK__SRV_TICK_MS);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  tsk__bulk_stop(s);
  tsk__mirror_drain(s);
  tsk__mirror_free(s);
  tsk__jbuf_free(&s->out);
  uv_loop_close(&s->loop);
  return NULL;
}

/* ---- life cycle (any thread; g_lock) ---- */

static void at_exit_stop(void);

/* fork: no lock of ours may be held by the server thread in the child (it does not exist
 * there). Each runtime's lock is taken too: the server holds one while it reads the loop's
 * idle time, which takes libuv's metrics lock, which the child's copy of that loop needs. (The
 * symbolizer's own lock is symbolize.c's business.) */
static void fork_prepare(void) {
  pthread_mutex_lock(&g_lock);
  for (tsk__insp_rt *in = g_all; in; in = in->all_next) pthread_mutex_lock(&in->lock);
}
static void fork_parent(void) {
  for (tsk__insp_rt *in = g_all; in; in = in->all_next) pthread_mutex_unlock(&in->lock);
  pthread_mutex_unlock(&g_lock);
}
static void fork_child(void) {
  pthread_mutex_init(&g_lock, NULL);
  /* No server thread here: a runtime of the child starts its own server (and socket). The
   * parent's runtimes copied into the child keep pushing into rings nobody reads. */
  for (tsk__insp_rt *in = g_all; in; in = in->all_next) pthread_mutex_init(&in->lock, NULL);
  g_abandoned = g_srv;
  g_srv = NULL;
  g_state = SRV_NONE;
  g_gen++;
}

static int start_locked(const tsk__options *o) {
  if (!g_hooks_done) {
    g_hooks_done = 1;
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    atexit(at_exit_stop);
  }
  tsk__srv *s = calloc(1, sizeof *s);
  if (!s) return -1;
  s->pid = getpid();
  tsk__list_init(&s->clients);
  tsk__list_init(&s->pendings);
  tsk__jbuf_init(&s->out);
  if (tsk__mirror_init(s, o->history) != 0) goto fail_mirror;
  int fd = tsk__srv_listen(o, s->path, sizeof s->path);
  if (fd < 0) goto fail_mirror;
  if (uv_loop_init(&s->loop) != 0) goto fail_fd;
  uv_async_init(&s->loop, &s->wake, on_wake);
  s->wake.data = s;
  uv_timer_init(&s->loop, &s->tick);
  s->tick.data = s;
  uv_timer_init(&s->loop, &s->fast);
  s->fast.data = s;
  uv_timer_init(&s->loop, &s->bulk_poll);
  s->bulk_poll.data = s;
  uv_pipe_init(&s->loop, &s->listener, 0);
  s->listener.data = s;
  if (uv_pipe_open(&s->listener, fd) != 0 ||
      uv_listen((uv_stream_t *)&s->listener, 64, on_connection) != 0)
    goto fail_loop;
  if (o->suppressions[0]) {
    char err[256];
    if (tsk__suppressions_load(o->suppressions, &s->supp, err, sizeof err) != 0) s->supp = NULL;
  }
  tsk__stall_init(s);
  /* The server thread takes no signal meant for the application (except our sampling one,
   * which is thread-directed). */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&s->thread, NULL, server_main, s);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) goto fail_loop;
  g_srv = s;
  return 0;

fail_loop:
  uv_close((uv_handle_t *)&s->listener, NULL);
  uv_close((uv_handle_t *)&s->tick, NULL);
  uv_close((uv_handle_t *)&s->fast, NULL);
  uv_close((uv_handle_t *)&s->bulk_poll, NULL);
  uv_close((uv_handle_t *)&s->wake, NULL);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  uv_loop_close(&s->loop);
  unlink(s->path);
  fd = -1;
fail_fd:
  if (fd >= 0) {
    close(fd);
    unlink(s->path);
  }
fail_mirror:
  tsk__mirror_free(s);
  if (s->supp) tsk__suppressions_free(s->supp);
  for (int i = 0; i < 2; i++)
    if (s->safe_pipe[i] > 0) close(s->safe_pipe[i]);
  free(s);
  return -1;
}

/* Called with g_lock held. */
static void free_insp_locked(tsk__insp_rt *in) {
  if (in->keep) return; /* stays on g_all, reachable */
  for (tsk__insp_rt **pp = &g_all; *pp; pp = &(*pp)->all_next) {
    if (*pp == in) {
      *pp = in->all_next;
      break;
    }
  }
  tsk__ev_ring_discard(in);
  free(in->ring);
  pthread_mutex_destroy(&in->lock);
  free(in);
}

static void free_insp(tsk__insp_rt *in) {
  pthread_mutex_lock(&g_lock);
  free_insp_locked(in);
  pthread_mutex_unlock(&g_lock);
}

void tsk__srv_free_insp(tsk__insp_rt *in) { free_insp(in); }

tsk__insp_rt *tsk__server_attach(tsk_runtime_t *rt) {
  if (!rt->opts || rt->opts->socket == TSK__SOCKET_OFF) return NULL;
  tsk__insp_rt *in = calloc(1, sizeof *in);
  if (!in) return NULL;
  void *ring = NULL;
  if (posix_memalign(&ring, 64, sizeof(tsk__ev_ring)) != 0) {
    free(in);
    return NULL;
  }
  in->ring = ring;
  memset(in->ring, 0, offsetof(tsk__ev_ring, slot));
  in->rt = rt;
  in->loop = rt->loop;
  in->tid = (pid_t)syscall(SYS_gettid);
  pthread_mutex_init(&in->lock, NULL);
  pthread_mutex_lock(&g_lock);
  in->all_next = g_all;
  g_all = in;
  if (g_state == SRV_NONE) g_state = start_locked(rt->opts) == 0 ? SRV_RUNNING : SRV_FAILED;
  if (g_state != SRV_RUNNING) {
    free_insp_locked(in);
    pthread_mutex_unlock(&g_lock);
    return NULL;
  }
  in->gen = g_gen;
  in->id = ++g_next_rt_id;
  in->next = g_srv->incoming;
  g_srv->incoming = in;
  uv_async_send(&g_srv->wake);
  pthread_mutex_unlock(&g_lock);
  return in;
}

tsk__insp_req *tsk__server_detach(tsk__insp_rt *in) {
  /* g_lock first: the server frees a closed runtime's state only under it, so in stays valid
   * until we are done here, even though the server may see closed at once. */
  pthread_mutex_lock(&g_lock);
  pthread_mutex_lock(&in->lock);
  atomic_store_explicit(&in->closed, 1, memory_order_release);
  tsk__insp_req *q = in->req_head;
  in->req_head = in->req_tail = NULL;
  pthread_mutex_unlock(&in->lock);
  if (in->gen == g_gen && in->gen != 0) {
    if (g_state == SRV_RUNNING) { /* the server drains the ring and frees in */
      uv_async_send(&g_srv->wake);
      pthread_mutex_unlock(&g_lock);
      return q;
    }
    if (g_state == SRV_STOPPING) { /* the thread may still look at it: keep it */
      in->next = g_late;
      g_late = in;
      pthread_mutex_unlock(&g_lock);
      return q;
    }
  }
  /* No server owns it (stopped, a fork's parent's, or never adopted). */
  free_insp_locked(in);
  pthread_mutex_unlock(&g_lock);
  return q;
}

void tsk__server_wake(void) {
  pthread_mutex_lock(&g_lock);
  if (g_state == SRV_RUNNING) uv_async_send(&g_srv->wake);
  pthread_mutex_unlock(&g_lock);
}

/* At exit: stops the thread and removes the socket. Runtimes still open keep their shared
 * state (they may still push into it while the process exits). */
static void at_exit_stop(void) {
  pthread_mutex_lock(&g_lock);
  tsk__srv *s = g_srv;
  if (g_state != SRV_RUNNING || !s || s->pid != getpid()) {
    pthread_mutex_unlock(&g_lock);
    return;
  }
  g_state = SRV_STOPPING;
  atomic_store(&s->stop, 1);
  uv_async_send(&s->wake);
  pthread_mutex_unlock(&g_lock);
  pthread_join(s->thread, NULL);
  unlink(s->path);
  pthread_mutex_lock(&g_lock);
  /* Runtimes not adopted yet, and those detached meanwhile, are nobody's now: the open ones are
   * freed when they detach (gen 0), the detached ones here. */
  for (tsk__insp_rt *in = s->incoming; in; in = in->next) in->gen = 0;
  while (g_late) {
    tsk__insp_rt *in = g_late;
    g_late = in->next;
    free_insp_locked(in);
  }
  g_state = SRV_STOPPED;
  g_srv = NULL;
  pthread_mutex_unlock(&g_lock);
  if (s->supp) tsk__suppressions_free(s->supp);
  for (int i = 0; i < 2; i++)
    if (s->safe_pipe[i] >= 0) close(s->safe_pipe[i]);
  free(s);
}

/* ---- for tests ---- */

void tsk__server_stats_get(tsk__server_stats *st) {
  st->accepted = atomic_load(&tsk__srv_count.accepted);
  st->refused_uid = atomic_load(&tsk__srv_count.refused_uid);
  st->refused_busy = atomic_load(&tsk__srv_count.refused_busy);
  st->disconnected_slow = atomic_load(&tsk__srv_count.disconnected_slow);
  st->deltas_dropped = atomic_load(&tsk__srv_count.deltas_dropped);
  st->resyncs_sent = atomic_load(&tsk__srv_count.resyncs_sent);
  st->max_queued = atomic_load(&tsk__srv_count.max_queued);
  st->clients = atomic_load(&tsk__srv_count.clients);
  st->events = atomic_load(&tsk__srv_count.events);
  st->resync_requests = atomic_load(&tsk__srv_count.resync_requests);
  st->bulk_snapshots = atomic_load(&tsk__srv_count.bulk_snapshots);
  st->bulk_policy = atomic_load(&tsk__srv_count.bulk_policy);
  st->bulk_late = atomic_load(&tsk__srv_count.bulk_late);
}

size_t tsk__server_socket_path(char *buf, size_t size) {
  pthread_mutex_lock(&g_lock);
  int n = snprintf(buf, size, "%s", g_state == SRV_RUNNING && g_srv ? g_srv->path : "");
  pthread_mutex_unlock(&g_lock);
  return n > 0 ? (size_t)n : 0;
}

int tsk__server_running(void) {
  pthread_mutex_lock(&g_lock);
  int r = g_state == SRV_RUNNING;
  pthread_mutex_unlock(&g_lock);
  return r;
}
