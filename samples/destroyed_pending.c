/*
 * destroyed_pending — "Task was destroyed but it is pending!", in its two real-world shapes.
 *
 * (a) The loop closed under a task. A service starts a background poller, `poll_forever`, that
 *     checks a queue every 20 ms until a stop event is set. On the way out, main forgets to stop
 *     it: it returns, and the runtime is closed while the poller is still suspended in
 *     tsk_event_wait. Its stack is freed without its cleanup ever running.
 *     Report: a destroyed_pending record at runtime close for the task "poller" (created in
 *     main_task, suspended in poll_forever, awaiting an event).
 *
 * (b) A future whose completer was dropped. An RPC client sends a request; the request struct
 *     owns the only tsk_promise_t of the reply future, on which the task "await-reply"
 *     (`await_reply`) waits. Sending fails (the backend's port is closed: a real
 *     ECONNREFUSED), and the error path calls `drop_request`, which frees the request — and
 *     with it releases the promise — without completing it. Nobody can ever complete that
 *     future: the waiter is stranded. The runtime wakes it at once with TSK_EBROKEN.
 *     Report: a destroyed_pending ("stranded") record for the task "await-reply", recorded at
 *     the moment of the drop, with the backtrace of where the last completer was released
 *     (drop_request, called from send_request).
 *
 * --fixed: the error path completes the request before freeing it (`fail_request` rejects the
 * promise with the connect error, so the waiter learns why), and main cancels and joins the
 * poller before returning. Every task is joined and every error retrieved: no leak record.
 *
 *   destroyed_pending [--fixed]
 *
 * Exits 0 in both modes: reporting the leak is the runtime's job.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep, and what uv.h needs, in strict C11 */
#include "taskscope.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))

typedef struct app {
  tsk_runtime_t *rt;
  int fixed;
  tsk_event_t *stop;  /* set to stop the poller; owned by main(), freed after close */
  int polls;          /* how many times the poller checked its queue */
} app;

/* An outgoing RPC. Owns the only completer reference of its reply future. */
typedef struct request {
  int id;
  char method[32];
  tsk_promise_t *reply; /* completer side; released by drop_request */
} request;

/* ---- (a) the poller ---- */

static NOINLINE void poll_once(app *a) { a->polls++; }

/* Checks a queue every 20 ms until a->stop is set or the task is cancelled. */
static NOINLINE int poll_forever(void *arg) {
  app *a = arg;
  for (;;) {
    int rc = tsk_event_wait(a->stop, 20);
    if (rc == 0) return 0;                   /* asked to stop */
    if (rc == TSK_ECANCELED) return rc;      /* cancelled: the task's cleanup is this return */
    if (rc != TSK_ETIMEDOUT) return tsk_error(rc, "poller: %s", tsk_strerror(rc));
    poll_once(a);
  }
}

/* ---- (b) the RPC request ---- */

static request *request_new(tsk_runtime_t *rt, int id, const char *method,
                            tsk_future_t **reply_future) {
  request *req = calloc(1, sizeof *req);
  if (!req) return NULL;
  if (tsk_future_new(rt, reply_future, &req->reply) != 0) {
    free(req);
    return NULL;
  }
  req->id = id;
  snprintf(req->method, sizeof req->method, "%s", method);
  return req;
}

/* Frees a request. THE BUG: it releases the promise without completing it, so whoever waits
 * for the reply can never be woken with an answer. */
static NOINLINE void drop_request(request *req) {
  tsk_promise_release(req->reply);
  free(req);
}

/* The fix: complete the reply (here, rejected with the error) before freeing the request. */
static NOINLINE void fail_request(request *req, int err) {
  tsk_promise_reject(req->reply, err);
  drop_request(req);
}

/* Waits for the reply of one request; the future (waiter side) is this task's to release. */
static NOINLINE int await_reply(void *arg) {
  tsk_future_t *reply = arg;
  void *value = NULL;
  int rc = tsk_future_wait(reply, TSK_FOREVER, &value);
  tsk_future_release(reply);
  if (rc == 0) {
    printf("  await-reply: got reply %p\n", value);
    return 0;
  }
  printf("  await-reply: woke with %s (%s)\n", tsk_err_name(rc), tsk_strerror(rc));
  return tsk_error(rc, "request 1 (GetUser): no reply: %s", tsk_strerror(rc));
}

/* A loopback port nobody listens on: bind port 0, note the port, close the listener. */
static int closed_port(struct sockaddr_in *addr) {
  uv_ip4_addr("127.0.0.1", 0, addr);
  tsk_tcp_t *l;
  int rc = tsk_tcp_listen((const struct sockaddr *)addr, 1, &l);
  if (rc) return rc;
  struct sockaddr_storage bound;
  rc = tsk_tcp_sockname(l, &bound);
  tsk_tcp_close(l);
  if (rc) return rc;
  *addr = *(struct sockaddr_in *)&bound;
  return 0;
}

/* Sends req to the backend. On failure the request is disposed of here (the buggy way, or the
 * fixed way) and the error returned. */
static NOINLINE int send_request(app *a, request *req, const struct sockaddr_in *backend) {
  tsk_tcp_t *c;
  int rc = tsk_tcp_connect((const struct sockaddr *)backend, 1000, &c);
  if (rc) {
    printf("  send_request: request %d (%s) to 127.0.0.1:%d failed: %s\n", req->id, req->method,
           ntohs(backend->sin_port), tsk_strerror(rc));
    if (a->fixed)
      fail_request(req, rc);
    else
      drop_request(req); /* the error path forgets to complete the reply */
    return rc;
  }
  /* Not reached in this sample: the backend is down. A real client would write the request
   * here and keep req until the reply arrives. */
  tsk_tcp_close(c);
  tsk_promise_resolve(req->reply, NULL);
  drop_request(req);
  return 0;
}

static NOINLINE int main_task(void *arg) {
  app *a = arg;
  int rc;

  /* (a) start the background poller. */
  tsk_task_t poller;
  if ((rc = tsk_spawn(a->rt, &poller, "poller", poll_forever, a)) != 0) return rc;
  printf("  main: started the poller (checks its queue every 20 ms)\n");

  /* (b) one RPC whose reply a separate task awaits. */
  struct sockaddr_in backend;
  if ((rc = closed_port(&backend)) != 0) return tsk_error(rc, "listen: %s", tsk_strerror(rc));
  tsk_future_t *reply;
  request *req = request_new(a->rt, 1, "GetUser", &reply);
  if (!req) return TSK_ENOMEM;
  tsk_task_t waiter;
  if ((rc = tsk_spawn(a->rt, &waiter, "await-reply", await_reply, reply)) != 0) return rc;
  tsk_yield(); /* let await-reply start waiting */
  send_request(a, req, &backend);

  tsk_result_t res = {0};
  rc = tsk_join(waiter, 1000, &res);
  printf("  main: joined await-reply: %s%s%s\n", tsk_err_name(rc), res.message[0] ? ": " : "",
         res.message);

  tsk_sleep(70); /* the rest of the service's work; the poller runs meanwhile */
  printf("  main: the poller checked its queue %d times\n", a->polls);

  if (a->fixed) {
    tsk_cancel(poller);
    rc = tsk_join(poller, 1000, &res);
    printf("  main: stopped the poller (%s)\n",
           res.state == TSK_TASK_CANCELLED ? "cancelled" : tsk_err_name(rc));
  } else {
    printf("  main: returning; the poller is still waiting\n");
  }
  return 0;
}

static void usage(FILE *out, const char *prog) {
  fprintf(out,
          "usage: %s [--fixed]\n"
          "  Reproduces \"Task was destroyed but it is pending!\": (a) the runtime is closed\n"
          "  while the task `poll_forever` still waits; (b) `drop_request` releases the only\n"
          "  promise of a future that `await_reply` waits on (stranded).\n"
          "  --fixed  reject the request before freeing it, and cancel+join the poller\n",
          prog);
}

int main(int argc, char **argv) {
  app a = {0};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--fixed") == 0) {
      a.fixed = 1;
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout, argv[0]);
      return 0;
    } else {
      usage(stderr, argv[0]);
      return 2;
    }
  }
  int rc = tsk_runtime_new(&a.rt);
  if (rc) {
    fprintf(stderr, "destroyed_pending: cannot create runtime: %s\n", tsk_strerror(rc));
    return 1;
  }
  if ((rc = tsk_event_new(a.rt, &a.stop)) != 0) {
    fprintf(stderr, "destroyed_pending: %s\n", tsk_strerror(rc));
    return 1;
  }
  printf("destroyed_pending (%s)\n", a.fixed ? "fixed" : "buggy");
  tsk_result_t res = {0};
  rc = tsk_run_main(a.rt, "main", main_task, &a, &res);
  if (rc) printf("  main failed: %s %s\n", tsk_err_name(rc), res.message);
  tsk_stats_t st;
  tsk_runtime_stats(a.rt, &st);
  printf("  closing the runtime with %llu unfinished task(s)\n", (unsigned long long)st.live);
  tsk_runtime_close(a.rt);
  tsk_event_free(a.stop); /* allowed after close */
  printf("destroyed_pending: done\n");
  return 0;
}
