/*
 * io_bench.c — io_overhead_pct (see io_bench.h).
 */
#define _GNU_SOURCE
#include "io_bench.h"

#include "bench_util.h"

#include "taskscope.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IO_CLIENTS 8
#define IO_MSG 64

typedef struct io_ctx {
  int rounds;          /* round trips per client */
  tsk_tcp_t *server;
  struct sockaddr_in addr;
  int failures;        /* operations that failed (any makes the run fail) */
  char first_error[160];
} io_ctx;

static void failed(io_ctx *c, const char *what, int rc) {
  if (c->failures++ == 0)
    snprintf(c->first_error, sizeof c->first_error, "%s: %s", what, tsk_strerror(rc));
}

/* Reads exactly len bytes; 0 or an error (TSK_EFAILED at end of stream). */
static int read_full(tsk_tcp_t *t, char *buf, size_t len) {
  for (size_t got = 0; got < len;) {
    ssize_t n = tsk_tcp_read(t, buf + got, len - got, TSK_FOREVER);
    if (n <= 0) return n == 0 ? TSK_EFAILED : (int)n;
    got += (size_t)n;
  }
  return 0;
}

/* One accepted connection: echoes until the client closes. */
static int echo_task(void *arg) {
  tsk_tcp_t *conn = arg;
  char buf[IO_MSG];
  for (;;) {
    ssize_t n = tsk_tcp_read(conn, buf, sizeof buf, TSK_FOREVER);
    if (n <= 0) break;
    if (tsk_tcp_write(conn, buf, (size_t)n, TSK_FOREVER) != 0) break;
  }
  tsk_tcp_close(conn);
  return 0;
}

/* Accepts IO_CLIENTS connections, one echo task each, and joins them all. */
static int acceptor_task(void *arg) {
  io_ctx *c = arg;
  tsk_task_t echo[IO_CLIENTS];
  int n = 0;
  for (; n < IO_CLIENTS; n++) {
    tsk_tcp_t *conn;
    int rc = tsk_tcp_accept(c->server, TSK_FOREVER, &conn);
    if (rc == 0) rc = tsk_spawn(tsk_runtime_current(), &echo[n], "echo", echo_task, conn);
    if (rc != 0) {
      failed(c, "accept/spawn", rc);
      break;
    }
  }
  for (int i = 0; i < n; i++) tsk_join(echo[i], TSK_FOREVER, NULL);
  return 0;
}

static int client_task(void *arg) {
  io_ctx *c = arg;
  tsk_tcp_t *conn;
  int rc = tsk_tcp_connect((struct sockaddr *)&c->addr, TSK_FOREVER, &conn);
  if (rc != 0) {
    failed(c, "connect", rc);
    return rc;
  }
  char out[IO_MSG], in[IO_MSG];
  memset(out, 'x', sizeof out);
  for (int r = 0; r < c->rounds && rc == 0; r++) {
    rc = tsk_tcp_write(conn, out, sizeof out, TSK_FOREVER);
    if (rc == 0) rc = read_full(conn, in, sizeof in);
  }
  if (rc != 0) failed(c, "round trip", rc);
  tsk_tcp_close(conn);
  return rc;
}

static int io_main(void *arg) {
  io_ctx *c = arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int rc = tsk_tcp_listen((struct sockaddr *)&any, 128, &c->server);
  if (rc != 0) {
    failed(c, "listen", rc);
    return rc;
  }
  struct sockaddr_storage ss;
  tsk_tcp_sockname(c->server, &ss);
  memcpy(&c->addr, &ss, sizeof c->addr);
  tsk_task_t acceptor, clients[IO_CLIENTS];
  rc = tsk_spawn(rt, &acceptor, "acceptor", acceptor_task, c);
  int n = 0;
  for (; rc == 0 && n < IO_CLIENTS; n++) rc = tsk_spawn(rt, &clients[n], "client", client_task, c);
  if (rc != 0) failed(c, "spawn", rc);
  for (int i = 0; i < n; i++) tsk_join(clients[i], TSK_FOREVER, NULL);
  tsk_join(acceptor, TSK_FOREVER, NULL);
  tsk_tcp_close(c->server);
  return 0;
}

/* One run in a new runtime made with the options as they are now; its wall time in *ms. */
static int run_once(int quick, double *ms, char *err, size_t errlen) {
  io_ctx c;
  memset(&c, 0, sizeof c);
  c.rounds = quick ? 300 : 1500;
  tsk_runtime_t *rt;
  int rc = tsk_runtime_new(&rt);
  if (rc != 0) {
    snprintf(err, errlen, "tsk_runtime_new: %s", tsk_strerror(rc));
    return -1;
  }
  uint64_t t0 = bench_now_ns();
  rc = tsk_run_main(rt, "io-bench", io_main, &c, NULL);
  uint64_t t1 = bench_now_ns();
  tsk_runtime_close(rt);
  if (rc != 0 || c.failures) {
    snprintf(err, errlen, "%s", c.failures ? c.first_error : tsk_strerror(rc));
    return -1;
  }
  *ms = (double)(t1 - t0) / 1e6;
  return 0;
}

/* Sets backtrace and socket for the runtimes made from now on. */
static int set_mode(const char *backtrace, const char *socket, char *err, size_t errlen) {
  int rc = tsk_options_set("backtrace", backtrace, err, errlen);
  if (rc == 0) rc = tsk_options_set("socket", socket, err, errlen);
  return rc;
}

int io_bench_overhead(int quick) {
  enum { MAX_ROUNDS = 10 };
  int rounds = quick ? 3 : MAX_ROUNDS;
  char saved_bt[64], saved_sock[512], err[256];
  bench_option("backtrace", "spawn", saved_bt, sizeof saved_bt);
  bench_option("socket", "auto", saved_sock, sizeof saved_sock);
  if (strcmp(saved_sock, "off") == 0) snprintf(saved_sock, sizeof saved_sock, "auto");
  double best[2] = {-1, -1}, ratio[MAX_ROUNDS];
  for (int round = 0; round < rounds; round++) {
    double ms[2];
    /* Alternate which goes first, so that a drift of the machine's speed favours neither. */
    for (int k = 0; k < 2; k++) {
      int on = (round + k) % 2;
      int rc = on ? set_mode("spawn", saved_sock, err, sizeof err)
                  : set_mode("off", "off", err, sizeof err);
      if (rc == 0 && run_once(quick, &ms[on], err, sizeof err) != 0) rc = -1;
      if (rc != 0) {
        set_mode(saved_bt, saved_sock, err, sizeof err);
        printf("io_overhead_pct: error (%s)\n", err);
        return 1;
      }
      if (best[on] < 0 || ms[on] < best[on]) best[on] = ms[on];
    }
    ratio[round] = ms[1] / ms[0];
  }
  set_mode(saved_bt, saved_sock, err, sizeof err);
  double median = bench_median(ratio, rounds);
  double pct = (median - 1.0) * 100.0;
  printf("io_echo_plain_ms: %.1f ms (backtrace=off, socket=off; best of %d)\n", best[0], rounds);
  printf("io_echo_instrumented_ms: %.1f ms (backtrace=spawn, socket=%s; best of %d)\n", best[1],
         saved_sock, rounds);
  printf("io_overhead_pct: %.1f %% (median of %d paired runs, instrumented / plain - 1; best / best "
         "- 1: %.1f %%; target <= 3: %s)\n",
         pct, rounds, (best[1] / best[0] - 1.0) * 100.0, pct <= 3.0 ? "met" : "not met");
  printf("# io_overhead_pct: paired ratios");
  for (int i = 0; i < rounds; i++) printf(" %.3f", ratio[i]);
  printf("\n");
  fflush(stdout);
  return 0;
}
