/*
 * unretrieved_error — "Task exception was never retrieved": fire-and-forget tasks lose errors.
 *
 * A service flushes its metrics in the background: after a burst of requests, main spawns one
 * `send_metrics` task per metric family (requests, latency, errors, queue-depth) and detaches
 * them — fire and forget, nobody waits for a metrics push. The families go to a statsd-like
 * collector on loopback, except "latency", which is routed to a relay whose port is closed: its
 * connect fails for real with ECONNREFUSED, and the task fails with
 *   tsk_error(rc, "push latency to 127.0.0.1:PORT: connection refused").
 * Because the task was detached, nobody ever sees that error: main happily reports "metrics
 * flushed", and the latency numbers silently vanish.
 *
 * Report: one unretrieved_error record for the task "send_metrics:latency" (state failed, the
 * error ECONNREFUSED and its message), with its creation backtrace (spawned in flush_metrics,
 * called from main_task) and the backtrace where the error was raised (push_family, called
 * from send_metrics).
 *
 * --fixed: flush_metrics keeps the handles and joins every task, logging the failure (the error
 * is retrieved). No leak record.
 *
 *   unretrieved_error [--fixed]
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
#define NFAMILIES 4

typedef struct app {
  tsk_runtime_t *rt;
  int fixed;
  tsk_tcp_t *collector;           /* the listening socket of the collector */
  struct sockaddr_in collector_addr;
  struct sockaddr_in relay_addr;  /* a closed loopback port: the relay is down */
  int lines_received;
  int pushed;                     /* send_metrics tasks that succeeded */
} app;

/* One metric family to push. */
typedef struct family {
  app *a;
  const char *name;
  const struct sockaddr_in *dest; /* points into app */
  int value;
} family;

/* ---- the collector (the healthy endpoint) ---- */

static int count_lines(const char *buf, ssize_t n) {
  int lines = 0;
  for (ssize_t i = 0; i < n; i++) lines += buf[i] == '\n';
  return lines;
}

/* Accepts connections one after the other and counts the metric lines, until cancelled. */
static NOINLINE int metrics_collector(void *arg) {
  app *a = arg;
  for (;;) {
    tsk_tcp_t *conn;
    int rc = tsk_tcp_accept(a->collector, TSK_FOREVER, &conn);
    if (rc) return rc == TSK_ECANCELED ? rc : tsk_error(rc, "accept: %s", tsk_strerror(rc));
    char buf[512];
    ssize_t n;
    while ((n = tsk_tcp_read(conn, buf, sizeof buf, 1000)) > 0)
      a->lines_received += count_lines(buf, n);
    tsk_tcp_close(conn);
    if (n == TSK_ECANCELED) return TSK_ECANCELED;
  }
}

/* ---- the metrics push ---- */

/* Connects to the family's endpoint and writes its line in statsd format. */
static NOINLINE int push_family(family *f) {
  tsk_tcp_t *c;
  int port = ntohs(f->dest->sin_port);
  int rc = tsk_tcp_connect((const struct sockaddr *)f->dest, 1000, &c);
  if (rc) return tsk_error(rc, "push %s to 127.0.0.1:%d: %s", f->name, port, tsk_strerror(rc));
  char line[96];
  int len = snprintf(line, sizeof line, "app.%s:%d|c\n", f->name, f->value);
  rc = tsk_tcp_write(c, line, (size_t)len, 1000);
  tsk_tcp_shutdown(c);
  tsk_tcp_close(c);
  if (rc) return tsk_error(rc, "push %s to 127.0.0.1:%d: %s", f->name, port, tsk_strerror(rc));
  return 0;
}

/* The task: one push, counted when it succeeds. */
static NOINLINE int send_metrics(void *arg) {
  family *f = arg;
  int rc = push_family(f);
  if (rc == 0) f->a->pushed++;
  return rc;
}

/* Spawns one send_metrics task per family. THE BUG (buggy mode): each task is detached, so a
 * failure is never retrieved. The fix: keep the handles, join them, log the failures. */
static NOINLINE int flush_metrics(app *a, family *fams, int n) {
  tsk_task_t tasks[NFAMILIES];
  for (int i = 0; i < n; i++) {
    char name[32];
    snprintf(name, sizeof name, "send_metrics:%s", fams[i].name);
    int rc = tsk_spawn(a->rt, &tasks[i], name, send_metrics, &fams[i]);
    if (rc) return rc;
    if (!a->fixed) tsk_detach(tasks[i]); /* fire and forget */
  }
  if (!a->fixed) {
    printf("  flush_metrics: %d pushes started in the background\n", n);
    return 0;
  }
  int failed = 0;
  for (int i = 0; i < n; i++) {
    tsk_result_t res = {0};
    int rc = tsk_join(tasks[i], 5000, &res);
    if (rc) {
      failed++;
      printf("  flush_metrics: push of %s failed: %s: %s\n", fams[i].name, tsk_err_name(rc),
             res.message);
    }
  }
  printf("  flush_metrics: %d pushes joined, %d failed (logged, retried at the next flush)\n", n,
         failed);
  return 0;
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

static NOINLINE int main_task(void *arg) {
  app *a = arg;
  int rc;
  uv_ip4_addr("127.0.0.1", 0, &a->collector_addr);
  if ((rc = tsk_tcp_listen((const struct sockaddr *)&a->collector_addr, 64, &a->collector)) != 0)
    return tsk_error(rc, "listen: %s", tsk_strerror(rc));
  struct sockaddr_storage bound;
  tsk_tcp_sockname(a->collector, &bound);
  a->collector_addr = *(struct sockaddr_in *)&bound;
  if ((rc = closed_port(&a->relay_addr)) != 0)
    return tsk_error(rc, "listen: %s", tsk_strerror(rc));
  printf("  collector on 127.0.0.1:%d, latency relay (down) on 127.0.0.1:%d\n",
         ntohs(a->collector_addr.sin_port), ntohs(a->relay_addr.sin_port));

  tsk_task_t collector;
  if ((rc = tsk_spawn(a->rt, &collector, "metrics_collector", metrics_collector, a)) != 0)
    return rc;

  family fams[NFAMILIES] = {
      {a, "requests", &a->collector_addr, 1200},
      {a, "latency", &a->relay_addr, 37},
      {a, "errors", &a->collector_addr, 3},
      {a, "queue_depth", &a->collector_addr, 17},
  };
  if ((rc = flush_metrics(a, fams, NFAMILIES)) != 0) return rc;

  tsk_sleep(100); /* the service goes on serving requests */
  printf("  main: metrics flushed; %d of %d pushes succeeded, collector received %d lines\n",
         a->pushed, NFAMILIES, a->lines_received);

  tsk_cancel(collector);
  tsk_join(collector, 1000, NULL);
  tsk_tcp_close(a->collector);
  return 0;
}

static void usage(FILE *out, const char *prog) {
  fprintf(out,
          "usage: %s [--fixed]\n"
          "  Reproduces \"Task exception was never retrieved\": detached `send_metrics` tasks,\n"
          "  one of which fails (connection refused); nobody sees the error.\n"
          "  --fixed  keep the handles and join them, logging the failure\n",
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
    fprintf(stderr, "unretrieved_error: cannot create runtime: %s\n", tsk_strerror(rc));
    return 1;
  }
  printf("unretrieved_error (%s)\n", a.fixed ? "fixed" : "buggy");
  tsk_result_t res = {0};
  rc = tsk_run_main(a.rt, "main", main_task, &a, &res);
  if (rc) printf("  main failed: %s %s\n", tsk_err_name(rc), res.message);
  tsk_runtime_close(a.rt);
  printf("unretrieved_error: done\n");
  return 0;
}
